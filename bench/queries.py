"""Statements per request, counted from PostgreSQL's own log.

The embedded server has no pg_stat_statements (it needs a preloaded library), so for a short window
every statement is logged with the client's application_name, which each function sets to its own
name. Counting those lines per function over a known number of requests shows the round trips each
request makes to the database, whatever library or framework issued them.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import psycopg

_PREFIX = "%m [%p] app=%a "
# Each log entry starts with the prefix; a statement's own newlines continue the entry.
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] app=", re.M)
# `statement:` for simple queries, `execute <name>:` for the extended protocol psycopg uses.
_STATEMENT = re.compile(r"(\S*) LOG:\s+(?:statement|execute [^:]*): (.*)", re.S)


class StatementLog:
    """Log every statement while open (superuser and a server log inside the data directory)."""

    def __init__(self, database_url: str, log_file: str = "log"):
        self.database_url = database_url
        self.log_file = log_file
        self._connection: psycopg.Connection | None = None
        self._offset = 0

    def __enter__(self) -> StatementLog:
        self._connection = psycopg.connect(self.database_url, autocommit=True)
        self._offset = self._size()
        self._configure("'all'", f"'{_PREFIX}'")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._configure(None, None)
        self._connection.close()

    def _configure(self, statement: str | None, prefix: str | None) -> None:
        for name, value in (("log_statement", statement), ("log_line_prefix", prefix)):
            action = f"SET {name} = {value}" if value else f"RESET {name}"
            self._connection.execute(f"ALTER SYSTEM {action}")
        self._connection.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)  # backends apply a reload at their next command

    def _size(self) -> int:
        return self._connection.execute("SELECT size FROM pg_stat_file(%s)", (self.log_file,)).fetchone()[0]

    def statements(self) -> dict[str, Counter]:
        """application_name -> statement text (first line, whitespace folded) -> count, since opening."""
        time.sleep(0.3)  # the server writes its log asynchronously to our reads
        end = self._size()
        text = self._connection.execute(
            "SELECT pg_read_file(%s, %s, %s)", (self.log_file, self._offset, end - self._offset)
        ).fetchone()[0]
        found: dict[str, Counter] = defaultdict(Counter)
        for entry in _ENTRY.split(text):
            if match := _STATEMENT.match(entry):
                found[match.group(1)][" ".join(match.group(2).split())[:120]] += 1
        return found


def available(database_url: str) -> str | None:
    """None when statements can be counted, else why not."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as connection:
            if not connection.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()[0]:
                return "the database user is not a superuser (ALTER SYSTEM is needed)"
            connection.execute("SELECT pg_stat_file('log')")
    except psycopg.Error as exc:
        return f"the server log cannot be read: {str(exc).strip()}"
    return None


def per_request(found: dict[str, Counter], application: str, requests: int) -> dict:
    counts = found.get(application, Counter())
    total = sum(counts.values())
    return {
        "application": application,
        "requests": requests,
        "statements": total,
        "per_request": round(total / requests, 2) if requests else None,
        "distinct": [{"statement": text, "count": count} for text, count in counts.most_common()],
    }
