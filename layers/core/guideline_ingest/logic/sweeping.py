"""The sweeper: no job is forgotten, none runs for ever.

A job can lose its message: the submit function died between the INSERT and the
send, or every delivery of it failed before its claim and SQS moved it to the DLQ.
A job has no live message any more once it has been due (sent, claimed, or its
backoff over) for longer than the visibility timeout plus the grace period: a
failed delivery or a dead worker's message would have come back by then. Every
run fails such jobs once their retry budget is spent, and jobs whose workers
died too many times, re-sends the others, re-sends webhook deliveries whose
message was lost, and forgets idempotency keys past their retention. A job
waiting out its backoff is due in the future: it is never sent twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol
from uuid import UUID

from guideline_ingest.config import SweeperSettings
from guideline_ingest.logic.backoff import budget_spent_reason, describe_duration
from guideline_ingest.observability import logger, metrics

# Enough for one run of one minute; more waits for the next run.
BATCH_LIMIT = 500
# S3 checks a presigned form's expiry when the upload begins: a large file begun just in time
# may finish (and its event arrive) this much later.
UPLOAD_GRACE_SECONDS = 600


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    webhooks_requeued: int
    expired_idempotency_keys: int


class SweepingStore(Protocol):
    """What sweeping needs of the job store (guideline_ingest.dal.jobs)."""

    def fail_abandoned_jobs(self, max_attempts: int) -> list[dict]: ...

    def fail_jobs_out_of_budget(
        self, budget_seconds: float, silent_seconds: float, budget: str, llm_reason: str
    ) -> list[dict]: ...

    def mark_forgotten_jobs_enqueued(self, silent_seconds: float, limit: int) -> list[UUID]: ...

    def mark_lost_webhooks_enqueued(self, limit: int) -> list[UUID]: ...

    def fail_expired_uploads(self, grace_seconds: float) -> list[dict]: ...

    def delete_expired_idempotency_keys(self) -> int: ...


class SweepingQueue(Protocol):
    """What sweeping needs of the queues (guideline_ingest.queue)."""

    def enqueue_jobs(self, queue_url: str, event_ids: list[UUID]) -> None: ...


def sweep(settings: SweeperSettings, *, store: SweepingStore, queue: SweepingQueue) -> SweepReport:
    silent = settings.jobs_visibility_timeout_seconds + settings.pending_grace_seconds
    failed = store.fail_abandoned_jobs(settings.max_receive_count)
    failed += store.fail_jobs_out_of_budget(
        settings.retry_budget_seconds,
        silent,
        describe_duration(settings.retry_budget_seconds),
        # The store puts each job's last transient error in place of %s (SQL's format()).
        budget_spent_reason(settings.retry_budget_seconds, "%s"),
    )
    failed += fail_expired_uploads(store=store)
    forgotten = store.mark_forgotten_jobs_enqueued(silent, BATCH_LIMIT)
    queue.enqueue_jobs(settings.jobs_queue_url, forgotten)
    # Webhooks of the jobs failed just now, and deliveries whose message was lost.
    webhooks = [row["event_id"] for row in failed if row["webhook_due"]]
    webhooks += store.mark_lost_webhooks_enqueued(BATCH_LIMIT)
    queue.enqueue_jobs(settings.webhook_queue_url, webhooks)
    expired_keys = store.delete_expired_idempotency_keys()
    report = SweepReport(
        requeued=len(forgotten),
        failed=len(failed),
        webhooks_requeued=len(webhooks),
        expired_idempotency_keys=expired_keys,
    )
    if failed or forgotten or webhooks:
        logger.info("sweep", extra=asdict(report))
    metrics.add_metric(name="JobsRequeued", unit="Count", value=len(forgotten))
    metrics.add_metric(name="JobsAbandoned", unit="Count", value=len(failed))
    return report


class UploadExpiryStore(Protocol):
    """guideline_ingest.dal.jobs"""

    def fail_expired_uploads(self, grace_seconds: float) -> list[dict]: ...


def fail_expired_uploads(*, store: UploadExpiryStore) -> list[dict]:
    """Jobs AWAITING_UPLOAD whose form expired (plus the grace) end FAILED with upload_expired."""
    expired = store.fail_expired_uploads(UPLOAD_GRACE_SECONDS)
    if expired:
        metrics.add_metric(name="UploadsExpired", unit="Count", value=len(expired))
    return expired
