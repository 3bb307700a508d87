"""Cutting documents into chunks, and the reduce of their items: verified, merged, ordered, placed."""

from __future__ import annotations

from guideline_ingest.documents import Anchor, DocumentFormat, ExtractedDocument, Location, SearchableText
from guideline_ingest.documents.extraction import DocumentLimits, extract
from guideline_ingest.logic.chain import summary_words
from guideline_ingest.logic.chunking import CHARS_PER_TOKEN, Chunk, cut, top_section
from guideline_ingest.logic.merging import build_checklist, priority_of
from guideline_ingest.models import ExtractedItem


def pdf(pages: list[str], sections: list[str | None] | None = None) -> ExtractedDocument:
    text, anchors = "", []
    for number, page in enumerate(pages, start=1):
        section = sections[number - 1] if sections else None
        anchors.append(Anchor(len(text), Location(page=number, section=section)))
        text += page
    return ExtractedDocument(
        text=text, format=DocumentFormat.PDF, anchors=tuple(anchors), page_count=len(pages)
    )


def item(quote: str, priority: str = "low") -> ExtractedItem:
    return ExtractedItem(title="t", description="d", priority=priority, category="c", source_quote=quote)


def test_a_document_within_the_budget_is_one_chunk():
    document = pdf(["One page. " * 10, "Two. " * 10])
    assert cut(document, 1000) == [Chunk(0, 0, len(document.text))]


def test_chunks_fall_on_page_boundaries_within_the_budget_and_tile_the_text():
    page = "A sentence of the page. " * 10  # 240 characters
    document = pdf([page] * 10)

    chunks = cut(document, 150)  # 600 characters: two pages each

    assert [(c.start, c.end) for c in chunks] == [(i * 480, (i + 1) * 480) for i in range(5)]
    assert all((c.end - c.start) <= 150 * CHARS_PER_TOKEN for c in chunks)


def test_a_new_top_level_section_starts_a_new_chunk():
    page = "A sentence of the page. " * 10
    document = pdf([page] * 6, ["1 Scope", "1 Scope > 1.1 Terms", "2 Rules", "2 Rules", "2 Rules", "2 Rules"])

    chunks = cut(document, 300)  # room for five pages, but the section changes after two

    assert [(top_section(document.location_at(c.start))) for c in chunks] == ["1 Scope", "2 Rules"]


def test_the_top_section_of_an_extracted_heading_path_is_its_first_heading():
    markdown = b"# 2 Access\n\nIntro.\n\n## 2.1 Keys\n\nKeys must rotate.\n"
    document = extract(markdown, DocumentFormat.MARKDOWN, DocumentLimits(10, 10_000, 10_000))

    location = document.location_at(document.text.index("Keys must"))

    assert location.section == "2 Access > 2.1 Keys"
    assert top_section(location) == "2 Access"


def test_a_page_longer_than_the_budget_is_cut_at_sentences():
    document = pdf(["Staff must wash hands. " * 100, "End."])

    chunks = cut(document, 100)

    assert all(c.end - c.start <= 400 for c in chunks)
    assert all(document.text[c.end - 2 : c.end] == ". " for c in chunks[:-2])
    assert "".join(document.text[c.start : c.end] for c in chunks) == document.text


def test_priority_follows_the_strongest_normative_word():
    assert priority_of("Keys SHALL be rotated.", "low") == "high"
    assert priority_of("A review is required yearly.", "low") == "high"
    assert priority_of("Logs should be kept; staff may help.", "low") == "medium"
    assert priority_of("It is recommended to test.", "high") == "medium"
    assert priority_of("Staff may leave early.", "high") == "low"
    assert priority_of("Nothing normative here.", "medium") == "medium"


def test_quotes_are_verified_in_their_chunk_merged_across_chunks_and_placed_by_the_match():
    document = pdf(
        [
            "Staff must wash hands. Gloves should be worn.\n",
            "Passwords must be rotated every\n90 days. Staff must wash hands.\n",
        ],
        ["1 Hygiene", "2 Access"],
    )
    first = Chunk(0, 0, document.anchors[1].start)
    second = Chunk(1, document.anchors[1].start, len(document.text))

    checklist, dropped = build_checklist(
        document,
        SearchableText(document.text),
        [
            (first, [item("Gloves should be worn."), item("Staff must wash hands."), item("Invented.")]),
            # Typography differs from the text; the first chunk's sentence is not in this chunk's text.
            (second, [item("Passwords must be rotated every 90 days."), item("Staff must wash hands.")]),
            (second, [item("Gloves should be worn.")]),
        ],
    )

    assert dropped == 2
    assert [(i.id, i.source_quote, i.priority) for i in checklist] == [
        (1, "Staff must wash hands.", "high"),
        (2, "Gloves should be worn.", "medium"),
        (3, "Passwords must be rotated every 90 days.", "high"),
    ]
    assert [(loc.page, loc.section) for loc in checklist[0].locations] == [(1, "1 Hygiene"), (2, "2 Access")]
    assert [(loc.page, loc.section) for loc in checklist[2].locations] == [(2, "2 Access")]


def test_overlapping_quotes_are_one_item():
    document = ExtractedDocument.plain("Staff must wash hands before every patient contact.")
    whole = Chunk(0, 0, len(document.text))

    checklist, dropped = build_checklist(
        document,
        SearchableText(document.text),
        [(whole, [item("Staff must wash hands"), item("wash hands before every patient contact.")])],
    )

    assert dropped == 0 and len(checklist) == 1 and checklist[0].locations == []


def test_the_summary_grows_with_the_document():
    assert summary_words(2_000) == 200
    assert summary_words(300 * 2_500) > 350
