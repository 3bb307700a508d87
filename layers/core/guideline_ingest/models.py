"""The domain's data shapes: API input and output, the LLM's checklist, problems.

The same models validate requests, shape responses, constrain the LLM's
structured output and generate the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, StringConstraints

from guideline_ingest.config import max_document_chars
from guideline_ingest.status import JobStatus
from guideline_ingest.webhooks import check_callback_url

Guidelines = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=max_document_chars(), pattern=r"\S"),
    Field(description="The guidelines document, as plain text. Must not be blank."),
]


CallbackUrl = Annotated[
    StrictStr,
    StringConstraints(max_length=2048),
    AfterValidator(check_callback_url),
    Field(description="https URL that receives the job document, signed, when the job ends"),
]


class SubmitJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guidelines: Guidelines
    callback_url: CallbackUrl | None = None


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_type: StrictStr = Field(
        description="The file's media type: application/pdf, application/vnd.openxmlformats-officedocument"
        ".wordprocessingml.document, text/html, text/markdown or text/plain"
    )
    size_bytes: int = Field(gt=0, description="The file's exact size; the form accepts no other")
    filename: Annotated[StrictStr, StringConstraints(min_length=1, max_length=255)] | None = None


class SubmitUploadRequest(BaseModel):
    """Ask for a presigned form to upload a file of any size up to MaxDocumentBytes."""

    model_config = ConfigDict(extra="forbid")

    upload: UploadRequest
    callback_url: CallbackUrl | None = None


class JobMessage(BaseModel):
    """What the jobs and webhook queues carry: the id, never the text."""

    event_id: UUID


class UploadForm(BaseModel):
    """A presigned S3 POST: send `fields` and then the file (last) as multipart/form-data to `url`."""

    url: str
    fields: dict[str, str]
    expires_at: datetime


class JobAccepted(BaseModel):
    event_id: UUID
    status: JobStatus
    created_at: datetime
    upload: UploadForm | None = Field(
        default=None, description="Where to upload the file, for a job AWAITING_UPLOAD"
    )


class DocumentInfo(BaseModel):
    """The file a job came from; page_count and characters once it has been extracted."""

    format: str
    media_type: str
    filename: str | None = None
    size_bytes: int | None = None
    page_count: int | None = None
    characters: int | None = None


Priority = Literal["high", "medium", "low"]


class ExtractedItem(BaseModel):
    """One item as the LLM writes it (structured outputs): no id and no location, which the
    pipeline assigns from where the verified quote stands."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="Short imperative action")
    description: str = Field(description="What to do and why, in one or two sentences")
    priority: Priority
    category: str = Field(description="One or two words, e.g. security, privacy, quality")
    source_quote: str = Field(description="Verbatim excerpt of the guidelines that this item comes from")


class Checklist(BaseModel):
    """The checklist call's schema (a document of one chunk)."""

    model_config = ConfigDict(extra="forbid")

    items: list[ExtractedItem]


class ChunkExtraction(BaseModel):
    """The map call's schema: one chunk's items and its summary."""

    model_config = ConfigDict(extra="forbid")

    summary: str
    items: list[ExtractedItem]


class SourceLocation(BaseModel):
    page: int | None = Field(default=None, description="1-based page of the original (PDF)")
    section: str | None = Field(default=None, description='Heading path, e.g. "1 Scope > 1.2 Terms"')


class ChecklistItem(BaseModel):
    """One actionable item of a job's result."""

    id: int = Field(description="1-based position in the checklist, which follows the document")
    title: str = Field(description="Short imperative action")
    description: str = Field(description="What to do and why, in one or two sentences")
    priority: Priority = Field(
        description="From the quote's normative strength: must/shall/required high, "
        "should/recommended medium, may low"
    )
    category: str = Field(description="One or two words, e.g. security, privacy, quality")
    source_quote: str = Field(description="Verbatim excerpt of the guidelines that this item comes from")
    locations: list[SourceLocation] = Field(
        default_factory=list,
        description="Where the quote stands in the document, in document order (more than one when "
        "the same duty appears in several places); found by matching the quote, never from the model",
    )


class SectionSummary(BaseModel):
    section: str = Field(description="A top-level section of the document")
    summary: str


class JobResult(BaseModel):
    summary: str
    sections: list[SectionSummary] = Field(
        default_factory=list, description="A short summary of each top-level section of a long document"
    )
    checklist: list[ChecklistItem]
    ungrounded_items_dropped: int = Field(
        default=0, description="Items the model produced whose source_quote is not in the guidelines"
    )
    cached: bool = Field(
        default=False, description="Reused from an identical earlier job; no LLM call was made"
    )


class JobError(BaseModel):
    type: str = Field(description="Stable machine-readable reason, e.g. llm_refused")
    message: str = Field(description="What happened, for a person")


class StepStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Step(BaseModel):
    """One step of the chain, as far as it has got."""

    # extract: the per-chunk calls of a long document; summarize then merges their summaries.
    name: Literal["summarize", "checklist", "extract"]
    status: StepStatus = StepStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float | None = None


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    estimated_cost_usd: float | None = Field(
        description="From the price table in code; null for unknown models"
    )


class Progress(BaseModel):
    chunks_done: int = Field(description="Chunks of the document extracted so far (stored, never paid twice)")
    chunks_total: int


class WebhookDelivery(BaseModel):
    url: str
    status: Literal["WAITING", "PENDING", "DELIVERED", "FAILED"] = Field(
        description="WAITING until the job ends, then PENDING until delivered or given up"
    )
    attempts: int
    last_error: str | None = None
    delivered_at: datetime | None = None


class Job(BaseModel):
    event_id: UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    result: JobResult | None = None
    error: JobError | None = None
    steps: list[Step] = Field(default_factory=list, description="The chain's steps, updated as it runs")
    usage: Usage | None = Field(
        default=None, description="Tokens of all steps so far and their estimated cost"
    )
    progress: Progress | None = Field(
        default=None, description="Chunks done of the total, once the document has been cut"
    )
    webhook: WebhookDelivery | None = Field(
        default=None, description="Delivery to callback_url, if one was given"
    )
    document: DocumentInfo | None = Field(default=None, description="The file; null for plain text")


class WebhookSecret(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of the Webhook-Signature header for your API key")


class JobSummary(BaseModel):
    event_id: UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
