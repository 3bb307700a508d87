"""Reading a job: owners see their own jobs; everyone else sees nothing."""

from __future__ import annotations

from uuid import UUID

from guideline_ingest.dal import jobs
from guideline_ingest.models import Job, Step, Usage
from guideline_ingest.pricing import estimated_cost_usd


class JobNotFound(Exception):
    pass


def read_job(event_id: UUID, owner: str) -> Job:
    row = jobs.find_job(event_id, owner)
    if row is None:
        raise JobNotFound(event_id)
    job = Job.model_validate(row)
    job.usage = usage_of(job.steps)
    return job


def usage_of(steps: list[Step]) -> Usage | None:
    """Totals of the steps that ran; the cost is known only if every step's model is priced."""
    ran = [step for step in steps if step.model is not None]
    if not ran:
        return None
    costs = [estimated_cost_usd(step.model, step.input_tokens, step.output_tokens) for step in ran]
    return Usage(
        input_tokens=sum(step.input_tokens for step in ran),
        output_tokens=sum(step.output_tokens for step in ran),
        estimated_cost_usd=None if None in costs else round(sum(costs), 8),
    )
