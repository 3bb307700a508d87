"""Running one job from its queue message: claim, load the document, chain, store, exactly once.

Outcomes of one delivery:
- the job is finished (COMPLETED, FAILED, or CANCELLED while it ran) -> acknowledged;
- the job is already finished (duplicate delivery) -> acknowledged, nothing runs;
- the same input was processed before -> its result is reused without the LLM;
- the document cannot be read (DocumentRejected) -> FAILED, error.type its kind, no LLM call;
- a long document: each chunk's result is stored as soon as it completes, and chunks stored by
  an earlier delivery (after an outage, a crash or a timeout) are reused, never asked for again;
- time runs out with chunks left -> progress stored, the claim given back (PENDING, due now) and
  the message replaced by one due at once; neither a failure nor a retry, and the next delivery
  continues;
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from guideline_ingest.config import ProcessSettings
from guideline_ingest.dal.jobs import Claim
from guideline_ingest.documents import DocumentRejected, ExtractedDocument
from guideline_ingest.logic.backoff import RetryPolicy, budget_spent_reason
from guideline_ingest.logic.chain import Chain, ChainFailed, ChunkResult, ContinueLater
from guideline_ingest.logic.reading import usage_of
from guideline_ingest.logic.retry import LLMAuthFailed, LLMUnavailable
from guideline_ingest.models import (
    ChunkExtraction,
    JobError,
    JobMessage,
    JobResult,
    JobStatus,
    Progress,
    Step,
)
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import QueueUnavailable


class Store(Protocol):
    """What processing asks of the jobs table (guideline_ingest.dal.jobs)."""

    def claim_job(self, event_id: UUID, lease_seconds: float, steps: list[dict]) -> Claim | None: ...
    def job_status(self, event_id: UUID) -> str | None: ...
    def find_cached_result(self, cache_key: str, owner: str | None) -> dict | None: ...
    def record_progress(self, event_id: UUID, attempt: int, steps: list[dict], progress: dict) -> bool: ...
    def chunk_results(self, event_id: UUID) -> list[dict]: ...
    def save_chunk(
        self, event_id: UUID, attempt: int, chunk: dict, steps: list[dict], progress: dict
    ) -> bool: ...
    def complete_job(
        self,
        event_id: UUID,
        attempt: int,
        result: dict,
        steps: list[dict],
        cache_key: str,
        progress: dict | None,
    ) -> bool: ...
    def fail_job(self, event_id: UUID, attempt: int, error: dict, steps: list[dict]) -> bool: ...
    def release_job(
        self, event_id: UUID, attempt: int, steps: list[dict], delay_seconds: int, error: str
    ) -> bool: ...
    def continue_job(self, event_id: UUID, attempt: int, steps: list[dict], progress: dict) -> bool: ...


class Queue(Protocol):
    """What processing asks of the queues (guideline_ingest.queue)."""

    def enqueue_job(self, queue_url: str, event_id: UUID) -> None: ...
    def requeue_job(
        self, queue_url: str, event_id: UUID, receipt_handle: str, delay_seconds: int
    ) -> None: ...


@dataclass(frozen=True)
class _Delivery:
    """One delivery holding its job's claim: what every outcome of it needs besides the store and
    the queue (those stay keyword seams, which the static IAM check follows)."""

    event_id: UUID
    claim: Claim
    receipt_handle: str
    settings: ProcessSettings


class JobNotClaimable(Exception):
    """The job does not exist yet/any more, or another delivery is running it."""


class ClaimLost(Exception):
    """The job was cancelled while it ran, or taken over by a newer attempt: stop between steps."""


def process_job(
    message: JobMessage,
    *,
    chain: Chain,
    lease_seconds: float,
    receipt_handle: str,
    settings: ProcessSettings,
    store: Store,
    queue: Queue,
    load_document: Callable[[Claim], ExtractedDocument],
) -> None:
    event_id = message.event_id
    logger.set_correlation_id(str(event_id))
    claim = store.claim_job(event_id, lease_seconds, _stored(chain.start()))
    claimed_at = time.monotonic()
    if claim is None:
        _explain_unclaimable(store, event_id)
        return
    logger.info("job claimed", extra={"attempt": claim.attempt})
    delivery = _Delivery(event_id, claim, receipt_handle, settings)
    try:
        document = load_document(claim)
    except DocumentRejected as rejected:
        _fail(delivery, rejected.kind, rejected.message, chain.steps, store=store, queue=queue)
        return
    cache_key = chain.cache_key(document)
    cached = store.find_cached_result(
        cache_key, None if settings.cache_shared_across_api_keys else claim.owner
    )
    if cached is not None:
        result = JobResult.model_validate(cached).model_copy(update={"cached": True})
        _complete(delivery, result, chain.cached_steps(), cache_key, None, store=store, queue=queue)
        return
    chain.on_progress = lambda steps, progress: _record_progress(delivery, steps, progress, store=store)
    chain.on_chunk = lambda result, steps, progress: _save_chunk(
        delivery, result, steps, progress, store=store
    )
    done = {row["chunk_index"]: _chunk_result(row) for row in store.chunk_results(event_id)}
    try:
        result = chain.run(document, done)
    except ClaimLost:
        logger.info("job cancelled or taken over while it ran; stopped between steps")
        return
    except ContinueLater as later:
        _continue_later(delivery, later.progress, chain.steps, store=store, queue=queue)
        return
    except ChainFailed as failure:
        _fail(delivery, failure.kind, failure.message, chain.steps, store=store, queue=queue)
        return
    except LLMUnavailable as unavailable:
        if isinstance(unavailable, LLMAuthFailed):
            metrics.add_metric(name="LLMAuthFailures", unit="Count", value=1)
        budget_left = settings.retry_budget_seconds - claim.age_seconds - (time.monotonic() - claimed_at)
        _retry_later(delivery, unavailable, budget_left, chain.pending(), store=store, queue=queue)
        return
    _complete(delivery, result, chain.steps, cache_key, chain.progress, store=store, queue=queue)


# Each move below is guarded by the claim's attempt in the store.


def _record_progress(delivery: _Delivery, steps: list[Step], progress: Progress, *, store: Store) -> None:
    if not store.record_progress(
        delivery.event_id, delivery.claim.attempt, _stored(steps), progress.model_dump()
    ):
        raise ClaimLost(delivery.event_id)


def _save_chunk(
    delivery: _Delivery, result: ChunkResult, steps: list[Step], progress: Progress, *, store: Store
) -> None:
    chunk = {
        "chunk_index": result.index,
        "fingerprint": result.fingerprint,
        "result": result.extraction.model_dump(mode="json"),
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "model": result.model,
    }
    if not store.save_chunk(
        delivery.event_id, delivery.claim.attempt, chunk, _stored(steps), progress.model_dump()
    ):
        raise ClaimLost(delivery.event_id)


def _continue_later(
    delivery: _Delivery, progress: Progress, steps: list[Step], *, store: Store, queue: Queue
) -> None:
    """Out of time with work left: give the claim back and come again at once."""
    if not store.continue_job(
        delivery.event_id, delivery.claim.attempt, _stored(steps), progress.model_dump()
    ):
        logger.info("job cancelled or taken over while it ran; not continued")
        return
    metrics.add_metric(name="JobsContinued", unit="Count", value=1)
    logger.info("job continues in its next delivery", extra=progress.model_dump())
    _requeue(delivery, 0, queue=queue)


def _retry_later(
    delivery: _Delivery,
    unavailable: LLMUnavailable,
    budget_left: float,
    steps: list[Step],
    *,
    store: Store,
    queue: Queue,
) -> None:
    settings, claim = delivery.settings, delivery.claim
    policy = RetryPolicy(settings.retry_backoff_base_seconds, settings.retry_backoff_cap_seconds)
    delay = policy.delay(claim.retries, unavailable.retry_after, budget_left)
    if delay is None:
        reason = budget_spent_reason(settings.retry_budget_seconds, str(unavailable))
        _fail(delivery, "llm_unavailable", reason, steps, store=store, queue=queue)
        return
    if not store.release_job(delivery.event_id, claim.attempt, _stored(steps), delay, str(unavailable)):
        logger.info("job cancelled or taken over while it ran; not retried")
        return
    metrics.add_metric(name="JobsRetried", unit="Count", value=1)
    logger.info(
        "job given back",
        extra={"reason": str(unavailable), "retries": claim.retries + 1, "retry_in_seconds": delay},
    )
    _requeue(delivery, delay, queue=queue)


def _requeue(delivery: _Delivery, delay: int, *, queue: Queue) -> None:
    try:
        queue.requeue_job(delivery.settings.jobs_queue_url, delivery.event_id, delivery.receipt_handle, delay)
    except QueueUnavailable as error:
        logger.warning("job not re-sent", extra={"reason": str(error)})
        raise


def _complete(
    delivery: _Delivery,
    result: JobResult,
    steps: list[Step],
    cache_key: str,
    progress: Progress | None,
    *,
    store: Store,
    queue: Queue,
) -> None:
    stored_progress = progress.model_dump() if progress else None
    if store.complete_job(
        delivery.event_id,
        delivery.claim.attempt,
        result.model_dump(mode="json"),
        _stored(steps),
        cache_key,
        stored_progress,
    ):
        metrics.add_metric(name="JobsCompleted", unit="Count", value=1)
        if result.cached:
            metrics.add_metric(name="JobsServedFromCache", unit="Count", value=1)
        usage = usage_of(steps)
        if usage and usage.estimated_cost_usd is not None:
            metrics.add_metric(name="EstimatedCostUsd", unit="None", value=usage.estimated_cost_usd)
        logger.info(
            "job completed", extra={"checklist_items": len(result.checklist), "cached": result.cached}
        )
        _announce(delivery, queue=queue)
    else:
        logger.warning("job result discarded: the job was cancelled or taken over by a newer attempt")


def _fail(
    delivery: _Delivery, kind: str, message: str, steps: list[Step], *, store: Store, queue: Queue
) -> None:
    error = JobError(type=kind, message=message)
    if store.fail_job(delivery.event_id, delivery.claim.attempt, error.model_dump(), _stored(steps)):
        metrics.add_metric(name="JobsFailed", unit="Count", value=1)
        logger.warning("job failed", extra={"error_type": kind})
        _announce(delivery, queue=queue)


def _announce(delivery: _Delivery, *, queue: Queue) -> None:
    """A finished job with a callback_url is queued for its webhook (logic/notification.py)."""
    if not delivery.claim.callback_url:
        return
    try:
        queue.enqueue_job(delivery.settings.webhook_queue_url, delivery.event_id)
    except QueueUnavailable:
        logger.warning(
            "webhook not queued; the sweeper will send it", extra={"event_id": str(delivery.event_id)}
        )


def _explain_unclaimable(store: Store, event_id: UUID) -> None:
    status = store.job_status(event_id)
    if status is not None and JobStatus(status).is_terminal:
        logger.info("duplicate delivery of a finished job ignored", extra={"status": status})
        return
    if status is None:
        raise JobNotClaimable(f"job {event_id} does not exist")
    raise JobNotClaimable(f"job {event_id} is being processed by another delivery")


def _chunk_result(row: dict) -> ChunkResult:
    return ChunkResult(
        index=row["chunk_index"],
        fingerprint=row["fingerprint"],
        extraction=ChunkExtraction.model_validate(row["result"]),
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        model=row["model"],
    )


def _stored(steps: list[Step]) -> list[dict]:
    return [step.model_dump(mode="json") for step in steps]
