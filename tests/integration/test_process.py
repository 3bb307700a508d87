"""The process function: SQS events in, job rows out, the real openai client on the wire."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from devstack.esm import lambda_sqs_record
from guideline_ingest.dal import jobs

from conftest import (
    ROOT,
    LambdaContext,
    budget_spent,
    completion,
    event,
    failures,
    http,
    job,
    llm_error,
    send_jobs_to,
    sqs_event,
    submitted,
)

GUIDELINES = json.loads(event("submit.json")["body"])["guidelines"]


def test_a_job_runs_the_chain_and_completes(invoke, queues, database, offline_llm):
    event_id = submitted(invoke)

    result = invoke("process", sqs_event(event_id))

    assert result == {"batchItemFailures": []}
    row = job(database, event_id)
    assert row["status"] == "COMPLETED" and row["attempts"] == 1 and row["error"] is None
    assert row["result"]["summary"]
    checklist = row["result"]["checklist"]
    assert [item["id"] for item in checklist] == list(range(1, len(checklist) + 1))
    assert len(checklist) >= 3
    for item in checklist:
        assert item["priority"] in ("high", "medium", "low")
        assert item["source_quote"] in GUIDELINES
    assert offline_llm.stats()["requests"] == 2

    read = http(
        invoke(
            "status", event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
        )
    )
    assert read.body["status"] == "COMPLETED" and read.body["result"] == row["result"]


def test_a_duplicate_delivery_of_a_finished_job_runs_nothing(invoke, queues, database, offline_llm):
    event_id = submitted(invoke)
    invoke("process", sqs_event(event_id))
    before = job(database, event_id)

    result = invoke("process", sqs_event(event_id))

    assert result == {"batchItemFailures": []}
    assert job(database, event_id) == before
    assert offline_llm.stats()["requests"] == 2


# An execution environment of its own: a process that loads the process function, says it is
# ready, and on "go" (so that both deliveries start together) handles the event and prints its answer.
ENVIRONMENT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("process_app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "process", 512, sys.argv[2]
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:process"

    def get_remaining_time_in_millis(self):
        return 30_000


print("ready", flush=True)
event = json.loads(sys.stdin.readline())
print(json.dumps(module.handler(event, Context())), flush=True)
"""


