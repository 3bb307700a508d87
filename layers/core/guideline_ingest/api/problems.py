"""RFC 9457 problem details for every error, and nothing else (no stack traces)."""

from __future__ import annotations

import json
from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ValidationException,
)
from psycopg import OperationalError

from guideline_ingest.api.identity import NoApiKeyId
from guideline_ingest.documents import DocumentRejected
from guideline_ingest.documents.formats import MEDIA_TYPES, media_type_essence
from guideline_ingest.logic.cancellation import JobAlreadyFinished
from guideline_ingest.logic.reading import InvalidCursor, JobNotFound
from guideline_ingest.logic.submission import IdempotencyKeyReused, IdempotentRequestInFlight
from guideline_ingest.models import Problem
from guideline_ingest.objects import ObjectStoreUnavailable
from guideline_ingest.observability import logger
from guideline_ingest.queue import QueueUnavailable

PROBLEM_CONTENT_TYPE = "application/problem+json"
# How long a client should wait before retrying after a 503.
RETRY_AFTER_UNAVAILABLE_SECONDS = 5


def problem(
    status: HTTPStatus, slug: str, detail: str, headers: dict | None = None, **extensions
) -> Response:
    body = Problem(
        type=f"urn:guideline-ingest:problem:{slug}", title=status.phrase, status=status.value, detail=detail
    )
    return Response(
        status_code=status.value,
        content_type=PROBLEM_CONTENT_TYPE,
        body=json.dumps({**body.model_dump(), **extensions}),
        headers=headers,
    )


def problem_responses(*statuses: HTTPStatus) -> dict:
    """OpenAPI `responses` entries for the problems a route can answer."""
    return {
        status.value: {
            "description": status.phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"model": Problem}},
        }
        for status in statuses
    }


def sends_json(headers: dict) -> bool:
    return media_type_essence(headers.get("content-type") or "application/json") == "application/json"


def unsupported_media_type(content_type: str | None) -> Response:
    return problem(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        f"Send the body as application/json or as a document ({', '.join(MEDIA_TYPES)}), not {content_type}.",
    )


# A document refused where its bytes are at hand; the problem type's suffix is the kind, the same
# word a job that fails on its document gets as error.type.
_DOCUMENT_STATUS = {
    "unsupported_document_type": HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    "document_too_large": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
}


# Domain errors whose answer never varies: status, slug, detail, headers.
_FIXED_PROBLEMS: dict[type[Exception], tuple] = {
    # The same problem as the gateway's INVALID_API_KEY response in infra/template.yaml.
    NoApiKeyId: (
        HTTPStatus.FORBIDDEN,
        "invalid-api-key",
        "A valid API key is required in the x-api-key header.",
    ),
    JobNotFound: (
        HTTPStatus.NOT_FOUND,
        "job-not-found",
        "No job with this event_id exists for your API key.",
    ),
    InvalidCursor: (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "invalid-cursor",
        "cursor must be the next_cursor of a previous page, unchanged.",
    ),
    IdempotencyKeyReused: (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "This Idempotency-Key was already used with a different body; use a new key for a new request.",
    ),
    IdempotentRequestInFlight: (
        HTTPStatus.CONFLICT,
        "request-in-flight",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        {"Retry-After": "1"},
    ),
}


def register_problem_handlers(app: APIGatewayRestResolver) -> None:
    @app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
    def invalid_request(error: ValidationException) -> Response:
        return _problem_for_validation(app, error.errors())

    @app.exception_handler(JobAlreadyFinished)
    def already_finished(error: JobAlreadyFinished) -> Response:
        return problem(
            HTTPStatus.CONFLICT,
            "job-already-finished",
            f"The job has already ended ({error.job.status}); only unfinished jobs can be cancelled.",
        )

    @app.exception_handler(DocumentRejected)
    def document_rejected(error: DocumentRejected) -> Response:
        status = _DOCUMENT_STATUS.get(error.kind, HTTPStatus.UNPROCESSABLE_ENTITY)
        return problem(status, error.kind, error.message)

    for exception, answer in _FIXED_PROBLEMS.items():
        app.exception_handler(exception)(lambda _, answer=answer: problem(*answer))

    @app.exception_handler([QueueUnavailable, ObjectStoreUnavailable, OperationalError])
    def dependency_down(error: Exception) -> Response:
        logger.warning("dependency unavailable", extra={"error": type(error).__name__})
        return problem(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "service-unavailable",
            "The service cannot accept or read jobs right now. Nothing was stored; retry later.",
            headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_SECONDS)},
        )

    @app.not_found
    def route_not_found(_: Exception) -> Response:
        return problem(HTTPStatus.NOT_FOUND, "route-not-found", "There is no such route; see /openapi.json.")

    @app.exception_handler(Exception)
    def unexpected(_: Exception) -> Response:
        logger.exception("unexpected error")
        return problem(
            HTTPStatus.INTERNAL_SERVER_ERROR, "internal-error", "Something went wrong on our side."
        )


def _problem_for_validation(app: APIGatewayRestResolver, errors: list[dict]) -> Response:
    headers = app.current_event.headers or {}
    if not sends_json(headers):
        return unsupported_media_type(headers.get("content-type"))
    kinds = {error["type"] for error in errors}
    locations = {error["loc"][0] for error in errors}
    if "json_invalid" in kinds:
        return problem(HTTPStatus.BAD_REQUEST, "invalid-json", "The request body is not valid JSON.")
    if "path" in locations:  # a malformed event_id names no job
        return problem(*_FIXED_PROBLEMS[JobNotFound])
    too_long = [
        e for e in errors if e["type"] == "string_too_long" and tuple(e["loc"]) == ("body", "guidelines")
    ]
    if too_long:
        limit = too_long[0]["ctx"]["max_length"]
        return problem(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "guidelines-too-long",
            f"guidelines may be at most {limit} characters long.",
        )
    return problem(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "invalid-body" if locations == {"body"} else "invalid-request",
        "; ".join(_describe(error) for error in errors),
        errors=[{"pointer": _pointer(error["loc"]), "detail": _describe(error)} for error in errors],
    )


def _pointer(location: tuple) -> str:
    """JSON pointer into the body, as RFC 9457 suggests for validation problems."""
    return "/" + "/".join(str(part) for part in location[1:])


def _describe(error: dict) -> str:
    field = ".".join(str(part) for part in error["loc"][1:]) or "body"
    if error["type"] == "string_pattern_mismatch":
        return f"{field}: must not be blank"
    return f"{field}: {error['msg']}"
