"""Documents in: POST /jobs with a file or for an upload form, the upload's S3 event through SQS
starting its job, the loader on a real PDF, and uploads that never come.

In-process: the handlers as Lambda loads them, real PostgreSQL, and moto's mock_aws for S3 and
SQS (it delivers the bucket's notifications to the queue in-process, and serves the presigned
POST through `requests`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from uuid import UUID

import boto3
import pytest
import requests
from moto import mock_aws

from guideline_ingest import config, objects, queue
from guideline_ingest.dal import jobs
from guideline_ingest.dal.jobs import NewDocument, NewJob
from guideline_ingest.documents import DocumentFormat, DocumentRejected
from guideline_ingest.documents.extraction import DocumentLimits
from guideline_ingest.logic.document_loading import load_document

from conftest import API_KEY_ID, LambdaContext, event, http, load_function

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
CSF_PDF = FIXTURES / "NIST_cybersecurity-framework-021214.pdf"
BUCKET = "guideline-ingest-documents-test"
OTHER_KEY_ID = "dev0000002"
LIMITS = DocumentLimits(max_pages=2000, max_chars=10_000_000, max_decompressed_bytes=100_000_000)


class Aws:
    def __init__(self):
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.s3.create_bucket(Bucket=BUCKET)
        self.jobs_queue = self.sqs.create_queue(QueueName="jobs")["QueueUrl"]
        self.webhook_queue = self.sqs.create_queue(QueueName="webhooks")["QueueUrl"]
        self.uploads_queue = self.sqs.create_queue(QueueName="uploads")["QueueUrl"]
        uploads_arn = self.sqs.get_queue_attributes(QueueUrl=self.uploads_queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # As infra/template.yaml sets it: new objects under uploads/ only.
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": uploads_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                    }
                ]
            },
        )

    def messages(self, queue_url: str) -> list[dict]:
        found = []
        while batch := self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
            found += batch
            for message in batch:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def queued_jobs(self) -> list[str]:
        return [json.loads(m["Body"])["event_id"] for m in self.messages(self.jobs_queue)]


def _clear_cached_clients_and_settings():
    for cached in (
        queue.sqs_client,
        objects.s3_client,
        config.submit_settings,
        config.upload_settings,
        config.sweeper_settings,
        config.status_settings,
        config.database_settings,
    ):
        cached.cache_clear()


@pytest.fixture
def aws(database, database_url, monkeypatch):
    """S3 and SQS in this process, and the environment the template gives the functions."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATABASE_URL": database_url,
        "DOCUMENTS_BUCKET": BUCKET,
        "MAX_DOCUMENT_BYTES": str(50 * 1024 * 1024),
        "UPLOAD_EXPIRY_SECONDS": "900",
        "ALLOW_LOOPBACK_CALLBACKS": "true",
        "MAX_RECEIVE_COUNT": "5",
        "PENDING_GRACE_SECONDS": "60",
        "WEBHOOK_SIGNING_SECRET": "test-webhook-signing-secret-0123456789abcdef",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        created = Aws()
        monkeypatch.setenv("JOBS_QUEUE_URL", created.jobs_queue)
        monkeypatch.setenv("WEBHOOK_QUEUE_URL", created.webhook_queue)
        _clear_cached_clients_and_settings()
        yield created
    _clear_cached_clients_and_settings()


@pytest.fixture
def handlers(aws):
    """Loaded inside the mock, as a cold start would: their clients talk to it."""
    return {name: load_function(name) for name in ("submit", "upload", "sweeper", "status")}


def call(handlers, name: str, event_data: dict) -> dict:
    return handlers[name].handler(event_data, LambdaContext(name))


