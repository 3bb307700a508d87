"""Fault 5: poison messages, for a job the LLM always fails and for a job that no longer exists.

The job the LLM always fails is retried until its retry budget (30 s here) runs out, far more often
than the queue's maxReceiveCount: receive counts do not decide a transient failure, the budget does."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import API_KEY, PARAMETERS, guidelines, wait_for

pytestmark = pytest.mark.faults


def test_poison_ends_failed_with_a_reason_or_in_the_dead_letter_queue(service, tag):
    client = service.client()
    marker = f"poison-{uuid.uuid4().hex}"
    service.llm.set_faults(fail_matching=marker)  # every LLM call about this job answers 500
    poisoned = client.submit(guidelines(tag, 0) + f" {marker}").body["event_id"]
    healthy = client.submit(guidelines(tag, 1)).body["event_id"]

    # A message whose job row was deleted before it was processed.
    deleted = str(uuid.uuid4())
    service.query(
        "INSERT INTO jobs (event_id, owner, guidelines) VALUES (%s, %s, %s) RETURNING event_id",
        (deleted, API_KEY, guidelines(tag, 2)),
    )
    service.query("DELETE FROM jobs WHERE event_id = %s RETURNING event_id", (deleted,))
    sqs = service.stack.sqs()
    queue = service.stack.queue_urls["JobsQueue"]
    orphan = json.dumps({"event_id": deleted})
    garbage = f"not a job message {tag}"
    for body in (orphan, garbage):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    rows = service.wait_until_finished([poisoned, healthy], within=90)
    # Its budget spent, the job fails with a reason that says so instead of being left PENDING.
    assert rows[poisoned]["status"] == "FAILED"
    assert rows[poisoned]["error"] == {
        "type": "llm_unavailable",
        "message": "The LLM stayed unavailable for the whole retry budget of 30 s:"
        " the LLM answered HTTP 500.",
    }
    assert rows[poisoned]["attempts"] > PARAMETERS["MaxReceiveCount"]
    age = (rows[poisoned]["updated_at"] - rows[poisoned]["created_at"]).total_seconds()
    budget, cap = PARAMETERS["RetryBudgetSeconds"], PARAMETERS["RetryBackoffCapSeconds"]
    assert budget - cap <= age <= budget + 10
    service.assert_finished_once([healthy])
    service.assert_finished_once([poisoned], expected=("FAILED",))

    dead: list[str] = []

    def dead_letters_arrived() -> bool:
        dead.extend(message["Body"] for message in service.dead_letters())
        return orphan in dead and garbage in dead

    wait_for(dead_letters_arrived, within=90, what="the poison messages in the DLQ", every=1)
    assert not service.jobs([deleted]), "processing a message recreated a deleted job"
    # The failed job's messages were acknowledged (re-sent fresh, then on the failing delivery),
    # none dead-lettered.
    assert not any(poisoned in body for body in dead)
    assert client.server_errors() == {} and client.statuses[503] == 0
