"""Routes of the jobs resource."""

from __future__ import annotations

import base64
import json
from email.message import Message
from http import HTTPStatus
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema

from guideline_ingest import objects, queue
from guideline_ingest.api.identity import caller
from guideline_ingest.api.links import link
from guideline_ingest.api.problems import problem_responses, sends_json, unsupported_media_type
from guideline_ingest.config import status_settings, submit_settings
from guideline_ingest.dal import jobs
from guideline_ingest.documents.formats import MEDIA_TYPES, document_format_of
from guideline_ingest.logic.cancellation import cancel_job
from guideline_ingest.logic.reading import list_jobs, read_job
from guideline_ingest.logic.submission import (
    INLINE_DOCUMENT_MAX_BYTES,
    Intake,
    request_upload,
    submit_document,
    submit_job,
)
from guideline_ingest.models import (
    Job,
    JobAccepted,
    JobPage,
    JobStatus,
    SubmitJobRequest,
    SubmitUploadRequest,
    WebhookSecret,
)
from guideline_ingest.observability import logger
from guideline_ingest.webhooks import CallbackRefused, check_callback_url, signing_secret

# How often a client should poll a job that is not finished, in seconds.
POLL_INTERVAL_SECONDS = 2
SECURED = [{"apiKey": []}]
MAX_PAGE_SIZE = 100


def request_schemas() -> dict:
    """The JSON request bodies' schemas, for the OpenAPI components: the route reads its body
    itself (a document is not JSON), so the resolver does not collect them."""
    _, schemas = models_json_schema(
        [(SubmitJobRequest, "validation"), (SubmitUploadRequest, "validation")], ref_template=_COMPONENT
    )
    return schemas["$defs"]


_COMPONENT = "#/components/schemas/{model}"
SUBMIT_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": _COMPONENT.format(model="SubmitJobRequest")},
                    {"$ref": _COMPONENT.format(model="SubmitUploadRequest")},
                ]
            }
        },
        **{media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in MEDIA_TYPES},
    },
}

# Routes that change jobs (submit function) and routes that only read them (status function).
writing = Router()
reading = Router()


@writing.post(
    "/jobs",
    operation_id="submitJob",
    summary="Submit a guidelines document",
    description=(
        'Three ways in. (1) JSON `{"guidelines": "..."}`: plain text. (2) The file itself as the '
        "body, with its Content-Type (PDF, DOCX, HTML, Markdown or plain text), up to "
        f"{INLINE_DOCUMENT_MAX_BYTES} bytes; `callback_url` as a query parameter, the name in "
        'Content-Disposition. (3) JSON `{"upload": {"media_type", "size_bytes", "filename"}}`: '
        "the job waits AWAITING_UPLOAD and `upload` is a presigned S3 POST for the file (any size up "
        "to MaxDocumentBytes); the upload starts the job. Poll the Location for the result. "
        "Location is a relative reference: resolve it against the URL you called (RFC 3986)."
    ),
    tags=["jobs"],
    security=SECURED,
    responses={
        202: {"description": "Accepted", "content": {"application/json": {"model": JobAccepted}}},
        **problem_responses(
            HTTPStatus.FORBIDDEN,
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.CONFLICT,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    },
    # The body is read by the route itself (a document is not JSON): its schema is stated here.
    openapi_extensions={"requestBody": SUBMIT_REQUEST_BODY},
)
def post_job(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="idempotency-key",
            min_length=1,
            max_length=255,
            description="Retry safely: the same key and body return the first job (24 h, per API key).",
        ),
    ] = None,
    callback_url: Annotated[
        str | None,
        Query(
            max_length=2048, description="For a document sent as the body: where to send the job when it ends"
        ),
    ] = None,
) -> Response[JobAccepted]:
    event = writing.current_event
    headers = event.headers or {}
    content_type = headers.get("content-type") or ""
    owner = caller(writing)
    intake = _intake()
    if sends_json(headers):
        request = _json_request(event)
        if isinstance(request, SubmitUploadRequest):
            submitted = request_upload(
                owner, request, idempotency_key, store=jobs, objects=objects, intake=intake
            )
        else:
            submitted = submit_job(owner, request, idempotency_key, store=jobs, queue=queue, intake=intake)
    elif document_format_of(content_type) is not None:
        submitted = submit_document(
            owner,
            _body_bytes(event),
            content_type,
            _filename(headers.get("content-disposition")),
            _callback_url(callback_url),
            idempotency_key,
            store=jobs,
            queue=queue,
            objects=objects,
            intake=intake,
        )
    else:
        return unsupported_media_type(headers.get("content-type"))
    # Relative, so that it stays under the stage (or base path) the client called.
    response_headers = {"Location": link(writing, f"/jobs/{submitted.job.event_id}")}
    if submitted.replayed:
        response_headers["Idempotent-Replayed"] = "true"
    return Response(
        status_code=HTTPStatus.ACCEPTED,
        content_type="application/json",
        body=submitted.job,
        headers=response_headers,
    )


