"""The features beyond the brief through the docker-free runner, over HTTP: step progress and
usage, the identical-input cache, grounded checklists, listing, cancellation and webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest
import requests

from devstack.stack import Stack
from guideline_ingest.models import JobStatus

from support import WebhookReceiver, local_only, wait_for

pytestmark = pytest.mark.e2e

KEY = "features-key"
LOCAL_ONLY = local_only(KEY, "other-features-key", ALLOW_LOOPBACK_CALLBACKS="true")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("features")
    with Stack(port=0, data_dir=data_dir, read_dotenv=False, env=LOCAL_ONLY) as running:
        yield running


@pytest.fixture(scope="module")
def receiver():
    server = WebhookReceiver()
    yield server
    server.stop()


def api(stack: Stack, method: str, path: str, key: str = KEY, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{stack.base_url}{path}", headers={"x-api-key": key}, timeout=30, **kwargs
    )


def guidelines() -> str:
    """A unique document, so the result cache never answers where a test wants the chain to run."""
    return f"Staff must wear badges (site {uuid.uuid4().hex[:8]}). Visitors should sign in at reception."


def submit(stack: Stack, text: str, **extra) -> str:
    response = api(stack, "POST", "/jobs", json={"guidelines": text, **extra})
    assert response.status_code == 202, response.text
    return response.json()["event_id"]


def finished(stack: Stack, event_id: str) -> dict:
    def done():
        job = api(stack, "GET", f"/jobs/{event_id}").json()
        return job if JobStatus(job["status"]).is_terminal else None

    return wait_for(done)


def test_steps_usage_and_grounded_checklist(stack):
    text = guidelines()
    job = finished(stack, submit(stack, text))

    assert job["status"] == "COMPLETED"
    assert [(s["name"], s["status"]) for s in job["steps"]] == [
        ("summarize", "COMPLETED"),
        ("checklist", "COMPLETED"),
    ]
    # The offline model answered: its name, real token counts, and no price to guess a cost from.
    assert {step["model"] for step in job["steps"]} == {"offline-llm"}
    assert job["usage"]["input_tokens"] > 0 and job["usage"]["estimated_cost_usd"] is None
    assert all(item["source_quote"] in text for item in job["result"]["checklist"])
    assert job["result"]["ungrounded_items_dropped"] == 0


def test_identical_input_is_served_from_the_cache(stack):
    text = guidelines()
    first = finished(stack, submit(stack, text))
    again = finished(stack, submit(stack, "  " + text.replace(" ", "\n", 1)))

    assert first["result"]["cached"] is False and again["result"]["cached"] is True
    assert again["usage"]["input_tokens"] == 0
    assert again["result"]["checklist"] == first["result"]["checklist"]


def test_listing_and_cancelling(stack):
    stack.offline_llm.set_faults(latency_ms=2000)
    try:
        event_id = submit(stack, guidelines())
        cancelled = api(stack, "POST", f"/jobs/{event_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    finally:
        stack.offline_llm.set_faults(latency_ms=0)
    again = api(stack, "POST", f"/jobs/{event_id}/cancel")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    page = api(stack, "GET", "/jobs", params={"status": "CANCELLED", "limit": 1}).json()
    assert page["items"][0]["event_id"] == event_id
    assert api(stack, "GET", "/jobs", key="other-features-key").json() == {"items": [], "next_cursor": None}


def test_a_webhook_is_delivered_signed(stack, receiver):
    """Queued by the process function itself, so it arrives within seconds (the sweeper's fallback
    would take far longer); that its role allows the send is tests/test_iam.py's check."""
    event_id = submit(stack, guidelines(), callback_url=receiver.url)
    finished(stack, event_id)
    completed = time.monotonic()

    delivered = wait_for(
        lambda: (job := finished(stack, event_id))["webhook"]["status"] == "DELIVERED" and job, seconds=10
    )
    assert time.monotonic() - completed < 10

    assert delivered["webhook"]["attempts"] == 1
    headers, body = next((h, b) for h, b in receiver.deliveries if h["webhook-id"] == event_id)
    secret = api(stack, "GET", "/webhooks/secret").json()["secret"]
    signed = hmac.new(secret.encode(), f"{headers['webhook-timestamp']}.".encode() + body, hashlib.sha256)
    assert headers["webhook-signature"] == f"v1={signed.hexdigest()}"
    assert json.loads(body)["status"] == "COMPLETED"
