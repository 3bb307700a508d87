"""The document a claimed job reads: extracted once, then read back from PostgreSQL.

process_job (logic/processing.py) takes `load_document` as its loader: a plain-text job is its
text; a document job's first attempt fetches the original from the documents bucket, extracts it
(documents/extraction.py) and stores the text and its map of pages or sections while the claim
holds, so a retry after an outage or a crash reads them instead of extracting again.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from guideline_ingest.config import ProcessSettings
from guideline_ingest.dal.jobs import Claim
from guideline_ingest.documents import ExtractedDocument
from guideline_ingest.documents.extraction import DocumentLimits, extract
from guideline_ingest.documents.formats import parse_media_type
from guideline_ingest.observability import logger

# What a DOCX's XML may inflate to while it is read (a zip bomb stops here): far above any real
# document of MaxDocumentChars characters, far below the process function's memory.
MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024


def document_limits(settings: ProcessSettings) -> DocumentLimits:
    return DocumentLimits(
        max_pages=settings.max_document_pages,
        max_chars=settings.max_document_chars,
        max_decompressed_bytes=MAX_DECOMPRESSED_BYTES,
    )


class ExtractionStore(Protocol):
    """guideline_ingest.dal.jobs"""

    def store_extraction(self, event_id: UUID, attempt: int, text: str, document_map: dict) -> bool: ...


class ObjectReader(Protocol):
    """guideline_ingest.objects"""

    def get_document(self, bucket: str, key: str) -> bytes: ...


def load_document(
    claim: Claim, *, store: ExtractionStore, objects: ObjectReader, bucket: str, limits: DocumentLimits
) -> ExtractedDocument:
    """The claimed job's document. Raises DocumentRejected (the job's error.type) for a file that
    cannot be read, and ObjectStoreUnavailable when S3 does not answer (the claim is retried)."""
    if claim.document_key is None:
        return ExtractedDocument.plain(claim.guidelines)
    if claim.document_map is not None:
        return ExtractedDocument.from_map(claim.guidelines, claim.document_map)
    data = objects.get_document(bucket, claim.document_key)
    declared = parse_media_type(claim.document_media_type) if claim.document_media_type else None
    document = extract(data, declared, limits)
    if not store.store_extraction(claim.event_id, claim.attempt, document.text, document.to_map()):
        # Cancelled, or taken over by a newer attempt: the chain's own guarded updates stop it.
        logger.info("extraction not stored: the claim no longer holds the job")
    logger.info(
        "document extracted",
        extra={
            "format": document.format.value,
            "pages": document.page_count,
            "characters": len(document.text),
        },
    )
    return document
