"""Webhooks: callback URLs checked against SSRF, signed deliveries, retries, and their status on the job."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket

import pytest

from guideline_ingest.webhooks import CallbackRefused, check_callback_url, post

from conftest import cancel_event, create_queues, event, http, send_jobs_to, sqs_event, submitted
from support import WebhookReceiver


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv("ALLOW_LOOPBACK_CALLBACKS", "true")
    server = WebhookReceiver(status=200)
    yield server
    server.stop()


def submit_with_callback(invoke, callback_url: str, guidelines: str = "Staff must wear badges.") -> dict:
    data = event("submit.json", body=json.dumps({"guidelines": guidelines, "callback_url": callback_url}))
    return http(invoke("submit", data))


def announced(environment, *event_ids: str) -> set[str]:
    """Which of these jobs have a message on the (shared) webhook queue; bounded long polls."""
    import os

    wanted, found = set(event_ids), set()
    for _ in range(5):
        messages = environment.receive_message(
            QueueUrl=os.environ["WEBHOOK_QUEUE_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        found |= {json.loads(m["Body"])["event_id"] for m in messages} & wanted
        if found == wanted:
            break
    return found


def read(invoke, event_id: str) -> dict:
    return http(
        invoke(
            "status", event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
        )
    ).body


def secret_for_caller(invoke) -> str:
    response = http(
        invoke("status", event("health.json", path="/webhooks/secret", resource="/webhooks/secret"))
    )
    assert response.status == 200
    return response.body["secret"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hook", "https"),
        ("ftp://example.com/hook", "https"),
        ("https:///nohost", "https"),
        ("https://10.0.0.7/hook", "internal"),
        ("https://192.168.1.1/hook", "internal"),
        ("https://169.254.169.254/latest/meta-data", "internal"),
        ("https://[::1]/hook", "loopback"),
        ("https://100.64.0.1/hook", "internal"),  # carrier-grade NAT, shared address space
        ("https://192.0.0.1/hook", "internal"),  # IETF protocol assignments
        ("https://198.18.0.1/hook", "internal"),  # benchmarking
        ("https://192.0.2.10/hook", "internal"),  # documentation
        ("https://240.0.0.1/hook", "internal"),  # reserved
        ("https://224.0.0.1/hook", "internal"),  # multicast
        ("https://0.0.0.0/hook", "internal"),
        ("https://[::ffff:10.0.0.1]/hook", "internal"),  # IPv4-mapped
        ("https://[::ffff:127.0.0.1]/hook", "internal"),
        ("https://[::ffff:169.254.169.254]/hook", "internal"),
        ("https://[2002:a00:1::1]/hook", "internal"),  # 6to4 of 10.0.0.1
        ("https://[64:ff9b::a00:1]/hook", "internal"),  # NAT64 of 10.0.0.1
        ("https://[64:ff9b:1::a00:1]/hook", "internal"),  # local-use NAT64
        ("https://[::10.0.0.1]/hook", "internal"),  # IPv4-compatible
        ("https://[2001:db8::1]/hook", "internal"),  # documentation
        ("https://[fd00::1]/hook", "internal"),  # unique local
        ("https://[fe80::1]/hook", "internal"),  # link-local
        ("https://[ff02::1]/hook", "internal"),  # multicast
        ("https://localhost/hook", "loopback"),
        ("http://127.0.0.1:8080/hook", "loopback"),
    ],
)
def test_unsafe_callback_urls_are_refused(invoke, queues, database, url, reason):
    response = submit_with_callback(invoke, url)

    assert response.status == 422
    assert reason in response.body["detail"]
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://8.8.8.8/hook",
        "https://[2606:4700::1111]/hook",
        "https://[::ffff:8.8.8.8]/hook",
        "https://[64:ff9b::808:808]/hook",
        "https://hooks.example.com/hook",
    ],
)
def test_globally_routable_callbacks_are_accepted(url):
    assert check_callback_url(url) == url


@pytest.mark.parametrize("answer", ["100.64.0.1", "::ffff:10.0.0.1", "198.18.0.1"])
def test_an_internal_answer_for_a_public_name_is_refused_at_delivery(monkeypatch, answer):
    """The name is checked again when it is called: DNS may answer an internal address then."""
    family = socket.AF_INET6 if ":" in answer else socket.AF_INET
    resolved = [(family, socket.SOCK_STREAM, 6, "", (answer, 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: resolved)
    with pytest.raises(CallbackRefused, match="internal address"):
        post("https://hooks.example.com/jobs", b"{}", {}, timeout=1)


def test_loopback_is_allowed_only_when_the_local_setting_says_so(monkeypatch):
    monkeypatch.setenv("ALLOW_LOOPBACK_CALLBACKS", "true")
    assert check_callback_url("http://localhost:9000/hook") == "http://localhost:9000/hook"
    monkeypatch.setenv("ALLOW_LOOPBACK_CALLBACKS", "false")
    with pytest.raises(CallbackRefused):
        check_callback_url("http://localhost:9000/hook")


def test_a_public_https_callback_is_accepted_and_waits_for_the_job(invoke, queues):
    accepted = submit_with_callback(invoke, "https://hooks.example.com/jobs")

    assert accepted.status == 202
    webhook = read(invoke, accepted.body["event_id"])["webhook"]
    assert webhook == {
        "url": "https://hooks.example.com/jobs",
        "status": "WAITING",
        "attempts": 0,
        "last_error": None,
        "delivered_at": None,
    }


def test_a_finished_job_is_delivered_signed(invoke, queues, database, environment, receiver):
    event_id = submit_with_callback(invoke, receiver.url).body["event_id"]
    invoke("process", sqs_event(event_id))
    assert read(invoke, event_id)["webhook"]["status"] == "PENDING"
    assert announced(environment, event_id) == {event_id}

    result = invoke("webhook", sqs_event(event_id))

    assert result == {"batchItemFailures": []}
    [(headers, body)] = receiver.deliveries
    document = json.loads(body)
    assert document["event_id"] == event_id and document["status"] == "COMPLETED"
    assert document["result"]["checklist"]
    assert headers["webhook-id"] == event_id
    expected = hmac.new(
        secret_for_caller(invoke).encode(), f"{headers['webhook-timestamp']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["webhook-signature"] == f"v1={expected}"
    webhook = read(invoke, event_id)["webhook"]
    assert webhook["status"] == "DELIVERED" and webhook["attempts"] == 1 and webhook["delivered_at"]


def test_a_duplicate_delivery_message_posts_nothing(invoke, queues, receiver):
    event_id = submit_with_callback(invoke, receiver.url).body["event_id"]
    invoke("process", sqs_event(event_id))
    invoke("webhook", sqs_event(event_id))

    invoke("webhook", sqs_event(event_id))

    assert len(receiver.deliveries) == 1


def test_a_failing_receiver_is_retried_then_given_up(invoke, queues, receiver):
    receiver.status = 500
    event_id = submit_with_callback(invoke, receiver.url).body["event_id"]
    invoke("process", sqs_event(event_id))

    first = invoke("webhook", sqs_event(event_id, receive_count=1))

    assert len(first["batchItemFailures"]) == 1
    webhook = read(invoke, event_id)["webhook"]
    assert webhook["status"] == "PENDING" and webhook["attempts"] == 1
    assert "HTTP 500" in webhook["last_error"]

    last = invoke("webhook", sqs_event(event_id, receive_count=3))

    assert last == {"batchItemFailures": []}
    webhook = read(invoke, event_id)["webhook"]
    assert webhook["status"] == "FAILED" and webhook["attempts"] == 2
    assert "gave up" in webhook["last_error"]


def test_a_callback_that_became_internal_is_refused_at_delivery(invoke, queues, database, receiver):
    event_id = submit_with_callback(invoke, receiver.url).body["event_id"]
    invoke("process", sqs_event(event_id))
    database.execute(
        "UPDATE jobs SET callback_url = 'https://10.1.2.3/hook' WHERE event_id = %s", (event_id,)
    )

    assert invoke("webhook", sqs_event(event_id)) == {"batchItemFailures": []}

    webhook = read(invoke, event_id)["webhook"]
    assert webhook["status"] == "FAILED" and "internal address" in webhook["last_error"]
    assert receiver.deliveries == []


def test_failed_and_cancelled_jobs_are_announced_too(invoke, queues, environment, llm_edge, receiver):
    from conftest import llm_error

    failed = submit_with_callback(invoke, receiver.url, guidelines="Doors must be locked.").body["event_id"]
    llm_edge.append(llm_error(400))
    invoke("process", sqs_event(failed))
    cancelled = submit_with_callback(invoke, receiver.url, guidelines="Lights must be off.").body["event_id"]
    assert http(invoke("submit", cancel_event(cancelled))).status == 200

    assert announced(environment, failed, cancelled) == {failed, cancelled}
    for event_id in (failed, cancelled):
        invoke("webhook", sqs_event(event_id))
        assert read(invoke, event_id)["webhook"]["status"] == "DELIVERED"
    assert sorted(json.loads(body)["status"] for _, body in receiver.deliveries) == ["CANCELLED", "FAILED"]


def test_the_sweeper_resends_a_lost_delivery(invoke, queues, database, functions, monkeypatch, receiver):
    send_jobs_to(functions["sweeper"], queues.jobs, monkeypatch)
    event_id = submit_with_callback(invoke, receiver.url).body["event_id"]
    invoke("process", sqs_event(event_id))
    database.execute(
        "UPDATE jobs SET webhook_enqueued_at = now() - interval '2 hours' WHERE event_id = %s", (event_id,)
    )

    assert invoke("sweeper", event("sweeper.json"))["webhooks_requeued"] == 1


def test_the_same_idempotency_key_with_another_callback_is_another_request(invoke, queues):
    def keyed(url):
        data = event("submit.json", body=json.dumps({"guidelines": "Be kind.", "callback_url": url}))
        data["headers"] = {**data["headers"], "Idempotency-Key": "hook-key"}
        data["multiValueHeaders"] = {k: [v] for k, v in data["headers"].items()}
        return http(invoke("submit", data))

    assert keyed("https://a.example.com/h").status == 202
    assert keyed("https://b.example.com/h").status == 422


def test_a_job_without_callback_has_no_webhook(invoke, queues):
    event_id = submitted(invoke)

    assert read(invoke, event_id)["webhook"] is None


def test_failed_deliveries_come_back_after_a_jittered_backoff_doubling_to_15_min(
    invoke, queues, environment, functions, receiver, monkeypatch
):
    """The backoff the docs state: each failed attempt sets its message's visibility timeout, at most
    30 s doubling to 15 min (full jitter: at least 1 s)."""
    from guideline_ingest.queue import sqs_client

    receiver.status = 500
    event_id = submit_with_callback(invoke, receiver.url).body["event_id"]
    invoke("process", sqs_event(event_id))
    queue_url = create_queues(environment).jobs
    webhook = functions["webhook"]
    # Settings are frozen, as at cold start: the function gets a copy pointing at this queue.
    settings = webhook.settings.model_copy(
        update={"webhook_queue_url": queue_url, "webhook_max_attempts": 8}  # the template's default
    )
    monkeypatch.setattr(webhook, "settings", settings)
    requested = []
    events = sqs_client().meta.events
    record_timeout = lambda params, **_: requested.append(params["VisibilityTimeout"])  # noqa: E731
    events.register("provide-client-params.sqs.ChangeMessageVisibility", record_timeout)
    try:
        for attempt in range(1, 8):
            environment.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"event_id": event_id}))
            [message] = environment.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
            delivery = sqs_event(event_id, receive_count=attempt)
            delivery["Records"][0]["receiptHandle"] = message["ReceiptHandle"]

            assert len(invoke("webhook", delivery)["batchItemFailures"]) == 1
            assert "Messages" not in environment.receive_message(QueueUrl=queue_url)
    finally:
        events.unregister("provide-client-params.sqs.ChangeMessageVisibility", record_timeout)

    ceilings = [30, 60, 120, 240, 480, 900, 900]
    assert len(requested) == len(ceilings)
    assert all(1 <= delay <= ceiling for delay, ceiling in zip(requested, ceilings, strict=True))
    last = sqs_event(event_id, receive_count=8)
    assert invoke("webhook", last) == {"batchItemFailures": []}
    assert read(invoke, event_id)["webhook"]["status"] == "FAILED"
