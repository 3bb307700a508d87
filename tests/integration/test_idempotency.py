"""Idempotency-Key on POST /jobs (IETF httpapi draft semantics)."""

import json

import pytest

from conftest import event, http, send_jobs_to


def keyed(key: str, guidelines: str = "Wash your hands.", api_key_id: str = "dev0000001") -> dict:
    data = event("submit.json", body=json.dumps({"guidelines": guidelines}))
    data["headers"] = {**data["headers"], "Idempotency-Key": key}
    data["multiValueHeaders"] = {k: [v] for k, v in data["headers"].items()}
    data["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return data


def count(database, table="jobs") -> int:
    return database.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]  # noqa: S608 - test constant


def test_the_same_key_and_body_return_the_first_job_and_create_nothing(invoke, queues, database):
    first = http(invoke("submit", keyed("k-1")))
    again = http(invoke("submit", keyed("k-1")))

    assert first.status == again.status == 202
    assert again.body == first.body
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert count(database) == 1
    assert len(queues.receive()) == 1


def test_the_same_key_with_another_body_is_422(invoke, queues, database):
    http(invoke("submit", keyed("k-2")))

    response = http(invoke("submit", keyed("k-2", guidelines="Something else.")))

    assert response.status == 422
    assert response.body["type"].endswith("idempotency-key-reused")
    assert count(database) == 1


def test_keys_are_scoped_to_the_api_key(invoke, queues, database):
    mine = http(invoke("submit", keyed("k-3")))
    theirs = http(invoke("submit", keyed("k-3", api_key_id="other-key")))

    assert theirs.status == 202 and theirs.body["event_id"] != mine.body["event_id"]
    assert count(database) == 2


def test_a_duplicate_while_the_first_is_in_flight_is_409(invoke, queues, database):
    first = http(invoke("submit", keyed("k-4")))
    database.execute("UPDATE idempotency_keys SET completed_at = NULL")

    response = http(invoke("submit", keyed("k-4")))

    assert response.status == 409
    assert response.body["type"].endswith("request-in-flight")
    assert response.headers["retry-after"] == "1"
    database.execute("UPDATE idempotency_keys SET created_at = now() - interval '1 minute'")
    assert http(invoke("submit", keyed("k-4"))).body["event_id"] == first.body["event_id"]


def test_a_key_expires_after_24_hours(invoke, queues, database):
    first = http(invoke("submit", keyed("k-5")))
    database.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")

    again = http(invoke("submit", keyed("k-5", guidelines="A new document.")))

    assert again.status == 202 and again.body["event_id"] != first.body["event_id"]
    assert count(database) == 2 and count(database, "idempotency_keys") == 1


def test_expired_keys_are_swept(invoke, queues, database, functions, monkeypatch):
    send_jobs_to(functions["sweeper"], queues.jobs, monkeypatch)
    http(invoke("submit", keyed("k-6")))
    database.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")

    assert invoke("sweeper", event("sweeper.json"))["expired_idempotency_keys"] == 1
    assert count(database, "idempotency_keys") == 0


def test_when_the_enqueue_fails_the_key_is_released_with_the_job(invoke, queues, database):
    queues.client.delete_queue(QueueUrl=queues.jobs)

    assert http(invoke("submit", keyed("k-7"))).status == 503
    assert count(database) == 0 and count(database, "idempotency_keys") == 0


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_a_malformed_key_is_422(invoke, queues, database, key):
    response = http(invoke("submit", keyed(key)))

    assert response.status == 422
    assert count(database) == 0
