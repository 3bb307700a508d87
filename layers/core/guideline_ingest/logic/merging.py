"""The checklist of a document from the items its chunks gave: verified, merged, ordered, placed.

Every quote is looked up in the text of the chunk it came from (typography-tolerant, offsets into
the original); a quote found nowhere is dropped and counted. Items whose quotes are the same, or
overlap, are one item with every place it stands. Items follow the document, and their priority
comes from the quote's own normative words, not from the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from guideline_ingest.documents import ExtractedDocument, SearchableText, Span, normalize
from guideline_ingest.logic.chunking import Chunk
from guideline_ingest.models import ChecklistItem, ExtractedItem, Priority, SourceLocation

_STRENGTHS: tuple[tuple[Priority, re.Pattern], ...] = (
    ("high", re.compile(r"\b(?:must|shall|required?|requires)\b", re.I)),
    ("medium", re.compile(r"\b(?:should|recommended|recommends?)\b", re.I)),
    ("low", re.compile(r"\bmay\b", re.I)),
)
_RANK = {"high": 0, "medium": 1, "low": 2}


def priority_of(quote: str, fallback: Priority) -> Priority:
    """must, shall, required: high; should, recommended: medium; may: low; the strongest word
    decides. A quote with none of them keeps the model's judgement."""
    for priority, words in _STRENGTHS:
        if words.search(quote):
            return priority
    return fallback


@dataclass
class _Placed:
    item: ExtractedItem
    spans: list[Span] = field(default_factory=list)
    end: int = 0


def build_checklist(
    document: ExtractedDocument,
    searchable: SearchableText,
    extracted: list[tuple[Chunk, list[ExtractedItem]]],
) -> tuple[list[ChecklistItem], int]:
    """The result's items, and how many of the model's items were dropped as ungrounded."""
    found: list[tuple[Span, ExtractedItem]] = []
    dropped = 0
    for chunk, items in extracted:
        for item in items:
            span = searchable.find(item.source_quote, chunk.start)
            if span is None or span.end > chunk.end:
                dropped += 1
                continue
            found.append((span, item))
    found.sort(key=lambda placed: (placed[0].start, placed[0].end))
    merged: list[_Placed] = []
    by_quote: dict[str, _Placed] = {}
    for span, item in found:
        key = normalize(item.source_quote)
        target = by_quote.get(key)
        if target is None and merged and span.start < merged[-1].end:
            target = merged[-1]
        if target is None:
            target = _Placed(item)
            merged.append(target)
        elif _RANK[priority_of(item.source_quote, item.priority)] < _RANK[_priority(target.item)]:
            target.item = item  # the stronger wording of the duty speaks for it
        target.spans.append(span)
        target.end = max(target.end, span.end)
        by_quote.setdefault(key, target)
    checklist = [
        ChecklistItem(
            id=number,
            title=placed.item.title,
            description=placed.item.description,
            priority=_priority(placed.item),
            category=placed.item.category,
            source_quote=placed.item.source_quote,
            locations=_locations(document, placed.spans),
        )
        for number, placed in enumerate(merged, start=1)
    ]
    return checklist, dropped


def _priority(item: ExtractedItem) -> Priority:
    return priority_of(item.source_quote, item.priority)


def _locations(document: ExtractedDocument, spans: list[Span]) -> list[SourceLocation]:
    locations: list[SourceLocation] = []
    for span in sorted(spans, key=lambda span: span.start):
        where = document.location_at(span.start)
        location = SourceLocation(page=where.page, section=where.section)
        # Plain text has neither page nor section: nothing to cite.
        if (where.page or where.section) and location not in locations:
            locations.append(location)
    return locations