def document_event(data: bytes, content_type: str, api_key_id: str = API_KEY_ID, **query) -> dict:
    submit = event("submit.json")
    submit["headers"] = {**submit["headers"], "Content-Type": content_type}
    submit["headers"].pop("content-type", None)
    submit["multiValueHeaders"] = {}
    submit["body"] = base64.b64encode(data).decode()
    submit["isBase64Encoded"] = True
    submit["queryStringParameters"] = query or None
    submit["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return submit


def upload_event(size: int, media_type="application/pdf", api_key_id: str = API_KEY_ID, **extra) -> dict:
    body = {"upload": {"media_type": media_type, "size_bytes": size, "filename": "csf.pdf"}, **extra}
    submit = event("submit.json", body=json.dumps(body))
    submit["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return submit


def status_event(event_id: str, api_key_id: str = API_KEY_ID) -> dict:
    status = event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
    status["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return status


def deliver_uploads(aws: Aws, handlers) -> dict:
    """What Lambda's SQS poller does with the uploads queue."""
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:uploads",
            "awsRegion": "us-east-1",
        }
        for m in aws.messages(aws.uploads_queue)
    ]
    return call(handlers, "upload", {"Records": records})


def post_form(form: dict, data: bytes, content_type: str | None = None) -> requests.Response:
    fields = dict(form["fields"])
    return requests.post(
        form["url"],
        data=fields,
        files={"file": ("file", data, content_type or fields["Content-Type"])},
        timeout=10,
    )


# --- a document in the request -----------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/pdf", "Application/PDF; name=csf.pdf"])
def test_a_pdf_sent_as_the_body_is_stored_and_its_job_queued(aws, handlers, database, content_type):
    data = CSF_PDF.read_bytes()
    response = http(call(handlers, "submit", document_event(data, content_type)))

    assert response.status == 202, response.body
    event_id = response.body["event_id"]
    assert response.body["status"] == "PENDING" and response.body["upload"] is None
    row = database.execute("SELECT * FROM jobs WHERE event_id = %s", (event_id,)).fetchone()
    assert (row["document_media_type"], row["document_size_bytes"], row["guidelines"]) == (
        "application/pdf",
        len(data),
        "",
    )
    assert row["document_key"].startswith(f"documents/{objects.owner_segment(API_KEY_ID)}/{event_id}/")
    stored = aws.s3.get_object(Bucket=BUCKET, Key=row["document_key"])
    assert stored["Body"].read() == data and stored["ContentType"] == "application/pdf"
    assert aws.queued_jobs() == [event_id]
    # documents/ does not notify (S3's test event, sent when the notification was set, is all).
    assert [m for m in aws.messages(aws.uploads_queue) if "Records" in m["Body"]] == []

    job = http(call(handlers, "status", status_event(event_id))).body
    assert job["document"] == {
        "format": "pdf",
        "media_type": "application/pdf",
        "filename": None,
        "size_bytes": len(data),
        "page_count": None,
        "characters": None,
    }


@pytest.mark.parametrize(
    ("data", "content_type", "status", "kind"),
    [
        (b"%PDF-1.7\nnot what it says", "text/html", 422, "document_type_mismatch"),
        (b"", "application/pdf", 422, "empty_document"),
        (b"GIF89a....", "image/gif", 415, "unsupported-media-type"),
    ],
)
def test_a_bad_document_body_is_a_problem_and_leaves_nothing(
    aws, handlers, database, data, content_type, status, kind
):
    response = http(call(handlers, "submit", document_event(data, content_type)))

    assert response.status == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.body["type"] == f"urn:guideline-ingest:problem:{kind}"
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0
    assert aws.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_markdown_body_keeps_its_name_and_callback(aws, handlers, database):
    submit = document_event(
        b"# Scope\n\nStaff must wash their hands.\n",
        "text/markdown; charset=utf-8",
        callback_url="http://localhost:9/x",
    )
    submit["headers"]["Content-Disposition"] = 'attachment; filename="hygiene.md"'
    response = http(call(handlers, "submit", submit))

    assert response.status == 202, response.body
    row = database.execute("SELECT * FROM jobs WHERE event_id = %s", (response.body["event_id"],)).fetchone()
    assert (row["document_media_type"], row["document_filename"], row["callback_url"]) == (
        "text/markdown",
        "hygiene.md",
        "http://localhost:9/x",
    )


# --- an upload ---------------------------------------------------------------------------------


def test_an_upload_through_its_form_starts_its_job(aws, handlers, database):
    data = CSF_PDF.read_bytes()
    accepted = http(call(handlers, "submit", upload_event(len(data))))

    assert accepted.status == 202, accepted.body
    event_id, form = accepted.body["event_id"], accepted.body["upload"]
    assert accepted.body["status"] == "AWAITING_UPLOAD"
    assert aws.queued_jobs() == []
    assert http(call(handlers, "status", status_event(event_id))).body["status"] == "AWAITING_UPLOAD"

    assert post_form(form, data).status_code in (200, 201, 204)
    result = deliver_uploads(aws, handlers)

    assert result == {"batchItemFailures": []}
    row = database.execute(
        "SELECT status, document_size_bytes FROM jobs WHERE event_id = %s", (event_id,)
    ).fetchone()
    assert (row["status"], row["document_size_bytes"]) == ("PENDING", len(data))
    assert aws.queued_jobs() == [event_id]


def test_an_upload_request_names_its_type_with_parameters_in_any_case(aws, handlers, database):
    response = http(call(handlers, "submit", upload_event(5, "Text/Markdown; charset=UTF-8")))

    assert response.status == 202, response.body
    assert response.body["upload"]["fields"]["Content-Type"] == "text/markdown"
    job = http(call(handlers, "status", status_event(response.body["event_id"]))).body
    assert (job["document"]["format"], job["document"]["media_type"]) == ("markdown", "text/markdown")


def test_the_form_fixes_the_key_the_type_and_the_size(aws, handlers, database):
    accepted = http(call(handlers, "submit", upload_event(1234, "text/html")))
    form = accepted.body["upload"]
    key = database.execute(
        "SELECT document_key FROM jobs WHERE event_id = %s", (accepted.body["event_id"],)
    ).fetchone()["document_key"]

    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    assert form["fields"]["key"] == key and key.startswith(f"uploads/{objects.owner_segment(API_KEY_ID)}/")
    assert {"key": key} in policy["conditions"] and {"bucket": BUCKET} in policy["conditions"]
    assert {"Content-Type": "text/html"} in policy["conditions"]
    assert ["content-length-range", 1234, 1234] in policy["conditions"]
    assert policy["expiration"][:16] == accepted.body["upload"]["expires_at"][:16]


def test_the_test_event_and_an_encoded_key_are_handled(aws, handlers, database):
    accepted = http(call(handlers, "submit", upload_event(11, "text/plain"))).body
    key = database.execute(
        "SELECT document_key FROM jobs WHERE event_id = %s", (accepted["event_id"],)
    ).fetchone()["document_key"]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    aws.sqs.send_message(QueueUrl=aws.uploads_queue, MessageBody=json.dumps(test_event))
    # S3 URL-encodes the key in its events: the token's "-" and "_" survive, "/" becomes %2F.
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=b"hello world", ContentType="text/plain")
    bodies = [
        json.loads(m["Body"])
        for m in aws.sqs.receive_message(
            QueueUrl=aws.uploads_queue, MaxNumberOfMessages=10, VisibilityTimeout=0
        )["Messages"]
    ]
    assert any("Records" in body for body in bodies)

    assert deliver_uploads(aws, handlers) == {"batchItemFailures": []}
    assert jobs.job_status(UUID(accepted["event_id"])) == "PENDING"
    assert aws.queued_jobs() == [accepted["event_id"]]


