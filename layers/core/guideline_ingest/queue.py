"""The jobs and webhook queues. Messages carry only the event_id: the text stays in PostgreSQL."""

from __future__ import annotations

import json
from functools import cache
from uuid import UUID


class QueueUnavailable(Exception):
    """The message could not be sent; the caller decides whether the job survives."""


# Fail fast: a client waiting on a dead endpoint is worse than a clean 503. An SQS call answers in
# milliseconds; these bound a hung one so that the database connect plus every attempt of the send
# fit inside the submit function's timeout (tests/integration/test_template.py checks it against
# the template).
SQS_CONNECT_SECONDS = 1
SQS_READ_SECONDS = 2
SQS_ATTEMPTS = 2  # in all, the first included


def worst_case_sqs_call_seconds() -> float:
    return SQS_ATTEMPTS * (SQS_CONNECT_SECONDS + SQS_READ_SECONDS)


@cache
def sqs_client():
    # Imported on first use: the status function shares this package and must not load boto3.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs",
        config=Config(
            connect_timeout=SQS_CONNECT_SECONDS,
            read_timeout=SQS_READ_SECONDS,
            retries={"mode": "standard", "total_max_attempts": SQS_ATTEMPTS},
        ),
    )


def enqueue_job(queue_url: str, event_id: UUID) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sqs_client().send_message(QueueUrl=queue_url, MessageBody=json.dumps({"event_id": str(event_id)}))
    except (BotoCoreError, ClientError) as error:
        raise QueueUnavailable(str(error)) from error


def requeue_job(queue_url: str, event_id: UUID, receipt_handle: str, delay_seconds: int) -> None:
    """Replace the message being processed by a fresh one, received after `delay_seconds`.

    The current one is deleted first, so the job never has two live messages. A fresh message
    starts again at receive count 1: a job waiting out an outage is never dead-lettered for it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sqs_client().delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)
    except (BotoCoreError, ClientError) as error:
        raise QueueUnavailable(
            f"the message was kept, it comes back after its visibility timeout: {error}"
        ) from error
    try:
        sqs_client().send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps({"event_id": str(event_id)}),
            DelaySeconds=delay_seconds,
        )
    except (BotoCoreError, ClientError) as error:
        raise QueueUnavailable(f"the job has no message now, the sweeper sends one: {error}") from error


def enqueue_jobs(queue_url: str, event_ids: list[UUID]) -> None:
    """Send in batches of ten, the most SQS takes in one call."""
    from botocore.exceptions import BotoCoreError, ClientError

    for start in range(0, len(event_ids), 10):
        entries = [
            {"Id": str(index), "MessageBody": json.dumps({"event_id": str(event_id)})}
            for index, event_id in enumerate(event_ids[start : start + 10])
        ]
        try:
            response = sqs_client().send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailable(str(error)) from error
        if response.get("Failed"):
            raise QueueUnavailable(f"{len(response['Failed'])} messages were not sent")


def delay_redelivery(queue_url: str, receipt_handle: str, seconds: int) -> None:
    """Show a failed message again only after `seconds`: backoff between SQS retries."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sqs_client().change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
    except (BotoCoreError, ClientError) as error:
        raise QueueUnavailable(str(error)) from error
