"""GET /jobs: the caller's own jobs, newest first, by keyset pages."""

import pytest

from conftest import event, http, submitted


def list_event(api_key_id: str = "dev0000001", **query) -> dict:
    data = event(
        "status.json",
        path="/jobs",
        resource="/jobs",
        pathParameters=None,
        queryStringParameters={k: str(v) for k, v in query.items()} or None,
        multiValueQueryStringParameters={k: [str(v)] for k, v in query.items()} or None,
    )
    data["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return data


def test_pages_walk_every_job_once_newest_first(invoke, queues):
    created = [submitted(invoke, guidelines=f"Rule number {n} must hold.") for n in range(5)]

    seen, cursor = [], None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = http(invoke("status", list_event(**query))).body
        seen.extend(item["event_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(created))


def test_status_filter_and_owner_scope(invoke, queues, database):
    kept = submitted(invoke)
    done = submitted(invoke, guidelines="Other rules must hold.")
    database.execute(
        'UPDATE jobs SET status = \'FAILED\', error = \'{"type": "x", "message": "y"}\' WHERE event_id = %s',
        (done,),
    )

    pending = http(invoke("status", list_event(status="PENDING"))).body
    theirs = http(invoke("status", list_event(api_key_id="someone-else"))).body

    assert [item["event_id"] for item in pending["items"]] == [kept]
    assert set(pending["items"][0]) == {"event_id", "status", "created_at", "updated_at"}
    assert theirs == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"status": "DONE"}, {"cursor": "not-a-cursor"}],
)
def test_bad_parameters_are_422_problems(invoke, queues, query):
    response = http(invoke("status", list_event(**query)))

    assert response.status == 422
    assert response.headers["content-type"] == "application/problem+json"
