"""Accepting a job: store it, then queue it, and never answer 202 for a job that is lost."""

from __future__ import annotations

from uuid import UUID, uuid4

from guideline_ingest.config import submit_settings
from guideline_ingest.dal import jobs
from guideline_ingest.models import JobAccepted
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable, enqueue_job


def submit_job(owner: str, guidelines: str) -> JobAccepted:
    event_id = uuid4()
    logger.set_correlation_id(str(event_id))
    row = jobs.insert_job(event_id, owner, guidelines)
    # The row is committed before the send: a message must never arrive before its job.
    try:
        enqueue_job(submit_settings().jobs_queue_url, event_id)
    except QueueUnavailable:
        _forget(event_id)
        raise
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    logger.info("job accepted", extra={"guidelines_chars": len(guidelines)})
    return JobAccepted(event_id=row["event_id"], status=row["status"], created_at=row["created_at"])


def _forget(event_id: UUID) -> None:
    """The client gets a 503, so remove the job; if even that fails, the sweeper sends it later."""
    try:
        jobs.delete_unqueued_job(event_id)
    except Exception:
        logger.exception("could not remove a job whose message was not sent; the sweeper will send it")
