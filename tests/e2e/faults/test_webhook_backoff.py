"""Fault 9: a webhook receiver that always fails. Deliveries back off as documented
(RetryBackoffBaseSeconds doubling, 1 s, 2 s, 4 s here) until WebhookMaxAttempts (4) gives up,
and the sweeper, run between them, never adds a duplicate delivery."""

from __future__ import annotations

import json

import pytest

from .conftest import PARAMETERS, QueueWatch, guidelines, wait_for
from support import WebhookReceiver

pytestmark = pytest.mark.faults
# The event source's poll (2 s) and a delivery attempt, on top of each backoff.
SLACK_SECONDS = 3.5


def test_failed_webhook_deliveries_back_off_and_are_never_duplicated(service, tag):
    receiver = WebhookReceiver(status=500)
    try:
        client = service.client()
        body = {"guidelines": guidelines(tag), "callback_url": receiver.url}
        with QueueWatch(service, "WebhookQueue") as watch:
            answer = client.request("POST", "/jobs", json.dumps(body), {"content-type": "application/json"})
            assert answer.status == 202, answer.body
            event_id = answer.body["event_id"]

            def given_up():
                service.sweep()  # between attempts too: a backing-off delivery is not lost
                row = service.jobs([event_id]).get(event_id)
                return row and row["webhook_status"] == "FAILED"

            wait_for(given_up, within=60, what="the webhook to be given up", every=0.5)
        attempts = PARAMETERS["WebhookMaxAttempts"]
        assert len(receiver.arrivals) == attempts  # not one more: no duplicate
        gaps = [
            later - earlier for earlier, later in zip(receiver.arrivals, receiver.arrivals[1:], strict=False)
        ]
        base, cap = PARAMETERS["RetryBackoffBaseSeconds"], PARAMETERS["RetryBackoffCapSeconds"]
        ceilings = [min(cap, base * 2**n) for n in range(attempts - 1)]
        assert ceilings == [1, 2, 4]
        # Full jitter: each wait is at least 1 s and at most its ceiling.
        for gap, ceiling in zip(gaps, ceilings, strict=True):
            assert 1 - 0.2 <= gap <= ceiling + SLACK_SECONDS, (gaps, ceilings)
        row = service.jobs([event_id])[event_id]
        assert (row["webhook_attempts"], row["status"]) == (attempts, "COMPLETED")
        assert row["webhook_last_error"].startswith("gave up after repeated attempts")
        assert watch.most <= 1
        assert service.dead_letters("WebhookDeadLetterQueue") == []
    finally:
        receiver.stop()
