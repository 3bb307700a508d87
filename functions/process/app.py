"""SQS -> the two-step chain, one job per record, failures reported per record."""

from __future__ import annotations

import os
import time
from functools import partial

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from openai import OpenAI

from guideline_ingest.config import process_settings
from guideline_ingest.logic.chain import Chain
from guideline_ingest.logic.processing import process_job
from guideline_ingest.models import JobMessage
from guideline_ingest.observability import logger, metrics

# Stop this long before Lambda's timeout: a job given back in time is retried
# cleanly, one killed mid-call waits for its lease to expire.
SAFETY_MARGIN_SECONDS = 5.0

tracer = Tracer()
settings = process_settings()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _openai_api_key() -> str:
    if key := os.environ.get("OPENAI_API_KEY"):
        return key
    from aws_lambda_powertools.utilities.parameters import get_secret

    return get_secret(os.environ["OPENAI_API_KEY_SECRET_ARN"], max_age=300)


llm = OpenAI(
    api_key=_openai_api_key(),
    base_url=settings.openai_base_url,
    max_retries=0,
    timeout=settings.openai_timeout_seconds,
)


def run_job(record: SQSRecord, deadline: float) -> None:
    process_job(
        JobMessage.model_validate_json(record.body),
        chain=Chain(
            llm=llm,
            model=settings.openai_model,
            max_call_seconds=settings.openai_timeout_seconds,
            deadline=deadline,
        ),
        lease_seconds=deadline - time.monotonic() + SAFETY_MARGIN_SECONDS,
        receipt_handle=record.receipt_handle,
        settings=settings,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    return process_partial_response(
        event=event, record_handler=partial(run_job, deadline=deadline), processor=processor, context=context
    )
