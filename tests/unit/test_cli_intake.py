"""`ingest submit FILE`: the way in chosen by type and size, and where each item stands."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ingest_cli import commands
from ingest_cli.render import checklist_table, progress_bar, where


class FakeClient:
    def __init__(self):
        self.calls = []

    def submit(self, guidelines, idempotency_key=None):
        self.calls.append(("json", guidelines))
        return {"event_id": "e1", "status": "PENDING"}

    def submit_document(self, data, media_type, filename, idempotency_key=None):
        self.calls.append(("body", media_type, filename, len(data)))
        return {"event_id": "e1", "status": "PENDING"}

    def request_upload(self, media_type, size_bytes, filename, idempotency_key=None):
        self.calls.append(("form", media_type, filename, size_bytes))
        form = {
            "url": "https://bucket/",
            "fields": {"key": "uploads/x"},
            "expires_at": "2026-12-05T10:00:00Z",
        }
        return {"event_id": "e1", "status": "AWAITING_UPLOAD", "upload": form}

    def upload(self, form, data, on_progress):
        self.calls.append(("upload", form["fields"]["key"], len(data)))
        on_progress(len(data), len(data))


def quiet_io():
    return commands.Io(out=Console(file=io.StringIO()), err=Console(file=io.StringIO()))


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("guide.pdf", "application/pdf"),
        ("guide.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("guide.html", "text/html"),
        ("GUIDE.MD", "text/markdown"),
    ],
)
def test_a_small_document_goes_as_the_body_with_its_own_type(tmp_path, name, media_type):
    path = tmp_path / name
    path.write_bytes(b"# Scope\n\nStaff must wash.\n")
    client = FakeClient()

    commands.send(client, quiet_io(), str(path), None, show_progress=False)

    assert client.calls == [("body", media_type, name, path.stat().st_size)]


def test_a_text_file_goes_as_json_as_before(tmp_path):
    path = tmp_path / "guide.txt"
    path.write_text("Staff must wash their hands.\n")
    client = FakeClient()

    commands.send(client, quiet_io(), str(path), None, show_progress=False)

    assert client.calls == [("json", "Staff must wash their hands.\n")]


@pytest.mark.parametrize("show_progress", [True, False])
def test_a_file_over_the_inline_limit_goes_through_the_upload_form(tmp_path, show_progress):
    path = tmp_path / "big.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * commands.INLINE_MAX_BYTES)
    client = FakeClient()

    accepted = commands.send(client, quiet_io(), str(path), None, show_progress=show_progress)

    size = path.stat().st_size
    assert client.calls == [("form", "application/pdf", "big.pdf", size), ("upload", "uploads/x", size)]
    assert accepted["event_id"] == "e1"


def test_each_item_shows_its_pages_or_sections():
    assert where({"locations": [{"page": 12, "section": None}, {"page": 14, "section": "2 Scope"}]}) == (
        "p. 12; p. 14, 2 Scope"
    )
    assert where({"locations": []}) == "" and where({}) == ""
    console = Console(file=io.StringIO(), width=120)
    console.print(
        checklist_table([{"id": 1, "title": "Wash", "priority": "high", "locations": [{"page": 7}]}])
    )
    assert "p. 7" in console.file.getvalue()


def test_the_progress_bar_follows_the_chunks():
    assert (
        progress_bar({"progress": {"chunks_done": 3, "chunks_total": 12}}, width=12).plain
        == "███░░░░░░░░░ 3/12 chunks"
    )
    assert progress_bar({"progress": None}).plain == ""


def test_upload_sends_even_a_small_file_through_the_upload_form(tmp_path):
    path = tmp_path / "guide.docx"
    path.write_bytes(b"PK\x03\x04 small")
    client = FakeClient()

    commands.send(client, quiet_io(), str(path), None, show_progress=False, force_upload=True)

    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    size = path.stat().st_size
    assert client.calls == [("form", docx, "guide.docx", size), ("upload", "uploads/x", size)]