def test_an_object_at_a_key_issued_to_no_job_starts_nothing(aws, handlers, database):
    accepted = http(call(handlers, "submit", upload_event(5, "text/plain"))).body
    key = database.execute(
        "SELECT document_key FROM jobs WHERE event_id = %s", (accepted["event_id"],)
    ).fetchone()["document_key"]
    aws.s3.put_object(Bucket=BUCKET, Key=key + "x", Body=b"hello")
    aws.s3.put_object(Bucket=BUCKET, Key=key.rsplit("/", 1)[0] + "/guessed-token", Body=b"hello")

    assert deliver_uploads(aws, handlers) == {"batchItemFailures": []}
    assert jobs.job_status(UUID(accepted["event_id"])) == "AWAITING_UPLOAD"
    assert aws.queued_jobs() == []


def test_no_key_can_start_or_read_a_job_from_another_keys_upload(aws, handlers, database):
    """Key B knows A's event_id and posts under its own owner segment with it: A's job stays
    waiting, and B reads neither A's job nor a job started from A's upload."""
    mine = http(call(handlers, "submit", upload_event(5, "text/plain"))).body
    theirs = http(call(handlers, "submit", upload_event(5, "text/plain", api_key_id=OTHER_KEY_ID))).body
    their_key = database.execute(
        "SELECT document_key FROM jobs WHERE event_id = %s", (theirs["event_id"],)
    ).fetchone()["document_key"]
    assert their_key.split("/")[1] == objects.owner_segment(OTHER_KEY_ID) != objects.owner_segment(API_KEY_ID)
    forged = f"uploads/{objects.owner_segment(OTHER_KEY_ID)}/{mine['event_id']}/{their_key.rsplit('/', 1)[1]}"
    aws.s3.put_object(Bucket=BUCKET, Key=forged, Body=b"hello")
    deliver_uploads(aws, handlers)
    assert jobs.job_status(UUID(mine["event_id"])) == "AWAITING_UPLOAD"

    assert post_form(mine["upload"], b"hello").status_code in (200, 201, 204)
    deliver_uploads(aws, handlers)
    assert jobs.job_status(UUID(mine["event_id"])) == "PENDING"
    assert jobs.job_status(UUID(theirs["event_id"])) == "AWAITING_UPLOAD"
    assert http(call(handlers, "status", status_event(mine["event_id"], OTHER_KEY_ID))).status == 404


