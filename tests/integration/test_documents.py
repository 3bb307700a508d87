"""Document extraction on real files: formats, pages, sections, and every bad file's stable kind.

The fixtures are public-domain NIST documents (tests/fixtures/documents/README.md). The bad files
are built here from them: encrypted with pypdf, truncated, a page rendered to an image and saved as
a PDF with Pillow, a zip bomb, empty files.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from functools import cache
from pathlib import Path

import pypdf
import pypdfium2
import pytest

from guideline_ingest.documents import (
    DocumentFormat,
    DocumentRejected,
    ExtractedDocument,
    SearchableText,
    normalize,
)
from guideline_ingest.documents.extraction import DocumentLimits, extract
from guideline_ingest.documents.formats import MEDIA_TYPES, check_declared, media_type_of

FIXTURES = Path(__file__).parents[1] / "fixtures" / "documents"
CSF = "NIST_cybersecurity-framework-021214.pdf"
SP800_115 = "SP800-115.pdf"
SP800_66 = "SP800-66-Revision1.pdf"
PDFS = (CSF, SP800_115, SP800_66)
LIMITS = DocumentLimits(max_pages=2000, max_chars=5_000_000, max_decompressed_bytes=100_000_000)
SECTION_74 = "7 Security Assessment Execution > 7.4 Data Handling"


@cache
def read(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@cache
def extracted(name: str, declared: DocumentFormat | None = None) -> ExtractedDocument:
    return extract(read(name), declared, LIMITS)


def rejected(data: bytes, declared: DocumentFormat | None = None, limits: DocumentLimits = LIMITS) -> str:
    with pytest.raises(DocumentRejected) as caught:
        extract(data, declared, limits)
    assert caught.value.message
    return caught.value.kind


def location_of(document: ExtractedDocument, passage: str):
    return document.location_at(document.text.index(passage))


# PDF


def test_a_pdf_of_41_pages_gives_its_text_page_by_page():
    document = extracted(CSF)
    assert document.format == DocumentFormat.PDF
    assert document.page_count == 41
    assert [anchor.location.page for anchor in document.anchors] == list(range(1, 42))
    assert [anchor.start for anchor in document.anchors] == sorted({a.start for a in document.anchors})
    assert 80_000 < len(document.text) < 90_000
    assert "\r" not in document.text
    assert "\ufffe" not in document.text  # pdfium's mark of a hyphen it joined at a line end
    assert "cost-effective approach" in document.text
    assert location_of(document, "The Framework is not a one-size-fits-all approach").page == 4
    # the last words of the last page
    assert document.location_at(len(document.text) - 1).page == 41


def test_a_pdf_with_an_outline_names_the_section_of_each_passage():
    document = extracted(SP800_115)
    assert document.page_count == 80
    coordination = location_of(document, "Assessors should be proactive in their communication")
    assert coordination.page == 56
    assert coordination.section == "7. Security Assessment Execution > 7.1 Coordination"
    data_handling = location_of(document, "Organizations should ensure proper documentation of requirements")
    assert data_handling.page == 58
    assert data_handling.section == "7. Security Assessment Execution > 7.4 Data Handling"
    # The section starts where its title stands on the page, not at the page's top.
    analysis = location_of(document, "7.3 Analysis\nAlthough some analysis")
    before = document.location_at(document.text.index("7.3 Analysis\nAlthough some analysis") - 5)
    assert analysis.section.endswith("7.3 Analysis")
    assert before.section.endswith("7.2 Assessing") and before.page == analysis.page
    # Every page still has its anchor, and stray outline entries ("1.  ") name no section.
    assert {anchor.location.page for anchor in document.anchors} == set(range(1, 81))
    assert all(re.search(r"[A-Za-z]", a.location.section or "x") for a in document.anchors)


def test_a_flat_outline_gives_one_level_sections():
    document = extracted(SP800_66)
    assert document.page_count == 117
    location = location_of(document, "covered entities must be aware of the\ndefinitions")
    assert location == type(location)(page=15, section="2.1.1. Security Rule Goals and Objectives")


def test_the_map_survives_storage_beside_the_text():
    document = extracted(SP800_115)
    stored = ExtractedDocument.from_map(document.text, document.to_map())
    assert stored == document
    offset = document.text.index("Organizations should ensure proper documentation")
    assert stored.location_at(offset) == document.location_at(offset)


# DOCX, HTML, Markdown


@pytest.mark.parametrize(
    ("name", "declared"),
    [
        ("security-assessment-execution.docx", None),
        ("security-assessment-execution.html", None),
        ("security-assessment-execution.md", DocumentFormat.MARKDOWN),
    ],
)
def test_headings_are_the_section_path(name, declared):
    document = extracted(name, declared)
    assert document.format == (declared or DocumentFormat(name.rsplit(".", 1)[1]))
    assert document.page_count is None
    sections = [anchor.location.section for anchor in document.anchors]
    assert sections[-3:] == [
        "8 Post-Testing Activities",
        "8 Post-Testing Activities > 8.1 Mitigation Recommendations",
        "8 Post-Testing Activities > 8.2 Reporting",
    ]
    assert f"{SECTION_74} > 7.4.2 Data Storage > Retention" in sections
    assert all(anchor.location.page is None for anchor in document.anchors)
    assert location_of(document, "Assessment systems must not be left unattended").section == (
        f"{SECTION_74} > 7.4.2 Data Storage"
    )
    assert location_of(document, "Organizations shall consider technical").section == (
        "8 Post-Testing Activities > 8.1 Mitigation Recommendations"
    )
    # A level-3 heading closes the level-4 one before it.
    assert location_of(document, "The assessment plan or ROE should address").section == (
        f"{SECTION_74} > 7.4.3 Data Transmission"
    )
    # Table cells are text, one row a line; list items keep their mark; emphasis is plain text.
    assert "Target system identifier | The log shall name the target system identifier" in document.text
    assert location_of(document, "The log shall name").section == f"{SECTION_74} > 7.4.1 Data Collection"
    assert "- Stakeholders are aware of the assessment schedule" in document.text
    assert "Resistance. Obtaining upper management approval" in document.text
    assert "**" not in document.text and "<" not in document.text
    # Scripts, styles and front matter are not text.
    for absent in ("never see this script", "font-family", "title:", "subtitle:"):
        assert absent not in document.text
    assert "organization\u2019s" in document.text or "organization's" in document.text


def test_plain_text_has_no_map():
    document = extract(b"Operators shall rotate keys.\r\nThey should log it.\n", DocumentFormat.TEXT, LIMITS)
    assert document == ExtractedDocument.plain("Operators shall rotate keys.\nThey should log it.")
    assert extract(b"\xef\xbb\xbfPlain words.", None, LIMITS).text == "Plain words."


def test_html_without_a_closing_head_and_in_a_legacy_charset():
    page = (
        b"<html><head><meta charset='windows-1252'><title>T</title>"
        b"<h2>Scope</h2><p>Users shall\nsign in.<br>Caf\xe9 staff too.</p>"
        b"<h3>Keys</h3><ul><li>Rotate keys.</li><li>Log it.</li></ul><pre>code  kept\n  as is</pre>"
    )
    document = extract(page, None, LIMITS)
    assert document.text == (
        "Scope\n\nUsers shall sign in.\nCaf\u00e9 staff too.\n\nKeys\n\n- Rotate keys.\n\n- Log it.\n\n"
        "code  kept\n  as is"
    )
    assert location_of(document, "- Log it.").section == "Scope > Keys"


# Bad files, each with its kind


def _pypdf_copy(data: bytes) -> pypdf.PdfWriter:
    return pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))


def _written(writer: pypdf.PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_a_password_protected_pdf_is_an_encrypted_document():
    writer = _pypdf_copy(read(CSF))
    writer.encrypt(user_password="reader-secret", owner_password="owner-secret", algorithm="AES-256")
    assert rejected(_written(writer)) == "encrypted_document"


def test_a_pdf_that_opens_without_a_password_is_read_despite_its_permissions():
    writer = _pypdf_copy(read(CSF))
    writer.encrypt(user_password="", owner_password="owner-secret", algorithm="AES-128")
    document = extract(_written(writer), DocumentFormat.PDF, LIMITS)
    assert document.page_count == 41
    assert document.text == extracted(CSF).text


def test_a_scan_without_a_text_layer_says_ocr_is_not_offered():
    pdf = pypdfium2.PdfDocument(read(CSF))
    images = [pdf[index].render(scale=0.5).to_pil().convert("RGB") for index in range(3)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    with pytest.raises(DocumentRejected) as caught:
        extract(buffer.getvalue(), DocumentFormat.PDF, LIMITS)
    assert caught.value.kind == "no_text_layer"
    assert "OCR is not offered" in caught.value.message


@pytest.mark.parametrize("kept", [0.5, 0.99])
def test_a_truncated_pdf_is_corrupt(kept):
    data = read(CSF)
    assert rejected(data[: int(len(data) * kept)], DocumentFormat.PDF) == "corrupt_document"


def test_a_pdf_of_garbage_is_corrupt():
    assert rejected(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n") == "corrupt_document"


def test_a_pdf_of_blank_pages_is_empty():
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=612, height=792)
    assert rejected(_written(writer)) == "empty_document"


def test_a_pdf_over_the_limits_is_too_large():
    data = read(CSF)
    assert rejected(data, limits=DocumentLimits(40, 5_000_000, 100_000_000)) == "document_too_large"
    assert rejected(data, limits=DocumentLimits(2000, 50_000, 100_000_000)) == "document_too_large"
    assert extract(data, None, DocumentLimits(41, 90_000, 1)).page_count == 41


def _docx_with(document_xml: bytes) -> bytes:
    buffer = io.BytesIO()
    source_bytes = io.BytesIO(read("security-assessment-execution.docx"))
    with (
        zipfile.ZipFile(source_bytes) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            content = document_xml if member.filename == "word/document.xml" else source.read(member)
            target.writestr(member.filename, content)
    return buffer.getvalue()


W = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def test_a_zip_bomb_docx_is_refused_before_it_is_decompressed():
    # 400 MB of one repeated paragraph, deflated about 1000:1.
    paragraph = b"<w:p><w:r><w:t>The system shall log every access.</w:t></w:r></w:p>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b"<w:document " + W + b"><w:body>")
            block = paragraph * (1_000_000 // len(paragraph))
            for _ in range(400):
                member.write(block)
            member.write(b"</w:body></w:document>")
    bomb = buffer.getvalue()
    assert len(bomb) < 2_000_000
    assert rejected(bomb) == "document_too_large"
    # Within a generous size limit, the ratio alone gives it away.
    assert rejected(bomb, limits=DocumentLimits(2000, 10**10, 10**10)) == "document_too_large"


def test_a_docx_over_the_decompressed_limit_is_too_large():
    data = read("security-assessment-execution.docx")
    assert rejected(data, limits=DocumentLimits(2000, 5_000_000, 20_000)) == "document_too_large"


def test_a_docx_with_entity_expansion_is_corrupt():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<w:document " + W + b"><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"
    )
    assert rejected(_docx_with(laughs)) == "corrupt_document"


def test_a_damaged_docx_is_corrupt():
    data = read("security-assessment-execution.docx")
    assert rejected(data[: len(data) // 2]) == "corrupt_document"
    assert rejected(_docx_with(b"<w:document " + W + b"><w:body><w:p>")) == "corrupt_document"


def test_a_docx_without_text_is_empty():
    assert rejected(_docx_with(b"<w:document " + W + b"><w:body><w:p/></w:body></w:document>")) == (
        "empty_document"
    )


@pytest.mark.parametrize("declared", [None, *DocumentFormat])
def test_an_empty_file_is_empty(declared):
    assert rejected(b"", declared) == "empty_document"


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (b" \n\t\n", DocumentFormat.MARKDOWN),
        (b"<!doctype html><html><head><script>var a = 1;</script></head><body> </body></html>", None),
        (b"---\ntitle: Only metadata\n---\n", DocumentFormat.MARKDOWN),
    ],
)
def test_a_document_without_text_is_empty(data, declared):
    assert rejected(data, declared) == "empty_document"


def test_text_over_the_character_limit_is_too_large():
    limits = DocumentLimits(2000, 1_000, 100_000_000)
    for name in ("security-assessment-execution.html", "security-assessment-execution.docx"):
        assert rejected(read(name), limits=limits) == "document_too_large"
    assert rejected(read("security-assessment-execution.md"), DocumentFormat.MARKDOWN, limits) == (
        "document_too_large"
    )


@pytest.mark.parametrize(
    ("name", "declared"),
    [
        (CSF, DocumentFormat.DOCX),
        (CSF, DocumentFormat.TEXT),
        ("security-assessment-execution.docx", DocumentFormat.PDF),
        ("security-assessment-execution.html", DocumentFormat.MARKDOWN),
        ("security-assessment-execution.md", DocumentFormat.PDF),
    ],
)
def test_a_file_sent_as_something_else_is_a_mismatch(name, declared):
    assert rejected(read(name), declared) == "document_type_mismatch"
    with pytest.raises(DocumentRejected) as caught:
        check_declared(read(name), media_type_of(declared))
    assert caught.value.kind == "document_type_mismatch"


def test_the_fixtures_pass_the_check_of_their_content_type():
    assert check_declared(read(CSF), "application/pdf") == DocumentFormat.PDF
    docx = next(t for t, f in MEDIA_TYPES.items() if f == DocumentFormat.DOCX)
    assert check_declared(read("security-assessment-execution.docx"), docx) == DocumentFormat.DOCX
    assert check_declared(read("security-assessment-execution.html"), "text/html") == DocumentFormat.HTML
    assert (
        check_declared(read("security-assessment-execution.md"), "text/markdown") == DocumentFormat.MARKDOWN
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(200),
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),  # a legacy .doc
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    ],
)
def test_other_files_are_unsupported(data):
    assert rejected(data) == "unsupported_document_type"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("content.xml", b"<office:document/>")
    assert rejected(buffer.getvalue()) == "unsupported_document_type"


# Quotes as a model copies them out of real PDF text, found on their page

MIN_SENTENCES = {CSF: 9, SP800_115: 270, SP800_66: 150}
NORMATIVE = re.compile(r"\b(?:shall|should|must)\b", re.IGNORECASE)
STRAIGHT = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _page_texts(name: str) -> list[str]:
    pdf = pypdfium2.PdfDocument(read(name))
    try:
        return [pdf[index].get_textpage().get_text_range() for index in range(len(pdf))]
    finally:
        pdf.close()


def _as_a_model_copies(sentence: str) -> str:
    """One line, words hyphenated at line ends joined, straight quotes, no ligatures."""
    sentence = re.sub(r"(?<=[^\W\d_])[-\u00ad]\s*\n\s*(?=[^\W\d_])", "", sentence.replace("\r\n", "\n"))
    sentence = sentence.replace("\ufffe", "-").translate(STRAIGHT)
    return " ".join(unicodedata.normalize("NFKC", sentence).split())


def _normative_sentences(page_text: str) -> list[str]:
    lines = page_text.replace("\r\n", "\n").split("\n")
    # A running head in capitals opens most pages; a model quotes the sentence after it, not it.
    if lines and lines[0].strip().isupper():
        lines = lines[1:]
    sentences = re.split(
        r"(?<=[.;:?!])\s+(?=[A-Z\u2022\x1f\uf0b7])|\n\s*[\u2022\x1f\uf0b7]", "\n".join(lines)
    )
    return [s.strip(" \n\u2022\x1f\uf0b7") for s in sentences if NORMATIVE.search(s) and len(s.split()) >= 5]


@pytest.mark.parametrize("name", PDFS)
def test_every_normative_sentence_is_found_on_its_page(name):
    document = extracted(name)
    searchable = SearchableText(document.text)
    pages = [SearchableText(text) for text in _page_texts(name)]
    checked, missing, wrong_page = 0, [], []
    for page_number, page in enumerate(pages, start=1):
        for sentence in _normative_sentences(page.text):
            quote = _as_a_model_copies(sentence)
            checked += 1
            span = searchable.find(quote)
            if span is None:
                missing.append((page_number, quote))
                continue
            first_page = next(number for number, other in enumerate(pages, start=1) if other.find(quote))
            if document.location_at(span.start).page != first_page:
                wrong_page.append((page_number, document.location_at(span.start).page, quote))
            assert normalize(document.text[span.start : span.end]) == normalize(quote)
    assert checked >= MIN_SENTENCES[name]
    assert missing == []
    assert wrong_page == []
