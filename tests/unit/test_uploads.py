"""The upload function's logic: which S3 events start which job."""

from __future__ import annotations

import json
from urllib.parse import quote_plus
from uuid import uuid4

from guideline_ingest.logic.uploads import start_uploaded_jobs
from guideline_ingest.queue import QueueUnavailable

KEY = "uploads/0123abcd/6f1c0e1e-0000-4000-8000-000000000001/a b+c~token"


class FakeStore:
    def __init__(self, awaiting: dict[str, dict]):
        self.awaiting = awaiting
        self.started: list[tuple[str, int]] = []

    def start_uploaded_job(self, document_key, size_bytes):
        row = self.awaiting.pop(document_key, None)
        if row is not None:
            self.started.append((document_key, size_bytes))
        return row


class FakeQueue:
    def __init__(self, down=False):
        self.sent = []
        self.down = down

    def enqueue_job(self, queue_url, event_id):
        if self.down:
            raise QueueUnavailable("down")
        self.sent.append((queue_url, event_id))


def notification(*keys: str, event_name="ObjectCreated:Post", size=1234) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": event_name,
                    "s3": {"bucket": {"name": "documents"}, "object": {"key": quote_plus(key), "size": size}},
                }
                for key in keys
            ]
        }
    )


def start(body, store, queue):
    return start_uploaded_jobs(body, store=store, queue=queue, jobs_queue_url="https://sqs/jobs")


def test_the_test_event_s3_sends_first_is_acknowledged_and_starts_nothing():
    store, queue = FakeStore({}), FakeQueue()
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "documents"})

    assert start(body, store, queue) == []
    assert store.started == [] and queue.sent == []


def test_an_upload_with_an_encoded_key_starts_its_job_and_queues_it():
    event_id = uuid4()
    store, queue = FakeStore({KEY: {"event_id": event_id, "owner": "key-a"}}), FakeQueue()

    assert start(notification(KEY), store, queue) == [event_id]
    assert store.started == [(KEY, 1234)]
    assert queue.sent == [("https://sqs/jobs", event_id)]


def test_a_key_no_job_awaits_starts_nothing():
    store, queue = FakeStore({KEY: {"event_id": uuid4(), "owner": "key-a"}}), FakeQueue()

    assert start(notification(KEY + "x", KEY[:-1]), store, queue) == []
    assert queue.sent == []


def test_a_second_event_for_the_same_object_starts_nothing_more():
    store, queue = FakeStore({KEY: {"event_id": uuid4(), "owner": "key-a"}}), FakeQueue()
    start(notification(KEY), store, queue)

    assert start(notification(KEY), store, queue) == []
    assert len(queue.sent) == 1


def test_objects_outside_the_uploads_prefix_are_not_looked_up():
    key = KEY.replace("uploads/", "documents/")
    store, queue = FakeStore({key: {"event_id": uuid4(), "owner": "key-a"}}), FakeQueue()

    assert start(notification(key), store, queue) == []
    assert store.started == []


def test_only_object_created_events_count():
    store, queue = FakeStore({KEY: {"event_id": uuid4(), "owner": "key-a"}}), FakeQueue()

    assert start(notification(KEY, event_name="ObjectRemoved:Delete"), store, queue) == []


def test_a_queue_outage_leaves_the_started_job_to_the_sweeper():
    event_id = uuid4()
    store = FakeStore({KEY: {"event_id": event_id, "owner": "key-a"}})

    assert start(notification(KEY), store, FakeQueue(down=True)) == [event_id]
    assert store.started == [(KEY, 1234)]
