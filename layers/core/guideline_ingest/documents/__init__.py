"""Documents: formats, extraction into text with a map of pages or sections, and quote finding."""

from guideline_ingest.documents.model import (
    Anchor,
    DocumentFormat,
    DocumentRejected,
    ExtractedDocument,
    Location,
)
from guideline_ingest.documents.quotes import SearchableText, Span, find_quote, normalize

__all__ = [
    "Anchor",
    "DocumentFormat",
    "DocumentRejected",
    "ExtractedDocument",
    "Location",
    "SearchableText",
    "Span",
    "find_quote",
    "normalize",
]
