"""Which format a document is, from its bytes: cheap enough for the submit function (standard library only).

The declared Content-Type is checked against the bytes, never trusted alone: a PDF sent as
text/plain, or a Word file sent as application/pdf, is a `document_type_mismatch`. Markdown and
plain text look the same in bytes, so only the declared type tells them apart.
"""

from __future__ import annotations

import re

from guideline_ingest.documents.model import DocumentFormat, DocumentRejected

MEDIA_TYPES: dict[str, DocumentFormat] = {
    "application/pdf": DocumentFormat.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": DocumentFormat.DOCX,
    "text/html": DocumentFormat.HTML,
    "text/markdown": DocumentFormat.MARKDOWN,
    "text/plain": DocumentFormat.TEXT,
}

_MEDIA_TYPE_OF = {document_format: media_type for media_type, document_format in MEDIA_TYPES.items()}

# Readers look for "%PDF-" in the first 1024 bytes (ISO 32000-2, annex H).
_PDF_MAGIC = b"%PDF-"
_ZIP_MAGIC = b"PK\x03\x04"
# An OLE compound file: a legacy .doc, or an Office file encrypted with a password (its
# "EncryptedPackage" stream holds the real DOCX).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_HTML_START = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b",
    re.IGNORECASE | re.DOTALL,
)
_TEXT_FORMATS = frozenset({DocumentFormat.HTML, DocumentFormat.MARKDOWN, DocumentFormat.TEXT})
# Control characters that text never holds (tab, line feed, form feed and carriage return it may).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def media_type_of(document_format: DocumentFormat) -> str:
    return _MEDIA_TYPE_OF[document_format]


def media_type_essence(content_type: str) -> str:
    """A Content-Type without its parameters, in lower case (RFC 9110 8.3.1: both are
    case-insensitive): "Text/HTML; charset=utf-8" -> "text/html"."""
    return content_type.split(";", 1)[0].strip().lower()


def document_format_of(content_type: str) -> DocumentFormat | None:
    """The format a Content-Type names, parameters and case aside; None for any other type."""
    return MEDIA_TYPES.get(media_type_essence(content_type))


def parse_media_type(content_type: str) -> DocumentFormat:
    """The format a Content-Type names ("text/html; charset=utf-8" is HTML); unsupported otherwise."""
    document_format = document_format_of(content_type)
    if document_format is None:
        raise DocumentRejected(
            "unsupported_document_type",
            f"Content-Type {media_type_essence(content_type) or '(none)'!r} is not a supported "
            f"document type; send one of: {', '.join(MEDIA_TYPES)}.",
        )
    return document_format


def sniff(data: bytes) -> DocumentFormat:
    """The format of the bytes: PDF, DOCX, HTML or (UTF-8) text; Markdown only ever by declaration."""
    if not data:
        raise DocumentRejected("empty_document", "The document is empty (0 bytes).")
    head = data[:1024]
    if _is_pdf(head):
        return DocumentFormat.PDF
    if data.startswith(_ZIP_MAGIC):
        return _sniff_zip(data)
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise DocumentRejected(
                "encrypted_document",
                "The Word document is protected with a password; remove the password and send it again.",
            )
        raise DocumentRejected(
            "unsupported_document_type",
            "This is a legacy Office file (.doc); save it as .docx or PDF and send it again.",
        )
    if _HTML_START.match(head):
        return DocumentFormat.HTML
    if _is_text(data):
        return DocumentFormat.TEXT
    raise DocumentRejected(
        "unsupported_document_type",
        "The document is neither PDF, DOCX, HTML nor UTF-8 text.",
    )


def resolve(data: bytes, declared: DocumentFormat | None) -> DocumentFormat:
    """The format to read the bytes as: the sniffed one, which must agree with the declared one."""
    sniffed = sniff(data)
    if sniffed in _TEXT_FORMATS and not data.strip(b" \t\r\n\f\v\xef\xbb\xbf"):
        raise DocumentRejected("empty_document", "The document holds only white space.")
    if declared is None or declared == sniffed:
        return sniffed
    # Text in bytes may be sent as Markdown, plain text or an HTML fragment (no <html> element);
    # a whole HTML page, a PDF or a Word file must be declared as what it is.
    if sniffed == DocumentFormat.TEXT and declared in _TEXT_FORMATS:
        return declared
    raise DocumentRejected(
        "document_type_mismatch",
        f"The document was declared as {media_type_of(declared)} but its bytes are "
        f"{_DESCRIPTIONS[sniffed]}; send it with Content-Type {media_type_of(sniffed)}.",
    )


def check_declared(data: bytes, media_type: str) -> DocumentFormat:
    """The document's format if the bytes agree with the Content-Type; DocumentRejected otherwise."""
    return resolve(data, parse_media_type(media_type))


_DESCRIPTIONS = {
    DocumentFormat.PDF: "a PDF",
    DocumentFormat.DOCX: "a Word (DOCX) document",
    DocumentFormat.HTML: "an HTML page",
    DocumentFormat.MARKDOWN: "Markdown",
    DocumentFormat.TEXT: "text",
}


def _is_pdf(head: bytes) -> bool:
    # Readers accept "%PDF-" after some junk; text that merely mentions it is not a PDF.
    at = head.find(_PDF_MAGIC)
    return at == 0 or (at > 0 and (not head[:at].strip() or bool(_BINARY_BYTES.search(head, 0, at))))


def _sniff_zip(data: bytes) -> DocumentFormat:
    # zipfile (with bz2 and lzma) loads only for a ZIP: a JSON submission never pays for it.
    import io
    import zipfile

    try:
        # Reads the central directory only: no member is decompressed here.
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        if b"word/" in data[:4096] or b"[Content_Types].xml" in data[:4096]:
            raise DocumentRejected(
                "corrupt_document", "The Word document is damaged or truncated (its ZIP cannot be read)."
            ) from None
        raise DocumentRejected(
            "unsupported_document_type", "The document is a ZIP archive that cannot be read."
        ) from None
    if "word/document.xml" in names:
        return DocumentFormat.DOCX
    raise DocumentRejected(
        "unsupported_document_type",
        "The document is a ZIP archive but not a Word (DOCX) document.",
    )


def _is_text(data: bytes) -> bool:
    if _BINARY_BYTES.search(data, 0, 65536):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
