"""Routes of the jobs resource."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query

from guideline_ingest import queue
from guideline_ingest.api.identity import caller
from guideline_ingest.api.links import link
from guideline_ingest.api.problems import problem_responses, sends_json, unsupported_media_type
from guideline_ingest.config import status_settings, submit_settings
from guideline_ingest.dal import jobs
from guideline_ingest.logic.cancellation import cancel_job
from guideline_ingest.logic.reading import list_jobs, read_job
from guideline_ingest.logic.submission import submit_job
from guideline_ingest.models import Job, JobAccepted, JobPage, JobStatus, SubmitJobRequest, WebhookSecret
from guideline_ingest.observability import logger
from guideline_ingest.webhooks import signing_secret

# How often a client should poll a job that is not finished, in seconds.
POLL_INTERVAL_SECONDS = 2
SECURED = [{"apiKey": []}]
MAX_PAGE_SIZE = 100

# Routes that change jobs (submit function) and routes that only read them (status function).
writing = Router()
reading = Router()


@writing.post(
    "/jobs",
    operation_id="submitJob",
    summary="Submit a guidelines document",
    description=(
        "Stores the job and queues it; poll the Location for the result. Location is a relative "
        "reference: resolve it against the URL you called (RFC 3986)."
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
)
def post_job(
    request: Annotated[SubmitJobRequest, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="idempotency-key",
            min_length=1,
            max_length=255,
            description="Retry safely: the same key and body return the first job (24 h, per API key).",
        ),
    ] = None,
) -> Response[JobAccepted]:
    headers = writing.current_event.headers or {}
    if not sends_json(headers):
        return unsupported_media_type(headers.get("content-type"))
    submitted = submit_job(owner=caller(writing), request=request, idempotency_key=idempotency_key)
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