def test_concurrent_deliveries_run_the_chain_once(invoke, queues, database, offline_llm):
    # A text of its own: a result cached for the shared sample text would answer without the LLM.
    event_id = submitted(invoke, f"Staff must wear badges in building {uuid.uuid4()}.")
    offline_llm.set_faults(latency_ms=300)
    # Two processes, as Lambda runs two environments: two threads of one process would share the
    # layer's one database connection, which no Lambda environment ever does.
    app = str(ROOT / "functions" / "process" / "app.py")
    environments = [
        subprocess.Popen(
            [sys.executable, "-c", ENVIRONMENT, app, f"request-{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for environment in environments:
        assert environment.stdout.readline().strip() == "ready"
    for environment in environments:
        environment.stdin.write(json.dumps(sqs_event(event_id)) + "\n")
        environment.stdin.flush()
    # The answer is the last line: the function logs to stdout before it, as on Lambda.
    results = [
        json.loads(environment.communicate(timeout=60)[0].splitlines()[-1]) for environment in environments
    ]

    assert offline_llm.stats()["requests"] == 2
    assert sorted(len(failures(r)) for r in results) == [0, 1]
    assert job(database, event_id)["status"] == "COMPLETED"
    assert job(database, event_id)["attempts"] == 1


def test_one_bad_record_fails_alone(invoke, queues, database):
    event_id = submitted(invoke)
    batch = event("process-batch-one-bad.json")
    batch["Records"][0]["body"] = json.dumps({"event_id": event_id})

    result = invoke("process", batch)

    assert failures(result) == [batch["Records"][1]["messageId"]]
    assert job(database, event_id)["status"] == "COMPLETED"


def test_a_message_for_a_job_that_does_not_exist_fails_its_record(invoke, queues):
    result = invoke("process", event("process.json"))

    assert failures(result) == [event("process.json")["Records"][0]["messageId"]]


def test_a_rate_limit_is_retried_after_retry_after(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    llm_edge.extend([llm_error(429, retry_after="0"), llm_error(503)])

    result = invoke("process", sqs_event(event_id))

    assert result == {"batchItemFailures": []}
    assert job(database, event_id)["status"] == "COMPLETED"
    assert llm_edge == []


@pytest.fixture
def requeues(functions, queues, monkeypatch):
    """The process function gives jobs back to this test's own jobs queue."""
    send_jobs_to(functions["process"], queues.jobs, monkeypatch)
    return queues


def delivered(queues, receive_count: int = 1) -> dict:
    """The submit's message as the event source mapping delivers it: a real receipt handle."""
    [message] = queues.receive()
    record = lambda_sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:jobs")
    record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return {"Records": [record]}


def live_messages(queues) -> dict[str, int]:
    attributes = queues.client.get_queue_attributes(QueueUrl=queues.jobs, AttributeNames=["All"])[
        "Attributes"
    ]
    return {
        name: int(attributes[f"ApproximateNumberOf{name}"])
        for name in ("Messages", "MessagesNotVisible", "MessagesDelayed")
    }


@pytest.mark.parametrize("receive_count", [1, 5])
def test_a_transient_failure_gives_the_job_back_behind_a_delayed_message(
    invoke, requeues, database, offline_llm, receive_count
):
    """The LLM says come back in 30 s: the job does not sleep on it, it is given back, due then, and
    its message replaced by one delayed until then. The delivery succeeds, so receive counts (even
    the fifth, the queue's maxReceiveCount) never dead-letter a job that waits out an outage."""
    event_id = submitted(invoke)
    offline_llm.set_faults(**{"429": 1.0, "retry_after": 30})

    result = invoke("process", delivered(requeues, receive_count), timeout_ms=9_000)

    assert result == {"batchItemFailures": []}
    assert offline_llm.stats()["requests"] == 1  # no in-call wait on a 30 s Retry-After
    row = job(database, event_id)
    assert (row["status"], row["attempts"], row["retries"], row["lease_expires_at"]) == (
        "PENDING",
        1,
        1,
        None,
    )
    assert row["last_transient_error"] == "the LLM rate limit was exceeded"
    assert 29 <= (row["due_at"] - row["enqueued_at"]).total_seconds() <= 31
    assert live_messages(requeues) == {"Messages": 0, "MessagesNotVisible": 0, "MessagesDelayed": 1}


def test_a_transient_failure_once_the_budget_is_spent_fails_the_job_saying_so(
    invoke, requeues, database, offline_llm
):
    event_id = submitted(invoke)
    database.execute(
        "UPDATE jobs SET created_at = now() - interval '6 hours' WHERE event_id = %s", (event_id,)
    )
    offline_llm.set_faults(**{"429": 1.0, "retry_after": 30})

    result = invoke("process", delivered(requeues), timeout_ms=9_000)

    assert result == {"batchItemFailures": []}
    row = job(database, event_id)
    assert row["status"] == "FAILED"
    assert row["error"] == budget_spent("the LLM rate limit was exceeded")
    # Nothing re-sent; the delivery itself is acknowledged (the event source mapping deletes it).
    assert live_messages(requeues) == {"Messages": 0, "MessagesNotVisible": 1, "MessagesDelayed": 0}


def test_when_the_message_cannot_be_replaced_the_record_fails_and_sqs_brings_it_back(
    invoke, queues, database, offline_llm, functions, monkeypatch
):
    # The receipt handle is not of that queue.
    send_jobs_to(functions["process"], queues.dead_letters, monkeypatch)
    event_id = submitted(invoke)
    offline_llm.set_faults(**{"429": 1.0, "retry_after": 30})
    record = delivered(queues)

    result = invoke("process", record, timeout_ms=9_000)

    assert failures(result) == [record["Records"][0]["messageId"]]
    assert job(database, event_id)["status"] == "PENDING"


def test_a_rejected_request_fails_the_job(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    llm_edge.append(llm_error(400))

    assert invoke("process", sqs_event(event_id)) == {"batchItemFailures": []}

    row = job(database, event_id)
    assert row["status"] == "FAILED" and row["error"]["type"] == "llm_rejected_request"
    assert "HTTP 400" in row["error"]["message"]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_api_key_gives_the_job_back_and_counts_an_auth_failure(
    invoke, requeues, database, llm_edge, capsys, status
):
    """A wrong or rotating key is not the job's fault: it is retried later, and alarmed on."""
    event_id = submitted(invoke)
    capsys.readouterr()
    llm_edge.append(llm_error(status))

    first = invoke("process", delivered(requeues))

    assert first == {"batchItemFailures": []}
    row = job(database, event_id)
    assert (row["status"], row["retries"]) == ("PENDING", 1)
    assert live_messages(requeues)["MessagesDelayed"] == 1
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [metrics] = [m for m in emitted if "LLMAuthFailures" in m]
    assert metrics["LLMAuthFailures"] == [1.0]
    assert metrics["service"] == "guideline-ingest"
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "GuidelineIngest"
    # The key works again (fixed or rotated): the redelivery completes the job.
    assert invoke("process", sqs_event(event_id, receive_count=2)) == {"batchItemFailures": []}
    assert job(database, event_id)["status"] == "COMPLETED"


def test_a_key_refused_until_the_budget_is_spent_fails_the_job_saying_so(
    invoke, requeues, database, llm_edge
):
    event_id = submitted(invoke)
    database.execute(
        "UPDATE jobs SET created_at = now() - interval '6 hours' WHERE event_id = %s", (event_id,)
    )
    llm_edge.append(llm_error(401))

    assert invoke("process", delivered(requeues)) == {"batchItemFailures": []}

    row = job(database, event_id)
    assert row["status"] == "FAILED"
    assert row["error"] == budget_spent("the LLM refused the API key (HTTP 401)")


@pytest.mark.parametrize("step", [0, 1])
def test_a_refusal_fails_the_job(invoke, queues, database, llm_edge, step):
    event_id = submitted(invoke)
    llm_edge.extend(
        [lambda request: None] * step + [lambda request: completion(refusal="I cannot help with that.")]
    )

    invoke("process", sqs_event(event_id))

    row = job(database, event_id)
    assert row["status"] == "FAILED" and row["error"]["type"] == "llm_refused"
    assert "I cannot help with that." in row["error"]["message"]


def test_an_empty_summary_fails_the_job(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    llm_edge.append(lambda request: completion(content="  "))

    invoke("process", sqs_event(event_id))

    assert job(database, event_id)["error"]["type"] == "invalid_llm_output"


def test_an_invalid_checklist_is_retried_once_then_fails_the_job(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    invalid = lambda request: completion(content='{"items": [{"id": "one"}]}')  # noqa: E731
    llm_edge.extend([lambda request: None, invalid, invalid])

    invoke("process", sqs_event(event_id))

    row = job(database, event_id)
    assert row["status"] == "FAILED" and row["error"]["type"] == "invalid_llm_output"
    assert llm_edge == []


def test_an_invalid_checklist_that_is_fixed_by_the_retry_completes(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    llm_edge.extend([lambda request: None, lambda request: completion(content="not json")])

    invoke("process", sqs_event(event_id))

    assert job(database, event_id)["status"] == "COMPLETED"


def test_ungrounded_items_are_retried_then_dropped_and_counted(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    item = {"title": "t", "description": "d", "priority": "high", "category": "security"}
    answer = json.dumps(
        {
            "items": [
                {**item, "source_quote": "Passwords  must be rotated\nevery 90 days."},
                {**item, "source_quote": "Invented by the model."},
            ]
        }
    )
    llm_edge.extend(
        [
            lambda request: None,
            lambda request: completion(content=answer),
            lambda request: completion(content=answer),
        ]
    )

    invoke("process", sqs_event(event_id))

    result = job(database, event_id)["result"]
    assert result["ungrounded_items_dropped"] == 1
    assert [(i["id"], i["source_quote"]) for i in result["checklist"]] == [
        (1, "Passwords  must be rotated\nevery 90 days.")
    ]


def test_a_job_held_by_a_live_lease_is_not_run_again(invoke, queues, database, offline_llm):
    event_id = submitted(invoke)
    database.execute(
        "UPDATE jobs SET status = 'PROCESSING', attempts = 1, lease_expires_at = now() + interval '1 minute'"
        " WHERE event_id = %s",
        (event_id,),
    )

    result = invoke("process", sqs_event(event_id))

    assert len(failures(result)) == 1
    assert offline_llm.stats()["requests"] == 0


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(invoke, queues, database):
    event_id = submitted(invoke)
    database.execute(
        "UPDATE jobs SET status = 'PROCESSING', attempts = 1, lease_expires_at = now() - interval '1 second'"
        " WHERE event_id = %s",
        (event_id,),
    )

    assert invoke("process", sqs_event(event_id, receive_count=2)) == {"batchItemFailures": []}

    row = job(database, event_id)
    assert row["status"] == "COMPLETED" and row["attempts"] == 2


def test_a_stale_attempt_cannot_overwrite_a_newer_one(invoke, queues, database):
    event_id = submitted(invoke)
    first = jobs.claim_job(event_id, lease_seconds=0, steps=[])
    second = jobs.claim_job(event_id, lease_seconds=60, steps=[])

    assert second.attempt == first.attempt + 1
    assert (
        jobs.complete_job(event_id, first.attempt, {"summary": "stale", "checklist": []}, [], "k", None)
        is False
    )
    assert (
        jobs.complete_job(event_id, second.attempt, {"summary": "fresh", "checklist": []}, [], "k", None)
        is True
    )
    assert jobs.fail_job(event_id, second.attempt, {"type": "x", "message": "y"}, steps=[]) is False
    assert job(database, event_id)["result"]["summary"] == "fresh"


def _context():
    return LambdaContext("process")


def test_steps_advance_while_the_chain_runs_and_report_usage_and_the_model_that_answered(
    invoke, queues, database, llm_edge
):
    event_id = submitted(invoke)
    seen_during_checklist = []

    def observe(request):
        seen_during_checklist.append(job(database, event_id)["steps"])

    llm_edge.extend([lambda request: None, observe])

    invoke("process", sqs_event(event_id))

    [during] = seen_during_checklist
    assert [(s["name"], s["status"]) for s in during] == [
        ("summarize", "COMPLETED"),
        ("checklist", "RUNNING"),
    ]
    read = http(
        invoke(
            "status", event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
        )
    )
    steps = read.body["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [
        ("summarize", "COMPLETED"),
        ("checklist", "COMPLETED"),
    ]
    for step in steps:
        # The offline model answered both steps, whatever OPENAI_MODEL asked for.
        assert step["model"] == "offline-llm" and step["prompt_version"]
        assert step["input_tokens"] > 0 and step["output_tokens"] > 0
        assert step["started_at"] <= step["finished_at"] and step["latency_ms"] >= 0
    usage = read.body["usage"]
    assert usage["input_tokens"] == sum(s["input_tokens"] for s in steps)
    assert usage["estimated_cost_usd"] is None  # a model without a price gets no guess


def test_the_snapshot_openai_answered_with_is_reported_and_priced(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    item = {"title": "t", "description": "d", "priority": "high", "category": "security"}
    checklist = json.dumps({"items": [{**item, "source_quote": "Passwords must be rotated every 90 days."}]})
    snapshot = "gpt-4o-mini-2024-07-18"
    llm_edge.extend(
        [
            lambda request: completion(content="Rotate passwords.", model=snapshot),
            lambda request: completion(content=checklist, model=snapshot),
        ]
    )

    invoke("process", sqs_event(event_id))

    read = http(
        invoke(
            "status", event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
        )
    )
    assert read.body["status"] == "COMPLETED"
    assert [step["model"] for step in read.body["steps"]] == [snapshot, snapshot]
    usage = read.body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (20, 10)
    assert usage["estimated_cost_usd"] == pytest.approx((20 * 0.15 + 10 * 0.60) / 1_000_000)


def test_a_failed_step_is_marked_failed(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)
    llm_edge.extend([lambda request: None, llm_error(400)])

    invoke("process", sqs_event(event_id))

    steps = job(database, event_id)["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("summarize", "COMPLETED"), ("checklist", "FAILED")]


def test_a_job_given_back_shows_its_steps_pending_again(invoke, requeues, database, offline_llm):
    event_id = submitted(invoke)
    offline_llm.set_faults(**{"429": 1.0, "retry_after": 30})

    invoke("process", delivered(requeues), timeout_ms=9_000)

    assert [s["status"] for s in job(database, event_id)["steps"]] == ["PENDING", "PENDING"]


def test_a_pending_job_has_no_usage_yet(invoke, queues):
    event_id = submitted(invoke)

    read = http(
        invoke(
            "status", event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
        )
    )

    assert read.body["steps"] == [] and read.body["usage"] is None
