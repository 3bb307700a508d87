"""SQS (the documents bucket's upload events) -> the job each upload was issued for starts."""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from guideline_ingest import queue
from guideline_ingest.config import upload_settings
from guideline_ingest.dal import jobs
from guideline_ingest.logic.uploads import start_uploaded_jobs
from guideline_ingest.observability import logger, metrics

settings = upload_settings()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def start(record: SQSRecord) -> None:
    start_uploaded_jobs(record.body, store=jobs, queue=queue, jobs_queue_url=settings.jobs_queue_url)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=start, processor=processor, context=context)
