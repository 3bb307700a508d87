"""The evaluation's scores on synthetic jobs: no stack, no files."""

from __future__ import annotations

from evaluation.metrics import covers, duplicates, score, similar, targets, total, words

TEXT = (
    "Assessors should keep a log of their activities. Passwords must be at least 12 charac-\n"
    "ters long. The team meets on Mondays. Systems shall be patched within 30 days of a release."
)
TRUTH = {
    "pages": 4,
    "statements": [
        {"page": 1, "text": "Assessors should keep a log of"},
        {"page": 2, "text": "Passwords must be at least 12 characters long"},
        {"page": 4, "text": "Systems shall be patched within 30 days"},
    ],
}


def item(quote: str, *pages: int) -> dict:
    return {"source_quote": quote, "locations": [{"page": page, "section": None} for page in pages]}


def job(*items: dict, dropped: int = 0) -> dict:
    return {
        "status": "COMPLETED",
        "result": {"checklist": list(items), "ungrounded_items_dropped": dropped},
        "usage": {"input_tokens": 300, "output_tokens": 100},
    }


def test_words_join_what_a_line_end_broke_and_ignore_typography():
    assert words("charac-\nters ﬁle “Quo\u00adted”, charac\ufffe\r\nters up-to\ufffedate") == (
        "characters", "file", "quoted", "characters", "up", "to", "date",
    )  # fmt: skip


def test_a_quote_covers_a_statement_whose_words_it_holds_in_order():
    assert covers(words("Yes: passwords must be long, always."), words("passwords must be long"))
    assert not covers(words("passwords must not be long"), words("passwords must be long"))
    assert not covers(words("passwords"), words("passwords must"))


def test_a_perfect_job_meets_every_target():
    perfect = job(
        item("Assessors should keep a log of their activities.", 1),
        item("Passwords must be at least 12 charac-\nters long.", 2),
        item("Systems shall be patched within 30 days of a release.", 3),
    )

    result = score("doc.pdf", TRUTH, perfect, TEXT, seconds=2.0)

    assert (result.recall, result.page_accuracy, result.duplicate_share) == (1.0, 1.0, 0.0)
    assert result.tokens_per_page == 100
    assert all(met for _, met, _ in targets(result))


def test_missed_statements_wrong_pages_duplicates_and_dropped_quotes_are_counted():
    poor = job(
        item("Assessors should keep a log of their activities.", 1),
        item("Assessors should keep a log of their activities.", 1),  # the same quote twice
        item("Systems shall be patched within 30 days of a release.", 1),  # page 4: 3 pages off
        item("Quotes the model made up should never be found.", 2),
        dropped=2,
    )

    result = score("doc.pdf", TRUTH, poor, TEXT, seconds=1.0)

    assert (result.covered, result.statements) == (2, 3)
    assert [m["text"] for m in result.missed] == ["Passwords must be at least 12 characters long"]
    assert (result.pages_right, result.located_items) == (2, 3)
    assert (result.duplicates, result.items) == (2, 4)
    assert (result.dropped, result.unverified) == (2, 1)
    assert [met for _, met, _ in targets(result)] == [False, False, False, False]


def test_pages_are_right_within_one_and_any_location_counts():
    merged = job(item("Systems shall be patched within 30 days of a release.", 1, 5))
    near = job(item("Systems shall be patched within 30 days of a release.", 3))

    assert score("d", TRUTH, merged, TEXT, 0).pages_right == 1
    assert score("d", TRUTH, near, TEXT, 0).page_accuracy == 1.0


def test_a_document_without_pages_has_no_page_accuracy_and_passes_that_target():
    unpaged = {"pages": None, "statements": [{"page": None, "text": "Assessors should keep a log"}]}

    result = score("d.docx", unpaged, job(item("Assessors should keep a log of their activities.")), TEXT, 0)

    assert result.page_accuracy is None and result.tokens_per_page is None
    assert targets(result)[2][1] is True


def test_duplicates_are_one_passage_quoted_twice_at_one_place():
    quotes = [
        words("Assessors must keep logs daily."),
        words("must keep logs daily"),  # inside the first, on its page
        words("Operators shall rotate keys yearly and record each rotation in the register."),
        words("record each rotation in the register. Auditors check the register."),  # runs on
        words("The plan must require the sponsor to (i) protect the data it receives."),
        words("The plan must require the sponsor to (ii) report any incident it finds."),  # a stem
        words("Assessors must keep logs daily."),  # the first quote again, 20 pages on
    ]
    places = [
        ({3}, set()),
        ({3}, set()),
        ({5}, set()),
        ({6}, set()),
        ({9}, set()),
        ({9}, set()),
        ({23}, set()),
    ]

    assert duplicates(quotes, places) == {0, 1, 2, 3}


def test_without_pages_the_section_is_the_place_and_an_unplaced_item_could_be_anywhere():
    quotes = [words("Keys must be rotated."), words("Keys must be rotated."), words("Keys must be rotated.")]

    assert duplicates(quotes, [(set(), {"1 Keys"}), (set(), {"2 Logs"}), (set(), {"3 Other"})]) == set()
    assert duplicates(quotes[:2], [(set(), {"1 Keys"}), (set(), set())]) == {0, 1}


def test_neighbouring_sentences_that_name_one_thing_do_not_overlap():
    quotes = [
        words("Plans are written with the help of the organization's security group."),
        words("The organization's security group may validate test systems before they connect."),
    ]

    assert duplicates(quotes, [({50}, set()), ({50}, set())]) == set()


def test_similar_quotes_share_half_the_shorter_one_wherever_they_stand():
    quotes = [
        words("one two three four five six seven eight nine"),
        words("zero one two three four five six seven eight"),  # 8 of 9 words shared
        words("must keep logs daily"),
        words("Assessors must keep logs daily."),  # holds the short one
        words("Assessors should follow the assessment plan or ROE when they test the network."),
        words("Reports are filed as the assessment plan or ROE says, once a week, by the lead."),
    ]  # the last two share five words of a stock phrase, a third of either

    assert similar(quotes) == {0, 1, 2, 3}


def test_a_failed_job_scores_nothing_and_totals_add_up():
    failed = {"status": "FAILED", "error": {"type": "no_text_layer", "message": "scanned"}}
    first = score("a", TRUTH, failed, TEXT, 1.0)
    second = score("b", TRUTH, job(item("Assessors should keep a log of their activities.", 1)), TEXT, 2.0)

    both = total([first, second])

    assert (first.recall, first.items, first.tokens) == (0.0, 0, 0)
    assert (both.statements, both.covered, both.pages, both.seconds) == (6, 1, 8, 3.0)
    assert both.tokens_per_page == 400 / 8
