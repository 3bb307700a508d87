"""Webhooks: when a job with a callback_url ends, its document is POSTed there, signed.

The finishing UPDATE marks the delivery PENDING in the same statement, then a
message goes to the webhook queue; the webhook function delivers, and SQS
retries failed deliveries with backoff, outside the process function's time
budget. A lost message is re-sent by the sweeper.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol
from uuid import UUID

from guideline_ingest import queue as sqs
from guideline_ingest.logic.backoff import MAX_DELIVERY_DELAY_SECONDS, RetryPolicy
from guideline_ingest.logic.reading import job_from_row
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable
from guideline_ingest.webhooks import CallbackRefused, DeliveryFailed, sign, signing_secret

# (url, body, headers, timeout) -> HTTP status; raises CallbackRefused or DeliveryFailed (webhooks.post).
Post = Callable[[str, bytes, dict[str, str], float], int]


class MessageQueue(Protocol):
    """What announcing needs of the queues (guideline_ingest.queue)."""

    def enqueue_job(self, queue_url: str, event_id: UUID) -> None: ...


class WebhookStore(Protocol):
    """What delivering needs of the job store (guideline_ingest.dal.jobs)."""

    def find_webhook_delivery(self, event_id: UUID) -> dict | None: ...

    def record_webhook_attempt(self, event_id: UUID, error: str) -> None: ...

    def finish_webhook(self, event_id: UUID, delivered: bool, error: str | None) -> None: ...


def announce_finished(webhook_queue_url: str, event_id: UUID, *, queue: MessageQueue = sqs) -> None:
    """Queue the finished job's webhook. `queue` is SQS when the caller passes none, as
    logic/processing.py does not."""
    try:
        queue.enqueue_job(webhook_queue_url, event_id)
    except QueueUnavailable:
        logger.warning("webhook not queued; the sweeper will send it", extra={"event_id": str(event_id)})


def redelivery_delay(attempt: int, policy: RetryPolicy, rng: random.Random | None = None) -> int:
    """Whole seconds before a failed delivery's message is seen again, `attempt` counting from 1:
    the jobs' backoff with its jitter. Attempts are counted (WebhookMaxAttempts), not time, so
    no budget shortens the wait below the longest SQS delay."""
    return policy.delay(attempt - 1, None, MAX_DELIVERY_DELAY_SECONDS, rng=rng or random)


def deliver_webhook(
    event_id: UUID,
    *,
    store: WebhookStore,
    post: Post,
    master_secret: str,
    last_attempt: bool,
    timeout: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """One delivery attempt. Raises DeliveryFailed when SQS should try again later."""
    row = store.find_webhook_delivery(event_id)
    if row is None or row["webhook_status"] != "PENDING":
        return  # delivered or given up already: a duplicate message
    logger.set_correlation_id(str(event_id))
    body = job_from_row(row).model_dump_json().encode()
    timestamp = int(clock())
    headers = {
        "Content-Type": "application/json",
        "Webhook-Id": str(event_id),
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": sign(signing_secret(master_secret, row["owner"]), timestamp, body),
    }
    try:
        status = post(row["callback_url"], body, headers, timeout)
        if not 200 <= status < 300:
            raise DeliveryFailed(f"the receiver answered HTTP {status}")
    except CallbackRefused as refused:
        _give_up(store, event_id, f"refused: {refused}")
        return
    except DeliveryFailed as failure:
        if last_attempt:
            _give_up(store, event_id, f"gave up after repeated attempts: {failure}")
            return
        store.record_webhook_attempt(event_id, str(failure))
        raise
    store.finish_webhook(event_id, delivered=True, error=None)
    metrics.add_metric(name="WebhooksDelivered", unit="Count", value=1)
    logger.info("webhook delivered")


def _give_up(store: WebhookStore, event_id: UUID, reason: str) -> None:
    store.finish_webhook(event_id, delivered=False, error=reason)
    metrics.add_metric(name="WebhooksFailed", unit="Count", value=1)
    logger.warning("webhook failed", extra={"reason": reason})
