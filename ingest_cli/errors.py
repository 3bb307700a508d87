"""What the commands report instead of a traceback, with the exit status each deserves."""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the user can act on: the message is shown as is, without a traceback."""

    exit_code = EXIT_FAILURE


class UsageError(CliError):
    """Bad input on our side of the wire: an unreadable or empty file, a malformed setting."""

    exit_code = EXIT_USAGE


class Unreachable(CliError):
    """No HTTP answer at all: refused, unknown host, timeout, connection dropped."""


class ApiError(CliError):
    """The API answered with an error status; `problem` is its RFC 9457 body when it sent one."""

    def __init__(self, message: str, status: int, problem: dict | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}
