"""Migrations apply once, in order, and the schema guards the job states."""

import uuid

import psycopg
import pytest

from guideline_ingest.migrations import migrate


def test_migrating_twice_changes_nothing(database_url):
    assert migrate(database_url) == []


def test_versions_are_recorded(database):
    versions = [
        row["version"] for row in database.execute("SELECT version FROM schema_migrations ORDER BY version")
    ]
    assert versions[0] == "0001_jobs"


@pytest.mark.parametrize(
    ("status", "result", "error"),
    [
        ("DONE", None, None),
        ("COMPLETED", None, None),
        ("FAILED", None, None),
        ("PENDING", '{"summary": "x"}', None),
    ],
)
def test_the_schema_refuses_inconsistent_states(database, status, result, error):
    with pytest.raises(psycopg.errors.CheckViolation):
        database.execute(
            "INSERT INTO jobs (event_id, owner, guidelines, status, result, error)"
            " VALUES (%s, 'o', 'g', %s, %s, %s)",
            (uuid.uuid4(), status, result, error),
        )
