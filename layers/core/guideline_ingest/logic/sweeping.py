"""The sweeper: no job is forgotten, none runs for ever.

A job can lose its message: the submit function died between the INSERT and the
send, or a worker died holding it and its message was then moved to the DLQ.
Every run re-sends jobs that have waited longer than the grace period with no
live claim, fails jobs whose workers died too many times, and forgets
idempotency keys past their retention.
"""

from __future__ import annotations

from dataclasses import dataclass

from guideline_ingest.dal import jobs
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import enqueue_jobs

# Enough for one run of one minute; more waits for the next run.
BATCH_LIMIT = 500


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    expired_idempotency_keys: int


def sweep(queue_url: str, grace_seconds: float, max_attempts: int) -> SweepReport:
    failed = jobs.fail_abandoned_jobs(max_attempts)
    forgotten = jobs.mark_forgotten_jobs_enqueued(grace_seconds, BATCH_LIMIT)
    enqueue_jobs(queue_url, forgotten)
    expired_keys = jobs.delete_expired_idempotency_keys()
    if failed or forgotten:
        logger.info("sweep", extra={"requeued": len(forgotten), "failed": len(failed)})
    metrics.add_metric(name="JobsRequeued", unit="Count", value=len(forgotten))
    metrics.add_metric(name="JobsAbandoned", unit="Count", value=len(failed))
    return SweepReport(requeued=len(forgotten), failed=len(failed), expired_idempotency_keys=expired_keys)
