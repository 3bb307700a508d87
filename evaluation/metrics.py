"""The scores of one finished job against a document's known statements. Pure functions on plain
data (the job as the API returns it, the ground truth as committed), so they are unit-tested alone.

Text is compared as words: NFKC, lower case, letters and digits only, with words broken at a line
end ("assess-\\nment", pdfium's U+FFFE, a soft hyphen) joined. A quote *covers* a statement when the
statement's words occur, in order and contiguous, among the quote's words."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from itertools import combinations

# The targets of issue 27.
RECALL_TARGET = 0.95
PAGE_TARGET = 0.95
DUPLICATES_TARGET = 0.02
PAGE_TOLERANCE = 1
# Two quotes at one place overlap when one ends with words the other starts with, at least half
# the shorter quote and this many words: a passage cut differently twice, not two neighbouring
# sentences that name the same thing ("... the security group." "The security group may ...").
OVERLAP_WORDS = 4

_BROKEN_WORD = re.compile(r"[-\ufffe\u00ad]\s*\n\s*|\u00ad")
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> tuple[str, ...]:
    text = _BROKEN_WORD.sub("", unicodedata.normalize("NFKC", text).replace("\r", ""))
    text = text.replace("\ufffe", "-")  # pdfium's hyphen within a line: "up-to\ufffedate"
    return tuple(_WORD.findall(text.lower()))


def covers(quote: tuple[str, ...], statement: tuple[str, ...]) -> bool:
    if not statement or len(statement) > len(quote):
        return False
    return f" {' '.join(statement)} " in f" {' '.join(quote)} "


@dataclass
class Score:
    document: str
    statements: int
    covered: int
    items: int
    located_items: int  # items that cover a statement with a known page
    pages_right: int
    duplicates: int
    similar: int  # items sharing most of a quote with another's: restatements, parallel duties
    dropped: int
    unverified: int  # returned quotes not found in the document's text
    tokens: int
    pages: int | None
    seconds: float
    missed: list[dict] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.covered / self.statements if self.statements else 1.0

    @property
    def page_accuracy(self) -> float | None:
        return self.pages_right / self.located_items if self.located_items else None

    @property
    def duplicate_share(self) -> float:
        return self.duplicates / self.items if self.items else 0.0

    @property
    def tokens_per_page(self) -> float | None:
        return self.tokens / self.pages if self.pages else None


def score(document: str, truth: dict, job: dict, text: str, seconds: float) -> Score:
    """`truth` is the committed ground truth ({"pages", "statements": [{"text", "page"}]}); `job`
    the finished job; `text` the document's own text, to check each returned quote against."""
    result = job.get("result") or {}
    items = result.get("checklist") or []
    quotes = [words(item.get("source_quote", "")) for item in items]
    statements = [(words(s["text"]), s.get("page")) for s in truth["statements"]]
    covered = [any(covers(quote, statement) for quote in quotes) for statement, _ in statements]
    located = right = 0
    for item, quote in zip(items, quotes, strict=True):
        pages = {loc.get("page") for loc in item.get("locations") or []} - {None}
        truths = [page for statement, page in statements if page is not None and covers(quote, statement)]
        if truths:
            located += 1
            right += all(any(abs(p - t) <= PAGE_TOLERANCE for p in pages) for t in truths)
    document_words = f" {' '.join(words(text))} "
    usage = job.get("usage") or {}
    return Score(
        document=document,
        statements=len(statements),
        covered=sum(covered),
        items=len(items),
        located_items=located,
        pages_right=right,
        duplicates=len(duplicates(quotes, [_places(item) for item in items])),
        similar=len(similar(quotes)),
        dropped=result.get("ungrounded_items_dropped", 0),
        unverified=sum(f" {' '.join(q)} " not in document_words for q in quotes),
        tokens=usage.get("input_tokens", 0) + usage.get("output_tokens", 0),
        pages=truth.get("pages"),
        seconds=seconds,
        missed=[s for s, hit in zip(truth["statements"], covered, strict=True) if not hit],
    )


