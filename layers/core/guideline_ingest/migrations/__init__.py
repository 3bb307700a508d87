"""Versioned SQL migrations, applied in order, each once, by one command.

The local runner, docker compose, the tests and the cloud one-shot
(`make migrate DATABASE_URL=...`) all call `migrate`.
"""

from __future__ import annotations

from importlib import resources

import psycopg

# Any constant works; it only has to be the same for every migrating process.
_MIGRATION_LOCK = 7_314_002


def _migration_files() -> list[tuple[str, str]]:
    files = sorted(f for f in resources.files(__package__).iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the versions applied now. Safe to run concurrently."""
    applied_now = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in _migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied_now
