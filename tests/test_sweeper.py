"""The sweeper: forgotten jobs are re-sent, abandoned ones end FAILED."""

import json

import pytest

from conftest import event, http


@pytest.fixture
def sweeper(functions, queues, monkeypatch):
    module = functions["sweeper"]
    monkeypatch.setattr(
        module, "settings", module.settings.model_copy(update={"jobs_queue_url": queues.jobs})
    )
    return module


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


def age(database, event_id, seconds):
    """Pretend the job's message was sent `seconds` ago."""
    database.execute(
        "UPDATE jobs SET enqueued_at = now() - make_interval(secs => %s) WHERE event_id = %s",
        (seconds, event_id),
    )


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
    database.execute("UPDATE jobs SET enqueued_at = now() - interval '1 hour'")

    assert sweep(invoke) == (12, 0)
