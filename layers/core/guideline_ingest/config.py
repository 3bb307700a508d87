"""Settings read from the environment once, at cold start.

Each function has one settings class naming the variables it reads (a field is its
variable, in lower case), and loads it at module level: a missing or invalid variable
fails the cold start of the function that needs it, with the variable's name, never a
request. A value the template passes has its default there, in the parameter, and
nowhere else: its field here is required. Lambda passes a template variable whose
parameter was left empty as "": every class treats that as unset (FunctionSettings), so
an optional field's default applies and a required one fails.
"""

from __future__ import annotations

from functools import cache
from typing import Literal, Self, TypeVar

from pydantic import Field, PositiveInt, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from guideline_ingest.logic.backoff import MAX_DELIVERY_DELAY_SECONDS

# The OpenAI SDK's own default, passed explicitly: given None, the SDK would read
# OPENAI_BASE_URL itself, and Lambda sets it to "" when OpenAIBaseUrl is left empty.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

S = TypeVar("S", bound="FunctionSettings")
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class ConfigurationError(RuntimeError):
    pass


class FunctionSettings(BaseSettings):
    """The environment as Lambda gives it: no .env file, and an empty value is an unset one."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)


def load(kind: type[S]) -> S:
    try:
        return kind()
    except ValidationError as error:
        problems = "; ".join(
            f"{_variable(problem['loc'])}: {_reason(problem)}" for problem in error.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid environment ({kind.__name__}): {problems}") from None


def _variable(location: tuple) -> str:
    return str(location[0]).upper() if location else "environment"


def _reason(problem: dict) -> str:
    return "is required" if problem["type"] == "missing" else problem["msg"]


class DatabaseSettings(FunctionSettings):
    """Every function's database: a libpq URL (local and dev stacks) or an RDS secret."""

    database_url: str | None = Field(default=None, repr=False)
    database_secret_arn: str | None = None
    # Applies to the connection built from the secret; a DATABASE_URL carries its own ?sslmode=.
    database_sslmode: SslMode

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if not (self.database_url or self.database_secret_arn):
            raise ValueError("set DATABASE_URL or DATABASE_SECRET_ARN")
        return self


class LimitSettings(FunctionSettings):
    """Read when the request model is defined: the spec served by both API functions documents it.
    It bounds a plain-text job's guidelines and a document's extracted text alike."""

    max_document_chars: PositiveInt


class DocumentSettings(FunctionSettings):
    """The documents bucket and what a file sent to it may be (MaxDocumentBytes and friends)."""

    documents_bucket: str
    max_document_bytes: PositiveInt


class SubmitSettings(DatabaseSettings, DocumentSettings):
    jobs_queue_url: str
    webhook_queue_url: str
    # How long a presigned upload form stays valid (UploadExpirySeconds).
    upload_expiry_seconds: PositiveInt


class UploadSettings(DatabaseSettings):
    jobs_queue_url: str


class StatusSettings(DatabaseSettings):
    # Each API key's webhook secret is derived from it (GET /webhooks/secret).
    webhook_signing_secret: str = Field(min_length=32, repr=False)


class BackoffSettings(FunctionSettings):
    """The backoff between deliveries of a job or a webhook (docs/reliability.md)."""

    retry_backoff_base_seconds: PositiveInt
    retry_backoff_cap_seconds: PositiveInt = Field(le=MAX_DELIVERY_DELAY_SECONDS)


class RetryBudgetSettings(FunctionSettings):
    """How long a job keeps retrying transient failures, from its submission (RetryBudgetSeconds)."""

    retry_budget_seconds: PositiveInt


class ProcessSettings(DatabaseSettings, BackoffSettings, RetryBudgetSettings, DocumentSettings):
    # A job given back after a transient failure is sent again to its own queue, delayed.
    jobs_queue_url: str
    webhook_queue_url: str
    openai_model: str
    openai_base_url: str = OPENAI_DEFAULT_BASE_URL
    openai_timeout_seconds: float = Field(gt=0)
    openai_api_key: str | None = Field(default=None, repr=False)
    openai_api_key_secret_arn: str | None = None
    # Reuse results across API keys: only where every caller may see every other's documents.
    cache_shared_across_api_keys: bool
    # Limits of a document's extraction (MaxDocumentPages, MaxDocumentChars).
    max_document_pages: PositiveInt
    max_document_chars: PositiveInt
    # A document is cut into chunks of at most this many (estimated) tokens (ChunkTokenBudget).
    chunk_token_budget: PositiveInt
    # LLM calls of one job at once (ChunkParallelism); times ProcessMaxConcurrency in all.
    chunk_parallelism: PositiveInt

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if not (self.openai_api_key or self.openai_api_key_secret_arn):
            raise ValueError("set OPENAI_API_KEY or OPENAI_API_KEY_SECRET_ARN")
        return self


class SweeperSettings(DatabaseSettings, RetryBudgetSettings):
    jobs_queue_url: str
    webhook_queue_url: str
    max_receive_count: PositiveInt
    pending_grace_seconds: PositiveInt
    # A message whose delivery failed before its claim, or whose worker died, comes back after this.
    jobs_visibility_timeout_seconds: PositiveInt


class WebhookSettings(DatabaseSettings, BackoffSettings):
    webhook_queue_url: str
    webhook_signing_secret: str = Field(min_length=32, repr=False)
    webhook_max_attempts: PositiveInt
    # Not a template parameter: how long one receiver may take is the service's choice.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)


@cache
def database_settings() -> DatabaseSettings:
    return load(DatabaseSettings)


@cache
def submit_settings() -> SubmitSettings:
    return load(SubmitSettings)


@cache
def status_settings() -> StatusSettings:
    return load(StatusSettings)


@cache
def process_settings() -> ProcessSettings:
    return load(ProcessSettings)


@cache
def upload_settings() -> UploadSettings:
    return load(UploadSettings)


@cache
def sweeper_settings() -> SweeperSettings:
    return load(SweeperSettings)


@cache
def webhook_settings() -> WebhookSettings:
    return load(WebhookSettings)


def max_document_chars() -> int:
    return load(LimitSettings).max_document_chars
