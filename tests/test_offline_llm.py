"""The offline LLM, driven by the real openai client as the process function drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Literal

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel

from devstack.offline_llm import (
    MAX_SUMMARY_CHARS,
    OfflineLLM,
    OfflineLLMProcess,
    SchemaFiller,
    category_of,
    obligations,
    parse_faults,
    split_prompt,
    split_sentences,
    summarize,
    title_of,
)

GUIDELINES = """# Security guidelines

1. All employees must enable multi-factor authentication on every account.
- Passwords must be at least 12 characters long. They should be rotated every 90 days.
* Do not share credentials over e-mail, e.g. in plain text.
Customer personal data shall never leave the EU region.
Code changes should be reviewed by a second engineer before release.
The team meets on Mondays to plan the week.
If a security incident occurs, the on-call engineer must notify the CISO within 1 hour.
Consider pairing with a colleague on complex changes.
"""


class ChecklistItem(BaseModel):
    id: int
    title: str
    description: str
    priority: Literal["high", "medium", "low"]
    category: str
    source_quote: str


class Checklist(BaseModel):
    items: list[ChecklistItem]


class Step(BaseModel):
    name: str
    weight: float
    done: bool


class Plan(BaseModel):
    count: int
    ratio: float
    approved: bool
    mode: Literal["fast", "safe"]
    steps: list[Step]
    tags: list[str]
    note: str | None
    parent: Step | None


@pytest.fixture(scope="module")
def llm():
    with OfflineLLM() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_faults(llm):
    yield
    llm.set_faults(reset=True)


@pytest.fixture
def client(llm):
    return OpenAI(base_url=llm.url, api_key="offline", max_retries=0)


def summarize_call(client: OpenAI, text: str = GUIDELINES):
    return client.chat.completions.create(
        model="gpt-test",
        temperature=0.2,
        messages=[{"role": "system", "content": "Summarize."}, {"role": "user", "content": text}],
    )


def checklist_call(client: OpenAI, summary: str, guidelines: str = GUIDELINES):
    return client.chat.completions.parse(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "Make a checklist."},
            {"role": "user", "content": f"SUMMARY:\n{summary}\n\nGUIDELINES:\n{guidelines}"},
        ],
        response_format=Checklist,
    )


def http(llm: OfflineLLM, method: str, path: str, body: object = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    url = llm.url.removesuffix("/v1") + path
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_summary_is_made_of_sentences_of_the_input(client):
    completion = summarize_call(client)

    summary = completion.choices[0].message.content
    assert summary
    assert all(sentence in GUIDELINES for sentence in split_sentences(summary))
    assert completion.object == "chat.completion"
    assert completion.model == "offline-llm"  # the model that answered, not the one asked for
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.refusal is None
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_checklist_parses_with_one_item_per_obligation_quoted_verbatim(client):
    summary = summarize_call(client).choices[0].message.content

    items = checklist_call(client, summary).choices[0].message.parsed.items

    assert [item.id for item in items] == list(range(1, len(items) + 1))
    assert all(item.source_quote in GUIDELINES for item in items)
    quotes = [item.source_quote for item in items]
    assert "The team meets on Mondays to plan the week." not in quotes
    assert "Consider pairing with a colleague on complex changes." not in quotes
    by_quote = {item.source_quote: item for item in items}
    mfa = by_quote["All employees must enable multi-factor authentication on every account."]
    assert (mfa.priority, mfa.category, mfa.title) == (
        "high",
        "security",
        "Enable multi-factor authentication on every account",
    )
    review = by_quote["Code changes should be reviewed by a second engineer before release."]
    assert (review.priority, review.category) == ("medium", "quality")
    assert by_quote["Customer personal data shall never leave the EU region."].category == "privacy"


def test_same_input_gives_the_same_output(client):
    first, second = summarize_call(client), summarize_call(client)
    assert first.choices[0].message.content == second.choices[0].message.content

    summary = first.choices[0].message.content
    assert checklist_call(client, summary).choices[0].message.parsed == (
        checklist_call(client, summary).choices[0].message.parsed
    )


def test_guidelines_without_obligations_fall_back_to_their_first_sentences(client):
    text = "The office opens at nine. Lunch is served at noon. Visitors sign in at the desk."
    items = checklist_call(client, "x", text).choices[0].message.parsed.items
    assert [item.source_quote for item in items] == split_sentences(text)
    assert {item.priority for item in items} == {"low"}


def test_checklist_is_capped(client):
    text = " ".join(f"Rule {n} says staff must file form {n}." for n in range(50))
    assert len(checklist_call(client, "x", text).choices[0].message.parsed.items) == 20


def test_a_generic_schema_gets_a_valid_value(client):
    completion = client.chat.completions.parse(
        model="gpt-test",
        messages=[{"role": "user", "content": GUIDELINES}],
        response_format=Plan,
    )
    plan = completion.choices[0].message.parsed
    assert isinstance(plan, Plan)
    assert plan.steps and plan.mode in ("fast", "safe")


def test_a_json_object_request_gets_json(client):
    completion = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": GUIDELINES}],
        response_format={"type": "json_object"},
    )
    answer = json.loads(completion.choices[0].message.content)
    assert answer["summary"] and answer["items"]


def test_rate_limit_fault_carries_retry_after(client, llm):
    llm.set_faults({"429": 1, "retry_after": 2})
    before = llm.stats()["by_status"].get("429", 0)

    with pytest.raises(openai.RateLimitError) as caught:
        summarize_call(client)

    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    assert llm.stats()["by_status"]["429"] == before + 1


def test_server_error_fault(client, llm):
    llm.set_faults("500=1")
    with pytest.raises(openai.InternalServerError):
        summarize_call(client)


def test_timeout_fault_hangs_until_the_client_gives_up(llm):
    llm.set_faults(timeout=1, hang_seconds=30)
    impatient = OpenAI(base_url=llm.url, api_key="offline", max_retries=0, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        summarize_call(impatient)
    assert llm.stats()["by_status"]["timeout"] >= 1


def test_a_hang_shorter_than_the_client_timeout_answers_504(client, llm):
    llm.set_faults(timeout=1, hang_seconds=0)
    with pytest.raises(openai.APIStatusError) as caught:
        summarize_call(client)
    assert caught.value.status_code == 504


def test_latency_includes_the_work_of_answering(client, llm, monkeypatch):
    """latency_ms is how long a call takes, as a hosted model's latency is measured: the answer is
    made while it runs. Slow work (here 150 ms) within a 300 ms latency does not add to it."""
    import devstack.offline_llm as offline_llm

    real_complete = offline_llm.complete

    def slow_complete(request, model):
        time.sleep(0.15)
        return real_complete(request, model)

    monkeypatch.setattr(offline_llm, "complete", slow_complete)
    llm.set_faults(latency_ms=300)
    started = time.perf_counter()
    summarize_call(client)
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 0.44  # 0.45 s or more if the work came after the latency


def test_the_latency_wait_reaches_its_deadline_and_ends_at_stop(llm):
    deadline = time.perf_counter() + 0.05
    llm._wait_until(deadline)
    assert time.perf_counter() >= deadline

    stopping = OfflineLLM(latency_ms=10_000).start()
    threading.Timer(0.1, stopping.stop).start()
    started = time.perf_counter()
    stopping._wait_until(started + 10)
    assert time.perf_counter() - started < 5


def test_fail_matching_poisons_only_matching_requests(client, llm):
    status, settings = http(llm, "POST", "/_faults", {"fail_matching": "POISON-42", "latency_ms": 1})
    assert status == 200
    assert settings["fail_matching"] == "POISON-42"

    with pytest.raises(openai.InternalServerError):
        summarize_call(client, GUIDELINES + "\nPOISON-42 must be handled.")
    assert summarize_call(client).choices[0].message.content


def test_control_endpoints(llm):
    assert http(llm, "POST", "/_faults", {"503": 0.5})[1]["503"] == 0.5
    assert http(llm, "POST", "/_faults", {"503": 0})[1].get("503") is None
    status, problem = http(llm, "POST", "/_faults", {"600": 1})
    assert status == 400 and problem["error"]["type"] == "invalid_request_error"
    assert http(llm, "POST", "/_faults", b"[1]")[0] == 400
    assert http(llm, "GET", "/_faults")[1]["retry_after"] == 1
    assert http(llm, "GET", "/_stats")[1]["requests"] >= 0
    assert http(llm, "DELETE", "/_stats")[1] == {"requests": 0, "by_status": {}}


def test_bad_requests_get_openai_style_errors(llm):
    chat = "/v1/chat/completions"
    assert http(llm, "POST", chat, b"{not json")[0] == 400
    assert http(llm, "POST", chat, [1])[0] == 400
    assert http(llm, "POST", chat, {"messages": []})[0] == 400
    streamed = {"messages": [{"role": "user", "content": "x"}], "stream": True}
    status, problem = http(llm, "POST", chat, streamed)
    assert status == 400 and "stream" in problem["error"]["message"]
    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}}
    body = {"messages": [{"role": "user", "content": "x"}], "response_format": bad_schema}
    assert http(llm, "POST", "/chat/completions", body)[0] == 400
    no_schema = {"type": "json_schema", "json_schema": {"name": "x"}}
    body = {"messages": [{"role": "user", "content": "x"}], "response_format": no_schema}
    assert http(llm, "POST", chat, body)[0] == 400
    assert http(llm, "GET", "/v1/nothing")[0] == 404


def test_content_parts_are_read(llm):
    parts = [{"type": "text", "text": "Staff must lock their screens."}, {"type": "image_url"}]
    status, completion = http(
        llm, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": parts}]}
    )
    assert status == 200
    assert completion["choices"][0]["message"]["content"] == "Staff must lock their screens."


def test_models_are_listed(client, llm):
    assert [model.id for model in client.models.list()] == ["offline-llm"]
    assert client.models.retrieve("offline-llm").owned_by == "offline"


def test_seeded_faults_are_reproducible():
    def statuses() -> list[int]:
        with OfflineLLM(faults="429=0.5", seed=7) as server:
            body = {"messages": [{"role": "user", "content": "Hello there."}]}
            return [http(server, "POST", "/v1/chat/completions", body)[0] for _ in range(12)]

    first = statuses()
    assert first == statuses()
    assert set(first) == {200, 429}


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OFFLINE_LLM_LATENCY_MS", "5")
    monkeypatch.setenv("OFFLINE_LLM_FAULTS", "429=0.25,timeout=0.05,retry_after=3,fail_matching=BAD")
    faults = OfflineLLM().faults
    assert faults == {
        "429": 0.25,
        "timeout": 0.05,
        "retry_after": 3,
        "latency_ms": 5,
        "hang_seconds": 30,
        "fail_matching": "BAD",
    }
    assert OfflineLLM(latency_ms=0, faults="").faults["latency_ms"] == 0


@pytest.mark.parametrize(
    "spec",
    [
        "429",
        "429=x",
        "429=2",
        "latency_ms=-1",
        "teapot=1",
        {"timeout": "nan"},
        {"retry_after": None},
        {"hang_seconds": "inf"},
    ],
)
def test_bad_fault_settings_are_refused(spec):
    with pytest.raises(ValueError):
        parse_faults(spec)


def test_verbose_logs_one_line_per_request():
    lines: list[str] = []
    with OfflineLLM(verbose=True, log=lines.append) as server:
        http(server, "GET", "/v1/models")
    assert len(lines) == 1 and lines[0].startswith("offline-llm GET /v1/models 200 ")


def test_stop_closes_idle_keep_alive_connections():
    server = OfflineLLM().start()
    client = OpenAI(base_url=server.url, api_key="offline", max_retries=0)
    client.models.list()
    server.stop()
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        client.models.list()


def test_url_is_usable_when_listening_on_every_interface():
    assert OfflineLLM(host="0.0.0.0", port=8787).url == "http://127.0.0.1:8787/v1"  # noqa: S104


def test_runs_as_a_module_until_terminated():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.offline_llm", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("offline llm: http://127.0.0.1:")
        url = line.removeprefix("offline llm: ")
        with urllib.request.urlopen(url + "/models", timeout=5) as response:  # noqa: S310 (loopback)
            assert json.loads(response.read())["data"][0]["id"] == "offline-llm"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.stdout.close()


# Pure functions: edges the HTTP tests do not reach.


def test_sentences_keep_abbreviations_and_drop_list_markers():
    text = "Intro line\n  a) Use TLS 1.3, e.g. for APIs. Rotate keys!\n## Heading\n"
    assert split_sentences(text) == ["Intro line", "Use TLS 1.3, e.g. for APIs.", "Rotate keys!", "Heading"]


def test_summary_edges():
    assert summarize("") == ""
    assert summarize("Short one.") == "Short one."
    padding = "care " * 60
    long = " ".join(f"Sentence {n} says employees must file report {n} with {padding}." for n in range(40))
    assert len(summarize(long)) <= MAX_SUMMARY_CHARS


@pytest.mark.parametrize(
    ("sentence", "title"),
    [
        ("They should be rotated every 90 days.", "Ensure they are rotated every 90 days"),
        ("Customer data shall never leave the EU.", "Ensure customer data never leaves the EU"),
        ("Staff must never push to main.", "Ensure staff never pushes to main"),
        ("Logs shall never be deleted.", "Ensure logs are never deleted"),
        ("If a breach occurs, affected records must be locked.", "Ensure affected records are locked"),
        ("The API must not be public.", "Ensure the API is not public"),
        ("Employees must not install software.", "Do not install software"),
        ("Never reuse passwords.", "Never reuse passwords"),
        ("Passwords are required.", "Passwords are required"),
        (
            "Teams should approve all expenses over $500 before they are paid to the vendor.",
            "Approve all expenses over $500 before they are paid",
        ),
    ],
)
def test_titles_are_short_imperatives(sentence, title):
    assert title_of(sentence) == title


def test_categories():
    assert category_of("Report incidents to the audit team.") == "process"
    assert category_of("The sky is blue.") == "general"


def test_split_prompt():
    assert split_prompt("SUMMARY:\nShort.\n\nGUIDELINES:\nBody must hold.") == ("Short.", "Body must hold.")
    assert split_prompt("no markers") == ("", "no markers")


def fill(schema: dict) -> object:
    records = obligations("Staff must lock screens. Staff should log out.")
    document = {"id": 1, "title": "Doc", "description": "Summary.", "priority": "medium"}
    return SchemaFiller(schema, records, document).fill()


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"const": 3}, 3),
        ({"type": ["null", "integer"], "minimum": 5}, 5),
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "integer", "maximum": -2}, -2),
        ({"type": "integer", "exclusiveMaximum": 0}, -1),
        ({"type": "integer", "minimum": 3, "multipleOf": 4}, 4),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.2}, 0.1),
        ({"type": "number", "minimum": 2}, 3),
        ({"type": "number", "exclusiveMaximum": 0}, -1),
        ({"type": "boolean"}, True),
        ({"type": "null"}, None),
        ({"anyOf": [{"type": "null"}]}, None),
        ({"type": "string", "format": "date"}, "2026-01-01"),
        ({"type": "string", "minLength": 9}, "value 1.."),
        ({"type": "string", "maxLength": 3}, "val"),
        ({"prefixItems": [{"type": "integer"}, {"type": "string"}]}, [1, "value 2"]),
        ({"type": "array", "items": {"enum": ["a"]}, "uniqueItems": True}, ["a"]),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 3}, [1, 2, 3]),
        ({"type": "array", "items": {"type": "string"}, "maxItems": 0}, []),
    ],
)
def test_schema_filler_honours_constraints(schema, expected):
    assert fill(schema) == expected


def test_schema_filler_merges_all_of_and_ref_siblings():
    schema = {
        "$defs": {"Base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
        "allOf": [
            {"$ref": "#/$defs/Base"},
            {"properties": {"priority": {"type": "integer"}, "title": {"type": "string"}}},
        ],
    }
    assert fill(schema) == {"id": 1, "priority": 2, "title": "Doc"}


def test_schema_filler_gives_each_record_its_row_and_nested_lists_one():
    schema = {
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {
                    "properties": {
                        "quote": {"type": "string"},
                        "notes": {"type": "array", "items": {"type": "object", "properties": {}}},
                    }
                },
            }
        },
    }
    assert fill(schema) == {
        "rows": [
            {"quote": "Staff must lock screens.", "notes": [{}]},
            {"quote": "Staff should log out.", "notes": [{}]},
        ]
    }


def test_schema_filler_pads_short_lists_and_refuses_what_it_cannot_fill():
    padded = {"type": "array", "items": {"type": "object", "properties": {"id": {}}}, "minItems": 3}
    assert fill(padded) == [{"id": "1"}, {"id": "2"}, {"id": "2"}]
    with pytest.raises(ValueError, match="enum"):
        fill({"enum": []})
    with pytest.raises(ValueError, match="local"):
        fill({"$ref": "other.json#/x"})
    with pytest.raises(ValueError, match="not a schema"):
        fill({"type": "object", "properties": {"x": 1}})
    with pytest.raises(ValueError, match="deeply"):
        fill({"$defs": {"Loop": {"$ref": "#/$defs/Loop"}}, "$ref": "#/$defs/Loop"})


def test_in_a_process_of_its_own_it_answers_and_is_driven_as_in_the_runner():
    server = OfflineLLMProcess(latency_ms=0, faults="500=1").start()
    try:
        client = OpenAI(base_url=server.url, api_key="offline", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": GUIDELINES}])
        server.set_faults({"500": 0}, latency_ms=50)
        assert server.faults["latency_ms"] == 50 and "500" not in server.faults
        started = time.perf_counter()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": GUIDELINES}])
        assert time.perf_counter() - started >= 0.05
        assert server.stats() == {"requests": 2, "by_status": {"500": 1, "200": 1}}
        server.reset_stats()
        assert server.stats()["requests"] == 0
        assert server.set_faults(reset=True)["500"] == 1  # the settings it started with
        with pytest.raises(ValueError, match="unknown fault"):
            server.set_faults(**{"teapot": 1})
    finally:
        server.stop()
    with pytest.raises(openai.APIConnectionError):
        client.models.list()


def test_a_bad_fault_setting_fails_in_the_parent_before_a_process_starts():
    with pytest.raises(ValueError, match="probability"):
        OfflineLLMProcess(faults="429=2")


def test_in_a_process_of_its_own_it_exits_when_its_parent_dies():
    """A runner killed with SIGKILL closes the server's stdin: the server must not outlive it."""
    server = OfflineLLMProcess().start()
    process = server._process
    process.stdin.close()  # what the kernel does for a parent that died
    assert process.wait(timeout=10) == 0
    server._process.stdout.close()
