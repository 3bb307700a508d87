"""The sweeper: forgotten jobs are re-sent, abandoned ones and those out of retry budget end FAILED,
and a job that still has a live message (waiting out its backoff, or invisible after a failed
delivery) is never sent twice."""

import json

import pytest

from conftest import budget_spent, event, http, send_jobs_to
from support import template_environment


@pytest.fixture
def sweeper(functions, queues, monkeypatch):
    return send_jobs_to(functions["sweeper"], queues.jobs, monkeypatch)


def submitted(invoke, queues) -> str:
    event_id = http(invoke("submit", event("submit.json"))).body["event_id"]
    queues.receive()  # the submit's own message is in flight now
    return event_id


def held(database, event_id, attempts, lease_seconds):
    """The job as a worker left it: claimed `attempts` times, lease ending in `lease_seconds`."""
    database.execute(
        "UPDATE jobs SET status = 'PROCESSING', attempts = %s,"
        " lease_expires_at = now() + make_interval(secs => %s) WHERE event_id = %s",
        (attempts, lease_seconds, event_id),
    )


def sweep(invoke) -> tuple[int, int]:
    report = invoke("sweeper", event("sweeper.json"))
    assert report["expired_idempotency_keys"] == 0
    return report["requeued"], report["failed"]


# The test environment's PENDING_GRACE_SECONDS, plus the template's visibility timeout: how long
# after it was due a live message can still come back.
SILENT_SECONDS = 60 + int(template_environment("sweeper")["JOBS_VISIBILITY_TIMEOUT_SECONDS"])


def age(database, event_id, seconds):
    """Pretend the job's message was sent, and due, `seconds` ago."""
    database.execute(
        "UPDATE jobs SET enqueued_at = now() - make_interval(secs => %s),"
        " due_at = now() - make_interval(secs => %s) WHERE event_id = %s",
        (seconds, seconds, event_id),
    )


def row_of(database, event_id) -> dict:
    return database.execute("SELECT * FROM jobs WHERE event_id = %s", (event_id,)).fetchone()


def test_a_pending_job_whose_message_was_lost_is_sent_again(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    age(database, event_id, 3600)

    report = invoke("sweeper", event("sweeper.json"))

    assert report == {"requeued": 1, "failed": 0, "webhooks_requeued": 0, "expired_idempotency_keys": 0}
    [message] = queues.receive()
    assert json.loads(message["Body"]) == {"event_id": event_id}
    assert sweep(invoke) == (0, 0)


def test_recent_jobs_are_left_alone(invoke, sweeper, queues):
    submitted(invoke, queues)

    assert sweep(invoke) == (0, 0)


def test_a_job_whose_worker_died_is_sent_again(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    held(database, event_id, attempts=1, lease_seconds=-1)
    age(database, event_id, 3600)

    assert sweep(invoke) == (1, 0)


def test_a_job_that_was_abandoned_too_often_fails_with_the_reason(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    held(database, event_id, attempts=5, lease_seconds=-1)

    assert sweep(invoke) == (0, 1)
    row = database.execute("SELECT * FROM jobs WHERE event_id = %s", (event_id,)).fetchone()
    assert row["status"] == "FAILED"
    assert row["error"]["type"] == "attempts_exhausted"
    assert "5 times" in row["error"]["message"]


def test_a_job_with_a_live_lease_is_not_touched(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    held(database, event_id, attempts=5, lease_seconds=60)
    age(database, event_id, 3600)

    assert sweep(invoke) == (0, 0)


def test_many_forgotten_jobs_are_sent_in_batches(invoke, sweeper, queues, database):
    for _ in range(12):
        submitted(invoke, queues)
    database.execute(
        "UPDATE jobs SET enqueued_at = now() - interval '1 hour', due_at = now() - interval '1 hour'"
    )

    assert sweep(invoke) == (12, 0)


def test_a_job_waiting_out_its_backoff_is_not_sent_again(invoke, sweeper, queues, database):
    """Given back an hour after its last send was due, with its next delivery due in 5 minutes."""
    event_id = submitted(invoke, queues)
    age(database, event_id, 3600)
    database.execute(
        "UPDATE jobs SET retries = 3, due_at = now() + interval '5 minutes' WHERE event_id = %s", (event_id,)
    )

    assert sweep(invoke) == (0, 0)
    assert queues.receive() == []


@pytest.mark.parametrize(("overdue", "requeued"), [(SILENT_SECONDS - 30, 0), (SILENT_SECONDS + 30, 1)])
def test_a_message_that_may_come_back_after_a_failed_delivery_is_waited_for(
    invoke, sweeper, queues, database, overdue, requeued
):
    """A delivery that failed before its claim (database down) makes the message invisible for the
    visibility timeout: until then the job is not forgotten, after that (plus grace) it is."""
    event_id = submitted(invoke, queues)
    age(database, event_id, overdue)

    assert sweep(invoke) == (requeued, 0)


def test_claims_given_back_after_transient_failures_are_not_dead_workers(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    held(database, event_id, attempts=7, lease_seconds=-1)
    database.execute("UPDATE jobs SET retries = 6 WHERE event_id = %s", (event_id,))
    age(database, event_id, 3600)

    assert sweep(invoke) == (1, 0)  # one worker died: it is sent again, not given up
    assert row_of(database, event_id)["status"] == "PROCESSING"


def out_of_budget(database, event_id, last_error=None, attempts=0):
    database.execute(
        "UPDATE jobs SET created_at = now() - interval '7 hours', attempts = %s, retries = %s,"
        " last_transient_error = %s WHERE event_id = %s",
        (attempts, attempts, last_error, event_id),
    )


def test_a_job_out_of_retry_budget_fails_with_the_llm_reason(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    out_of_budget(database, event_id, "the LLM rate limit was exceeded", attempts=20)
    age(database, event_id, 3600)

    assert sweep(invoke) == (0, 1)
    row = row_of(database, event_id)
    assert row["status"] == "FAILED"
    assert row["error"] == budget_spent("the LLM rate limit was exceeded")


def test_a_job_that_never_reached_a_claim_fails_after_its_budget(invoke, sweeper, queues, database):
    event_id = submitted(invoke, queues)
    out_of_budget(database, event_id)
    age(database, event_id, 3600)

    assert sweep(invoke) == (0, 1)
    error = row_of(database, event_id)["error"]
    assert error["type"] == "not_started"
    assert "could not be started within its retry budget of 6 h" in error["message"]


def test_a_job_out_of_budget_whose_last_retry_is_still_coming_is_left_to_it(
    invoke, sweeper, queues, database
):
    event_id = submitted(invoke, queues)
    out_of_budget(database, event_id, "the LLM rate limit was exceeded", attempts=20)
    database.execute("UPDATE jobs SET due_at = now() - interval '1 minute' WHERE event_id = %s", (event_id,))

    assert sweep(invoke) == (0, 0)
    assert row_of(database, event_id)["status"] == "PENDING"
