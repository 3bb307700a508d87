"""Running one job from its queue message: claim, chain, store, exactly once.

Outcomes of one delivery:
- the job is finished (COMPLETED or FAILED) -> the message is acknowledged;
- the job is already finished (duplicate delivery) -> acknowledged, nothing runs;
- a transient failure, or another delivery holds the job -> the record fails and
  SQS delivers it again after the visibility timeout;
- on the last attempt (the last delivery SQS will make, or the job's last allowed
  claim when the sweeper has re-sent it), a transient failure ends the job FAILED
  with the reason instead, so no job is left PENDING when its message goes to the DLQ.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from guideline_ingest.dal import jobs
from guideline_ingest.logic.chain import Chain, ChainFailed, pending_steps
from guideline_ingest.logic.retry import LLMUnavailable
from guideline_ingest.models import JobError, Step
from guideline_ingest.observability import logger, metrics


class JobMessage(BaseModel):
    event_id: UUID


class JobNotClaimable(Exception):
    """The job does not exist yet/any more, or another delivery is running it."""


def process_job(
    message: JobMessage, *, chain: Chain, lease_seconds: float, receive_count: int, max_attempts: int
) -> None:
    event_id = message.event_id
    logger.set_correlation_id(str(event_id))
    claim = jobs.claim_job(event_id, lease_seconds, _stored(chain.start()))
    if claim is None:
        _explain_unclaimable(event_id)
        return
    logger.info("job claimed", extra={"attempt": claim.attempt})
    chain.on_progress = lambda steps: jobs.record_progress(event_id, claim.attempt, _stored(steps))
    try:
        result = chain.run(claim.guidelines)
    except ChainFailed as failure:
        _fail(event_id, claim.attempt, failure.kind, failure.message, chain.steps)
        return
    except LLMUnavailable as unavailable:
        if receive_count >= max_attempts or claim.attempt >= max_attempts:
            reason = f"Gave up after repeated attempts: {unavailable}."
            _fail(event_id, claim.attempt, "llm_unavailable", reason, chain.steps)
            return
        jobs.release_job(event_id, claim.attempt, _stored(pending_steps()))
        metrics.add_metric(name="JobsRetried", unit="Count", value=1)
        raise
    if jobs.complete_job(event_id, claim.attempt, result.model_dump(mode="json"), _stored(chain.steps)):
        metrics.add_metric(name="JobsCompleted", unit="Count", value=1)
        logger.info("job completed", extra={"checklist_items": len(result.checklist), **chain.usage()})
    else:
        logger.warning(
            "job result discarded: another attempt took the job over after this one's lease expired"
        )


def _explain_unclaimable(event_id: UUID) -> None:
    status = jobs.job_status(event_id)
    if status in ("COMPLETED", "FAILED"):
        logger.info("duplicate delivery of a finished job ignored", extra={"status": status})
        return
    if status is None:
        raise JobNotClaimable(f"job {event_id} does not exist")
    raise JobNotClaimable(f"job {event_id} is being processed by another delivery")


def _fail(event_id: UUID, attempt: int, kind: str, message: str, steps: list[Step]) -> None:
    error = JobError(type=kind, message=message)
    if jobs.fail_job(event_id, attempt, error.model_dump(), _stored(steps)):
        metrics.add_metric(name="JobsFailed", unit="Count", value=1)
        logger.warning("job failed", extra={"error_type": kind})


def _stored(steps: list[Step]) -> list[dict]:
    return [step.model_dump(mode="json") for step in steps]
