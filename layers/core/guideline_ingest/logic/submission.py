"""Accepting a job: store it, then queue it, and never answer 202 for a job that is lost.

Three ways in: plain text (JSON), a document sent as the request body (stored in the documents
bucket, then the job inserted and queued), and an upload request (the job AWAITING_UPLOAD with a
presigned POST; the upload's arrival queues it, logic/uploads.py).

With an Idempotency-Key (IETF httpapi draft), a retried request returns the job the
first one created instead of creating another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from guideline_ingest.dal.jobs import NewDocument, NewJob
from guideline_ingest.documents import DocumentRejected
from guideline_ingest.documents.formats import media_type_of, parse_media_type, resolve
from guideline_ingest.models import JobAccepted, SubmitJobRequest, SubmitUploadRequest, UploadForm
from guideline_ingest.objects import DOCUMENT_PREFIX, UPLOAD_PREFIX, new_object_key
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable

# The largest file accepted in the request body. Lambda takes a synchronous request of at most
# 6,291,456 bytes, the whole proxy event; the body is base64 in it (4/3 of the file) beside the
# headers and request context. tests/unit/test_submission.py builds the event at this size.
INLINE_DOCUMENT_MAX_BYTES = 4_500_000


class IdempotencyKeyReused(Exception):
    """The key was used for a different request body."""


class IdempotentRequestInFlight(Exception):
    """The first request with this key has not finished yet."""


class JobStore(Protocol):
    """What submission asks of the jobs table (guideline_ingest.dal.jobs)."""

    def insert_job(self, job: NewJob) -> dict: ...

    def insert_job_once(self, job: NewJob, key: str, request_hash: str) -> dict | None: ...

    def find_idempotent_job(self, owner: str, key: str) -> dict | None: ...

    def complete_idempotency_key(self, owner: str, key: str) -> None: ...

    def delete_unqueued_job(self, event_id: UUID) -> None: ...


class JobQueue(Protocol):
    """guideline_ingest.queue"""

    def enqueue_job(self, queue_url: str, event_id: UUID) -> None: ...


class ObjectStore(Protocol):
    """guideline_ingest.objects"""

    def put_document(self, bucket: str, key: str, data: bytes, media_type: str) -> None: ...

    def presigned_upload(
        self, bucket: str, key: str, media_type: str, size_bytes: int, expires_in: int
    ) -> dict: ...


@dataclass(frozen=True)
class Intake:
    """The settings submission needs (SubmitSettings, from the template)."""

    jobs_queue_url: str
    documents_bucket: str
    max_document_bytes: int
    upload_expiry_seconds: int


@dataclass(frozen=True)
class Submission:
    job: JobAccepted
    replayed: bool = False


def submit_job(
    owner: str,
    request: SubmitJobRequest,
    idempotency_key: str | None = None,
    *,
    store: JobStore,
    queue: JobQueue,
    intake: Intake,
) -> Submission:
    """Plain text, as JSON."""
    event_id = uuid4()
    logger.set_correlation_id(str(event_id))
    new = NewJob(event_id, owner, request.guidelines, request.callback_url)
    fingerprint = _fingerprint(request.model_dump_json())
    submitted = _accept(
        new, fingerprint, idempotency_key, store=store, queue=queue, intake=intake, objects=None
    )
    if not submitted.replayed:
        logger.info("job accepted", extra={"guidelines_chars": len(request.guidelines)})
    return submitted


def submit_document(
    owner: str,
    data: bytes,
    media_type: str,
    filename: str | None,
    callback_url: str | None,
    idempotency_key: str | None = None,
    *,
    store: JobStore,
    queue: JobQueue,
    objects: ObjectStore,
    intake: Intake,
) -> Submission:
    """A file sent as the request body: its bytes must be what its Content-Type says. The job
    keeps the type's essence ("text/html; charset=utf-8" is kept as text/html)."""
    declared = parse_media_type(media_type)
    media_type = media_type_of(declared)
    if not data:
        raise DocumentRejected("empty_document", "The request body is empty.")
    if len(data) > INLINE_DOCUMENT_MAX_BYTES:
        raise DocumentRejected(
            "document_too_large",
            f"A document sent in the request may be at most {INLINE_DOCUMENT_MAX_BYTES} bytes; "
            f"ask for an upload form instead (up to {intake.max_document_bytes} bytes).",
        )
    resolve(data, declared)
    event_id = uuid4()
    logger.set_correlation_id(str(event_id))
    key = new_object_key(DOCUMENT_PREFIX, owner, event_id)
    fingerprint = _fingerprint(
        media_type, filename or "", callback_url or "", hashlib.sha256(data).hexdigest()
    )
    # Stored before the row: a job never names a file that is not there. A replay leaves an
    # object no job names; the bucket's lifecycle deletes it.
    objects.put_document(intake.documents_bucket, key, data, media_type)
    document = NewDocument(key=key, media_type=media_type, filename=filename, size_bytes=len(data))
    new = NewJob(event_id, owner, "", callback_url, document)
    submitted = _accept(
        new, fingerprint, idempotency_key, store=store, queue=queue, intake=intake, objects=None
    )
    if not submitted.replayed:
        logger.info("document accepted", extra={"media_type": media_type, "size_bytes": len(data)})
    return submitted


