"""Submission's three ways in, against in-memory fakes of the jobs table, the queue and the bucket."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from guideline_ingest.dal.jobs import NewDocument, NewJob
from guideline_ingest.documents import DocumentRejected
from guideline_ingest.logic.submission import (
    INLINE_DOCUMENT_MAX_BYTES,
    IdempotencyKeyReused,
    Intake,
    request_upload,
    submit_document,
    submit_job,
)
from guideline_ingest.models import JobStatus, SubmitJobRequest, SubmitUploadRequest
from guideline_ingest.objects import DOCUMENT_PREFIX, UPLOAD_PREFIX, owner_segment
from guideline_ingest.queue import QueueUnavailable

EVENTS = Path(__file__).resolve().parents[2] / "events"
INTAKE = Intake(
    jobs_queue_url="https://sqs/jobs",
    documents_bucket="documents",
    max_document_bytes=50 * 1024 * 1024,
    upload_expiry_seconds=900,
)
PDF = b"%PDF-1.7\n" + b"0" * 200 + b"\n%%EOF\n"
# Lambda's limit on a synchronous invocation's request: the whole event, as JSON.
LAMBDA_REQUEST_LIMIT_BYTES = 6_291_456


class FakeStore:
    def __init__(self):
        self.jobs: dict[UUID, dict] = {}
        self.keys: dict[tuple[str, str], dict] = {}

    def insert_job(self, job: NewJob):
        document = job.document
        awaiting = document is not None and document.upload_expiry_seconds is not None
        row = {
            "event_id": job.event_id,
            "owner": job.owner,
            "guidelines": job.guidelines,
            "callback_url": job.callback_url,
            "status": "AWAITING_UPLOAD" if awaiting else "PENDING",
            "created_at": datetime.now(UTC),
            "upload_expires_at": (
                datetime.now(UTC) + timedelta(seconds=document.upload_expiry_seconds) if awaiting else None
            ),
            "document": document,
        }
        self.jobs[job.event_id] = row
        return {k: row[k] for k in ("event_id", "status", "created_at", "upload_expires_at")}

    def insert_job_once(self, job: NewJob, key, request_hash):
        if (job.owner, key) in self.keys:
            return None
        self.keys[(job.owner, key)] = {
            "request_hash": request_hash,
            "event_id": job.event_id,
            "completed": False,
        }
        return self.insert_job(job)

    def find_idempotent_job(self, owner, key):
        entry = self.keys.get((owner, key))
        if entry is None or entry["event_id"] not in self.jobs:
            return None
        job = self.jobs[entry["event_id"]]
        document: NewDocument | None = job["document"]
        return {
            **entry,
            "recent": True,
            **{k: job[k] for k in ("event_id", "status", "created_at", "upload_expires_at")},
            "document_key": document.key if document else None,
            "document_media_type": document.media_type if document else None,
            "document_size_bytes": document.size_bytes if document else None,
        }

    def complete_idempotency_key(self, owner, key):
        self.keys[(owner, key)]["completed"] = True

    def delete_unqueued_job(self, event_id):
        self.jobs.pop(event_id, None)


class FakeQueue:
    def __init__(self, down: bool = False):
        self.sent: list[tuple[str, UUID]] = []
        self.down = down

    def enqueue_job(self, queue_url, event_id):
        if self.down:
            raise QueueUnavailable("SQS is down")
        self.sent.append((queue_url, event_id))


class FakeObjects:
    def __init__(self):
        self.stored: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.forms: list[dict] = []

    def put_document(self, bucket, key, data, media_type):
        self.stored[(bucket, key)] = (data, media_type)

    def presigned_upload(self, bucket, key, media_type, size_bytes, expires_in):
        form = {
            "bucket": bucket,
            "key": key,
            "media_type": media_type,
            "size": size_bytes,
            "expires": expires_in,
        }
        self.forms.append(form)
        return {
            "url": f"https://{bucket}.s3.amazonaws.com/",
            "fields": {"key": key, "Content-Type": media_type},
        }


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def queue():
    return FakeQueue()


@pytest.fixture
def objects():
    return FakeObjects()


def text_request(text="Staff must wash their hands.", callback_url=None):
    return SubmitJobRequest(guidelines=text, callback_url=callback_url)


def upload_request(size=123_456, media_type="application/pdf", filename="guide.pdf"):
    return SubmitUploadRequest.model_validate(
        {"upload": {"media_type": media_type, "size_bytes": size, "filename": filename}}
    )


# --- plain text ----------------------------------------------------------------------------------


def test_plain_text_is_stored_then_queued(store, queue):
    submitted = submit_job("key-a", text_request(), store=store, queue=queue, intake=INTAKE)

    job = store.jobs[submitted.job.event_id]
    assert (job["guidelines"], job["status"], job["document"]) == (
        "Staff must wash their hands.",
        "PENDING",
        None,
    )
    assert queue.sent == [("https://sqs/jobs", submitted.job.event_id)]
    assert submitted.job.upload is None and not submitted.replayed


def test_plain_text_with_an_idempotency_key_is_replayed_not_duplicated(store, queue):
    first = submit_job("key-a", text_request(), "k1", store=store, queue=queue, intake=INTAKE)
    again = submit_job("key-a", text_request(), "k1", store=store, queue=queue, intake=INTAKE)

    assert again.replayed and again.job.event_id == first.job.event_id
    assert len(store.jobs) == 1 and len(queue.sent) == 1


def test_the_same_idempotency_key_with_another_body_is_refused(store, queue):
    submit_job("key-a", text_request(), "k1", store=store, queue=queue, intake=INTAKE)
    with pytest.raises(IdempotencyKeyReused):
        submit_job("key-a", text_request("Other text."), "k1", store=store, queue=queue, intake=INTAKE)


def test_a_job_whose_message_cannot_be_sent_is_removed(store):
    with pytest.raises(QueueUnavailable):
        submit_job("key-a", text_request(), store=store, queue=FakeQueue(down=True), intake=INTAKE)
    assert store.jobs == {}


# --- a document in the request -----------------------------------------------------------------


def test_a_document_body_is_stored_under_an_unguessable_key_then_the_job_queued(store, queue, objects):
    submitted = submit_document(
        "key-a",
        PDF,
        "application/pdf",
        "guide.pdf",
        None,
        store=store,
        queue=queue,
        objects=objects,
        intake=INTAKE,
    )

    job = store.jobs[submitted.job.event_id]
    document: NewDocument = job["document"]
    assert job["status"] == "PENDING" and job["guidelines"] == ""
    assert (document.media_type, document.filename, document.size_bytes) == (
        "application/pdf",
        "guide.pdf",
        len(PDF),
    )
    assert document.upload_expiry_seconds is None
    prefix = f"{DOCUMENT_PREFIX}{owner_segment('key-a')}/{submitted.job.event_id}/"
    assert document.key.startswith(prefix) and len(document.key) - len(prefix) >= 40
    assert objects.stored == {("documents", document.key): (PDF, "application/pdf")}
    assert queue.sent == [("https://sqs/jobs", submitted.job.event_id)]


def test_two_submissions_of_one_file_get_different_keys(store, queue, objects):
    for _ in range(2):
        submit_document(
            "key-a",
            PDF,
            "application/pdf",
            None,
            None,
            store=store,
            queue=queue,
            objects=objects,
            intake=INTAKE,
        )
    assert len({key for _, key in objects.stored}) == 2


def test_a_document_with_an_idempotency_key_is_replayed(store, queue, objects):
    def send():
        return submit_document(
            "key-a",
            PDF,
            "application/pdf",
            None,
            None,
            "k1",
            store=store,
            queue=queue,
            objects=objects,
            intake=INTAKE,
        )

    first, again = send(), send()

    assert again.replayed and again.job.event_id == first.job.event_id
    assert len(store.jobs) == 1 and len(queue.sent) == 1


@pytest.mark.parametrize(
    ("data", "media_type", "kind"),
    [
        (b"", "application/pdf", "empty_document"),
        (b"just some words", "application/pdf", "document_type_mismatch"),
        (PDF, "text/html", "document_type_mismatch"),
        (PDF, "image/png", "unsupported_document_type"),
        (b"\0" * (INLINE_DOCUMENT_MAX_BYTES + 1), "application/pdf", "document_too_large"),
    ],
)
def test_a_document_that_is_not_what_it_says_is_refused_and_nothing_is_kept(
    store, queue, objects, data, media_type, kind
):
    with pytest.raises(DocumentRejected) as refused:
        submit_document(
            "key-a", data, media_type, None, None, store=store, queue=queue, objects=objects, intake=INTAKE
        )
    assert refused.value.kind == kind
    assert store.jobs == {} and objects.stored == {} and queue.sent == []


@pytest.mark.parametrize(
    ("data", "content_type", "media_type"),
    [
        (PDF, "Application/PDF", "application/pdf"),
        (b"<!doctype html><html><body><p>Hi.</p></body></html>", "text/html; charset=utf-8", "text/html"),
        (b"# Scope\n\nStaff must wash.\n", "Text/Markdown; charset=UTF-8", "text/markdown"),
    ],
)
def test_a_document_type_with_parameters_or_in_capitals_is_kept_as_its_essence(
    store, queue, objects, data, content_type, media_type
):
    submitted = submit_document(
        "key-a", data, content_type, None, None, store=store, queue=queue, objects=objects, intake=INTAKE
    )

    document: NewDocument = store.jobs[submitted.job.event_id]["document"]
    assert document.media_type == media_type
    assert objects.stored == {("documents", document.key): (data, media_type)}


def test_the_inline_limit_fits_lambdas_request_as_base64_with_room_for_headers():
    """The measurement behind INLINE_DOCUMENT_MAX_BYTES: a proxy event carrying a file of that size."""
    event = json.loads((EVENTS / "submit.json").read_text())
    event["body"] = base64.b64encode(b"\0" * INLINE_DOCUMENT_MAX_BYTES).decode()
    event["isBase64Encoded"] = True
    size = len(json.dumps(event).encode())

    assert size < LAMBDA_REQUEST_LIMIT_BYTES
    # What is left for headers, query and request context a real client and API Gateway add.
    assert LAMBDA_REQUEST_LIMIT_BYTES - size > 250_000


# --- an upload form ----------------------------------------------------------------------------


def test_an_upload_request_awaits_its_upload_with_a_form_for_exactly_that_file(store, queue, objects):
    submitted = request_upload("key-a", upload_request(), store=store, objects=objects, intake=INTAKE)

    job = store.jobs[submitted.job.event_id]
    document: NewDocument = job["document"]
    assert submitted.job.status == JobStatus.AWAITING_UPLOAD and job["status"] == "AWAITING_UPLOAD"
    assert document.key.startswith(f"{UPLOAD_PREFIX}{owner_segment('key-a')}/{submitted.job.event_id}/")
    assert document.upload_expiry_seconds == 900
    (form,) = objects.forms
    assert form == {
        "bucket": "documents",
        "key": document.key,
        "media_type": "application/pdf",
        "size": 123_456,
        "expires": form["expires"],
    }
    assert 890 <= form["expires"] <= 900
    assert submitted.job.upload.fields["key"] == document.key
    assert submitted.job.upload.expires_at == job["upload_expires_at"]
    assert queue.sent == [] and objects.stored == {}  # the upload's event queues it


def test_an_upload_request_replayed_gets_a_form_for_the_same_key(store, objects):
    first = request_upload("key-a", upload_request(), "k1", store=store, objects=objects, intake=INTAKE)
    again = request_upload("key-a", upload_request(), "k1", store=store, objects=objects, intake=INTAKE)

    assert again.replayed and again.job.event_id == first.job.event_id
    assert again.job.upload.fields["key"] == first.job.upload.fields["key"]
    assert len(store.jobs) == 1


@pytest.mark.parametrize(
    ("size", "media_type", "kind"),
    [
        (INTAKE.max_document_bytes + 1, "application/pdf", "document_too_large"),
        (10, "application/zip", "unsupported_document_type"),
    ],
)
def test_an_upload_that_could_never_be_read_is_refused_up_front(store, objects, size, media_type, kind):
    with pytest.raises(DocumentRejected) as refused:
        request_upload("key-a", upload_request(size, media_type), store=store, objects=objects, intake=INTAKE)
    assert refused.value.kind == kind and store.jobs == {}


def test_a_declared_media_type_with_parameters_is_its_essence(store, objects):
    submitted = request_upload(
        "key-a",
        upload_request(media_type="Text/Markdown; charset=utf-8"),
        store=store,
        objects=objects,
        intake=INTAKE,
    )
    assert store.jobs[submitted.job.event_id]["document"].media_type == "text/markdown"
