"""GET /jobs, GET /jobs/{event_id}, GET /health and the API's documentation.

The writing routes are registered too, only so that the one OpenAPI document
served here describes the whole API; API Gateway never sends them here.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from guideline_ingest.api import health
from guideline_ingest.api.jobs import reading, request_schemas, writing
from guideline_ingest.api.resolver import OPENAPI, create_resolver
from guideline_ingest.config import status_settings
from guideline_ingest.observability import logger
from guideline_ingest.snapstart import register_restore_hooks

# Validated at cold start: a missing variable fails here, not in a request.
status_settings()
app = create_resolver(reading, health.router, writing)
app.enable_swagger(path="/docs", **OPENAPI)
# With SnapStart (ApiColdStart: snapstart) the database connection is made again after a restore.
register_restore_hooks()


@app.get("/openapi.json", include_in_schema=False)
def get_openapi_document() -> dict:
    document = app.get_openapi_schema(**OPENAPI).model_dump(mode="json", by_alias=True, exclude_none=True)
    document["components"]["schemas"].update(request_schemas())
    return document


@logger.inject_lambda_context
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
