"""A document as the pipeline sees it: its text, and where in the original each part of it stands.

Extraction (one module per format) turns bytes into an ExtractedDocument; the chain reads `text`;
provenance comes from `location_at`, applied to where a verified quote occurs in `text`, never
from the model. The map is stored beside the text in PostgreSQL (`to_map` / `from_map`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum


class DocumentFormat(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TEXT = "text"


# Between the headings of a section path: "1 Scope > 1.2 Terms".
SECTION_SEPARATOR = " > "


class DocumentRejected(Exception):
    """A document the service cannot read; `kind` is the job's stable error.type (or the problem's)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Location:
    """Where a passage stands in the original: its 1-based page (PDF) and its heading path."""

    page: int | None = None
    section: str | None = None


@dataclass(frozen=True)
class Anchor:
    """From offset `start` of the text on (up to the next anchor), the text stands at `location`."""

    start: int
    location: Location


@dataclass(frozen=True)
class ExtractedDocument:
    text: str
    format: DocumentFormat
    anchors: tuple[Anchor, ...] = ()  # sorted by start
    page_count: int | None = None
    _starts: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", [anchor.start for anchor in self.anchors])

    @classmethod
    def plain(cls, text: str) -> ExtractedDocument:
        """Text sent as JSON: no pages and no headings to cite."""
        return cls(text=text, format=DocumentFormat.TEXT)

    def location_at(self, offset: int) -> Location:
        index = bisect.bisect_right(self._starts, offset) - 1
        return self.anchors[index].location if index >= 0 else Location()

    def to_map(self) -> dict:
        return {
            "format": self.format.value,
            "page_count": self.page_count,
            "anchors": [[a.start, a.location.page, a.location.section] for a in self.anchors],
        }

    @classmethod
    def from_map(cls, text: str, stored: dict | None) -> ExtractedDocument:
        if not stored:
            return cls.plain(text)
        anchors = tuple(
            Anchor(start, Location(page=page, section=section)) for start, page, section in stored["anchors"]
        )
        return cls(
            text=text,
            format=DocumentFormat(stored["format"]),
            anchors=anchors,
            page_count=stored.get("page_count"),
        )
