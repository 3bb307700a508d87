"""The format of a document from its bytes, and the declared Content-Type checked against them."""

import io
import zipfile

import pytest

from guideline_ingest.documents import DocumentFormat, DocumentRejected
from guideline_ingest.documents.formats import (
    MEDIA_TYPES,
    check_declared,
    document_format_of,
    media_type_of,
    sniff,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _zip(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, content)
    return buffer.getvalue()


def test_every_format_has_its_media_type_and_back():
    assert {media_type_of(f) for f in DocumentFormat} == set(MEDIA_TYPES)
    for media_type, document_format in MEDIA_TYPES.items():
        assert media_type_of(document_format) == media_type


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7\n...", DocumentFormat.PDF),
        (b"\x00\x01junk%PDF-1.4\n", DocumentFormat.PDF),
        (_zip("word/document.xml", b"<w:document/>"), DocumentFormat.DOCX),
        (b"<!DOCTYPE html>\n<html><body><p>Hi</p></body></html>", DocumentFormat.HTML),
        (b"\xef\xbb\xbf  <!-- generated --><HTML lang=en>", DocumentFormat.HTML),
        (b"# Title\n\nThe operator shall log.", DocumentFormat.TEXT),
        ("Caf\u00e9 \u201cquoted\u201d".encode(), DocumentFormat.TEXT),
        (b"The file starts with %PDF- as its header.", DocumentFormat.TEXT),
    ],
)
def test_sniff_reads_the_bytes(data, expected):
    assert sniff(data) == expected


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty_document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "unsupported_document_type"),
        ("caf\u00e9".encode("latin-1"), "unsupported_document_type"),
        (_zip("content.xml", b"<office/>"), "unsupported_document_type"),
        (b"PK\x03\x04\x14\x00[Content_Types].xml truncated", "corrupt_document"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "EncryptedPackage".encode("utf-16-le"), "encrypted_document"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1legacy word", "unsupported_document_type"),
    ],
)
def test_sniff_rejects_what_it_cannot_read(data, kind):
    with pytest.raises(DocumentRejected) as caught:
        sniff(data)
    assert caught.value.kind == kind


def test_markdown_and_plain_text_come_from_the_declaration():
    text = b"# Scope\n\nSystems shall log access."
    assert check_declared(text, "text/markdown") == DocumentFormat.MARKDOWN
    assert check_declared(text, "text/plain; charset=utf-8") == DocumentFormat.TEXT
    assert check_declared(b"<h1>Scope</h1><p>Fragment.</p>", "text/html") == DocumentFormat.HTML
    assert check_declared(b"%PDF-1.4\n", "Application/PDF") == DocumentFormat.PDF


@pytest.mark.parametrize(
    ("content_type", "document_format"),
    [
        ("text/html; charset=utf-8", DocumentFormat.HTML),
        ("Text/Markdown; charset=UTF-8", DocumentFormat.MARKDOWN),
        ("Application/PDF", DocumentFormat.PDF),
        (" text/plain ;format=flowed", DocumentFormat.TEXT),
        ("application/json", None),
        ("", None),
    ],
)
def test_a_content_type_names_its_format_whatever_its_parameters_and_case(content_type, document_format):
    assert document_format_of(content_type) == document_format


@pytest.mark.parametrize(
    ("data", "media_type", "kind"),
    [
        (b"%PDF-1.4\n", "text/plain", "document_type_mismatch"),
        (b"%PDF-1.4\n", DOCX, "document_type_mismatch"),
        (_zip("word/document.xml", b"<w:document/>"), "application/pdf", "document_type_mismatch"),
        (b"<!doctype html><html></html>", "text/markdown", "document_type_mismatch"),
        (b"plain words", "application/pdf", "document_type_mismatch"),
        (b"plain words", "image/png", "unsupported_document_type"),
        (b"plain words", "", "unsupported_document_type"),
        (b"", "application/pdf", "empty_document"),
        (b" \r\n\t ", "text/plain", "empty_document"),
    ],
)
def test_check_declared_rejects_with_a_stable_kind(data, media_type, kind):
    with pytest.raises(DocumentRejected) as caught:
        check_declared(data, media_type)
    assert caught.value.kind == kind
    assert caught.value.message
