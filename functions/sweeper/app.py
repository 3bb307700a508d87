"""Scheduled every minute: re-send forgotten jobs, fail abandoned ones."""

from __future__ import annotations

from dataclasses import asdict

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from guideline_ingest import queue
from guideline_ingest.config import sweeper_settings
from guideline_ingest.dal import jobs
from guideline_ingest.logic.sweeping import sweep
from guideline_ingest.observability import logger, metrics

tracer = Tracer()
settings = sweeper_settings()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict, context: LambdaContext) -> dict:
    return asdict(sweep(settings, store=jobs, queue=queue))
