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


class ProcessSettings(BaseModel):
    webhook_queue_url: str
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    max_receive_count: PositiveInt = 5
    # Reuse results across API keys: only where every caller may see every other's documents.
    cache_shared_across_api_keys: bool = False


class SweeperSettings(BaseModel):
    jobs_queue_url: str
    webhook_queue_url: str
    max_receive_count: PositiveInt = 5
    pending_grace_seconds: PositiveInt = 120


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
        max_receive_count=os.environ.get("MAX_RECEIVE_COUNT"),
        cache_shared_across_api_keys=os.environ.get("CACHE_SHARED_ACROSS_API_KEYS"),
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
    )


@cache
def sweeper_settings() -> SweeperSettings:
    return _load(
        SweeperSettings,
        jobs_queue_url=os.environ.get("JOBS_QUEUE_URL"),
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
        max_receive_count=os.environ.get("MAX_RECEIVE_COUNT"),
        pending_grace_seconds=os.environ.get("PENDING_GRACE_SECONDS"),
    )


class WebhookSettings(BaseModel):
    webhook_queue_url: str
    webhook_max_attempts: PositiveInt = 8
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)


@cache
def webhook_settings() -> WebhookSettings:
    return _load(
        WebhookSettings,
        webhook_queue_url=os.environ.get("WEBHOOK_QUEUE_URL"),
        webhook_max_attempts=os.environ.get("WEBHOOK_MAX_ATTEMPTS"),
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
