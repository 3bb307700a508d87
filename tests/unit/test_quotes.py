"""Quotes found in document text despite typography, with offsets into the original text."""

import pytest

from guideline_ingest.documents import (
    Anchor,
    DocumentFormat,
    ExtractedDocument,
    Location,
    SearchableText,
    Span,
    find_quote,
    normalize,
)


def found(quote: str, text: str) -> str | None:
    span = find_quote(quote, text)
    return None if span is None else text[span.start : span.end]


@pytest.mark.parametrize(
    ("text", "quote", "expected"),
    [
        # line breaks and runs of white space, as PDF text has them
        ("The operator shall\r\nrotate  keys\tyearly.", "shall rotate keys yearly",
         "shall\r\nrotate  keys\tyearly"),
        # curly quotes and apostrophes straightened
        ("the organization\u2019s \u201ccritical\u201d assets", "organization's \"critical\" assets",
         "organization\u2019s \u201ccritical\u201d assets"),
        # en and em dashes read as hyphens
        ("days 1\u20135 \u2014 at most", "days 1-5 - at most", "days 1\u20135 \u2014 at most"),
        # ligatures and full-width forms (NFKC)
        ("the \ufb01rst e\ufb00ective \uff53\uff54\uff45\uff50", "the first effective step",
         "the \ufb01rst e\ufb00ective \uff53\uff54\uff45\uff50"),
        # a word hyphenated at a line end, copied whole
        ("must be imple-\nmented at once", "must be implemented at once", "must be imple-\nmented at once"),
        # ... or copied with its hyphen and the line joined
        ("must be imple-\nmented at once", "must be imple-mented", "must be imple-\nmented"),
        # a compound word copied with or without its hyphen
        ("a risk-based approach", "a riskbased approach", "a risk-based approach"),
        ("a risk\u2010\nbased approach", "a risk-based approach", "a risk\u2010\nbased approach"),
        # pdfium's marks of a hyphen it joined at a line end
        ("a cost\ufffeeffective way", "a cost-effective way", "a cost\ufffeeffective way"),
        ("controls PE\ufffe5, PE-6", "controls PE-5, PE-6", "controls PE\ufffe5, PE-6"),
        ("up\x02to date", "up-to date", "up\x02to date"),
        # soft hyphens and zero-width spaces are invisible
        ("encryp\u00adtion is\u200b required", "encryption is required",
         "encryp\u00adtion is\u200b required"),
        # white space around the quote does not count
        ("Keys shall rotate.", "  Keys shall rotate.\n", "Keys shall rotate."),
    ],
)  # fmt: skip
def test_typography_does_not_hide_a_quote(text, quote, expected):
    assert found(quote, text) == expected


@pytest.mark.parametrize(
    ("text", "quote"),
    [
        ("The operator shall rotate keys.", "The operator should rotate keys."),
        ("The operator shall rotate keys.", "the operator shall rotate keys."),  # case counts
        ("The operator shall rotate keys.", "The operator shall rotate keys yearly."),
        ("The system 800-53", "The system 80053"),  # digits keep their hyphen
        ("Anything", ""),
        ("Anything", " \n\t"),
    ],
)
def test_a_quote_that_is_not_verbatim_is_not_found(text, quote):
    assert find_quote(quote, text) is None


def test_offsets_are_those_of_the_original_text():
    text = "Intro.\r\n\r\n  The \ufb01rm\u2019s staff  must\r\nlog   on.  Then more."
    span = find_quote("The firm's staff must log on.", text)
    assert span == Span(text.index("The"), text.index("on.") + 3)


def test_a_ligature_at_either_end_covers_the_whole_character():
    text = "x \ufb01 y \ufb01"
    assert find_quote("fi y fi", text) == Span(2, len(text))
    assert find_quote("i y f", text) == Span(2, len(text))


def test_find_from_an_offset_gives_the_next_occurrence():
    text = "Log access.\n\nLater: log access.\nAgain: Log\naccess."
    searchable = SearchableText(text)
    first = searchable.find("Log access.")
    second = searchable.find("Log access.", first.start + 1)
    assert (first.start, second.start) == (0, text.index("Log\naccess."))
    assert searchable.find("Log access.", second.start + 1) is None
    assert searchable.find("Log access.", second.start) == second
    # an offset inside white space that normalising removed
    later = text.index("access.\nAgain")
    assert searchable.find("access.", text.index("\n\nLater")) == Span(later, later + len("access."))


def test_one_searchable_text_answers_many_quotes():
    text = "\n".join(f"Rule {n}: the operator shall do task {n}." for n in range(500))
    searchable = SearchableText(text)
    for n in (0, 7, 250, 499):
        span = searchable.find(f"Rule {n}: the operator shall do task {n}.")
        assert text[span.start : span.end] == f"Rule {n}: the operator shall do task {n}."


def test_normalize_is_a_key_for_duplicates():
    assert normalize("  The \ufb01rm\u2019s  staff\nmust log\u2014on ") == normalize(
        "The firm's staff must log-on"
    )
    assert normalize("must be imple-\nmented") == normalize("must be implemented")
    assert normalize("Shall") != normalize("shall")


def test_a_match_names_its_page_or_section():
    text = "Page one says nothing.\n\nPage two: users shall sign in.\n\n3 Keys\n\nKeys should rotate."
    document = ExtractedDocument(
        text=text,
        format=DocumentFormat.PDF,
        anchors=(
            Anchor(0, Location(page=1)),
            Anchor(text.index("Page two"), Location(page=2)),
            Anchor(text.index("3 Keys"), Location(page=2, section="3 Keys")),
        ),
        page_count=2,
    )
    searchable = SearchableText(document.text)
    assert document.location_at(searchable.find("users shall sign in.").start) == Location(page=2)
    assert document.location_at(searchable.find("Keys should\nrotate.").start) == Location(2, "3 Keys")
    assert document.location_at(searchable.find("Page one").start) == Location(page=1)
