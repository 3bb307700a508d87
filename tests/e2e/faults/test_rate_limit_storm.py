"""Fault 4: a 429 storm from the LLM (most calls rate-limited, with Retry-After), then calm."""

from __future__ import annotations

import time

import pytest

from .conftest import guidelines, wait_for

pytestmark = pytest.mark.faults
JOBS = 10
# Shorter than the visibility timeout (12 s), so a job meets the storm on at most one delivery and
# keeps deliveries in hand: the storm is weathered, not fatal.
STORM_SECONDS = 6


def test_every_job_completes_after_a_rate_limit_storm(service, tag):
    client = service.client()
    service.llm.set_faults(**{"429": 0.9, "retry_after": 1})
    accepted = []
    for n in range(JOBS):
        answer = client.submit(guidelines(tag, n))
        assert answer.status == 202
        accepted.append(answer.body["event_id"])
    wait_for(
        lambda: service.llm.stats()["by_status"].get("429", 0) >= JOBS,
        within=30,
        what="the storm to reach the jobs",
    )
    time.sleep(STORM_SECONDS)
    service.llm.set_faults(**{"429": 0})

    service.wait_until_finished(accepted, within=90)
    service.assert_finished_once(accepted)
    assert service.llm.stats()["by_status"]["429"] >= JOBS
    assert client.server_errors() == {} and client.statuses[503] == 0
