"""Fault 8: the process function cannot start (an init error), so no delivery reaches a claim.

Its own stack: the process function's environment is broken (OPENAI_TIMEOUT_SECONDS is not a
number), which fails its cold start as a missing or bad setting would on AWS. Every delivery fails,
the message is dead-lettered after maxReceiveCount receives, and the job must not wait for ever: the
sweeper fails it once its retry budget (15 s here) is spent, saying why.
"""

from __future__ import annotations

import json

import pytest

from .conftest import fault_stack_with, guidelines, wait_for

pytestmark = pytest.mark.faults
BUDGET_SECONDS = 15


@pytest.fixture(scope="module")
def broken_stack():
    with fault_stack_with(
        {"RetryBudgetSeconds": BUDGET_SECONDS}, function_env={"OPENAI_TIMEOUT_SECONDS": "not-a-number"}
    ) as stack:
        yield stack


def test_a_job_that_never_reaches_a_claim_fails_after_its_budget_and_its_dead_letter_is_failed(
    broken_stack, tag
):
    service = broken_stack
    client = service.client()
    event_id = client.submit(guidelines(tag)).body["event_id"]

    # The scheduled sweep comes every minute; sweeping every 2 s as well shows the moment.
    rows = service.wait_until_finished([event_id], within=90, sweep_every=2)

    row = rows[event_id]
    assert (row["status"], row["attempts"]) == ("FAILED", 0)
    assert row["error"]["type"] == "not_started"
    assert row["error"]["message"].startswith(
        f"The job could not be started within its retry budget of {BUDGET_SECONDS} s"
    )
    age = (row["updated_at"] - row["created_at"]).total_seconds()
    assert BUDGET_SECONDS <= age <= BUDGET_SECONDS + 30
    assert client.job(event_id).body["status"] == "FAILED"

    dead: list[dict] = []
    wait_for(lambda: dead.extend(service.dead_letters()) or dead, within=90, what="the dead letter", every=1)
    assert {json.loads(message["Body"])["event_id"] for message in dead} == {event_id}
    assert service.jobs([event_id])[event_id]["status"] == "FAILED"  # a dead letter's job is never PENDING