def _intake() -> Intake:
    settings = submit_settings()
    return Intake(
        jobs_queue_url=settings.jobs_queue_url,
        documents_bucket=settings.documents_bucket,
        max_document_bytes=settings.max_document_bytes,
        upload_expiry_seconds=settings.upload_expiry_seconds,
    )


def _json_request(event) -> SubmitJobRequest | SubmitUploadRequest:
    """The JSON body as one of the two requests, with validation errors located in the body as the
    resolver's own validation reports them (api/problems.py turns them into problems)."""
    try:
        body = json.loads(event.decoded_body or "null")
    except ValueError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
        ) from None
    model = SubmitUploadRequest if isinstance(body, dict) and "upload" in body else SubmitJobRequest
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors(include_url=False)]
        ) from None


def _body_bytes(event) -> bytes:
    """A binary media type's body arrives base64-encoded (BinaryMediaTypes in the template)."""
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode()


def _filename(content_disposition: str | None) -> str | None:
    if not content_disposition:
        return None
    message = Message()
    message["content-disposition"] = content_disposition
    name = message.get_filename()
    return name[:255] if name else None


def _callback_url(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        return check_callback_url(url)
    except CallbackRefused as error:
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("query", "callback_url"), "msg": str(error)}]
        ) from None


@reading.get(
    "/jobs/<event_id>",
    operation_id="getJob",
    summary="Read a job's status and result",
    tags=["jobs"],
    security=SECURED,
    responses={
        200: {"description": "The job", "content": {"application/json": {"model": Job}}},
        **problem_responses(HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.SERVICE_UNAVAILABLE),
    },
)
def get_job(event_id: Annotated[UUID, Path()]) -> Response[Job]:
    logger.set_correlation_id(str(event_id))
    job = read_job(event_id, owner=caller(reading), store=jobs)
    headers = {} if job.status.is_terminal else {"Retry-After": str(POLL_INTERVAL_SECONDS)}
    return Response(status_code=HTTPStatus.OK, content_type="application/json", body=job, headers=headers)


@reading.get(
    "/jobs",
    operation_id="listJobs",
    summary="List your jobs, newest first",
    tags=["jobs"],
    security=SECURED,
    responses={
        200: {"description": "One page of jobs", "content": {"application/json": {"model": JobPage}}},
        **problem_responses(
            HTTPStatus.FORBIDDEN, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.SERVICE_UNAVAILABLE
        ),
    },
)
def get_jobs(
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> JobPage:
    return list_jobs(caller(reading), status, limit, cursor, store=jobs)


@writing.post(
    "/jobs/<event_id>/cancel",
    operation_id="cancelJob",
    summary="Cancel a job that has not finished",
    description="A running job stops between its steps. Cancelling a finished job is a 409.",
    tags=["jobs"],
    security=SECURED,
    responses={
        200: {"description": "The cancelled job", "content": {"application/json": {"model": Job}}},
        **problem_responses(
            HTTPStatus.FORBIDDEN, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.SERVICE_UNAVAILABLE
        ),
    },
)
def post_cancel(event_id: Annotated[UUID, Path()]) -> Job:
    return cancel_job(
        event_id,
        owner=caller(writing),
        store=jobs,
        queue=queue,
        webhook_queue_url=submit_settings().webhook_queue_url,
    )


@reading.get(
    "/webhooks/secret",
    operation_id="getWebhookSecret",
    summary="Your webhook signing secret",
    description="Webhook-Signature v1 is HMAC-SHA256(secret, Webhook-Timestamp + '.' + body).",
    tags=["webhooks"],
    security=SECURED,
    responses={
        200: {"description": "Your secret", "content": {"application/json": {"model": WebhookSecret}}},
        **problem_responses(HTTPStatus.FORBIDDEN),
    },
)
def get_webhook_secret() -> WebhookSecret:
    return WebhookSecret(secret=signing_secret(status_settings().webhook_signing_secret, caller(reading)))
