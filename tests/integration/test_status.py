"""GET /jobs/{event_id} and GET /health, driven by the events/ files."""

import json
import time
from urllib.parse import urljoin

import pytest

from guideline_ingest import db
from guideline_ingest.config import database_settings

from conftest import event, http


def status_event(event_id: str, api_key_id: str = "dev0000001") -> dict:
    data = event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
    data["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return data


def submitted(invoke) -> str:
    return http(invoke("submit", event("submit.json"))).body["event_id"]


def test_a_pending_job_reads_back_with_retry_after(invoke, queues):
    event_id = submitted(invoke)

    response = http(invoke("status", status_event(event_id)))

    assert response.status == 200
    assert set(response.body) == {
        "event_id",
        "status",
        "created_at",
        "updated_at",
        "result",
        "error",
        "steps",
        "progress",
        "usage",
        "webhook",
        "document",
    }
    assert response.body["status"] == "PENDING"
    assert response.body["document"] is None  # plain text
    assert response.body["result"] is None and response.body["error"] is None
    assert response.headers["retry-after"] == "2"


def test_a_completed_job_has_its_result_and_no_retry_after(invoke, queues, database):
    event_id = submitted(invoke)
    result = {
        "summary": "Wear badges.",
        "checklist": [
            {
                "id": 1,
                "title": "Wear a badge",
                "description": "Employees wear badges on site.",
                "priority": "high",
                "category": "security",
                "source_quote": "Employees must wear badges at all times on site.",
            }
        ],
        "ungrounded_items_dropped": 0,
    }
    database.execute(
        "UPDATE jobs SET status = 'COMPLETED', result = %s WHERE event_id = %s",
        (json.dumps(result), event_id),
    )

    response = http(invoke("status", status_event(event_id)))

    assert response.body["status"] == "COMPLETED"
    # A result stored before sections and locations existed reads back with them empty.
    items = [{**item, "locations": []} for item in result["checklist"]]
    assert response.body["result"] == {**result, "checklist": items, "sections": [], "cached": False}
    assert "retry-after" not in response.headers


def test_a_failed_job_says_what_happened(invoke, queues, database):
    event_id = submitted(invoke)
    error = {"type": "llm_refused", "message": "The model declined."}
    database.execute(
        "UPDATE jobs SET status = 'FAILED', error = %s WHERE event_id = %s", (json.dumps(error), event_id)
    )

    response = http(invoke("status", status_event(event_id)))

    assert response.body["status"] == "FAILED"
    assert response.body["error"] == error
    assert response.body["result"] is None


@pytest.mark.parametrize("event_file", ["status-unknown.json", "status-malformed.json", "status.json"])
def test_unknown_and_malformed_ids_are_404_problems(invoke, queues, event_file):
    response = http(invoke("status", event(event_file)))

    assert response.status == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.body["type"].endswith("job-not-found")


def test_another_api_key_cannot_see_the_job(invoke, queues):
    event_id = submitted(invoke)

    response = http(invoke("status", status_event(event_id, api_key_id="someone-else")))

    assert response.status == 404


def test_health_checks_the_database(invoke, queues):
    response = http(invoke("status", event("health.json")))

    assert response.status == 200
    assert response.body == {"status": "ok", "database": "ok"}


def test_health_is_503_when_the_database_is_down_and_recovers(invoke, queues, monkeypatch):
    monkeypatch.setattr(db, "_connection", None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    database_settings.cache_clear()
    try:
        down = http(invoke("status", event("health.json")))
    finally:
        monkeypatch.undo()
        database_settings.cache_clear()

    assert down.status == 503
    assert down.headers["retry-after"] == "5"
    assert down.headers["content-type"] == "application/problem+json"
    assert http(invoke("status", event("health.json"))).status == 200


def test_a_connection_the_server_ended_costs_no_request(invoke, queues, database):
    """Failover, a restart or a proxy's idle timeout end the session while the environment idles."""
    assert http(invoke("status", event("health.json"))).status == 200
    old_pid = db.connection().info.backend_pid
    database.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
    for _ in range(100):
        if not database.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (old_pid,)).fetchone():
            break
        time.sleep(0.02)

    response = http(invoke("status", event("health.json")))

    assert response.status == 200
    assert db.connection().info.backend_pid != old_pid


def test_openapi_document_describes_every_route_from_the_same_models(invoke):
    response = http(invoke("status", event("health.json", path="/openapi.json", resource="/openapi.json")))

    assert response.status == 200
    spec = response.body
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/jobs",
        "/jobs/{event_id}",
        "/jobs/{event_id}/cancel",
        "/health",
        "/webhooks/secret",
    }
    assert "202" in spec["paths"]["/jobs"]["post"]["responses"]
    request_body = spec["paths"]["/jobs"]["post"]["requestBody"]["content"]
    assert request_body["application/json"]["schema"]["oneOf"] == [
        {"$ref": "#/components/schemas/SubmitJobRequest"},
        {"$ref": "#/components/schemas/SubmitUploadRequest"},
    ]
    schemas = spec["components"]["schemas"]
    assert schemas["SubmitJobRequest"]["properties"]["guidelines"]["maxLength"] == 200000
    assert schemas["UploadRequest"]["required"] == ["media_type", "size_bytes"]
    assert request_body["application/pdf"]["schema"] == {"type": "string", "format": "binary"}
    assert "Job" in spec["components"]["schemas"] and "Problem" in spec["components"]["schemas"]


def test_every_operation_has_an_id_from_the_domain(invoke):
    spec = http(invoke("status", event("health.json", path="/openapi.json", resource="/openapi.json"))).body

    operation_ids = {
        (path, method): operation["operationId"]
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    }
    assert operation_ids == {
        ("/jobs", "post"): "submitJob",
        ("/jobs", "get"): "listJobs",
        ("/jobs/{event_id}", "get"): "getJob",
        ("/jobs/{event_id}/cancel", "post"): "cancelJob",
        ("/webhooks/secret", "get"): "getWebhookSecret",
        ("/health", "get"): "getHealth",
    }


@pytest.mark.parametrize(
    "document_url",
    [
        "https://abc123.execute-api.us-east-1.amazonaws.com/v1/openapi.json",
        "http://localhost:4566/_aws/execute-api/abc123/v1/openapi.json",
        "https://api.example.com/ingest/openapi.json",
    ],
)
@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
def test_the_documented_server_is_the_api_the_document_was_read_from(invoke, document_url, path):
    data = event("health.json", path=path, resource=path, queryStringParameters={"format": "json"})
    spec = http(invoke("status", data)).body

    [server] = spec["servers"]
    # OpenAPI appends the path to the server URL; a relative server URL resolves against the document's.
    jobs_url = urljoin(document_url, server["url"]).rstrip("/") + "/jobs"
    assert jobs_url == document_url.removesuffix("/openapi.json") + "/jobs"


def test_swagger_ui_is_served_without_a_cdn(invoke):
    response = http(invoke("status", event("health.json", path="/docs", resource="/docs")))

    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.body
    assert 'src="http' not in response.body and 'href="http' not in response.body
