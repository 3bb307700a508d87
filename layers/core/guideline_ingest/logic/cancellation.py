"""Cancelling a job that has not finished. A running job stops between its steps."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from guideline_ingest.logic.notification import MessageQueue, announce_finished
from guideline_ingest.logic.reading import JobReader, job_from_row, read_job
from guideline_ingest.models import Job
from guideline_ingest.observability import logger, metrics


class JobAlreadyFinished(Exception):
    def __init__(self, job: Job):
        super().__init__(job.event_id)
        self.job = job


class CancellingStore(JobReader, Protocol):
    """What cancelling needs of the job store (guideline_ingest.dal.jobs)."""

    def cancel_job(self, event_id: UUID, owner: str) -> dict | None: ...


def cancel_job(
    event_id: UUID, owner: str, *, store: CancellingStore, queue: MessageQueue, webhook_queue_url: str
) -> Job:
    logger.set_correlation_id(str(event_id))
    row = store.cancel_job(event_id, owner)
    if row is None:
        # Finished already, or JobNotFound: unknown, or another's.
        raise JobAlreadyFinished(read_job(event_id, owner, store=store))
    metrics.add_metric(name="JobsCancelled", unit="Count", value=1)
    logger.info("job cancelled")
    if row["callback_url"]:
        announce_finished(webhook_queue_url, event_id, queue=queue)
    return job_from_row(row)
