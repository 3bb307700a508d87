"""Cancelling a job that has not finished. A running job stops between its steps."""

from __future__ import annotations

from uuid import UUID

from guideline_ingest.config import submit_settings
from guideline_ingest.dal import jobs
from guideline_ingest.logic.notification import announce_finished
from guideline_ingest.logic.reading import job_from_row, read_job
from guideline_ingest.models import Job
from guideline_ingest.observability import logger, metrics


class JobAlreadyFinished(Exception):
    def __init__(self, job: Job):
        super().__init__(job.event_id)
        self.job = job


def cancel_job(event_id: UUID, owner: str) -> Job:
    logger.set_correlation_id(str(event_id))
    row = jobs.cancel_job(event_id, owner)
    if row is None:
        raise JobAlreadyFinished(read_job(event_id, owner))  # or JobNotFound: unknown, or another's
    metrics.add_metric(name="JobsCancelled", unit="Count", value=1)
    logger.info("job cancelled")
    if row["callback_url"]:
        announce_finished(submit_settings().webhook_queue_url, event_id)
    return job_from_row(row)
