"""The webhook decisions: deliver once, retry a failure later, give up on the last attempt or a
refused URL, and the backoff between attempts."""

from __future__ import annotations

from uuid import uuid4

import pytest

from guideline_ingest.logic.backoff import MAX_DELIVERY_DELAY_SECONDS, RetryPolicy
from guideline_ingest.logic.notification import announce_finished, deliver_webhook, redelivery_delay
from guideline_ingest.models import Job, JobStatus
from guideline_ingest.webhooks import CallbackRefused, DeliveryFailed, sign, signing_secret

from .fakes import Draws, FakeJobStore, FakeQueue

HOOK = "https://example.com/hook"
MASTER_SECRET = "m" * 32
NOW = 1_800_000_000


class Receiver:
    """Stands in for webhooks.post: answers with `status` or raises `error`, and keeps the requests."""

    def __init__(self, status: int = 204, error: Exception | None = None):
        self.status = status
        self.error = error
        self.requests: list[tuple[str, bytes, dict[str, str], float]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        self.requests.append((url, body, headers, timeout))
        if self.error:
            raise self.error
        return self.status


def finished_job(store: FakeJobStore) -> object:
    return store.add(
        status=JobStatus.COMPLETED, callback_url=HOOK, webhook_status="PENDING", webhook_enqueued_at=store.now
    )


def deliver(store, event_id, receiver, last_attempt=False):
    deliver_webhook(
        event_id,
        store=store,
        post=receiver,
        master_secret=MASTER_SECRET,
        last_attempt=last_attempt,
        timeout=5.0,
        clock=lambda: NOW,
    )


def test_the_job_document_is_posted_signed_with_the_owners_secret(store):
    event_id = finished_job(store)
    receiver = Receiver(200)

    deliver(store, event_id, receiver)

    [(url, body, headers, timeout)] = receiver.requests
    assert (url, timeout) == (HOOK, 5.0)
    assert Job.model_validate_json(body).event_id == event_id
    assert headers["Webhook-Id"] == str(event_id)
    assert headers["Webhook-Timestamp"] == str(NOW)
    assert headers["Webhook-Signature"] == sign(signing_secret(MASTER_SECRET, "owner"), NOW, body)
    row = store.rows[event_id]
    assert (row["webhook_status"], row["webhook_attempts"], row["webhook_delivered_at"]) == (
        "DELIVERED",
        1,
        store.now,
    )


@pytest.mark.parametrize("webhook_status", ["DELIVERED", "FAILED", None])
def test_a_duplicate_message_posts_nothing(store, webhook_status):
    event_id = store.add(status=JobStatus.COMPLETED, callback_url=HOOK, webhook_status=webhook_status)
    receiver = Receiver()

    deliver(store, event_id, receiver)

    assert receiver.requests == []
    assert store.rows[event_id]["webhook_status"] == webhook_status


def test_an_unknown_job_posts_nothing(store):
    receiver = Receiver()
    deliver(store, uuid4(), receiver)
    assert receiver.requests == []


@pytest.mark.parametrize(
    "receiver", [Receiver(500), Receiver(301), Receiver(error=DeliveryFailed("timed out"))]
)
def test_a_failed_attempt_is_recorded_and_left_to_sqs_to_retry(store, receiver):
    event_id = finished_job(store)

    with pytest.raises(DeliveryFailed):
        deliver(store, event_id, receiver)

    row = store.rows[event_id]
    assert (row["webhook_status"], row["webhook_attempts"]) == ("PENDING", 1)
    assert row["webhook_last_error"]


def test_the_last_attempt_gives_up_and_says_why(store):
    event_id = finished_job(store)

    deliver(store, event_id, Receiver(503), last_attempt=True)

    row = store.rows[event_id]
    assert row["webhook_status"] == "FAILED"
    assert row["webhook_last_error"] == "gave up after repeated attempts: the receiver answered HTTP 503"


def test_a_refused_url_is_given_up_at_once(store):
    event_id = finished_job(store)

    deliver(store, event_id, Receiver(error=CallbackRefused("an internal address")))

    row = store.rows[event_id]
    assert (row["webhook_status"], row["webhook_last_error"]) == ("FAILED", "refused: an internal address")


def test_a_finished_job_is_announced_on_the_webhook_queue():
    queue = FakeQueue()
    event_id = FakeJobStore().add()
    announce_finished("webhooks", event_id, queue=queue)
    assert queue.sent["webhooks"] == [event_id]


def test_an_announcement_lost_to_a_queue_outage_is_left_to_the_sweeper():
    queue = FakeQueue()
    queue.unavailable = True
    announce_finished("webhooks", FakeJobStore().add(), queue=queue)  # no error: the job is finished


def test_the_backoff_between_attempts_is_the_jobs_backoff_counted_from_the_first_attempt():
    policy = RetryPolicy(base_seconds=30, cap_seconds=600)
    ceilings = [redelivery_delay(attempt, policy, Draws(1.0)) for attempt in range(1, 8)]
    floors = {redelivery_delay(attempt, policy, Draws(0.0)) for attempt in range(1, 8)}
    assert ceilings == [30, 60, 120, 240, 480, 600, 600]
    assert floors == {1}


def test_no_backoff_exceeds_the_longest_sqs_delay():
    policy = RetryPolicy(base_seconds=30, cap_seconds=10 * MAX_DELIVERY_DELAY_SECONDS)
    assert redelivery_delay(20, policy, Draws(1.0)) == MAX_DELIVERY_DELAY_SECONDS
