"""The sweeper's decisions: which jobs are sent again, which end FAILED, which webhooks are re-sent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from guideline_ingest.config import SweeperSettings
from guideline_ingest.logic.sweeping import SweepReport, sweep
from guideline_ingest.models import JobStatus

# Test values, not the template's: a job is silent 90 s after it was due, and retries for an hour.
SETTINGS = SweeperSettings.model_construct(
    jobs_queue_url="jobs",
    webhook_queue_url="webhooks",
    max_receive_count=3,
    jobs_visibility_timeout_seconds=60,
    pending_grace_seconds=30,
    retry_budget_seconds=3600,
)
SILENT = 90


def run(store, queue) -> SweepReport:
    return sweep(SETTINGS, store=store, queue=queue)


def test_nothing_to_do_sends_nothing(store, queue):
    store.add()
    assert run(store, queue) == SweepReport(
        requeued=0, failed=0, webhooks_requeued=0, expired_idempotency_keys=0
    )
    assert not any(queue.sent.values())


def test_a_job_silent_past_the_visibility_timeout_and_grace_is_sent_again_once(store, queue):
    event_id = store.add()
    store.advance(SILENT + 1)

    assert run(store, queue).requeued == 1
    assert queue.sent["jobs"] == [event_id]
    assert run(store, queue).requeued == 0  # it is due again from now: its new message is live


def test_a_job_within_the_grace_period_is_left_alone(store, queue):
    store.add()
    store.advance(SILENT - 1)
    assert run(store, queue).requeued == 0


def test_a_job_waiting_out_its_backoff_is_never_sent_twice(store, queue):
    store.add(due_at=store.now + timedelta(seconds=600), retries=1)
    store.advance(SILENT + 1)
    assert run(store, queue).requeued == 0


def test_a_running_job_is_left_to_its_worker(store, queue):
    store.add(status=JobStatus.PROCESSING, attempts=1, lease_expires_at=store.now + timedelta(seconds=300))
    store.advance(SILENT + 1)
    assert run(store, queue) == SweepReport(
        requeued=0, failed=0, webhooks_requeued=0, expired_idempotency_keys=0
    )


def test_a_job_whose_workers_died_too_often_fails_and_its_webhook_is_sent(store, queue):
    dead = dict(status=JobStatus.PROCESSING, attempts=3, lease_expires_at=store.now)
    quiet = store.add(**dead)
    announced = store.add(**dead, callback_url="https://example.com/hook")
    store.advance(1)

    report = run(store, queue)

    assert report.failed == 2
    assert store.status(quiet) == store.status(announced) == JobStatus.FAILED
    assert store.rows[quiet]["error"]["type"] == "attempts_exhausted"
    assert queue.sent["webhooks"] == [announced]
    assert report.webhooks_requeued == 1


def test_transient_failures_are_not_counted_as_dead_workers(store, queue):
    event_id = store.add(status=JobStatus.PROCESSING, attempts=3, retries=2, lease_expires_at=store.now)
    store.advance(1)
    assert run(store, queue).failed == 0
    assert store.status(event_id) == JobStatus.PROCESSING


@pytest.mark.parametrize(
    ("columns", "kind"),
    [
        (
            {"last_transient_error": "the LLM rate limit was exceeded", "attempts": 2, "retries": 2},
            "llm_unavailable",
        ),
        ({"attempts": 1}, "attempts_exhausted"),
        ({}, "not_started"),
    ],
)
def test_a_silent_job_past_its_retry_budget_fails_saying_why(store, queue, columns, kind):
    event_id = store.add(**columns)
    store.advance(3600 + 1)

    report = run(store, queue)

    assert (report.failed, report.requeued) == (1, 0)
    assert store.rows[event_id]["error"]["type"] == kind
    assert "1 h" in store.rows[event_id]["error"]["message"]  # the budget as people read it


def test_a_webhook_whose_message_was_lost_is_sent_again(store, queue):
    event_id = store.add(
        status=JobStatus.COMPLETED, callback_url="https://example.com/hook", webhook_status="PENDING"
    )
    store.rows[event_id]["webhook_enqueued_at"] = store.now
    store.advance(2 * 3600)

    assert run(store, queue).webhooks_requeued == 1
    assert queue.sent["webhooks"] == [event_id]
    assert queue.sent["jobs"] == []


def test_idempotency_keys_past_their_retention_are_forgotten(store, queue):
    store.idempotency_keys[("owner", "old")] = store.now
    store.advance(25 * 3600)
    store.idempotency_keys[("owner", "new")] = store.now

    assert run(store, queue).expired_idempotency_keys == 1
    assert list(store.idempotency_keys) == [("owner", "new")]
