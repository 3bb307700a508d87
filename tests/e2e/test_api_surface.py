"""The API as a client outside sees it through `make dev`'s stack: served under the stage only, URLs
that resolve inside the base URL called, no owner without an API key, and a generated client that
works. The stack runs the template as deployed, with the offline LLM."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from devstack.stack import Stack
from guideline_ingest.documents.formats import MEDIA_TYPES
from guideline_ingest.models import JobStatus

from support import local_only

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEY = "surface-key"
# Slow enough that a job can be cancelled while it runs.
LOCAL_ONLY = local_only(KEY, OFFLINE_LLM_LATENCY_MS="700")
GUIDELINES = "Staff must wear badges on site. Visitors should sign in at reception. Never prop doors open."
CLIENT_PACKAGE = "guideline_ingest_client"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(
        port=0, data_dir=tmp_path_factory.mktemp("surface"), read_dotenv=False, env=LOCAL_ONLY
    ) as running:
        yield running


def unique(text: str = GUIDELINES) -> str:
    """A document of its own, so the result cache never answers for it."""
    return f"{text} (site {uuid.uuid4().hex[:8]})"


def test_the_api_is_served_under_the_templates_stage_and_nowhere_else(stack):
    assert urlsplit(stack.base_url).path == "/v1"
    root = stack.base_url.removesuffix("/v1")

    assert requests.get(f"{stack.base_url}/health", timeout=30).status_code == 200
    outside = requests.get(f"{root}/health", timeout=30)
    assert (outside.status_code, outside.json()) == (403, {"message": "Forbidden"})


def test_a_client_that_follows_the_location_gets_the_job(stack):
    called = f"{stack.base_url}/jobs"
    submitted = requests.post(called, json={"guidelines": unique()}, headers={"x-api-key": KEY}, timeout=30)
    assert submitted.status_code == 202, submitted.text

    job_url = urljoin(called, submitted.headers["Location"])
    assert job_url == f"{stack.base_url}/jobs/{submitted.json()['event_id']}"
    job = requests.get(job_url, headers={"x-api-key": KEY}, timeout=30)
    assert job.status_code == 200
    assert job.json()["event_id"] == submitted.json()["event_id"]


def test_the_documents_point_inside_the_api(stack):
    document_url = f"{stack.base_url}/openapi.json"
    [server] = requests.get(document_url, timeout=30).json()["servers"]
    assert urljoin(document_url, server["url"]).rstrip("/") == stack.base_url

    docs_url = f"{stack.base_url}/docs"
    page = requests.get(docs_url, timeout=30)
    assert page.status_code == 200
    # Swagger UI loads the spec from its own path (`currentUrl.pathname + "?format=json"`).
    assert 'currentUrl.pathname + "?format=json"' in page.text
    [server] = requests.get(docs_url, params={"format": "json"}, timeout=30).json()["servers"]
    assert urljoin(docs_url, server["url"]).rstrip("/") == stack.base_url


def test_a_function_reached_without_an_api_key_id_refuses_the_request(stack):
    for name in ("submit-no-api-key.json",):
        invocation = stack.invoke("submit", json.loads((ROOT / "events" / name).read_text()))
        assert invocation.ok
        assert invocation.payload["statusCode"] == 403
        assert (
            json.loads(invocation.payload["body"])["type"] == "urn:guideline-ingest:problem:invalid-api-key"
        )


def test_jobs_report_the_offline_model_and_no_cost(stack):
    called = f"{stack.base_url}/jobs"
    submitted = requests.post(called, json={"guidelines": unique()}, headers={"x-api-key": KEY}, timeout=30)
    job_url = urljoin(called, submitted.headers["Location"])

    job = poll(lambda: requests.get(job_url, headers={"x-api-key": KEY}, timeout=30).json())

    assert job["status"] == "COMPLETED"
    assert {step["model"] for step in job["steps"]} == {"offline-llm"}
    assert job["usage"]["input_tokens"] > 0
    assert job["usage"]["estimated_cost_usd"] is None


def poll(read, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while True:
        job = read()
        status = job["status"] if isinstance(job, dict) else job.status
        if JobStatus(status).is_terminal or time.monotonic() > deadline:
            return job
        time.sleep(0.3)


# --- a generated client -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(stack, tmp_path_factory):
    """A Python client generated from the served /openapi.json, imported; nothing is downloaded."""
    where = tmp_path_factory.mktemp("client")
    (where / "openapi.json").write_text(requests.get(f"{stack.base_url}/openapi.json", timeout=30).text)
    # No post hooks: the generator would otherwise run ruff on the output, which is only layout.
    # A document body is bytes to a generated client (the generator knows no application/pdf).
    (where / "config.yaml").write_text(
        "post_hooks: []\ncontent_type_overrides:\n"
        + "".join(f"  {media_type}: application/octet-stream\n" for media_type in MEDIA_TYPES)
    )
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(where / "openapi.json"),
            "--config",
            str(where / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(where / CLIENT_PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name.split(".")[0] == CLIENT_PACKAGE]:
            del sys.modules[name]


def test_a_generated_client_has_domain_names_and_runs_the_whole_job_lifecycle(stack, generated):
    jobs = importlib.import_module(f"{CLIENT_PACKAGE}.api.jobs")
    assert {module.name for module in pkgutil.iter_modules(jobs.__path__)} == {
        "submit_job",
        "get_job",
        "list_jobs",
        "cancel_job",
    }
    submit_job, get_job, list_jobs, cancel_job = (
        importlib.import_module(f"{CLIENT_PACKAGE}.api.jobs.{name}")
        for name in ("submit_job", "get_job", "list_jobs", "cancel_job")
    )
    models = importlib.import_module(f"{CLIENT_PACKAGE}.models")
    client = generated.AuthenticatedClient(
        base_url=stack.base_url, token=KEY, prefix="", auth_header_name="x-api-key", timeout=30
    )

    accepted = submit_job.sync(client=client, body=models.SubmitJobRequest(guidelines=unique()))
    assert isinstance(accepted, models.JobAccepted), accepted
    done = poll(lambda: get_job.sync(client=client, event_id=accepted.event_id))
    assert isinstance(done, models.Job) and done.status == models.JobStatus.COMPLETED
    assert done.result.checklist and done.result.summary

    running = submit_job.sync(client=client, body=models.SubmitJobRequest(guidelines=unique()))
    cancelled = cancel_job.sync(client=client, event_id=running.event_id)
    assert isinstance(cancelled, models.Job), cancelled
    assert cancelled.status == models.JobStatus.CANCELLED

    page = list_jobs.sync(client=client, limit=100)
    assert isinstance(page, models.JobPage), page
    listed = {item.event_id: item.status for item in page.items}
    assert listed[accepted.event_id] == models.JobStatus.COMPLETED
    assert listed[running.event_id] == models.JobStatus.CANCELLED

    finished_again = cancel_job.sync_detailed(client=client, event_id=accepted.event_id)
    assert finished_again.status_code == 409
    assert isinstance(finished_again.parsed, models.Problem)
