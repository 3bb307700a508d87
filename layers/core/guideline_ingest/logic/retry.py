"""Retrying transient LLM failures: briefly inside one invocation, then between deliveries.

The SDK's own retries do not know the Lambda deadline, so the client is built
with max_retries=0 and this module decides. Inside one invocation only a short
retry (a few seconds in all, honouring a short Retry-After): no function sits
idle waiting out an outage. Past that the job is given back and comes again
later (logic/backoff.py): no sooner than Retry-After or an exponential backoff with
full jitter, capped at the longest SQS delay, until its retry budget in time
is spent. docs/reliability.md draws the timeline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import openai

T = TypeVar("T")

# A call with less time than this left is not worth starting.
MIN_CALL_SECONDS = 2.0
BASE_DELAY_SECONDS = 0.5
# The in-call retry: at most this many retries of one call, sleeping at most this long in all.
IN_CALL_RETRIES = 2
IN_CALL_WAIT_SECONDS = 3.0


class LLMUnavailable(Exception):
    """Transient failures outlasted the short in-call retry; the job should be tried again later,
    no sooner than `retry_after` seconds when the LLM said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LLMAuthFailed(LLMUnavailable):
    """The LLM refused the API key (401/403). The key is wrong, revoked or being rotated, not the
    job: the job is tried again later, when the key may be fixed, and an alarm says so."""


def is_auth_failure(error: Exception) -> bool:
    return isinstance(error, openai.APIStatusError) and error.status_code in (401, 403)


def is_transient(error: Exception) -> bool:
    if isinstance(error, openai.APIConnectionError):  # includes timeouts
        return True
    return isinstance(error, openai.APIStatusError) and (
        error.status_code in (408, 409, 429) or error.status_code >= 500
    )


def retry_after_seconds(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            value = headers["retry-after"]
            if value.strip().isdigit():
                return float(value)
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (ValueError, TypeError):
        return None
    return None


def call_within_deadline(
    call: Callable[[float], T],
    deadline: float,
    *,
    max_call_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run `call(timeout)` until it succeeds, a permanent error escapes, or the short in-call retry
    is used up (then LLMUnavailable, carrying the LLM's Retry-After for the next delivery)."""
    attempt = 0
    waited = 0.0
    while True:
        remaining = deadline - clock()
        if remaining < MIN_CALL_SECONDS:
            raise LLMUnavailable("no time left in this invocation for another LLM call")
        try:
            return call(min(max_call_seconds, remaining))
        except openai.APIError as error:
            if is_auth_failure(error):
                raise LLMAuthFailed(f"the LLM refused the API key (HTTP {error.status_code})") from error
            if not is_transient(error):
                raise
            retry_after = retry_after_seconds(error)
            delay = retry_after
            if delay is None:
                delay = BASE_DELAY_SECONDS * 2**attempt * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
            if (
                attempt >= IN_CALL_RETRIES
                or waited + delay > IN_CALL_WAIT_SECONDS
                or clock() + delay + MIN_CALL_SECONDS > deadline
            ):
                raise LLMUnavailable(describe_transient(error), retry_after=retry_after) from error
            attempt += 1
            waited += delay
            sleep(delay)


def describe_transient(error: Exception) -> str:
    if isinstance(error, openai.APITimeoutError):
        return "the LLM did not answer in time"
    if isinstance(error, openai.APIConnectionError):
        return "the LLM endpoint could not be reached"
    if isinstance(error, openai.RateLimitError):
        return "the LLM rate limit was exceeded"
    return f"the LLM answered HTTP {getattr(error, 'status_code', '?')}"
