"""Cancelling: only an unfinished job of the caller's, and its webhook announced."""

from __future__ import annotations

from uuid import uuid4

import pytest

from guideline_ingest.logic.cancellation import JobAlreadyFinished, cancel_job
from guideline_ingest.logic.reading import JobNotFound
from guideline_ingest.models import JobStatus

HOOK = "https://example.com/hook"


def cancel(store, queue, event_id, owner="owner"):
    return cancel_job(event_id, owner, store=store, queue=queue, webhook_queue_url="webhooks")


@pytest.mark.parametrize("status", [s for s in JobStatus if not s.is_terminal])
def test_an_unfinished_job_is_cancelled(store, queue, status):
    event_id = store.add(status=status)

    job = cancel(store, queue, event_id)

    assert job.status == JobStatus.CANCELLED
    assert store.status(event_id) == JobStatus.CANCELLED
    assert job.webhook is None
    assert queue.sent["webhooks"] == []


def test_a_job_with_a_callback_has_its_webhook_announced(store, queue):
    event_id = store.add(callback_url=HOOK)

    job = cancel(store, queue, event_id)

    assert queue.sent["webhooks"] == [event_id]
    assert job.webhook.status == "PENDING"


def test_with_the_queue_down_the_job_is_still_cancelled_and_the_sweeper_sends_the_webhook(store, queue):
    event_id = store.add(callback_url=HOOK)
    queue.unavailable = True

    assert cancel(store, queue, event_id).status == JobStatus.CANCELLED
    assert store.rows[event_id]["webhook_status"] == "PENDING"  # what the sweeper looks for


@pytest.mark.parametrize("status", [s for s in JobStatus if s.is_terminal])
def test_a_finished_job_stays_as_it_is(store, queue, status):
    event_id = store.add(status=status, callback_url=HOOK)

    with pytest.raises(JobAlreadyFinished) as refused:
        cancel(store, queue, event_id)

    assert refused.value.job.status == status
    assert store.status(event_id) == status
    assert queue.sent["webhooks"] == []


def test_another_owners_job_is_not_found(store, queue):
    event_id = store.add(owner="someone-else")
    with pytest.raises(JobNotFound):
        cancel(store, queue, event_id)
    assert store.status(event_id) == JobStatus.PENDING


def test_an_unknown_job_is_not_found(store, queue):
    with pytest.raises(JobNotFound):
        cancel(store, queue, uuid4())
