"""SQS -> the chain, one job per record, failures reported per record."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from openai import OpenAI

from guideline_ingest import objects, queue
from guideline_ingest.config import process_settings
from guideline_ingest.dal import jobs
from guideline_ingest.logic.chain import Chain
from guideline_ingest.logic.document_loading import document_limits, load_document
from guideline_ingest.logic.processing import process_job
from guideline_ingest.models import JobMessage
from guideline_ingest.observability import logger, metrics
from guideline_ingest.secrets import read_secret

# Stop this long before Lambda's timeout: a job given back in time is retried
# cleanly, one killed mid-call waits for its lease to expire.
SAFETY_MARGIN_SECONDS = 5.0

tracer = Tracer()
settings = process_settings()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _openai_api_key() -> str | Callable[[], str]:
    """A key given in the environment as it is; a key in Secrets Manager is asked of the extension
    before each call (the extension caches it at most 5 minutes), so a rotated key is picked up
    by warm environments."""
    if settings.openai_api_key:
        return settings.openai_api_key
    return partial(read_secret, settings.openai_api_key_secret_arn)


# The base URL is always explicit: the SDK never falls back to reading OPENAI_BASE_URL itself.
llm = OpenAI(
    api_key=_openai_api_key(),
    base_url=settings.openai_base_url,
    max_retries=0,
    timeout=settings.openai_timeout_seconds,
)


# The stored text of a job extracted before, else its original fetched from S3 and extracted.
read_document = partial(
    load_document,
    store=jobs,
    objects=objects,
    bucket=settings.documents_bucket,
    limits=document_limits(settings),
)


def run_job(record: SQSRecord, deadline: float) -> None:
    process_job(
        JobMessage.model_validate_json(record.body),
        chain=Chain(
            llm=llm,
            model=settings.openai_model,
            max_call_seconds=settings.openai_timeout_seconds,
            deadline=deadline,
            token_budget=settings.chunk_token_budget,
            parallelism=settings.chunk_parallelism,
        ),
        lease_seconds=deadline - time.monotonic() + SAFETY_MARGIN_SECONDS,
        receipt_handle=record.receipt_handle,
        settings=settings,
        store=jobs,
        queue=queue,
        load_document=read_document,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    return process_partial_response(
        event=event, record_handler=partial(run_job, deadline=deadline), processor=processor, context=context
    )
