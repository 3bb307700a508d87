"""One PostgreSQL connection per execution environment, reused while warm.

Lambda runs one invocation at a time per environment, so one connection is
enough; a pool would only multiply connections across environments. A connection
the server has ended (database restarted or failed over, proxy idle timeout) is
replaced before use, so it costs no request.
"""

from __future__ import annotations

import json
import os
import select

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from guideline_ingest.config import database_settings
from guideline_ingest.secrets import read_secret

_connection: psycopg.Connection | None = None


def database_url() -> str:
    """Built for each new connection, so one made after a password rotation uses the new secret."""
    settings = database_settings()
    if settings.database_url:
        return settings.database_url
    secret = json.loads(read_secret(settings.database_secret_arn))
    return make_conninfo(
        host=secret["host"],
        port=secret.get("port", 5432),
        user=secret["username"],
        password=secret["password"],
        dbname=secret.get("dbname", "postgres"),
        sslmode=settings.database_sslmode,
    )


# A database that does not answer fails the request within the submit function's timeout.
CONNECT_SECONDS = 3


def connection() -> psycopg.Connection:
    global _connection
    if _connection is not None and not _usable(_connection):
        _connection.close()
        _connection = None
    if _connection is None:
        _connection = psycopg.connect(
            database_url(),
            autocommit=True,
            row_factory=dict_row,
            # RDS Proxy pins sessions that use prepared statements; never prepare.
            prepare_threshold=None,
            connect_timeout=CONNECT_SECONDS,
            application_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "guideline-ingest"),
        )
    return _connection


def _usable(conn: psycopg.Connection) -> bool:
    """psycopg marks a connection broken only once a statement has failed on it. A server that
    ends an idle session first sends its reason, or closes the socket: either makes the socket
    readable, which costs nothing to check (anything else unread on an idle connection is rare,
    and only costs a needless reconnect)."""
    if conn.closed or conn.broken:
        return False
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return True
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    return not readable


def close_connection() -> None:
    """Drop this environment's connection (after a SnapStart restore); the next use opens a new one."""
    global _connection
    if _connection is not None:
        _connection.close()
    _connection = None
