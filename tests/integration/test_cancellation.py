"""POST /jobs/{event_id}/cancel: unfinished jobs stop, finished ones are a 409."""

import json

from conftest import cancel_event, http, job, sqs_event, submitted


def test_a_pending_job_is_cancelled_and_never_runs(invoke, queues, database, offline_llm):
    event_id = submitted(invoke)

    response = http(invoke("submit", cancel_event(event_id)))

    assert response.status == 200
    assert response.body["status"] == "CANCELLED" and response.body["event_id"] == event_id
    assert invoke("process", sqs_event(event_id)) == {"batchItemFailures": []}
    assert job(database, event_id)["status"] == "CANCELLED"
    assert offline_llm.stats()["requests"] == 0


def test_a_running_job_stops_between_its_steps(invoke, queues, database, llm_edge):
    event_id = submitted(invoke)

    def cancel_during_summary(request):
        assert http(invoke("submit", cancel_event(event_id))).status == 200

    llm_edge.append(cancel_during_summary)

    assert invoke("process", sqs_event(event_id)) == {"batchItemFailures": []}

    row = job(database, event_id)
    assert row["status"] == "CANCELLED" and row["result"] is None
    assert len(llm_edge) == 0  # the checklist step was never asked for


def test_cancelling_a_finished_job_is_a_409_problem(invoke, queues, database):
    event_id = submitted(invoke)
    invoke("process", sqs_event(event_id))

    response = http(invoke("submit", cancel_event(event_id)))

    assert response.status == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.body["type"].endswith("job-already-finished")
    assert "COMPLETED" in response.body["detail"]
    assert job(database, event_id)["status"] == "COMPLETED"


def test_nobody_else_can_cancel_a_job(invoke, queues, database):
    event_id = submitted(invoke)

    response = http(invoke("submit", cancel_event(event_id, api_key_id="someone-else")))

    assert response.status == 404
    assert job(database, event_id)["status"] == "PENDING"


def test_an_unknown_job_is_404(invoke, queues):
    response = http(invoke("submit", cancel_event("00000000-0000-4000-8000-000000000000")))

    assert response.status == 404
    assert json.dumps(response.body).count("job-not-found") == 1
