"""The one way an API function builds its resolver: validation on, problems for errors."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

from guideline_ingest.api.problems import register_problem_handlers

OPENAPI = {
    "title": "guideline-ingest",
    "version": "1.0.0",
    "description": "Submit a guidelines document; poll for its summary and checklist.",
    "security_schemes": {"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
    # Relative to where the document is served (OpenAPI 3.1, 4.8.5): the stage or base path the
    # client called, whatever it is, and not the host's root.
    "servers": [Server(url=".", description="The API that serves this document")],
}


def create_resolver(*routers: Router) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    app.configure_openapi(**OPENAPI)
    register_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    return app
