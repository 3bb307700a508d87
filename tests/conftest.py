"""Fixtures shared by the tests: real PostgreSQL, the SQS protocol (moto), the
real openai client against the offline OpenAI-compatible server, and the
handlers loaded the way Lambda loads them."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx2
import psycopg
import pytest
from openai import OpenAI

from support import set_import_environment, template_environment

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
sys.path.insert(0, str(ROOT / "layers" / "core"))
set_import_environment()
# The request model states the limit when it is defined; events/submit-too-long.json is one over.
os.environ["MAX_DOCUMENT_CHARS"] = "200000"

from devstack.offline_llm import OfflineLLM  # noqa: E402
from devstack.postgres import database_url_or_embedded  # noqa: E402
from devstack.sqs import LocalSQS  # noqa: E402
from guideline_ingest.migrations import migrate  # noqa: E402

API_KEY_ID = "dev0000001"  # the apiKeyId in events/*.json


@dataclass
class Queues:
    client: object
    jobs: str
    dead_letters: str

    def receive(self, url: str | None = None, wait: int = 0) -> list[dict]:
        response = self.client.receive_message(
            QueueUrl=url or self.jobs,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
        )
        return response.get("Messages", [])


@pytest.fixture(scope="session")
def database_url():
    # Not under pytest's private (0700) temp dir: as root, the embedded server runs as
    # its own OS user, which must be able to reach its data directory.
    parent = Path(tempfile.mkdtemp(prefix="guideline-ingest-pg-"))
    parent.chmod(0o755)
    url, server = database_url_or_embedded(parent / "data")
    migrate(url)
    yield url
    if server:
        server.stop()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_endpoint():
    """The SQS endpoint `make dev` runs (moto's own server, in its own process)."""
    server = LocalSQS({})
    server.start()
    yield server.endpoint
    server.close()


@pytest.fixture(scope="session")
def offline_llm():
    with OfflineLLM() as llm:
        yield llm


@pytest.fixture(scope="session")
def environment(database_url, moto_endpoint, offline_llm):
    """The template's environment (set on import, above) pointed at the local services, with the
    test values below; set before any handler loads."""
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": moto_endpoint,
            "DATABASE_URL": database_url,
            "OPENAI_API_KEY": "offline",
            "OPENAI_BASE_URL": offline_llm.url,
            "OPENAI_MODEL": template_environment("process")["OPENAI_MODEL"],
            "PENDING_GRACE_SECONDS": "60",
            "WEBHOOK_SIGNING_SECRET": "test-webhook-signing-secret-0123456789abcdef",
            "WEBHOOK_MAX_ATTEMPTS": "3",
            "DOCUMENTS_BUCKET": "guideline-ingest-documents-test",
            "MAX_DOCUMENT_BYTES": "52428800",
            "UPLOAD_EXPIRY_SECONDS": "900",
            "MAX_DOCUMENT_PAGES": "2000",
            # Required settings without a default (the template's defaults, as deployed).
            "CHUNK_TOKEN_BUDGET": "8000",
            "CHUNK_PARALLELISM": "4",
        }
    )
    sqs = boto3.client("sqs")
    os.environ["JOBS_QUEUE_URL"] = create_queues(sqs).jobs
    # One webhook queue for the session: tests pick their own job's messages from it.
    os.environ["WEBHOOK_QUEUE_URL"] = create_queues(sqs).jobs
    return sqs


def create_queues(sqs, visibility_timeout: int = 1, max_receive_count: int = 5) -> Queues:
    name = uuid.uuid4().hex[:12]
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    jobs = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    return Queues(client=sqs, jobs=jobs, dead_letters=dlq)


@pytest.fixture
def queues(environment, database, offline_llm, monkeypatch):
    """Fresh queues for each test (SQS allows one purge a minute), and a well-behaved LLM."""
    from guideline_ingest.config import submit_settings

    fresh = create_queues(environment)
    monkeypatch.setenv("JOBS_QUEUE_URL", fresh.jobs)
    submit_settings.cache_clear()
    offline_llm.set_faults(reset=True)
    offline_llm.reset_stats()
    yield fresh
    submit_settings.cache_clear()


@pytest.fixture
def database(database_url):
    """A connection for assertions, on an empty jobs table."""
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute("TRUNCATE jobs CASCADE")
        yield conn


