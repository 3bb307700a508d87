"""Running one job from its queue message: claim, chain, store, exactly once.

Outcomes of one delivery:
- the job is finished (COMPLETED, FAILED, or CANCELLED while it ran) -> acknowledged;
- the job is already finished (duplicate delivery) -> acknowledged, nothing runs;
- the same input was processed before -> its result is reused without the LLM;
- a transient failure (an LLM refusing the API key included) with retry budget left
  -> the job is given back (PENDING, due after its backoff) and its message replaced
  by one delayed by that backoff; the record succeeds, so receive counts never decide
  a transient failure;
- a transient failure once the retry budget (from created_at) is spent -> FAILED,
  with a reason that says so;
- another delivery holds the job, or the re-send failed -> the record fails and SQS
  delivers it again after the visibility timeout.
"""

from __future__ import annotations

import time
from uuid import UUID

from guideline_ingest.config import ProcessSettings
from guideline_ingest.dal import jobs
from guideline_ingest.dal.jobs import Claim
from guideline_ingest.logic.backoff import RetryPolicy, describe_duration
from guideline_ingest.logic.chain import Chain, ChainFailed, pending_steps
from guideline_ingest.logic.notification import announce_finished
from guideline_ingest.logic.reading import usage_of
from guideline_ingest.logic.retry import LLMAuthFailed, LLMUnavailable
from guideline_ingest.models import JobError, JobMessage, JobResult, Step
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable, requeue_job

FINISHED = ("COMPLETED", "FAILED", "CANCELLED")


class JobNotClaimable(Exception):
    """The job does not exist yet/any more, or another delivery is running it."""


class ClaimLost(Exception):
    """The job was cancelled while it ran, or taken over by a newer attempt: stop between steps."""


def process_job(
    message: JobMessage, *, chain: Chain, lease_seconds: float, receipt_handle: str, settings: ProcessSettings
) -> None:
    event_id = message.event_id
    logger.set_correlation_id(str(event_id))
    claim = jobs.claim_job(event_id, lease_seconds, _stored(chain.start()))
    claimed_at = time.monotonic()
    if claim is None:
        _explain_unclaimable(event_id)
        return
    logger.info("job claimed", extra={"attempt": claim.attempt})
    cache_key = chain.cache_key(claim.guidelines)
    cached = jobs.find_cached_result(
        cache_key, None if settings.cache_shared_across_api_keys else claim.owner
    )
    if cached is not None:
        result = JobResult.model_validate(cached).model_copy(update={"cached": True})
        _complete(event_id, claim, result, chain.cached_steps(), cache_key, settings)
        return
    chain.on_progress = lambda steps: _record_progress(event_id, claim, steps)
    try:
        result = chain.run(claim.guidelines)
    except ClaimLost:
        logger.info("job cancelled or taken over while it ran; stopped between steps")
        return
    except ChainFailed as failure:
        _fail(event_id, claim, failure.kind, failure.message, chain.steps, settings)
        return
    except LLMUnavailable as unavailable:
        if isinstance(unavailable, LLMAuthFailed):
            metrics.add_metric(name="LLMAuthFailures", unit="Count", value=1)
        budget_left = settings.retry_budget_seconds - claim.age_seconds - (time.monotonic() - claimed_at)
        _retry_later(event_id, claim, unavailable, budget_left, chain.steps, receipt_handle, settings)
        return
    _complete(event_id, claim, result, chain.steps, cache_key, settings)


def _retry_later(
    event_id: UUID,
    claim: Claim,
    unavailable: LLMUnavailable,
    budget_left: float,
    steps: list[Step],
    receipt_handle: str,
    settings: ProcessSettings,
) -> None:
    policy = RetryPolicy(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds)
    delay = policy.delay(claim.retries, unavailable.retry_after, budget_left)
    if delay is None:
        budget = describe_duration(settings.retry_budget_seconds)
        reason = f"The LLM stayed unavailable for the whole retry budget of {budget}: {unavailable}."
        _fail(event_id, claim, "llm_unavailable", reason, steps, settings)
        return
    if not jobs.release_job(event_id, claim.attempt, _stored(pending_steps()), delay, str(unavailable)):
        logger.info("job cancelled or taken over while it ran; not retried")
        return
    metrics.add_metric(name="JobsRetried", unit="Count", value=1)
    logger.info(
        "job given back",
        extra={"reason": str(unavailable), "retries": claim.retries + 1, "retry_in_seconds": delay},
    )
    try:
        requeue_job(settings.jobs_queue_url, event_id, receipt_handle, delay)
    except QueueUnavailable as error:
        logger.warning("job not re-sent", extra={"reason": str(error)})
        raise


def _record_progress(event_id: UUID, claim: Claim, steps: list[Step]) -> None:
    if not jobs.record_progress(event_id, claim.attempt, _stored(steps)):
        raise ClaimLost(event_id)


def _complete(
    event_id: UUID,
    claim: Claim,
    result: JobResult,
    steps: list[Step],
    cache_key: str,
    settings: ProcessSettings,
) -> None:
    if jobs.complete_job(event_id, claim.attempt, result.model_dump(mode="json"), _stored(steps), cache_key):
        metrics.add_metric(name="JobsCompleted", unit="Count", value=1)
        if result.cached:
            metrics.add_metric(name="JobsServedFromCache", unit="Count", value=1)
        usage = usage_of(steps)
        if usage and usage.estimated_cost_usd is not None:
            metrics.add_metric(name="EstimatedCostUsd", unit="None", value=usage.estimated_cost_usd)
        logger.info(
            "job completed", extra={"checklist_items": len(result.checklist), "cached": result.cached}
        )
        _announce(event_id, claim, settings)
    else:
        logger.warning("job result discarded: the job was cancelled or taken over by a newer attempt")


def _explain_unclaimable(event_id: UUID) -> None:
    status = jobs.job_status(event_id)
    if status in FINISHED:
        logger.info("duplicate delivery of a finished job ignored", extra={"status": status})
        return
    if status is None:
        raise JobNotClaimable(f"job {event_id} does not exist")
    raise JobNotClaimable(f"job {event_id} is being processed by another delivery")


def _fail(
    event_id: UUID, claim: Claim, kind: str, message: str, steps: list[Step], settings: ProcessSettings
) -> None:
    error = JobError(type=kind, message=message)
    if jobs.fail_job(event_id, claim.attempt, error.model_dump(), _stored(steps)):
        metrics.add_metric(name="JobsFailed", unit="Count", value=1)
        logger.warning("job failed", extra={"error_type": kind})
        _announce(event_id, claim, settings)


def _announce(event_id: UUID, claim: Claim, settings: ProcessSettings) -> None:
    if claim.callback_url:
        announce_finished(settings.webhook_queue_url, event_id)


def _stored(steps: list[Step]) -> list[dict]:
    return [step.model_dump(mode="json") for step in steps]
