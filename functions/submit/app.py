"""POST /jobs and POST /jobs/{event_id}/cancel: the routes that change jobs."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from guideline_ingest.api.jobs import writing
from guideline_ingest.api.resolver import create_resolver
from guideline_ingest.config import submit_settings
from guideline_ingest.observability import logger, metrics
from guideline_ingest.queue import sqs_client
from guideline_ingest.snapstart import register_restore_hooks

# Validated at cold start: a missing variable fails here, not in a request.
submit_settings()
app = create_resolver(writing)
# The SQS client is made at cold start, as AWS advises, not by the first request.
sqs_client()
# With SnapStart (ApiColdStart: snapstart) this client and the database connection are made
# again after each restore.
register_restore_hooks()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
