"""An upload arrived: the S3 event (through the uploads queue) starts the job it was issued for.

S3 first sends an s3:TestEvent when the notification is set up, and URL-encodes object keys
(a space is "+"). Only the exact key issued to a job that is still AWAITING_UPLOAD starts it:
a key issued to no job, an upload after the job expired or was cancelled, and a second event
for the same object all start nothing. The key is unguessable and carries its owner's digest,
so no API key can start (or then read) a job from another key's upload.
"""

from __future__ import annotations

import json
from typing import Protocol
from urllib.parse import unquote_plus
from uuid import UUID

from guideline_ingest.objects import UPLOAD_PREFIX
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable


class UploadStore(Protocol):
    """guideline_ingest.dal.jobs"""

    def start_uploaded_job(self, document_key: str, size_bytes: int) -> dict | None: ...


class JobQueue(Protocol):
    """guideline_ingest.queue"""

    def enqueue_job(self, queue_url: str, event_id: UUID) -> None: ...


def start_uploaded_jobs(
    message_body: str, *, store: UploadStore, queue: JobQueue, jobs_queue_url: str
) -> list[UUID]:
    """The jobs one S3 notification message started (none for a test event)."""
    notification = json.loads(message_body)
    if notification.get("Event") == "s3:TestEvent":
        logger.info("S3 test event acknowledged", extra={"bucket": notification.get("Bucket")})
        return []
    started = []
    for record in notification.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        key = unquote_plus(record["s3"]["object"]["key"])
        event_id = _start(
            key,
            int(record["s3"]["object"].get("size", 0)),
            store=store,
            queue=queue,
            jobs_queue_url=jobs_queue_url,
        )
        if event_id is not None:
            started.append(event_id)
    return started


def _start(
    key: str, size_bytes: int, *, store: UploadStore, queue: JobQueue, jobs_queue_url: str
) -> UUID | None:
    if not key.startswith(UPLOAD_PREFIX):
        logger.warning("object outside the uploads prefix ignored", extra={"key": key})
        return None
    row = store.start_uploaded_job(key, size_bytes)
    if row is None:
        logger.warning("no job awaits this upload; ignored", extra={"key": key})
        metrics.add_metric(name="UploadsIgnored", unit="Count", value=1)
        return None
    event_id = row["event_id"]
    logger.set_correlation_id(str(event_id))
    try:
        queue.enqueue_job(jobs_queue_url, event_id)
    except QueueUnavailable:
        # The job is PENDING and due now: the sweeper sends it once no message can be live.
        logger.warning("upload started a job whose message was not sent; the sweeper will send it")
    metrics.add_metric(name="UploadsStarted", unit="Count", value=1)
    logger.info("upload arrived; job queued", extra={"size_bytes": size_bytes})
    return event_id