def duplicates(quotes: list[tuple[str, ...]], places: list[tuple[set, set]]) -> set[int]:
    """Indexes of the items that quote a passage another item quotes too, at the same place: the
    same words, one inside the other, or one running on into the other (the duplicates a merge
    of chunks' items must catch). `places` holds each item's (pages, sections)."""
    found = set()
    for i, j in combinations(range(len(quotes)), 2):
        if _same_place(places[i], places[j]) and _overlap(quotes[i], quotes[j]):
            found |= {i, j}
    return found


def _places(item: dict) -> tuple[set, set]:
    locations = item.get("locations") or []
    return {loc.get("page") for loc in locations} - {None}, {loc.get("section") for loc in locations} - {None}


def _same_place(first: tuple[set, set], second: tuple[set, set]) -> bool:
    """Pages within PAGE_TOLERANCE (a quote across a page end), else the same section; an item
    that names neither could stand anywhere."""
    (pages, sections), (other_pages, other_sections) = first, second
    if pages and other_pages:
        return any(abs(p - q) <= PAGE_TOLERANCE for p in pages for q in other_pages)
    if sections and other_sections:
        return bool(sections & other_sections)
    return True


def _overlap(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    short, long = sorted((first, second), key=len)
    if not short or f" {' '.join(short)} " in f" {' '.join(long)} ":
        return True
    return any(
        first[-size:] == second[:size] or second[-size:] == first[:size]
        for size in range(max(OVERLAP_WORDS, -(-len(short) // 2)), len(short))
    )


def similar(quotes: list[tuple[str, ...]]) -> set[int]:
    """Indexes of the quotes that share a long run of words with another, wherever they stand: the
    longest run at least half the shorter quote (and OVERLAP_WORDS). Reported, not a target: it
    counts the document's own restatements (a summary, an appendix that repeats the rules), duties
    that share a stem ("the plan must require the sponsor to (i) ..., (ii) ...") and short quotes
    that share a phrase, none of which two chunks' items can be merged into."""
    owners: dict[tuple[str, ...], set[int]] = {}
    for index, quote in enumerate(quotes):
        for start in range(len(quote) - OVERLAP_WORDS + 1):
            owners.setdefault(quote[start : start + OVERLAP_WORDS], set()).add(index)
    pairs = {(i, j) for group in owners.values() for i in group for j in group if i < j}
    found = set()
    for i, j in pairs:
        run = SequenceMatcher(None, quotes[i], quotes[j], autojunk=False).find_longest_match().size
        if run * 2 >= min(len(quotes[i]), len(quotes[j])):
            found |= {i, j}
    return found


def total(scores: list[Score]) -> Score:
    pages = [s.pages for s in scores if s.pages]
    return Score(
        document="all",
        statements=sum(s.statements for s in scores),
        covered=sum(s.covered for s in scores),
        items=sum(s.items for s in scores),
        located_items=sum(s.located_items for s in scores),
        pages_right=sum(s.pages_right for s in scores),
        duplicates=sum(s.duplicates for s in scores),
        similar=sum(s.similar for s in scores),
        dropped=sum(s.dropped for s in scores),
        unverified=sum(s.unverified for s in scores),
        tokens=sum(s.tokens for s in scores if s.pages),
        pages=sum(pages) or None,
        seconds=sum(s.seconds for s in scores),
    )


def targets(score: Score) -> list[tuple[str, bool, str]]:
    """(target, met, the number) for each target of issue 27 that the evaluation measures."""
    accuracy = score.page_accuracy
    return [
        (f"recall >= {RECALL_TARGET:.0%}", score.recall >= RECALL_TARGET, f"{score.recall:.1%}"),
        (
            "every quote verified",
            score.dropped == 0 and score.unverified == 0,
            f"{score.dropped} dropped, {score.unverified} not in the document",
        ),
        (
            f"page within +-{PAGE_TOLERANCE} for >= {PAGE_TARGET:.0%} of items",
            accuracy is None or accuracy >= PAGE_TARGET,
            "no paged items" if accuracy is None else f"{accuracy:.1%} of {score.located_items}",
        ),
        (
            f"duplicates <= {DUPLICATES_TARGET:.0%} of items",
            score.duplicate_share <= DUPLICATES_TARGET,
            f"{score.duplicate_share:.1%} ({score.duplicates} of {score.items})",
        ),
    ]
