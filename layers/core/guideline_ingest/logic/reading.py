"""Reading jobs: owners see their own jobs; everyone else sees nothing."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Protocol
from uuid import UUID

from guideline_ingest.documents.formats import parse_media_type
from guideline_ingest.models import (
    DocumentInfo,
    Job,
    JobPage,
    JobStatus,
    JobSummary,
    Step,
    Usage,
    WebhookDelivery,
)
from guideline_ingest.pricing import estimated_cost_usd


class JobNotFound(Exception):
    pass


class JobReader(Protocol):
    """What reading needs of the job store (guideline_ingest.dal.jobs)."""

    def find_job(self, event_id: UUID, owner: str) -> dict | None: ...

    def list_jobs(self, owner: str, status: str | None, after: tuple | None, limit: int) -> list[dict]: ...


def read_job(event_id: UUID, owner: str, *, store: JobReader) -> Job:
    row = store.find_job(event_id, owner)
    if row is None:
        raise JobNotFound(event_id)
    return job_from_row(row)


def job_from_row(row: dict) -> Job:
    job = Job.model_validate(row)
    job.usage = usage_of(job.steps)
    if row.get("callback_url"):
        job.webhook = WebhookDelivery(
            url=row["callback_url"],
            status=row["webhook_status"] or "WAITING",
            attempts=row["webhook_attempts"],
            last_error=row["webhook_last_error"],
            delivered_at=row["webhook_delivered_at"],
        )
    if row.get("document_media_type"):
        job.document = DocumentInfo(
            format=parse_media_type(row["document_media_type"]).value,
            media_type=row["document_media_type"],
            filename=row["document_filename"],
            size_bytes=row["document_size_bytes"],
            page_count=row["document_page_count"],
            characters=row["document_characters"],
        )
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


class InvalidCursor(Exception):
    pass


def list_jobs(
    owner: str, status: JobStatus | None, limit: int, cursor: str | None, *, store: JobReader
) -> JobPage:
    """One page of the owner's jobs, newest first; the cursor is opaque to clients."""
    after = _decode(cursor) if cursor else None
    rows = store.list_jobs(owner, status.value if status else None, after, limit + 1)
    page = [JobSummary.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    return JobPage(items=page, next_cursor=_encode(page[-1]) if more else None)


def _encode(last: JobSummary) -> str:
    position = f"{last.created_at.isoformat()}|{last.event_id}"
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        created_at, event_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|")
        return datetime.fromisoformat(created_at), UUID(event_id)
    except ValueError as error:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise InvalidCursor(cursor) from error
