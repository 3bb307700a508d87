"""The offline LLM, driven by the real openai client as the chain drives it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from typing import Literal

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, ConfigDict

from devstack.offline_llm import OfflineLLM, split_sentences
from guideline_ingest.models import Checklist

GUIDELINES = """# Security guidelines

1. All employees must enable multi-factor authentication on every account.
- Passwords must be at least 12 characters long. They should be rotated every 90 days.
* Do not share credentials over e-mail, e.g. in plain text.
Customer personal data shall never leave the EU region.
The team meets on Mondays to plan the week.
Staff may work from home in May, if their manager agrees.
"""
# Text as a PDF page gives it: sentences broken across lines, a running footer between them.
PDF_TEXT = (
    "The organization should conduct a risk assessment before each\r\n"
    "test begins. Testers must not\r\nexploit production systems without written approval.\r\n"
    "NIST SP 800-115 Page 3-2\r\nThe results of every test are recorded in the report.\r\n"
)


class ChunkItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    description: str
    priority: Literal["high", "medium", "low"]
    category: str
    source_quote: str


class ChunkExtraction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str
    items: list[ChunkItem]


@pytest.fixture(scope="module")
def llm():
    with OfflineLLM() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(llm):
    yield
    llm.set_faults(reset=True)
    llm.reset_stats()


@pytest.fixture
def client(llm):
    return OpenAI(base_url=llm.url, api_key="offline", max_retries=0)


def summarize(client: OpenAI, text: str, instructions: str = "Summarize in at most 200 words.") -> str:
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "system", "content": instructions}, {"role": "user", "content": text}],
    )
    return completion.choices[0].message.content


def checklist(client: OpenAI, guidelines: str = GUIDELINES, summary: str = "Be safe; you must.") -> list:
    completion = client.chat.completions.parse(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "Make a checklist."},
            {"role": "user", "content": f"SUMMARY:\n{summary}\n\nGUIDELINES:\n{guidelines}"},
        ],
        response_format=Checklist,
    )
    return completion.choices[0].message.parsed.items


def extract(client: OpenAI, chunk: str) -> ChunkExtraction:
    completion = client.chat.completions.parse(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "Extract the obligations; summarize in at most 30 words."},
            {"role": "user", "content": chunk},
        ],
        response_format=ChunkExtraction,
    )
    return completion.choices[0].message.parsed


def test_each_normative_sentence_of_the_guidelines_is_an_item_quoted_verbatim(client):
    items = checklist(client)

    assert [item.source_quote for item in items] == [
        "All employees must enable multi-factor authentication on every account.",
        "Passwords must be at least 12 characters long.",
        "They should be rotated every 90 days.",
        "Do not share credentials over e-mail, e.g. in plain text.",
        "Customer personal data shall never leave the EU region.",
        "Staff may work from home in May, if their manager agrees.",
    ]  # not the summary's sentence, not the meeting, not the list markers
    assert [item.priority for item in items] == ["high", "high", "medium", "high", "high", "low"]
    assert [item.id for item in items] == [1, 2, 3, 4, 5, 6]
    assert items[0].title == "Enable multi-factor authentication on every account"


def test_guidelines_without_a_normative_sentence_still_get_a_checklist(client):
    items = checklist(client, "The team meets on Mondays. Lunch is at noon in the hall.")

    assert [item.source_quote for item in items] == [
        "The team meets on Mondays.",
        "Lunch is at noon in the hall.",
    ]


def test_a_chunk_gives_its_summary_and_items_without_ids(client):
    extraction = extract(client, PDF_TEXT)

    assert [item.source_quote for item in extraction.items] == [
        "The organization should conduct a risk assessment before each\r\ntest begins.",
        "Testers must not\r\nexploit production systems without written approval.",
    ]  # verbatim across the line breaks of PDF text
    assert all(item.source_quote in PDF_TEXT for item in extraction.items)
    assert len(extraction.summary.split()) <= 30
    assert extract(client, "Nothing here is asked of anyone. It is a story.").items == []


def test_the_summary_is_sentences_of_the_text_within_the_words_asked_for(client):
    summary = summarize(client, GUIDELINES, "Write at most 25 words.")

    assert 0 < len(summary.split()) <= 25
    assert all(sentence in GUIDELINES for sentence in split_sentences(summary))
    assert summarize(client, "word " * 500, "Write at most 10 words.") == " ".join(["word"] * 10)


def test_answers_are_deterministic_and_usage_is_counted_from_characters(client):
    first = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 400}])
    second = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 400}])

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.prompt_tokens == 100
    assert first.model == "offline-llm"
    assert checklist(client) == checklist(client)


def test_no_other_schema_is_filled(client):
    class Plan(BaseModel):
        steps: list[str]

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.parse(
            model="m", messages=[{"role": "user", "content": "Plan."}], response_format=Plan
        )


def test_a_rate_limit_carries_retry_after_and_is_counted(client, llm):
    llm.set_faults({"429": 1, "retry_after": 2})

    with pytest.raises(openai.RateLimitError) as raised:
        summarize(client, GUIDELINES)

    assert raised.value.response.headers["retry-after"] == "2"
    assert llm.stats() == {"requests": 1, "by_status": {"429": 1}}


def test_status_faults_poison_and_reset(client, llm):
    llm.set_faults("500=1")
    with pytest.raises(openai.InternalServerError):
        summarize(client, GUIDELINES)

    llm.set_faults(**{"500": 0, "fail_matching": "EU region"})
    with pytest.raises(openai.InternalServerError):
        summarize(client, GUIDELINES)
    assert summarize(client, "Staff should be kind.")

    assert (
        llm.set_faults(reset=True)
        == llm.faults()
        == {"retry_after": 1.0, "latency_ms": 0.0, "fail_matching": None}
    )
    assert llm.stats()["by_status"] == {"500": 2, "200": 1}


def test_a_bad_fault_setting_fails_in_the_caller(llm):
    for bad in ({"teapot": 1}, {"429": 2}, {"latency_ms": -1}):
        with pytest.raises(ValueError):
            llm.set_faults(bad)
    with pytest.raises(ValueError):
        OfflineLLM(faults="429")


def test_the_latency_includes_the_answer(client):
    with OfflineLLM(latency_ms=300) as slow:
        started = time.perf_counter()
        summarize(OpenAI(base_url=slow.url, api_key="offline", max_retries=0), GUIDELINES)
        assert time.perf_counter() - started >= 0.3


def test_it_exits_when_its_parent_dies(tmp_path):
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import time
            from devstack.offline_llm import OfflineLLM
            print(OfflineLLM().start().url, flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    url = parent.stdout.readline().strip()
    urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=5).close()  # noqa: S310 (loopback)
    parent.kill()
    parent.wait()

    def answers() -> bool:
        try:
            urllib.request.urlopen(url.removesuffix("/v1") + "/_stats", timeout=1).close()  # noqa: S310
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    deadline = time.monotonic() + 10
    while answers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not answers()
