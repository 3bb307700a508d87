"""GET /health: the function is up and its database answers."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler.api_gateway import Router

from guideline_ingest.api.problems import problem_responses
from guideline_ingest.dal.jobs import ping_database
from guideline_ingest.models import Health

router = Router()


@router.get(
    "/health",
    operation_id="getHealth",
    summary="Liveness and database check",
    tags=["operations"],
    responses={
        200: {"description": "Healthy", "content": {"application/json": {"model": Health}}},
        **problem_responses(HTTPStatus.SERVICE_UNAVAILABLE),
    },
)
def get_health() -> Health:
    ping_database()
    return Health(status="ok", database="ok")
