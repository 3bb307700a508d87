"""Reading a job: owners see their own jobs; everyone else sees nothing."""

from __future__ import annotations

from uuid import UUID

from guideline_ingest.dal import jobs
from guideline_ingest.models import Job


class JobNotFound(Exception):
    pass


def read_job(event_id: UUID, owner: str) -> Job:
    row = jobs.find_job(event_id, owner)
    if row is None:
        raise JobNotFound(event_id)
    return Job.model_validate(row)