def load_function(name: str):
    """Import functions/<name>/app.py as Lambda does (its folder on sys.path), under a unique name."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"{name}_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def functions(environment):
    return {name: load_function(name) for name in ("submit", "status", "process", "sweeper", "webhook")}


class LambdaContext:
    def __init__(self, name: str, timeout_ms: int = 30_000):
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "2026/11/29/[$LATEST]test"
        self._timeout_ms = timeout_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


def send_jobs_to(module, jobs_queue_url: str, monkeypatch):
    """A loaded function whose settings (read at its cold start) send jobs to `jobs_queue_url`."""
    monkeypatch.setattr(
        module, "settings", module.settings.model_copy(update={"jobs_queue_url": jobs_queue_url})
    )
    return module


def event(name: str, **changes) -> dict:
    """An event file from events/, with top-level fields replaced."""
    data = json.loads((EVENTS / name).read_text())
    data.update(changes)
    return data


@pytest.fixture
def invoke(functions):
    def call(function: str, event_data: dict, timeout_ms: int = 30_000) -> dict:
        return functions[function].handler(event_data, LambdaContext(function, timeout_ms))

    return call


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: object


def http(result: dict) -> HttpResponse:
    """A Lambda proxy result as the client sees it after API Gateway."""
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    headers.update({k.lower(): v[-1] for k, v in (result.get("multiValueHeaders") or {}).items()})
    raw = result.get("body")
    body = json.loads(raw) if raw and headers.get("content-type", "").endswith("json") else raw
    return HttpResponse(status=int(result["statusCode"]), headers=headers, body=body)


def submitted(invoke, guidelines: str | None = None) -> str:
    data = event("submit.json")
    if guidelines is not None:
        data["body"] = json.dumps({"guidelines": guidelines})
    return http(invoke("submit", data)).body["event_id"]


def sqs_event(*event_ids: str, receive_count: int = 1) -> dict:
    template = event("process.json")["Records"][0]
    records = []
    for index, event_id in enumerate(event_ids):
        record = json.loads(json.dumps(template))
        record["messageId"] = f"message-{index}"
        record["body"] = json.dumps({"event_id": event_id})
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


def job(database, event_id: str) -> dict:
    return database.execute("SELECT * FROM jobs WHERE event_id = %s", (event_id,)).fetchone()


def budget_spent(error: str) -> dict:
    """A job's error once the LLM stayed unavailable for the template's whole retry budget (6 h),
    whether the process function or the sweeper ended it."""
    return {
        "type": "llm_unavailable",
        "message": f"The LLM stayed unavailable for the whole retry budget of 6 h: {error}.",
    }


def failures(result: dict) -> list[str]:
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


@pytest.fixture
def llm_edge(functions, offline_llm, monkeypatch):
    """Replace what the LLM answers, at the HTTP edge: `script` is a list of callables
    (request -> httpx2.Response | None); None passes the call to the offline server."""
    script: list = []
    upstream = httpx2.Client()

    def handle(request: httpx2.Request) -> httpx2.Response:
        answer = script.pop(0)(request) if script else None
        if answer is not None:
            return answer
        forwarded = upstream.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )
        return httpx2.Response(forwarded.status_code, headers=forwarded.headers, content=forwarded.content)

    client = OpenAI(
        api_key="offline",
        base_url=offline_llm.url,
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handle)),
    )
    monkeypatch.setattr(functions["process"], "llm", client)
    return script


def completion(
    content: str | None = None, refusal: str | None = None, model: str = "gpt-4o-mini"
) -> httpx2.Response:
    """An llm_edge answer: a chat completion with this content or refusal, from this model."""
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1795939200,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        },
    )


def llm_error(code: int, retry_after: str | None = None):
    """An llm_edge answer: the LLM failing with this HTTP status."""
    headers = {"retry-after": retry_after} if retry_after else {}
    return lambda request: httpx2.Response(
        code, headers=headers, json={"error": {"message": "no", "type": "x", "code": None}}
    )


def cancel_event(event_id: str, api_key_id: str = "dev0000001") -> dict:
    data = event(
        "submit.json",
        path=f"/jobs/{event_id}/cancel",
        resource="/jobs/{event_id}/cancel",
        pathParameters={"event_id": event_id},
        body=None,
    )
    data["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return data
