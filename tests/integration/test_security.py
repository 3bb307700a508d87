"""What must never leak: API keys, the guidelines text, stack traces; SQL stays parameterized."""

import json

from guideline_ingest.observability import logger

from conftest import cancel_event, event, http

SECRET_MARKER = "TOP-SECRET-7f3a9c"


def test_logs_never_contain_the_api_key_or_the_guidelines(invoke, queues, database, caplog):
    data = event(
        "submit.json", body=json.dumps({"guidelines": f"Passwords must be rotated. {SECRET_MARKER}."})
    )
    event_id = http(invoke("submit", data)).body["event_id"]
    record = json.loads(json.dumps(event("process.json")))
    record["Records"][0]["body"] = json.dumps({"event_id": event_id})
    invoke("process", record)
    read = event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
    assert http(invoke("status", read)).body["status"] == "COMPLETED"

    formatter = logger.registered_formatter
    everything = "\n".join(formatter.format(record) for record in caplog.records)
    assert event_id in everything
    assert SECRET_MARKER not in everything
    assert data["requestContext"]["identity"]["apiKey"] not in everything


def test_sql_in_the_guidelines_is_stored_as_data(invoke, queues, database):
    hostile = "'); DROP TABLE jobs; -- must be stored verbatim"
    data = event("submit.json", body=json.dumps({"guidelines": hostile}))

    event_id = http(invoke("submit", data)).body["event_id"]

    row = database.execute("SELECT guidelines FROM jobs WHERE event_id = %s", (event_id,)).fetchone()
    assert row["guidelines"] == hostile


def test_an_unexpected_error_is_a_problem_without_internals(invoke, queues, monkeypatch, caplog):
    from guideline_ingest.dal import jobs

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals at /var/task/app.py line 12")

    monkeypatch.setattr(jobs, "insert_job", broken)

    response = http(invoke("submit", event("submit.json")))

    assert response.status == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "internals" not in json.dumps(response.body)
    assert "internals" in caplog.text  # but operators see it in the logs


def without_api_key(data: dict) -> dict:
    """The event a function gets from a route or stage that does not require an API key."""
    data["requestContext"]["identity"] |= {"apiKey": None, "apiKeyId": None}
    for headers in (data["headers"], data["multiValueHeaders"]):
        headers.pop("x-api-key", None)
    return data


def on_path(data: dict, path: str, resource: str, event_id: str | None = None) -> dict:
    parameters = {"event_id": event_id} if event_id else None
    data |= {"path": path, "resource": resource, "pathParameters": parameters}
    data["requestContext"] |= {"path": f"/v1{path}", "resourcePath": resource}
    return data


def assert_refused_like_the_gateway(response) -> None:
    assert response.status == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.body["type"] == "urn:guideline-ingest:problem:invalid-api-key"
    assert response.body["detail"] == "A valid API key is required in the x-api-key header."


def test_a_submission_without_an_api_key_id_is_refused_and_stores_nothing(invoke, queues, database):
    response = http(invoke("submit", event("submit-no-api-key.json")))

    assert_refused_like_the_gateway(response)
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
    assert queues.receive() == []


def test_reads_and_cancels_without_an_api_key_id_are_refused(invoke, queues, database):
    event_id = http(invoke("submit", event("submit.json"))).body["event_id"]
    for function, data in [
        ("status", on_path(event("status.json"), f"/jobs/{event_id}", "/jobs/{event_id}", event_id)),
        ("status", on_path(event("status.json"), "/jobs", "/jobs")),
        ("status", on_path(event("status.json"), "/webhooks/secret", "/webhooks/secret")),
        ("submit", cancel_event(event_id)),
    ]:
        assert_refused_like_the_gateway(http(invoke(function, without_api_key(data))))
    assert database.execute("SELECT status FROM jobs").fetchone()["status"] == "PENDING"


def test_routes_that_need_no_key_still_answer_without_one(invoke, queues):
    for path in ("/health", "/openapi.json", "/docs"):
        data = without_api_key(on_path(event("health.json"), path, path))
        assert http(invoke("status", data)).status == 200, path