def upload_expired_ago(handlers, database, interval: str) -> dict:
    """An upload request whose form expired `interval` (SQL) ago, its upload never made."""
    accepted = http(call(handlers, "submit", upload_event(5, "text/plain"))).body
    database.execute(
        "UPDATE jobs SET upload_expires_at = now() - %s::interval WHERE event_id = %s",
        (interval, accepted["event_id"]),
    )
    return accepted


def test_an_upload_after_its_job_expired_starts_nothing(aws, handlers, database):
    accepted = upload_expired_ago(handlers, database, "1 hour")
    assert call(handlers, "sweeper", event("sweeper.json"))["failed"] == 1

    assert post_form(accepted["upload"], b"hello").status_code in (200, 201, 204)
    deliver_uploads(aws, handlers)

    job = http(call(handlers, "status", status_event(accepted["event_id"]))).body
    assert job["status"] == "FAILED" and job["error"]["type"] == "upload_expired"
    assert "submit the job again" in job["error"]["message"]
    assert aws.queued_jobs() == []


def test_the_sweeper_leaves_uploads_within_their_window_and_grace(aws, handlers, database):
    accepted = upload_expired_ago(handlers, database, "1 minute")

    assert call(handlers, "sweeper", event("sweeper.json"))["failed"] == 0
    assert jobs.job_status(UUID(accepted["event_id"])) == "AWAITING_UPLOAD"


def test_an_upload_request_over_the_limit_is_413(aws, handlers, database):
    response = http(call(handlers, "submit", upload_event(50 * 1024 * 1024 + 1)))

    assert response.status == 413 and response.body["type"].endswith(":document_too_large")
    assert database.execute("SELECT count(*) AS n FROM jobs").fetchone()["n"] == 0


# --- the loader --------------------------------------------------------------------------------


def _claimed_document_job(aws: Aws, data: bytes, media_type: str, event_id: UUID) -> jobs.Claim:
    key = objects.new_object_key(objects.DOCUMENT_PREFIX, API_KEY_ID, event_id)
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    jobs.insert_job(
        NewJob(event_id, API_KEY_ID, "", None, NewDocument(key, media_type, "csf.pdf", len(data)))
    )
    return jobs.claim_job(event_id, 60, [])


