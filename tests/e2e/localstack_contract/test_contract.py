"""Contract tests through LocalStack 4.14.0: API Gateway, Lambda (the local-process executor), SQS,
the event source mappings and CloudFormation, as `make localstack` and docker compose deploy them.

Black-box: HTTP against the stage URL, boto3 against LocalStack, events/*.json into each function.
Where LocalStack does not emulate AWS (gateway responses, access logs, IAM), the test asserts what
LocalStack does and docs/localstack.md names the difference. LocalStack's event source mapping
runs one job at a time with a 1 s poll, so the tests send a handful of jobs.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from guideline_ingest.models import JobStatus

from support import wait_for

pytestmark = pytest.mark.localstack

EVENTS = Path(__file__).resolve().parents[3] / "events"
GUIDELINES = "Staff must lock their screens when away. Visitors must sign in at reception."
PROBLEM = "application/problem+json"


def submit(stack, key: str, text: str = GUIDELINES, headers: dict | None = None) -> dict:
    response = stack.post("jobs", {"guidelines": text}, key=key, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def finished(stack, event_id: str, key: str, seconds: float = 120) -> dict:
    def done():
        job = stack.get(f"jobs/{event_id}", key).json()
        return job if JobStatus(job["status"]).is_terminal else None

    return wait_for(done, seconds=seconds, every=1)


# --- the API through LocalStack's gateway -------------------------------------------------------


def test_health_needs_no_key(stack):
    response = stack.get("health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_openapi_document_is_served_without_a_key(stack):
    response = stack.get("openapi.json")
    assert response.status_code == 200
    assert "/jobs" in response.json()["paths"]


@pytest.mark.parametrize("key", [None, "not-a-key-of-this-stack"])
def test_a_request_without_a_valid_key_is_forbidden(stack, key):
    response = stack.post("jobs", {"guidelines": GUIDELINES}, key=key)
    assert response.status_code == 403
    # Not emulated: the template's INVALID_API_KEY gateway response (a problem document).
    # LocalStack answers its built-in body instead; AWS answers the template's.
    assert response.json() == {"message": "Forbidden"}


def test_a_job_runs_end_to_end(stack):
    accepted = submit(stack, stack.api_key)
    assert accepted["status"] == "PENDING"
    job = finished(stack, accepted["event_id"], stack.api_key)
    assert job["status"] == "COMPLETED", job
    assert job["result"]["checklist"]
    assert [step["name"] for step in job["steps"]] == ["summarize", "checklist"]


def test_jobs_are_listed_for_their_owner(stack):
    event_id = submit(stack, stack.api_key, "Doors must be locked at night.")["event_id"]
    listed = stack.get("jobs", stack.api_key).json()
    assert event_id in [job["event_id"] for job in listed["items"]]


def test_an_idempotent_retry_returns_the_first_job(stack):
    headers = {"idempotency-key": f"retry-{uuid.uuid4()}"}
    first = stack.post("jobs", {"guidelines": "Badges must be worn."}, stack.api_key, headers)
    again = stack.post("jobs", {"guidelines": "Badges must be worn."}, stack.api_key, headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["event_id"] == first.json()["event_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_cancel_ends_a_job_or_says_it_already_finished(stack):
    event_id = submit(stack, stack.api_key, "Laptops must be encrypted.")["event_id"]
    response = stack.post(f"jobs/{event_id}/cancel", key=stack.api_key)
    if response.status_code == 200:
        assert response.json()["status"] == "CANCELLED"
    else:  # the one-at-a-time poller may have finished it first
        assert response.status_code == 409
        assert response.headers["content-type"].startswith(PROBLEM)
    assert finished(stack, event_id, stack.api_key)["status"] in ("CANCELLED", "COMPLETED")


def test_a_job_is_invisible_to_another_api_key(stack, second_key):
    event_id = submit(stack, stack.api_key, "Passwords must be rotated.")["event_id"]
    other = stack.get(f"jobs/{event_id}", second_key)
    assert other.status_code == 404
    assert other.headers["content-type"].startswith(PROBLEM)
    listed = stack.get("jobs", second_key).json()
    assert event_id not in [job["event_id"] for job in listed["items"]]
    assert stack.post(f"jobs/{event_id}/cancel", key=second_key).status_code == 404


def test_the_gateway_passes_each_callers_api_key_id(stack, second_key):
    """Ownership rests on requestContext.identity.apiKeyId, which LocalStack sets on keyed routes:
    the webhook secret is derived from it, so two keys get two secrets."""
    first = stack.get("webhooks/secret", stack.api_key)
    second = stack.get("webhooks/secret", second_key)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() != second.json()


def test_a_request_without_an_api_key_id_is_forbidden(stack):
    event = json.loads((EVENTS / "submit.json").read_text())
    del event["requestContext"]["identity"]["apiKeyId"]
    response = stack.client("lambda").invoke(
        FunctionName=stack.functions["SubmitFunction"], Payload=json.dumps(event)
    )
    assert json.loads(response["Payload"].read())["statusCode"] == 403


def test_the_location_resolves_inside_the_api_behind_the_stage(stack):
    """LocalStack serves the API under /_aws/execute-api/<id>/<stage>/: a client that follows the
    Location from the URL it called must land on the job, not outside the API."""
    called = f"{stack.api_url}jobs"
    response = requests.post(
        called, json={"guidelines": GUIDELINES}, headers={"x-api-key": stack.api_key}, timeout=60
    )
    assert response.status_code == 202, response.text
    job = requests.get(
        urljoin(called, response.headers["Location"]), headers={"x-api-key": stack.api_key}, timeout=60
    )
    assert job.status_code == 200, job.text
    assert job.json()["event_id"] == response.json()["event_id"]


def test_an_invalid_body_is_a_problem_document(stack):
    response = stack.post("jobs", {"guidelines": "   "}, key=stack.api_key)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == response.status_code


def test_an_unknown_job_is_a_404_problem(stack):
    response = stack.get(f"jobs/{uuid.uuid4()}", stack.api_key)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)


# --- SQS: the dead-letter queue -----------------------------------------------------------------


def test_a_poison_message_ends_in_the_dead_letter_queue(stack):
    sqs = stack.client("sqs")
    jobs_queue = stack.outputs["JobsQueueUrl"]
    body = json.dumps({"event_id": str(uuid.uuid4())})  # no such job: every delivery fails
    # Five deliveries at the deployed 905 s visibility timeout take over an hour: shortened for this
    # test only, so that the redrive policy (maxReceiveCount) is what moves the message.
    sqs.set_queue_attributes(QueueUrl=jobs_queue, Attributes={"VisibilityTimeout": "1"})
    try:
        sqs.send_message(QueueUrl=jobs_queue, MessageBody=body)

        def in_dead_letter_queue():
            messages = sqs.receive_message(
                QueueUrl=stack.outputs["JobsDeadLetterQueueUrl"],
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            return [message for message in messages if message["Body"] == body]

        assert wait_for(in_dead_letter_queue, seconds=120, every=1)
    finally:
        sqs.set_queue_attributes(QueueUrl=jobs_queue, Attributes={"VisibilityTimeout": "905"})


# --- each function with its events/*.json, as `aws lambda invoke` -------------------------------

FUNCTION_EVENTS = {
    "health.json": ("StatusFunction", 200),
    "status.json": ("StatusFunction", 404),
    "status-unknown.json": ("StatusFunction", 404),
    "status-malformed.json": ("StatusFunction", None),
    "submit.json": ("SubmitFunction", 202),
    "submit-blank.json": ("SubmitFunction", 422),
    "submit-not-json.json": ("SubmitFunction", None),
    "submit-too-long.json": ("SubmitFunction", None),
    "submit-no-api-key.json": ("SubmitFunction", 403),
    "process.json": ("ProcessFunction", None),
    "process-batch-one-bad.json": ("ProcessFunction", None),
    "sweeper.json": ("SweeperFunction", None),
    "webhook.json": ("WebhookFunction", None),
}


def test_every_event_file_has_a_function():
    assert set(FUNCTION_EVENTS) == {path.name for path in EVENTS.glob("*.json")}


@pytest.mark.parametrize("event_file", sorted(FUNCTION_EVENTS))
def test_lambda_invoke_with_each_event_file(stack, event_file):
    logical_id, status = FUNCTION_EVENTS[event_file]
    response = stack.client("lambda").invoke(
        FunctionName=stack.functions[logical_id],
        Payload=(EVENTS / event_file).read_bytes(),
        LogType="Tail",
    )
    payload = json.loads(response["Payload"].read() or b"null")
    assert "FunctionError" not in response, payload
    logs = base64.b64decode(response["LogResult"]).decode()
    assert "START RequestId:" in logs and "REPORT RequestId:" in logs
    if logical_id in ("StatusFunction", "SubmitFunction"):
        assert status is None or payload["statusCode"] == status, payload
        assert payload["statusCode"] < 500, payload
        if payload["statusCode"] >= 400:
            headers = payload.get("multiValueHeaders") or {}
            assert headers["Content-Type"][0].startswith(PROBLEM), payload
    elif logical_id in ("ProcessFunction", "WebhookFunction"):
        assert set(payload) == {"batchItemFailures"}, payload


# --- the executor: what LocalStack's docker executor reports, from a local process --------------


def _zip(source: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def probe(stack):
    """A throwaway function exercising timeouts, errors and init failures (1 s timeout, 128 MB)."""
    client = stack.client("lambda")
    names = []

    def create(source: str) -> str:
        name = f"probe-{uuid.uuid4().hex[:8]}"
        client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role="arn:aws:iam::000000000000:role/probe",
            Handler="app.handler",
            Code={"ZipFile": _zip(source)},
            Timeout=1,
            MemorySize=128,
        )
        client.get_waiter("function_active_v2").wait(FunctionName=name)
        names.append(name)
        return name

    yield create
    for name in names:
        client.delete_function(FunctionName=name)


PROBE = """
import os, sys, time
def handler(event, context):
    print("probe says", event.get("action"))
    if event.get("action") == "sleep":
        time.sleep(5)
    if event.get("action") == "raise":
        raise ValueError("asked to fail")
    if event.get("action") == "allocate":
        bytearray(512 * 1024 * 1024)
    return {"version": "%d.%d" % sys.version_info[:2], "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(), "arn": context.invoked_function_arn}
"""


def _invoke(stack, name: str, event: dict) -> tuple[dict, str, str | None]:
    response = stack.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    logs = base64.b64decode(response.get("LogResult", "")).decode()
    return json.loads(response["Payload"].read() or b"null"), logs, response.get("FunctionError")


def test_the_executor_runs_python312_with_the_functions_settings(stack, probe):
    name = probe(PROBE)
    result, logs, error = _invoke(stack, name, {"action": "hello"})
    assert error is None, result
    assert result["version"] == "3.12"
    assert result["memory"] == "128"
    assert 0 < result["remaining_ms"] <= 1000
    assert result["arn"].endswith(f":function:{name}")
    assert "probe says hello" in logs


def test_the_executor_reports_handler_errors_timeouts_and_memory(stack, probe):
    name = probe(PROBE)
    result, logs, error = _invoke(stack, name, {"action": "raise"})
    assert error == "Unhandled"
    assert result["errorType"] == "ValueError" and result["errorMessage"] == "asked to fail"
    assert "asked to fail" in logs

    started = time.monotonic()
    result, logs, error = _invoke(stack, name, {"action": "sleep"})
    assert error == "Unhandled"
    assert result["errorType"] == "Sandbox.Timedout", result
    assert "Task timed out after 1.00 seconds" in logs
    assert time.monotonic() - started < 5
    # The environment was killed; the next invocation cold-starts and works.
    assert _invoke(stack, name, {"action": "hello"})[2] is None

    result, _, error = _invoke(stack, name, {"action": "allocate"})  # 512 MB > MemorySize 128
    assert error == "Unhandled"
    assert result["errorType"] == "MemoryError", result


def test_the_executor_reports_init_errors(stack, probe):
    name = probe("import no_such_module\n\ndef handler(event, context):\n    return 1\n")
    result, _, error = _invoke(stack, name, {})
    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.ImportModuleError", result
    assert "no_such_module" in result["errorMessage"]
