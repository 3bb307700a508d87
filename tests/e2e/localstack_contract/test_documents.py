"""Documents through LocalStack (issue 26's "done when"): `ingest submit` for a NIST PDF of 40 pages
or more in the request, a DOCX through the presigned POST to LocalStack's own S3 (its notification,
the uploads queue, the upload function) and an HTML document, each COMPLETED with a page or a
section on every item; and LocalStack's S3, unlike moto, refusing an upload the form's policy does
not allow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from ingest_cli.__main__ import main
from ingest_cli.client import Client
from ingest_cli.errors import ApiError
from ingest_cli.settings import Settings

from .test_contract import finished

pytestmark = pytest.mark.localstack

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "documents"
PDF = FIXTURES / "NIST_cybersecurity-framework-021214.pdf"  # 41 pages
DOCX = FIXTURES / "security-assessment-execution.docx"
HTML = FIXTURES / "security-assessment-execution.html"
# Variables that would change what the CLI reads; the tests pass --base-url and --api-key.
CLEARED = ("INGEST_BASE_URL", "INGEST_API_KEY", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@pytest.fixture
def ingest(stack, capsys, monkeypatch, tmp_path):
    """`ingest ... --json` against the LocalStack deployment, as a user types it: its JSON."""
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # away from the checkout's .env

    def run(*argv: str) -> dict:
        code = main([*argv, "--json", "--base-url", stack.api_url, "--api-key", stack.api_key])
        captured = capsys.readouterr()
        assert code == 0, captured.err + captured.out
        return json.loads(captured.out)

    return run


def assert_located(job: dict, where: str) -> list[dict]:
    assert job["status"] == "COMPLETED", job.get("error")
    items = job["result"]["checklist"]
    assert items
    unlocated = [item["title"] for item in items if not all(loc[where] for loc in item["locations"] or [{}])]
    assert unlocated == [], f"items without a {where}"
    return items


def test_a_pdf_of_40_pages_in_the_request_cites_a_page_on_every_item(ingest):
    job = ingest("submit", str(PDF), "--wait")

    assert job["document"]["format"] == "pdf" and job["document"]["page_count"] >= 40
    pages = {location["page"] for item in assert_located(job, "page") for location in item["locations"]}
    assert max(pages) > 20  # the whole document, not its first pages


def test_a_docx_through_the_presigned_post_and_s3s_notification_cites_sections(stack, ingest):
    accepted = ingest("submit", str(DOCX), "--upload")
    # The CLI posted the file to the form: only the upload's S3 event can start this job.
    assert accepted["status"] == "AWAITING_UPLOAD"
    assert accepted["upload"]["url"].startswith(("http://127.0.0.1:4566/", "http://localhost:4566/"))

    job = finished(stack, accepted["event_id"], stack.api_key)

    assert job["document"]["format"] == "docx" and job["document"]["size_bytes"] == DOCX.stat().st_size
    assert_located(job, "section")


def test_an_html_document_cites_a_section_on_every_item(ingest):
    job = ingest("submit", str(HTML), "--wait")

    assert job["document"]["format"] == "html"
    sections = {
        location["section"] for item in assert_located(job, "section") for location in item["locations"]
    }
    assert len(sections) > 1


def test_s3_refuses_an_upload_outside_the_forms_policy(stack):
    data = HTML.read_bytes()
    upload = {"media_type": "text/html", "size_bytes": len(data), "filename": HTML.name}
    response = stack.post("jobs", {"upload": upload}, key=stack.api_key)
    assert response.status_code == 202, response.text
    accepted = response.json()
    form = accepted["upload"]

    def post(fields: dict, body: bytes, media_type: str) -> requests.Response:
        return requests.post(form["url"], data=fields, files={"file": ("f", body, media_type)}, timeout=30)

    wrong_type = post(form["fields"] | {"Content-Type": "application/pdf"}, data, "application/pdf")
    assert wrong_type.status_code == 403
    assert "<Code>AccessDenied</Code>" in wrong_type.text and "Policy Condition failed" in wrong_type.text
    too_large = post(form["fields"], data + b"<p>one more paragraph</p>", "text/html")
    assert too_large.status_code == 400 and "<Code>EntityTooLarge</Code>" in too_large.text
    too_small = post(form["fields"], data[:-10], "text/html")
    assert too_small.status_code == 400 and "<Code>EntityTooSmall</Code>" in too_small.text

    # The CLI's uploader says what S3 said.
    client = Client(Settings(stack.api_url, stack.api_key))
    with pytest.raises(ApiError, match=r"refused \(400\): EntityTooLarge: Your proposed upload exceeds"):
        client.upload(form, data + b"<p>changed since</p>", on_progress=lambda _sent, _total: None)

    # Nothing was stored, so nothing was announced: the job still waits for its file.
    assert stack.get(f"jobs/{accepted['event_id']}", stack.api_key).json()["status"] == "AWAITING_UPLOAD"