def test_the_loader_extracts_a_real_pdf_once_and_a_retry_reads_it_back(aws, database):
    event_id = UUID("00000000-0000-4000-8000-000000000001")
    claim = _claimed_document_job(aws, CSF_PDF.read_bytes(), "application/pdf", event_id)

    document = load_document(claim, store=jobs, objects=objects, bucket=BUCKET, limits=LIMITS)

    assert document.format == DocumentFormat.PDF and document.page_count == 41
    assert document.location_at(len(document.text) - 1).page == 41
    row = database.execute(
        "SELECT guidelines, document_characters, document_map FROM jobs WHERE event_id = %s", (event_id,)
    ).fetchone()
    assert row["guidelines"] == document.text and row["document_characters"] == len(document.text)

    # The next attempt (the first one's worker died) reads the stored text and map: no S3 call.
    database.execute(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE event_id = %s", (event_id,)
    )
    retry = jobs.claim_job(event_id, 60, [])
    aws.s3.delete_object(Bucket=BUCKET, Key=claim.document_key)
    again = load_document(retry, store=jobs, objects=objects, bucket=BUCKET, limits=LIMITS)

    assert again.text == document.text and again.anchors == document.anchors
    assert again.page_count == 41


def test_the_loader_gives_plain_text_as_it_is(aws, database):
    event_id = UUID("00000000-0000-4000-8000-000000000002")
    jobs.insert_job(NewJob(event_id, API_KEY_ID, "Staff must wash their hands.", None))
    claim = jobs.claim_job(event_id, 60, [])

    document = load_document(claim, store=jobs, objects=objects, bucket=BUCKET, limits=LIMITS)

    assert (document.text, document.format, document.anchors) == (
        "Staff must wash their hands.",
        DocumentFormat.TEXT,
        (),
    )


def test_the_loader_refuses_a_document_past_the_page_limit_and_stores_nothing(aws, database):
    event_id = UUID("00000000-0000-4000-8000-000000000003")
    claim = _claimed_document_job(aws, CSF_PDF.read_bytes(), "application/pdf", event_id)

    with pytest.raises(DocumentRejected) as refused:
        load_document(
            claim,
            store=jobs,
            objects=objects,
            bucket=BUCKET,
            limits=DocumentLimits(40, 10_000_000, 100_000_000),
        )

    assert refused.value.kind == "document_too_large"
    row = database.execute(
        "SELECT guidelines, document_map FROM jobs WHERE event_id = %s", (event_id,)
    ).fetchone()
    assert (row["guidelines"], row["document_map"]) == ("", None)


def test_an_extraction_is_kept_only_while_the_claim_holds(aws, database):
    event_id = UUID("00000000-0000-4000-8000-000000000004")
    claim = _claimed_document_job(
        aws, b"# Scope\n\nStaff must wash their hands.\n", "text/markdown", event_id
    )
    database.execute("UPDATE jobs SET status = 'CANCELLED' WHERE event_id = %s", (event_id,))

    document = load_document(claim, store=jobs, objects=objects, bucket=BUCKET, limits=LIMITS)

    assert document.format == DocumentFormat.MARKDOWN
    assert (
        database.execute("SELECT document_map FROM jobs WHERE event_id = %s", (event_id,)).fetchone()[
            "document_map"
        ]
        is None
    )


def test_the_loader_and_the_status_read_a_stored_type_with_parameters(aws, handlers, database):
    event_id = UUID("00000000-0000-4000-8000-000000000005")
    claim = _claimed_document_job(
        aws, b"# Scope\n\nStaff must wash their hands.\n", "text/markdown; charset=UTF-8", event_id
    )

    document = load_document(claim, store=jobs, objects=objects, bucket=BUCKET, limits=LIMITS)

    assert document.format == DocumentFormat.MARKDOWN
    assert document.location_at(len(document.text) - 1).section == "Scope"
    job = http(call(handlers, "status", status_event(str(event_id)))).body
    assert job["document"]["format"] == "markdown"
