"""The short in-call retry loop, with a fake clock (no sleeping, no timing), and the backoff
between deliveries that takes over from it."""

import random

import httpx2
import openai
import pytest

from guideline_ingest.logic.backoff import MAX_DELIVERY_DELAY_SECONDS, RetryPolicy, describe_duration
from guideline_ingest.logic.retry import (
    IN_CALL_RETRIES,
    IN_CALL_WAIT_SECONDS,
    LLMUnavailable,
    call_within_deadline,
    describe_transient,
    retry_after_seconds,
)

from .fakes import Draws


def api_error(status: int, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    # The class the SDK would raise, where a test tells them apart; the rest go by status.
    kind = {400: openai.BadRequestError, 429: openai.RateLimitError}.get(status, openai.APIStatusError)
    return kind("failed", response=response, body=None)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def run(outcomes, deadline=100.0, clock=None):
    clock = clock or FakeClock()
    calls = []

    def call(timeout):
        calls.append(timeout)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = call_within_deadline(call, deadline, max_call_seconds=30, sleep=clock.sleep, clock=clock)
    return result, calls, clock


def test_a_short_retry_after_is_honoured_in_the_call():
    result, _, clock = run([api_error(429, {"retry-after": "1"}), "ok"])

    assert result == "ok" and clock.sleeps == [1.0]


def test_a_long_retry_after_gives_the_job_back_at_once_carrying_it():
    """No function sits idle waiting out a rate limit: the next delivery waits instead."""
    with pytest.raises(LLMUnavailable, match="rate limit") as raised:
        run([api_error(429, {"retry-after": "30"}), "never"])

    assert raised.value.retry_after == 30.0


def test_the_in_call_retry_is_short():
    clock = FakeClock()
    with pytest.raises(LLMUnavailable) as raised:
        run([api_error(500)] * 10, clock=clock)

    assert len(clock.sleeps) <= IN_CALL_RETRIES
    assert sum(clock.sleeps) <= IN_CALL_WAIT_SECONDS
    assert raised.value.retry_after is None


def test_retry_after_ms_wins():
    assert retry_after_seconds(api_error(429, {"retry-after-ms": "250", "retry-after": "9"})) == 0.25


def test_retry_after_as_an_http_date_in_the_past_is_zero():
    assert retry_after_seconds(api_error(503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0


def test_unparseable_retry_after_falls_back_to_backoff():
    assert retry_after_seconds(api_error(503, {"retry-after": "soon"})) is None
    assert retry_after_seconds(ValueError()) is None


def test_backoff_grows_exponentially_with_jitter():
    outcomes = [api_error(500)] * IN_CALL_RETRIES + ["ok"]

    _, _, clock = run(outcomes)

    for attempt, delay in enumerate(clock.sleeps):
        assert 0.25 * 2**attempt <= delay <= 0.5 * 2**attempt


def test_connection_errors_and_timeouts_are_transient():
    request = httpx2.Request("POST", "http://llm")
    result, _, _ = run(
        [openai.APIConnectionError(request=request), openai.APITimeoutError(request=request), "ok"]
    )

    assert result == "ok"


def test_permanent_errors_are_not_retried():
    with pytest.raises(openai.BadRequestError):
        run([api_error(400), "never"])


def test_it_gives_up_before_the_deadline_rather_than_overrun_it():
    with pytest.raises(LLMUnavailable, match="rate limit"):
        run([api_error(429, {"retry-after": "60"}), "never"], deadline=30)


def test_no_call_starts_without_time_for_it():
    with pytest.raises(LLMUnavailable, match="no time left"):
        run(["never"], deadline=1)


def test_each_call_gets_at_most_the_time_that_is_left():
    _, calls, _ = run(["ok"], deadline=12)

    assert calls == [12]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (openai.APITimeoutError(request=httpx2.Request("POST", "http://llm")), "in time"),
        (openai.APIConnectionError(request=httpx2.Request("POST", "http://llm")), "reached"),
        (api_error(502), "HTTP 502"),
    ],
)
def test_reasons_read_well(error, words):
    assert words in describe_transient(error)


POLICY = RetryPolicy(base_seconds=30, cap_seconds=900)


def test_backoff_between_deliveries_doubles_up_to_the_cap_with_full_jitter():
    ceilings = [POLICY.delay(n, None, budget_left=21600, rng=Draws(1.0)) for n in range(8)]
    floors = [POLICY.delay(n, None, budget_left=21600, rng=Draws(0.0)) for n in range(8)]

    assert ceilings == [30, 60, 120, 240, 480, 900, 900, 900]
    assert floors == [1] * 8  # full jitter: anywhere from (almost) now to the ceiling
    spread = {POLICY.delay(3, None, 21600, rng=random.Random(seed)) for seed in range(20)}
    assert len(spread) > 10 and all(1 <= delay <= 240 for delay in spread)


def test_retry_after_is_a_floor_up_to_the_longest_sqs_delay():
    assert POLICY.delay(0, 200, budget_left=21600, rng=Draws(0.5)) == 200
    assert POLICY.delay(0, 7200, budget_left=21600, rng=Draws(0.5)) == MAX_DELIVERY_DELAY_SECONDS == 900


def test_the_last_delivery_comes_when_the_budget_ends_then_none():
    assert POLICY.delay(9, 600, budget_left=42.5, rng=Draws(1.0)) == 43
    assert POLICY.delay(9, None, budget_left=0.5) is None
    assert POLICY.delay(9, None, budget_left=-10) is None


@pytest.mark.parametrize(("seconds", "text"), [(21600, "6 h"), (5400, "90 min"), (90, "90 s"), (40, "40 s")])
def test_budgets_read_well(seconds, text):
    assert describe_duration(seconds) == text
