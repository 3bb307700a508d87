"""SQS -> one signed POST per finished job that has a callback_url.

A failed delivery is retried by SQS, after a backoff set on the message itself:
the jobs' backoff (logic/backoff.py: RetryBackoffBaseSeconds doubling per attempt,
at most RetryBackoffCapSeconds, with full jitter), until the last attempt
(WebhookMaxAttempts) gives up and records why.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from guideline_ingest import webhooks
from guideline_ingest.config import webhook_settings
from guideline_ingest.dal import jobs
from guideline_ingest.logic.backoff import RetryPolicy
from guideline_ingest.logic.notification import deliver_webhook, redelivery_delay
from guideline_ingest.models import JobMessage
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable, delay_redelivery
from guideline_ingest.webhooks import DeliveryFailed

settings = webhook_settings()
backoff = RetryPolicy(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def deliver(record: SQSRecord) -> None:
    attempt = int(record.attributes.approximate_receive_count)
    try:
        deliver_webhook(
            JobMessage.model_validate_json(record.body).event_id,
            store=jobs,
            post=webhooks.post,
            master_secret=settings.webhook_signing_secret,
            last_attempt=attempt >= settings.webhook_max_attempts,
            timeout=settings.webhook_timeout_seconds,
        )
    except DeliveryFailed:
        try:
            delay_redelivery(
                settings.webhook_queue_url, record.receipt_handle, redelivery_delay(attempt, backoff)
            )
        except QueueUnavailable:
            logger.warning("backoff not set; SQS retries after the visibility timeout")
        raise


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=deliver, processor=processor, context=context)
