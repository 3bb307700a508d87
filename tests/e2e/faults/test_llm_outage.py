"""Fault 7: an LLM outage longer than five claim cycles: every call answers 429 with Retry-After.

Its own stack, with a retry budget (5 min) longer than the outage (65 s, more than five visibility
timeouts of 12 s, each of which used to cost a job one of its three receives). Afterwards: no job
failed, each completed within one backoff period (the 8 s cap) of the recovery, no job got more LLM
calls than the schedule allows, and the jobs queue never held more live messages than jobs.
"""

from __future__ import annotations

import time

import pytest

from .conftest import PARAMETERS, QueueWatch, fault_stack_with, guidelines, wait_for

pytestmark = pytest.mark.faults
JOBS = 5
OUTAGE_SECONDS = 65
# Longer than the in-call retry waits (3 s): every delivery makes exactly one LLM call.
RETRY_AFTER_SECONDS = 4
OUTAGE_PARAMETERS = {"RetryBudgetSeconds": 300, "RetryBackoffBaseSeconds": 2, "RetryBackoffCapSeconds": 8}
# After the backoff, the event source's poll (2 s) and the chain itself.
DELIVERY_SLACK_SECONDS = 5


@pytest.fixture(scope="module")
def outage_stack():
    with fault_stack_with(OUTAGE_PARAMETERS) as stack:
        yield stack


def test_jobs_wait_out_a_long_rate_limit_outage_and_complete_once_it_ends(outage_stack, tag):
    service = outage_stack
    client = service.client()
    service.llm.set_faults(**{"429": 1.0, "retry_after": RETRY_AFTER_SECONDS})
    service.llm.reset_stats()
    with QueueWatch(service) as watch:
        accepted = [client.submit(guidelines(tag, n)).body["event_id"] for n in range(JOBS)]
        started = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        service.llm.set_faults(**{"429": 0})
        recovered = time.monotonic()
        rows = service.wait_until_finished(accepted, within=60)
        finished_within = time.monotonic() - recovered

    service.assert_finished_once(accepted)  # all COMPLETED, none FAILED, each once
    assert finished_within <= OUTAGE_PARAMETERS["RetryBackoffCapSeconds"] + DELIVERY_SLACK_SECONDS
    outage = recovered - started
    # Each delivery of the outage failed once and was given back: more of them than five claim
    # cycles and than the queue's maxReceiveCount, yet nothing was dead-lettered.
    retries = {event_id: row["retries"] for event_id, row in rows.items()}
    calls = service.llm.stats()
    assert all(n > PARAMETERS["MaxReceiveCount"] for n in retries.values()), retries
    assert service.dead_letters() == []
    # One LLM call per delivery (no in-call wait on a 4 s Retry-After), and deliveries at least
    # Retry-After apart: no job was called more often than the schedule allows.
    assert calls["by_status"]["429"] == sum(retries.values())
    allowed = 1 + outage // RETRY_AFTER_SECONDS
    assert max(retries.values()) <= allowed, (retries, allowed)
    assert all(row["attempts"] == retries[event_id] + 1 for event_id, row in rows.items())
    # The queue held one message per job at most, sampled every 0.2 s through the whole run.
    assert len(watch.samples) > 200
    assert watch.most <= JOBS, watch.most
    wait_for(lambda: service.live_messages() == 0, within=10, what="the queue to empty")
    assert client.server_errors() == {}
