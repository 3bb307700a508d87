"""Cutting a document into chunks that each fit one LLM call, along its structure.

A chunk is a span of the document's text: its offsets are kept, so a quote found in it is placed
in the document (and so on its page or under its section). Cuts fall where an anchor starts (a
page, a section), preferably where a top-level section starts; a part longer than the budget is
cut at a paragraph, a sentence, then a space. Tokens are estimated from characters: no tokenizer
in the package, and the budget only needs to be about right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guideline_ingest.documents import ExtractedDocument, Location
from guideline_ingest.documents.model import SECTION_SEPARATOR

# English prose averages about four characters a token (OpenAI's rule of thumb).
CHARS_PER_TOKEN = 4
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"[.!?][\"')\]]*\s"), re.compile(r"\s"))


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def top_section(location: Location) -> str | None:
    """The first part of a heading path: "2 Access > 2.1 Keys" -> "2 Access"."""
    return location.section.split(SECTION_SEPARATOR)[0] if location.section else None


def cut(document: ExtractedDocument, token_budget: int) -> list[Chunk]:
    """Chunks of at most `token_budget` estimated tokens, in document order; blank ones left out.
    A document within the budget is one chunk."""
    text = document.text
    limit = token_budget * CHARS_PER_TOKEN
    if len(text) <= limit:
        return [Chunk(0, 0, len(text))]
    starts = sorted({0, *(a.start for a in document.anchors if 0 < a.start < len(text))})
    parts = [
        piece
        for start, end in zip(starts, [*starts[1:], len(text)], strict=True)
        for piece in _split(text, start, end, limit)
    ]
    spans: list[tuple[int, int]] = []
    section = None
    for start, end in parts:
        part_section = top_section(document.location_at(start))
        if spans:
            first, last = spans[-1]
            # A new top-level section starts a new chunk unless the current one is still small,
            # so section summaries rarely mix sections and short sections do not cost a call each.
            new_section = part_section != section and last - first >= limit // 4
            if end - first <= limit and not new_section:
                spans[-1] = (first, end)
                continue
        spans.append((start, end))
        section = part_section
    kept = [(start, end) for start, end in spans if text[start:end].strip()]
    return [Chunk(index, start, end) for index, (start, end) in enumerate(kept)]


def _split(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    pieces = []
    while end - start > limit:
        cut_at = _break_before(text, start + limit // 2, start + limit) or start + limit
        pieces.append((start, cut_at))
        start = cut_at
    pieces.append((start, end))
    return pieces


def _break_before(text: str, low: int, high: int) -> int | None:
    """The last break of the strongest kind in text[low:high], as the offset after it."""
    for pattern in _BREAKS:
        found = [match.end() for match in pattern.finditer(text, low, high)]
        if found:
            return found[-1]
    return None
