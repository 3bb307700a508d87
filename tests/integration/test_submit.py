"""POST /jobs, driven by the events/ files: HTTP responses and database rows out."""

import json
import socket
import time
from urllib.parse import urljoin

import pytest

from conftest import API_KEY_ID, event, http


def submit_event(body: str | None, content_type: str | None = "application/json") -> dict:
    data = event("submit.json", body=body)
    headers = {k: v for k, v in data["headers"].items() if k.lower() != "content-type"}
    if content_type:
        headers["Content-Type"] = content_type
    data["headers"] = headers
    data["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return data


def test_accepts_a_job_stores_it_and_queues_only_its_id(invoke, queues, database):
    response = http(invoke("submit", event("submit.json")))

    assert response.status == 202
    assert set(response.body) == {"event_id", "status", "created_at", "upload"}
    assert response.body["upload"] is None  # a form only for a job awaiting its upload
    assert response.body["status"] == "PENDING"
    assert response.body["created_at"].endswith(("Z", "+00:00"))
    # Relative, so it resolves under the stage: https://<api>/v1/jobs + jobs/<id> = .../v1/jobs/<id>
    assert response.headers["location"] == f"jobs/{response.body['event_id']}"
    row = database.execute("SELECT * FROM jobs").fetchone()
    assert str(row["event_id"]) == response.body["event_id"]
    assert row["status"] == "PENDING" and row["owner"] == API_KEY_ID and row["attempts"] == 0
    assert row["guidelines"] == json.loads(event("submit.json")["body"])["guidelines"]
    [message] = queues.receive()
    assert json.loads(message["Body"]) == {"event_id": response.body["event_id"]}


@pytest.mark.parametrize(
    ("called", "event_path"),
    [
        ("https://abc123.execute-api.us-east-1.amazonaws.com/v1/jobs", "/jobs"),
        ("http://localhost:4566/_aws/execute-api/abc123/v1/jobs", "/jobs"),
        ("http://127.0.0.1:3000/v1/jobs/", "/jobs/"),
    ],
)
def test_the_location_resolves_inside_the_api_that_was_called(invoke, queues, called, event_path):
    response = http(invoke("submit", event("submit.json", path=event_path)))

    assert response.status == 202
    job_url = urljoin(called, response.headers["location"])
    assert job_url == called.rstrip("/").removesuffix("/jobs") + f"/jobs/{response.body['event_id']}"


@pytest.mark.parametrize(
    ("event_file", "status", "problem"),
    [
        ("submit-blank.json", 422, "invalid-body"),
        ("submit-too-long.json", 413, "guidelines-too-long"),
        ("submit-not-json.json", 400, "invalid-json"),
    ],
)
def test_rejects_bad_bodies_with_problem_details_and_stores_nothing(
    invoke, queues, database, event_file, status, problem
):
    response = http(invoke("submit", event(event_file)))

    assert response.status == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.body["type"].endswith(problem)
    assert response.body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(response.body)
    assert "Traceback" not in json.dumps(response.body)
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
    assert queues.receive() == []


@pytest.mark.parametrize(
    "body",
    [
        None,
        "{}",
        '{"guidelines": 42}',
        '{"guidelines": {"text": "nested"}}',
        '{"guidelines": ["a"]}',
        '{"guidelines": "ok", "extra": 1}',
        '["guidelines"]',
        '"just a string"',
    ],
)
def test_wrong_shapes_are_422(invoke, queues, database, body):
    response = http(invoke("submit", submit_event(body)))

    assert response.status == 422
    assert response.body["type"].endswith("invalid-body")
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


def test_blank_detail_says_what_is_wrong(invoke, queues):
    response = http(invoke("submit", event("submit-blank.json")))

    assert response.body["detail"] == "guidelines: must not be blank"
    assert response.body["errors"] == [{"pointer": "/guidelines", "detail": "guidelines: must not be blank"}]


@pytest.mark.parametrize(
    "content_type",
    ["application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_content_types_that_are_neither_json_nor_a_document_are_415(invoke, queues, database, content_type):
    body = "guidelines=be+kind" if "form" in content_type else json.dumps({"guidelines": "Be kind."})
    response = http(invoke("submit", submit_event(body, content_type)))

    assert response.status == 415
    assert response.body["type"].endswith("unsupported-media-type")
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


def test_json_with_charset_is_accepted(invoke, queues):
    body = json.dumps({"guidelines": "Be kind."})
    assert http(invoke("submit", submit_event(body, "application/json; charset=utf-8"))).status == 202


def test_when_the_queue_is_down_the_request_fails_cleanly_and_leaves_no_job(
    invoke, queues, database, monkeypatch
):
    queues.client.delete_queue(QueueUrl=queues.jobs)

    response = http(invoke("submit", event("submit.json")))

    assert response.status == 503
    assert response.headers["retry-after"] == "5"
    assert response.body["type"].endswith("service-unavailable")
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


def test_a_hung_queue_endpoint_fails_cleanly_within_the_functions_timeout(
    invoke, queues, database, monkeypatch
):
    """An endpoint that accepts and never answers (a black-holed network) must give a clean 503,
    not a Lambda timeout that leaves a job the client was told nothing about."""
    from guideline_ingest import queue

    with socket.create_server(("127.0.0.1", 0)) as hung:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{hung.getsockname()[1]}")
        queue.sqs_client.cache_clear()
        try:
            started = time.monotonic()
            response = http(invoke("submit", event("submit.json")))
            elapsed = time.monotonic() - started
        finally:
            queue.sqs_client.cache_clear()

    assert response.status == 503
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
    assert elapsed < queue.worst_case_sqs_call_seconds() + 1


def test_unknown_route_is_a_problem(invoke, queues):
    response = http(invoke("submit", event("submit.json", path="/nope", resource="/nope")))

    assert response.status == 404
    assert response.headers["content-type"] == "application/problem+json"
