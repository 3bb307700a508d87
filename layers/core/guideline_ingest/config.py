"""Settings read from the environment once, at cold start.

Each function reads only the settings it needs, so a missing variable fails the
cold start of the function that needs it with a clear message, not a request.
"""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, Field, PositiveInt, ValidationError


class ConfigurationError(RuntimeError):
    pass


def _load(model: type[BaseModel], **fields: str | None):
    values = {name: value for name, value in fields.items() if value not in (None, "")}
    try:
        return model(**values)
    except ValidationError as error:
        raise ConfigurationError(f"invalid environment for {model.__name__}: {error}") from error


class SubmitSettings(BaseModel):
    jobs_queue_url: str
    webhook_queue_url: str


class RetrySettings(BaseModel):
    """The retry budget in time and the backoff between deliveries (docs/reliability.md)."""

    retry_budget_seconds: PositiveInt = 21600
    retry_backoff_base_seconds: PositiveInt = 30
    retry_backoff_cap_seconds: PositiveInt = Field(default=900, le=900)


class ProcessSettings(RetrySettings):
    # A job given back after a transient failure is sent again to its own queue, delayed.
    jobs_queue_url: str
    webhook_queue_url: str
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    # Reuse results across API keys: only where every caller may see every other's documents.
    cache_shared_across_api_keys: bool = False


class SweeperSettings(BaseModel):
    jobs_queue_url: str
    webhook_queue_url: str
    max_receive_count: PositiveInt = 5
    pending_grace_seconds: PositiveInt = 120
    # A message whose delivery failed before its claim, or whose worker died, comes back after this.
    jobs_visibility_timeout_seconds: PositiveInt = 905
    retry_budget_seconds: PositiveInt = 21600


@cache
def submit_settings() -> SubmitSettings:
    return _load(
        SubmitSettings,
        jobs_queue_url=os.environ.get("JOBS_QUEUE_URL"),
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
    )


@cache
def process_settings() -> ProcessSettings:
    return _load(
        ProcessSettings,
        openai_model=os.environ.get("OPENAI_MODEL"),
        openai_base_url=os.environ.get("OPENAI_BASE_URL"),
        openai_timeout_seconds=os.environ.get("OPENAI_TIMEOUT_SECONDS"),
        cache_shared_across_api_keys=os.environ.get("CACHE_SHARED_ACROSS_API_KEYS"),
        jobs_queue_url=os.environ.get("JOBS_QUEUE_URL"),
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
        retry_budget_seconds=os.environ.get("RETRY_BUDGET_SECONDS"),
        retry_backoff_base_seconds=os.environ.get("RETRY_BACKOFF_BASE_SECONDS"),
        retry_backoff_cap_seconds=os.environ.get("RETRY_BACKOFF_CAP_SECONDS"),
    )


@cache
def sweeper_settings() -> SweeperSettings:
    return _load(
        SweeperSettings,
        jobs_queue_url=os.environ.get("JOBS_QUEUE_URL"),
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
        max_receive_count=os.environ.get("MAX_RECEIVE_COUNT"),
        pending_grace_seconds=os.environ.get("PENDING_GRACE_SECONDS"),
        jobs_visibility_timeout_seconds=os.environ.get("JOBS_VISIBILITY_TIMEOUT_SECONDS"),
        retry_budget_seconds=os.environ.get("RETRY_BUDGET_SECONDS"),
    )


class WebhookSettings(BaseModel):
    webhook_queue_url: str
    webhook_max_attempts: PositiveInt = 8
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # A failed delivery comes back after base * 2^(attempt-1) seconds, at most cap.
    retry_backoff_base_seconds: PositiveInt = 30
    retry_backoff_cap_seconds: PositiveInt = Field(default=900, le=900)


@cache
def webhook_settings() -> WebhookSettings:
    return _load(
        WebhookSettings,
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
        webhook_max_attempts=os.environ.get("WEBHOOK_MAX_ATTEMPTS"),
        retry_backoff_base_seconds=os.environ.get("RETRY_BACKOFF_BASE_SECONDS"),
        retry_backoff_cap_seconds=os.environ.get("RETRY_BACKOFF_CAP_SECONDS"),
    )


@cache
def webhook_signing_secret() -> str:
    """The key from which each API key's webhook secret is derived (status and webhook functions)."""
    secret = os.environ.get("WEBHOOK_SIGNING_SECRET", "")
    if len(secret) < 32:
        raise ConfigurationError("WEBHOOK_SIGNING_SECRET must be set, at least 32 characters")
    return secret


def max_guidelines_chars() -> int:
    """Read when the request model is defined: the spec served by both API functions documents it."""
    value = os.environ.get("MAX_GUIDELINES_CHARS") or "200000"
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(f"MAX_GUIDELINES_CHARS must be a positive integer, not {value!r}")
    return int(value)
