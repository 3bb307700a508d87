"""The sweeper: no job is forgotten, none runs for ever.

A job can lose its message: the submit function died between the INSERT and the
send, or a worker died holding it and its message was then moved to the DLQ.
Every run re-sends jobs that have waited longer than the grace period with no
live claim, fails jobs whose workers died too many times, re-sends webhook
deliveries whose message was lost, and forgets idempotency keys past their
retention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from guideline_ingest.config import SweeperSettings
from guideline_ingest.dal import jobs
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import enqueue_jobs

# Enough for one run of one minute; more waits for the next run.
BATCH_LIMIT = 500


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int
    webhooks_requeued: int
    expired_idempotency_keys: int


def sweep(settings: SweeperSettings) -> SweepReport:
    failed = jobs.fail_abandoned_jobs(settings.max_receive_count)
    forgotten = jobs.mark_forgotten_jobs_enqueued(settings.pending_grace_seconds, BATCH_LIMIT)
    enqueue_jobs(settings.jobs_queue_url, forgotten)
    # Webhooks of the jobs failed just now, and deliveries whose message was lost.
    webhooks = [row["event_id"] for row in failed if row["webhook_due"]]
    webhooks += jobs.mark_lost_webhooks_enqueued(BATCH_LIMIT)
    enqueue_jobs(settings.webhook_queue_url, webhooks)
    expired_keys = jobs.delete_expired_idempotency_keys()
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
