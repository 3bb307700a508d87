"""The deadline-aware retry loop, with a fake clock (no sleeping, no timing)."""

import httpx2
import openai
import pytest

from guideline_ingest.logic.retry import (
    LLMUnavailable,
    call_within_deadline,
    describe_transient,
    retry_after_seconds,
)


def api_error(status: int, headers: dict | None = None) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    return openai.OpenAI(api_key="x", base_url="http://llm/v1")._make_status_error(
        "failed", body=None, response=response
    )


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


def test_retry_after_is_honoured():
    result, _, clock = run([api_error(429, {"retry-after": "7"}), "ok"])

    assert result == "ok" and clock.sleeps == [7.0]


def test_retry_after_ms_wins():
    assert retry_after_seconds(api_error(429, {"retry-after-ms": "250", "retry-after": "9"})) == 0.25


def test_retry_after_as_an_http_date_in_the_past_is_zero():
    assert retry_after_seconds(api_error(503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0


def test_unparseable_retry_after_falls_back_to_backoff():
    assert retry_after_seconds(api_error(503, {"retry-after": "soon"})) is None
    assert retry_after_seconds(ValueError()) is None


def test_backoff_grows_exponentially_with_jitter():
    outcomes = [api_error(500)] * 4 + ["ok"]

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
