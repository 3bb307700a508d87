"""One PostgreSQL connection per execution environment, reused while warm.

Lambda runs one invocation at a time per environment, so one connection is
enough; a pool would only multiply connections across environments. A broken
connection (database restarted, proxy idle timeout) is replaced on next use.
"""

from __future__ import annotations

import json
import os
from functools import cache

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from guideline_ingest.secrets import read_secret

_connection: psycopg.Connection | None = None


@cache
def database_url() -> str:
    if url := os.environ.get("DATABASE_URL"):
        return url
    if secret_arn := os.environ.get("DATABASE_SECRET_ARN"):
        secret = json.loads(read_secret(secret_arn))
        return make_conninfo(
            host=secret["host"],
            port=secret.get("port", 5432),
            user=secret["username"],
            password=secret["password"],
            dbname=secret.get("dbname", "postgres"),
        )
    raise RuntimeError("set DATABASE_URL or DATABASE_SECRET_ARN")


def connection() -> psycopg.Connection:
    global _connection
    if _connection is None or _connection.closed or _connection.broken:
        _connection = psycopg.connect(
            database_url(),
            autocommit=True,
            row_factory=dict_row,
            # RDS Proxy pins sessions that use prepared statements; never prepare.
            prepare_threshold=None,
            connect_timeout=3,
            application_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "guideline-ingest"),
        )
    return _connection


def close_connection() -> None:
    """Drop this environment's connection (after a SnapStart restore); the next use opens a new one."""
    global _connection
    if _connection is not None:
        _connection.close()
    _connection = None
