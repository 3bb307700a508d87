"""What must never leak: API keys, the guidelines text, stack traces; SQL stays parameterized."""

import json

from guideline_ingest.observability import logger

from conftest import event, http

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
