"""Fault 1: the process execution environment is killed (SIGKILL) in the middle of the chain."""

from __future__ import annotations

import pytest

from .conftest import guidelines, wait_for

pytestmark = pytest.mark.faults


def test_a_job_whose_worker_is_killed_mid_chain_completes_after_the_visibility_timeout(service, tag):
    client = service.client()
    # A first job warms the process environment: the crash is then the only thing that differs.
    warm = client.submit(guidelines(tag, 0)).body["event_id"]
    service.wait_until_finished([warm], within=60)

    service.llm.set_faults(latency_ms=1500)  # each of the two LLM calls takes 1.5 s
    answer = client.submit(guidelines(tag, 1))
    assert answer.status == 202
    event_id = answer.body["event_id"]
    wait_for(
        lambda: service.jobs([event_id])[event_id]["status"] == "PROCESSING",
        within=30,
        what="the job to be claimed",
    )
    assert service.stack.kill_environments("ProcessFunction") >= 1

    # No sweeper here: the message's redelivery alone recovers the job once its lease expired.
    rows = service.wait_until_finished([event_id], within=60)
    assert rows[event_id]["attempts"] == 2  # the killed attempt never finished; the next one did
    service.assert_finished_once([warm, event_id])
    assert client.server_errors() == {} and client.statuses[503] == 0
