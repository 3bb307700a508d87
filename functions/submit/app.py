"""POST /jobs: accept a guidelines document, store it and queue it."""

from aws_lambda_powertools.utilities.typing import LambdaContext
from guideline_ingest.api.jobs import submission
from guideline_ingest.api.resolver import create_resolver
from guideline_ingest.observability import logger, metrics

app = create_resolver(submission)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
