"""The whole service through the docker-free runner, over HTTP, with the real handlers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from devstack.stack import Stack
from guideline_ingest.models import JobStatus

from support import local_only, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
KEYS = "integration-key,other-key"
GUIDELINES = (
    "All staff must enable multi-factor authentication. Passwords should be rotated every 90 days. "
    "Never share credentials with anyone. Incidents must be reported within 24 hours."
)
# Fast retries so a poison message reaches the dead-letter queue within seconds.
OVERRIDES = {"MaxReceiveCount": 2, "JobsVisibilityTimeoutSeconds": 4, "ProcessTimeoutSeconds": 20}
# Offline LLM and embedded PostgreSQL whatever the developer's shell says.
LOCAL_ONLY = local_only(KEYS)


def start_stack(data_dir: Path) -> Stack:
    return Stack(port=0, data_dir=data_dir, read_dotenv=False, parameter_overrides=OVERRIDES, env=LOCAL_ONLY)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with start_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


def submit(stack: Stack, key: str = "integration-key") -> str:
    response = requests.post(
        f"{stack.base_url}/jobs", json={"guidelines": GUIDELINES}, headers={"x-api-key": key}, timeout=30
    )
    assert response.status_code == 202, response.text
    return response.json()["event_id"]


def finished_job(stack: Stack, event_id: str, key: str = "integration-key") -> dict:
    def done():
        job = requests.get(f"{stack.base_url}/jobs/{event_id}", headers={"x-api-key": key}, timeout=30).json()
        return job if JobStatus(job["status"]).is_terminal else None

    return wait_for(done)


def shape(value):
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return None


def test_submit_then_poll_until_completed(stack):
    job = finished_job(stack, submit(stack))
    assert job["status"] == "COMPLETED", job
    assert job["result"]["summary"]
    assert job["result"]["checklist"]


def test_a_job_is_invisible_to_other_api_keys(stack):
    event_id = submit(stack)
    response = requests.get(
        f"{stack.base_url}/jobs/{event_id}", headers={"x-api-key": "other-key"}, timeout=30
    )
    assert response.status_code == 404


def test_gateway_answers_follow_the_template(stack):
    no_key = requests.get(f"{stack.base_url}/jobs/{uuid.uuid4()}", timeout=30)
    assert no_key.status_code == 403
    assert no_key.headers["Content-Type"] == "application/problem+json"
    assert no_key.json()["status"] == 403

    unknown = requests.get(f"{stack.base_url}/nowhere", headers={"x-api-key": "integration-key"}, timeout=30)
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"] == "application/problem+json"

    wrong_method = requests.delete(
        f"{stack.base_url}/jobs", headers={"x-api-key": "integration-key"}, timeout=30
    )
    # An undeclared method is answered as an unknown path (MISSING_AUTHENTICATION_TOKEN), as API Gateway does.
    assert wrong_method.status_code == 404
    assert wrong_method.headers["Content-Type"] == "application/problem+json"

    assert requests.get(f"{stack.base_url}/health", timeout=30).status_code == 200


def test_the_submit_event_has_the_shape_of_events_submit_json(stack):
    pool = stack.pools["SubmitFunction"]
    seen = []
    original = pool.invoke

    def spy(event):
        seen.append(event)
        return original(event)

    pool.invoke = spy
    try:
        submit(stack)
    finally:
        del pool.invoke
    (event,) = seen
    reference = json.loads((EVENTS / "submit.json").read_text())
    for part in ("headers", "multiValueHeaders"):  # depend on the client
        event.pop(part), reference.pop(part)
    assert shape(event) == shape(reference)
    assert event["requestContext"]["stage"] == reference["requestContext"]["stage"]


def test_a_poison_message_ends_in_the_dead_letter_queue(stack):
    sqs = stack.sqs()
    body = json.dumps({"event_id": str(uuid.uuid4())})  # no such job: every delivery fails
    sqs.send_message(QueueUrl=stack.queue_urls["JobsQueue"], MessageBody=body)

    def in_dead_letter_queue():
        messages = sqs.receive_message(
            QueueUrl=stack.queue_urls["JobsDeadLetterQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        return [m for m in messages if m["Body"] == body]

    assert wait_for(in_dead_letter_queue)


def test_the_sweeper_runs_on_demand(stack):
    assert stack.run_schedule("sweeper").ok


def test_a_job_survives_a_restart_of_the_stack(tmp_path):
    with start_stack(tmp_path) as first:
        event_id = submit(first)
        before = finished_job(first, event_id)
    with start_stack(tmp_path) as second:
        after = requests.get(
            f"{second.base_url}/jobs/{event_id}", headers={"x-api-key": "integration-key"}, timeout=30
        ).json()
    assert after == before


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, **LOCAL_ONLY, "PORT": "0", "LOG_LEVEL": "INFO"}


def test_invoke_runs_one_function_with_an_event_file(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack",
            "invoke",
            "status",
            str(EVENTS / "health.json"),
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=_subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["statusCode"] == 200


def test_dev_stops_every_process_it_started_on_ctrl_c(tmp_path):
    dev = subprocess.Popen(
        [sys.executable, "-m", "devstack", "dev", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=_subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in dev.stdout:
            if line.startswith("ready: "):
                base_url = line.split()[1]
                break
        else:
            pytest.fail("dev exited before it was ready")
        # Keep reading its log: a full pipe would block dev mid-shutdown.
        threading.Thread(target=dev.stdout.read, daemon=True).start()
        submit_ok = requests.post(
            f"{base_url}/jobs",
            json={"guidelines": GUIDELINES},
            headers={"x-api-key": "integration-key"},
            timeout=30,
        )
        assert submit_ok.status_code == 202
        started = {p.pid for p in psutil.Process(dev.pid).children(recursive=True)}
        started.add(int((tmp_path / "pgdata" / "postmaster.pid").read_text().split()[0]))
        assert len(started) >= 2  # PostgreSQL and at least the submit environment
        assert (tmp_path / "devstack.json").exists()

        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=60) == 0
    finally:
        if dev.poll() is None:
            dev.kill()
    survivors = [
        pid for pid in started if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    assert survivors == []
    assert not (tmp_path / "devstack.json").exists()