def request_upload(
    owner: str,
    request: SubmitUploadRequest,
    idempotency_key: str | None = None,
    *,
    store: JobStore,
    objects: ObjectStore,
    intake: Intake,
) -> Submission:
    """A job AWAITING_UPLOAD and the presigned form its file must be posted with. Nothing is
    queued now: the upload's S3 event does it (logic/uploads.py)."""
    upload = request.upload
    media_type = media_type_of(parse_media_type(upload.media_type))
    if upload.size_bytes > intake.max_document_bytes:
        raise DocumentRejected(
            "document_too_large", f"A document may be at most {intake.max_document_bytes} bytes."
        )
    event_id = uuid4()
    logger.set_correlation_id(str(event_id))
    document = NewDocument(
        key=new_object_key(UPLOAD_PREFIX, owner, event_id),
        media_type=media_type,
        filename=upload.filename,
        size_bytes=upload.size_bytes,
        upload_expiry_seconds=intake.upload_expiry_seconds,
    )
    new = NewJob(event_id, owner, "", request.callback_url, document)
    fingerprint = _fingerprint(request.model_dump_json())
    submitted = _accept(
        new, fingerprint, idempotency_key, store=store, queue=None, intake=intake, objects=objects
    )
    if not submitted.replayed:
        logger.info("upload form issued", extra={"media_type": media_type, "size_bytes": upload.size_bytes})
    return submitted


def _accept(
    new: NewJob,
    fingerprint: str,
    idempotency_key: str | None,
    *,
    store: JobStore,
    queue: JobQueue | None,
    intake: Intake,
    objects: ObjectStore | None,
) -> Submission:
    if idempotency_key is None:
        row = store.insert_job(new)
    else:
        row = store.insert_job_once(new, idempotency_key, fingerprint)
        if row is None:
            existing = _replay(new.owner, idempotency_key, fingerprint, store)
            return Submission(job=_accepted(existing, objects, intake), replayed=True)
    # The row is committed before the send: a message must never arrive before its job.
    if queue is not None:
        try:
            queue.enqueue_job(intake.jobs_queue_url, new.event_id)
        except QueueUnavailable:
            _forget(new.event_id, store)
            raise
    if idempotency_key is not None:
        store.complete_idempotency_key(new.owner, idempotency_key)
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    if new.document is not None:
        row = {
            **row,
            "document_key": new.document.key,
            "document_media_type": new.document.media_type,
            "document_size_bytes": new.document.size_bytes,
        }
    return Submission(job=_accepted(row, objects, intake))


def _replay(owner: str, key: str, fingerprint: str, store: JobStore) -> dict:
    existing = store.find_idempotent_job(owner, key)
    if existing is None:
        # The first request's job was just removed (its enqueue failed): the client may retry.
        raise IdempotentRequestInFlight(key)
    if existing["request_hash"] != fingerprint:
        raise IdempotencyKeyReused(key)
    if not existing["completed"] and existing["recent"]:
        raise IdempotentRequestInFlight(key)
    logger.set_correlation_id(str(existing["event_id"]))
    logger.info("idempotent replay")
    return existing


def _accepted(row: dict, objects: ObjectStore | None, intake: Intake) -> JobAccepted:
    job = JobAccepted(event_id=row["event_id"], status=row["status"], created_at=row["created_at"])
    if objects is not None and row["status"] == "AWAITING_UPLOAD":
        job.upload = _form(row, objects, intake)
    return job


def _form(row: dict, objects: ObjectStore, intake: Intake) -> UploadForm:
    """The form expires with the job's upload window (a replay gets what is left of it)."""
    expires_at: datetime = row["upload_expires_at"]
    remaining = max(1, int((expires_at - datetime.now(expires_at.tzinfo)).total_seconds()))
    form = objects.presigned_upload(
        intake.documents_bucket,
        row["document_key"],
        row["document_media_type"],
        row["document_size_bytes"],
        remaining,
    )
    return UploadForm(url=form["url"], fields=form["fields"], expires_at=expires_at)


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _forget(event_id: UUID, store: JobStore) -> None:
    """The client gets a 503, so remove the job; if even that fails, the sweeper sends it later."""
    try:
        store.delete_unqueued_job(event_id)
    except Exception:
        logger.exception("could not remove a job whose message was not sent; the sweeper will send it")
