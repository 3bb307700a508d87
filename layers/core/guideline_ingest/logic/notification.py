"""Webhooks: when a job with a callback_url ends, its document is POSTed there, signed.

The finishing UPDATE marks the delivery PENDING in the same statement, then a
message goes to the webhook queue; the webhook function delivers, and SQS
retries failed deliveries with backoff, outside the process function's time
budget. A lost message is re-sent by the sweeper.
"""

from __future__ import annotations

import time
from uuid import UUID

from guideline_ingest.dal import jobs
from guideline_ingest.logic.reading import job_from_row
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable, enqueue_job
from guideline_ingest.webhooks import CallbackRefused, DeliveryFailed, post, sign, signing_secret


def announce_finished(webhook_queue_url: str, event_id: UUID) -> None:
    try:
        enqueue_job(webhook_queue_url, event_id)
    except QueueUnavailable:
        logger.warning("webhook not queued; the sweeper will send it", extra={"event_id": str(event_id)})


def deliver_webhook(event_id: UUID, *, master_secret: str, last_attempt: bool, timeout: float) -> None:
    """One delivery attempt. Raises DeliveryFailed when SQS should try again later."""
    row = jobs.find_webhook_delivery(event_id)
    if row is None or row["webhook_status"] != "PENDING":
        return  # delivered or given up already: a duplicate message
    logger.set_correlation_id(str(event_id))
    body = job_from_row(row).model_dump_json().encode()
    timestamp = int(time.time())
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
        _give_up(event_id, f"refused: {refused}")
        return
    except DeliveryFailed as failure:
        if last_attempt:
            _give_up(event_id, f"gave up after repeated attempts: {failure}")
            return
        jobs.record_webhook_attempt(event_id, str(failure))
        raise
    jobs.finish_webhook(event_id, delivered=True, error=None)
    metrics.add_metric(name="WebhooksDelivered", unit="Count", value=1)
    logger.info("webhook delivered")


def _give_up(event_id: UUID, reason: str) -> None:
    jobs.finish_webhook(event_id, delivered=False, error=reason)
    metrics.add_metric(name="WebhooksFailed", unit="Count", value=1)
    logger.warning("webhook failed", extra={"reason": reason})
