"""Accepting a job: store it, then queue it, and never answer 202 for a job that is lost.

With an Idempotency-Key (IETF httpapi draft), a retried request returns the job the
first one created instead of creating another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from uuid import UUID, uuid4

from guideline_ingest.config import submit_settings
from guideline_ingest.dal import jobs
from guideline_ingest.models import JobAccepted, SubmitJobRequest
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable, enqueue_job


class IdempotencyKeyReused(Exception):
    """The key was used for a different request body."""


class IdempotentRequestInFlight(Exception):
    """The first request with this key has not finished yet."""


@dataclass(frozen=True)
class Submission:
    job: JobAccepted
    replayed: bool = False


def submit_job(owner: str, request: SubmitJobRequest, idempotency_key: str | None = None) -> Submission:
    event_id = uuid4()
    logger.set_correlation_id(str(event_id))
    guidelines, callback_url = request.guidelines, request.callback_url
    if idempotency_key is None:
        row = jobs.insert_job(event_id, owner, guidelines, callback_url)
    else:
        row = jobs.insert_job_once(
            event_id, owner, guidelines, callback_url, idempotency_key, _fingerprint(request)
        )
        if row is None:
            return Submission(job=_replay(owner, idempotency_key, request), replayed=True)
    # The row is committed before the send: a message must never arrive before its job.
    try:
        enqueue_job(submit_settings().jobs_queue_url, event_id)
    except QueueUnavailable:
        _forget(event_id)
        raise
    if idempotency_key is not None:
        jobs.complete_idempotency_key(owner, idempotency_key)
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    logger.info("job accepted", extra={"guidelines_chars": len(guidelines)})
    return Submission(job=_accepted(row))


def _replay(owner: str, key: str, request: SubmitJobRequest) -> JobAccepted:
    existing = jobs.find_idempotent_job(owner, key)
    if existing is None:
        # The first request's job was just removed (its enqueue failed): the client may retry.
        raise IdempotentRequestInFlight(key)
    if existing["request_hash"] != _fingerprint(request):
        raise IdempotencyKeyReused(key)
    if not existing["completed"] and existing["recent"]:
        raise IdempotentRequestInFlight(key)
    logger.set_correlation_id(str(existing["event_id"]))
    logger.info("idempotent replay")
    return _accepted(existing)


def _accepted(row: dict) -> JobAccepted:
    return JobAccepted(event_id=row["event_id"], status=row["status"], created_at=row["created_at"])


def _fingerprint(request: SubmitJobRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def _forget(event_id: UUID) -> None:
    """The client gets a 503, so remove the job; if even that fails, the sweeper sends it later."""
    try:
        jobs.delete_unqueued_job(event_id)
    except Exception:
        logger.exception("could not remove a job whose message was not sent; the sweeper will send it")
