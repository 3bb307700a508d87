"""Statements per request, counted from PostgreSQL's own log.

The embedded server has no pg_stat_statements (it needs a preloaded library), so for a short window
every statement is logged with the client's application_name. Each statement is one round trip:
the service never pipelines.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import psycopg

_PREFIX = "%m [%p] app=%a "
# Each entry starts with the prefix; a statement's own newlines continue the entry.
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] app=", re.M)
# `statement:` for simple queries, `execute <name>:` for the extended protocol psycopg uses.
_STATEMENT = re.compile(r"(\S*) LOG:\s+(?:statement|execute [^:]*): (.*)", re.S)


class StatementLog:
    """Every statement logged while open (needs a superuser, and the server log in its data directory)."""

    def __init__(self, database_url: str, log_file: str = "log"):
        self.database_url, self.log_file = database_url, log_file

    def __enter__(self) -> StatementLog:
        self._connection = psycopg.connect(self.database_url, autocommit=True, application_name="bench-log")
        self._offset = self._size()
        self._configure(log_statement="'all'", log_line_prefix=f"'{_PREFIX}'")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._configure(log_statement=None, log_line_prefix=None)
        self._connection.close()

    def _configure(self, **settings: str | None) -> None:
        for name, value in settings.items():
            self._connection.execute(
                f"ALTER SYSTEM SET {name} = {value}" if value else f"ALTER SYSTEM RESET {name}"
            )
        self._connection.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)  # backends apply a reload at their next command

    def _size(self) -> int:
        return self._connection.execute("SELECT size FROM pg_stat_file(%s)", (self.log_file,)).fetchone()[0]

    def statements(self) -> dict[str, Counter]:
        """application_name -> statement (first 80 characters, white space folded) -> count, so far."""
        time.sleep(0.3)  # the server writes its log asynchronously to our reads
        end = self._size()
        text = self._connection.execute(
            "SELECT pg_read_file(%s, %s, %s)", (self.log_file, self._offset, end - self._offset)
        ).fetchone()[0]
        self._offset = end
        found: dict[str, Counter] = defaultdict(Counter)
        for entry in _ENTRY.split(text):
            if match := _STATEMENT.match(entry):
                found[match.group(1)][" ".join(match.group(2).split())[:80]] += 1
        return found
