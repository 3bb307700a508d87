"""process_job and the chain against in-memory fakes: every outcome in logic/processing.py's
docstring, with a fake LLM and a fake clock (no sockets, no database, no sleeping)."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest

from guideline_ingest.dal.jobs import Claim
from guideline_ingest.documents import Anchor, DocumentFormat, DocumentRejected, ExtractedDocument, Location
from guideline_ingest.logic.chain import (
    CHECKLIST_INSTRUCTIONS,
    MERGE_INSTRUCTIONS,
    SUMMARY_INSTRUCTIONS,
    Chain,
)
from guideline_ingest.logic.processing import JobNotClaimable, process_job
from guideline_ingest.models import Checklist, ChunkExtraction, JobMessage
from guideline_ingest.queue import QueueUnavailable

from .llm_fakes import FakeLLM, rate_limited

SHORT = "Staff must wash hands before each patient. Gloves should be worn. Visitors may bring flowers."
FILLER = "This paragraph explains the background of the rule in plain words for the reader. " * 4


def long_document(pages: int = 12) -> ExtractedDocument:
    text, anchors = "", []
    for page in range(1, pages + 1):
        section = "1 Scope" if page <= pages // 2 else "2 Controls > 2.1 Keys"
        anchors.append(Anchor(len(text), Location(page=page, section=section)))
        text += f"Operators must check item {page} every day. {FILLER}\n\n"
    return ExtractedDocument(text=text, format=DocumentFormat.PDF, anchors=tuple(anchors), page_count=pages)


class FakeStore:
    """One job row and its stored chunks, with the guards of dal.jobs (this attempt only)."""

    def __init__(self, guidelines: str = SHORT, callback_url: str | None = None):
        self.event_id = uuid4()
        self.row = {"status": "PENDING", "attempts": 0, "retries": 0, "continuations": 0, "steps": []}
        self.row.update(progress=None, result=None, error=None, cache_key=None)
        self.guidelines, self.callback_url = guidelines, callback_url
        self.chunks: dict[int, dict] = {}
        self.cached: dict | None = None
        self.cancel_after_chunks: int | None = None

    def claim_job(self, event_id: UUID, lease_seconds: float, steps: list[dict]) -> Claim | None:
        if self.row["status"] != "PENDING":
            return None
        self.row.update(status="PROCESSING", attempts=self.row["attempts"] + 1, steps=steps)
        return Claim(
            "owner", self.guidelines, self.row["attempts"], self.callback_url, self.row["retries"], 1.0
        )

    def job_status(self, event_id: UUID) -> str | None:
        return self.row["status"]

    def find_cached_result(self, cache_key: str, owner: str | None) -> dict | None:
        return self.cached

    def _held(self, attempt: int) -> bool:
        return self.row["status"] == "PROCESSING" and self.row["attempts"] == attempt

    def record_progress(self, event_id, attempt, steps, progress) -> bool:
        if not self._held(attempt):
            return False
        self.row.update(steps=steps, progress=progress or self.row["progress"])
        return True

    def chunk_results(self, event_id: UUID) -> list[dict]:
        return [self.chunks[index] for index in sorted(self.chunks)]

    def save_chunk(self, event_id, attempt, chunk, steps, progress) -> bool:
        if self.cancel_after_chunks is not None and len(self.chunks) >= self.cancel_after_chunks:
            self.row["status"] = "CANCELLED"
        if not self._held(attempt):
            return False
        self.chunks[chunk["chunk_index"]] = chunk
        self.row.update(steps=steps, progress=progress)
        return True

    def complete_job(self, event_id, attempt, result, steps, cache_key, progress) -> bool:
        if not self._held(attempt):
            return False
        self.row.update(status="COMPLETED", result=result, steps=steps, cache_key=cache_key)
        self.row["progress"] = progress or self.row["progress"]
        return True

    def fail_job(self, event_id, attempt, error, steps) -> bool:
        if not self._held(attempt):
            return False
        self.row.update(status="FAILED", error=error, steps=steps)
        return True

    def release_job(self, event_id, attempt, steps, delay_seconds, error) -> bool:
        if not self._held(attempt):
            return False
        self.row.update(status="PENDING", steps=steps, retries=self.row["retries"] + 1)
        return True

    def continue_job(self, event_id, attempt, steps, progress) -> bool:
        if not self._held(attempt):
            return False
        self.row.update(status="PENDING", steps=steps, progress=progress)
        self.row["continuations"] += 1
        return True


class FakeQueue:
    def __init__(self):
        self.sent: list[tuple[str, UUID]] = []
        self.requeued: list[int] = []  # delays
        self.unavailable = False

    def enqueue_job(self, queue_url: str, event_id: UUID) -> None:
        self.sent.append((queue_url, event_id))

    def requeue_job(self, queue_url, event_id, receipt_handle, delay_seconds) -> None:
        if self.unavailable:
            raise QueueUnavailable("SQS is down")
        self.requeued.append(delay_seconds)


SETTINGS = SimpleNamespace(
    retry_budget_seconds=3600,
    retry_backoff_base_seconds=30,
    retry_backoff_cap_seconds=900,
    jobs_queue_url="jobs",
    webhook_queue_url="webhooks",
    cache_shared_across_api_keys=False,
)


def deliver(
    store, llm, document=None, *, queue=None, seconds=900.0, budget=200, parallelism=2, settings=SETTINGS
):
    queue = queue or FakeQueue()
    chain = Chain(
        llm=llm,
        model="gpt-4o-mini",
        max_call_seconds=60,
        deadline=llm.clock() + seconds,
        token_budget=budget,
        parallelism=parallelism,
        clock=llm.clock,
    )

    def load(claim: Claim) -> ExtractedDocument:
        if isinstance(document, Exception):
            raise document
        return document or ExtractedDocument.plain(claim.guidelines)

    process_job(
        JobMessage(event_id=store.event_id),
        chain=chain,
        lease_seconds=seconds,
        receipt_handle="receipt",
        settings=settings,
        store=store,
        queue=queue,
        load_document=load,
    )
    return queue


def extract_calls(llm: FakeLLM) -> list[dict]:
    return [call for call in llm.calls if call.get("response_format") is ChunkExtraction]


def test_a_short_document_takes_exactly_todays_two_calls():
    store, llm = FakeStore(), FakeLLM()

    deliver(store, llm, budget=8000)

    summarize, checklist = llm.calls
    assert summarize["messages"] == [
        {"role": "system", "content": SUMMARY_INSTRUCTIONS},
        {"role": "user", "content": SHORT},
    ]
    assert "response_format" not in summarize
    assert checklist["response_format"] is Checklist
    assert checklist["messages"][0]["content"] == CHECKLIST_INSTRUCTIONS
    assert checklist["messages"][1]["content"].startswith("SUMMARY:\n")
    assert checklist["messages"][1]["content"].endswith(f"\n\nGUIDELINES:\n{SHORT}")
    assert store.row["status"] == "COMPLETED"
    assert [(i["priority"], i["locations"]) for i in store.row["result"]["checklist"]] == [
        ("high", []),
        ("medium", []),
        ("low", []),
    ]
    assert store.row["progress"] == {"chunks_done": 1, "chunks_total": 1}
    assert [step["name"] for step in store.row["steps"]] == ["summarize", "checklist"]
    assert store.chunks == {}


def test_the_checklist_schema_leaves_ids_and_locations_to_the_pipeline():
    item = Checklist.model_json_schema()["$defs"]["ExtractedItem"]["properties"]
    assert set(item) == {"title", "description", "priority", "category", "source_quote"}


def test_a_duplicate_delivery_of_a_finished_job_runs_nothing():
    store, llm = FakeStore(), FakeLLM()
    deliver(store, llm)
    calls = len(llm.calls)

    deliver(store, llm)

    assert len(llm.calls) == calls and store.row["attempts"] == 1


def test_a_job_held_by_another_delivery_fails_the_record():
    store = FakeStore()
    store.row["status"] = "PROCESSING"

    with pytest.raises(JobNotClaimable):
        deliver(store, FakeLLM())


def test_the_same_input_reuses_the_cached_result_without_the_llm():
    store, llm = FakeStore(), FakeLLM()
    store.cached = {"summary": "s", "checklist": []}

    deliver(store, llm)

    assert llm.calls == [] and store.row["result"]["cached"] is True


def test_a_rejected_document_fails_the_job_with_its_kind_and_no_llm_call():
    store, llm = FakeStore(callback_url="https://example.com/hook"), FakeLLM()

    queue = deliver(store, llm, DocumentRejected("encrypted_document", "The PDF is encrypted."))

    assert store.row["status"] == "FAILED"
    assert store.row["error"] == {"type": "encrypted_document", "message": "The PDF is encrypted."}
    assert llm.calls == []
    assert queue.sent == [("webhooks", store.event_id)]


def test_a_long_document_is_mapped_per_chunk_and_reduced_with_pages_and_sections():
    document = long_document()
    store, llm = FakeStore(document.text), FakeLLM()

    deliver(store, llm, document)

    assert store.row["status"] == "COMPLETED"
    extracts = extract_calls(llm)
    total = store.row["progress"]["chunks_total"]
    assert total > 2 and len(extracts) == total
    # Each chunk stored, then each section's merged summary and the document's.
    assert sorted(store.chunks) == list(range(total + 3))
    # The user content of a map call is exactly its chunk's text; chunks tile the document.
    assert "".join(call["messages"][1]["content"] for call in extracts).strip() == document.text.strip()
    result = store.row["result"]
    pages = [item["locations"][0]["page"] for item in result["checklist"]]
    assert pages == list(range(1, 13))  # one item per page, in document order, page from the match
    assert all(item["priority"] == "high" for item in result["checklist"])
    assert result["checklist"][0]["locations"][0]["section"] == "1 Scope"
    assert [section["section"] for section in result["sections"]] == ["1 Scope", "2 Controls"]
    merges = [call for call in llm.calls if "response_format" not in call]
    assert merges and all("at most" in call["messages"][0]["content"] for call in merges)
    assert [step["name"] for step in store.row["steps"]] == ["extract", "summarize"]
    assert store.row["steps"][0]["input_tokens"] == 10 * total


def test_out_of_time_with_chunks_left_continues_at_once_and_the_next_delivery_resumes():
    document = long_document()
    store = FakeStore(document.text)
    # Each call takes 30 s of a 100 s invocation: a call starts only with 50 s left.
    llm = FakeLLM(seconds_per_call=30)

    queue = deliver(store, llm, document, seconds=100, parallelism=1)

    assert store.row["status"] == "PENDING" and queue.requeued == [0]
    assert store.row["retries"] == 0 and store.row["continuations"] == 1
    done = store.row["progress"]["chunks_done"]
    assert 0 < done < store.row["progress"]["chunks_total"] == 6

    while store.row["status"] == "PENDING":
        deliver(store, llm, document, seconds=100, parallelism=1)

    assert store.row["status"] == "COMPLETED" and store.row["retries"] == 0
    assert len(store.row["result"]["checklist"]) == 12
    assert set(llm.answered.values()) == {1}  # no chunk (nor anything else) asked twice
    assert len(extract_calls(llm)) == 6


def test_an_outage_in_the_middle_gives_the_job_back_and_no_finished_chunk_is_paid_twice():
    document = long_document()
    store, llm = FakeStore(document.text), FakeLLM()
    llm.fail = lambda request: rate_limited() if len(extract_calls(llm)) > 3 else None

    queue = deliver(store, llm, document)

    assert store.row["status"] == "PENDING" and store.row["retries"] == 1
    assert queue.requeued and queue.requeued[0] >= 30
    kept = len(store.chunks)
    assert 0 < kept < 6

    llm.fail = lambda request: None
    deliver(store, llm, document)

    assert store.row["status"] == "COMPLETED"
    assert max(llm.answered.values()) == 1
    assert len(llm.answered) == 6 + sum(1 for c in llm.calls if "response_format" not in c)


def merge_calls(llm: FakeLLM) -> list[dict]:
    return [call for call in llm.calls if "response_format" not in call]


def is_document_merge(request: dict) -> bool:
    """The last merge: the sections' summaries, each under its heading."""
    return "response_format" not in request and "1 Scope:\n" in request["messages"][1]["content"]


def crashed(store: FakeStore) -> None:
    """The worker died: its lease runs out and the job is PENDING again (as the sweeper leaves it)."""
    assert store.row["status"] == "PROCESSING"
    store.row["status"] = "PENDING"


def test_a_crash_before_the_document_merge_resumes_with_every_chunk_and_section_summary_stored():
    document = long_document()
    store, llm = FakeStore(document.text), FakeLLM()
    llm.fail = lambda request: RuntimeError("worker killed") if is_document_merge(request) else None

    with pytest.raises(RuntimeError):
        deliver(store, llm, document)
    crashed(store)
    paid = len(llm.answered)
    llm.fail = lambda request: None
    deliver(store, llm, document)

    assert store.row["status"] == "COMPLETED"
    assert max(llm.answered.values()) == 1  # no chunk nor section merge asked twice
    assert len(llm.answered) == paid + 1  # only the document's merge
    result = store.row["result"]
    assert [section["section"] for section in result["sections"]] == ["1 Scope", "2 Controls"]
    assert all(section["summary"] for section in result["sections"]) and result["summary"]
    # The document's summary is made from the section summaries, not from the chunks'.
    (document_merge,) = [call for call in llm.calls if is_document_merge(call)][-1:]
    for section in result["sections"]:
        assert section["summary"] in document_merge["messages"][1]["content"]


def test_a_crash_after_the_reduce_completes_the_job_without_the_llm_with_the_same_usage():
    document = long_document()
    store, llm = FakeStore(document.text), FakeLLM()
    complete = store.complete_job

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed before the result was stored")

    store.complete_job = crash
    with pytest.raises(RuntimeError):
        deliver(store, llm, document)
    crashed(store)
    store.complete_job = complete
    calls = len(llm.calls)
    deliver(store, llm, document)

    assert store.row["status"] == "COMPLETED"
    assert len(llm.calls) == calls  # every chunk and every merge, the document's too, was stored
    steps = {step["name"]: step for step in store.row["steps"]}
    assert steps["extract"]["input_tokens"] == 10 * len(extract_calls(llm))
    assert steps["summarize"]["input_tokens"] == 10 * len(merge_calls(llm)) == 30


def test_a_transient_failure_past_the_retry_budget_fails_the_job():
    store, llm = FakeStore(), FakeLLM()
    llm.fail = lambda request: rate_limited()
    spent = SimpleNamespace(**{**vars(SETTINGS), "retry_budget_seconds": 1})

    deliver(store, llm, settings=spent)

    assert store.row["status"] == "FAILED" and store.row["error"]["type"] == "llm_unavailable"
    assert "whole retry budget" in store.row["error"]["message"]


def test_a_refusal_fails_the_job():
    store, llm = FakeStore(), FakeLLM()

    def refuse(**request):
        llm.calls.append(request)
        return SimpleNamespace(
            model="m",
            choices=[SimpleNamespace(message=SimpleNamespace(refusal="no", content=None))],
            usage=None,
        )

    llm.chat.completions.create = refuse

    deliver(store, llm)

    assert store.row["error"]["type"] == "llm_refused"


def test_a_job_cancelled_while_its_chunks_run_stops_and_stores_nothing_more():
    document = long_document()
    store, llm = FakeStore(document.text), FakeLLM()
    store.cancel_after_chunks = 2

    deliver(store, llm, document, parallelism=1)

    assert store.row["status"] == "CANCELLED" and len(store.chunks) == 2
    assert len(extract_calls(llm)) == 3  # the call under way when the claim was lost


def test_a_failed_re_send_fails_the_record():
    store, llm = FakeStore(), FakeLLM()
    llm.fail = lambda request: rate_limited()
    queue = FakeQueue()
    queue.unavailable = True

    with pytest.raises(QueueUnavailable):
        deliver(store, llm, queue=queue)


def test_a_finished_job_with_a_callback_is_announced():
    store, llm = FakeStore(callback_url="https://example.com/hook"), FakeLLM()

    queue = deliver(store, llm)

    assert store.row["status"] == "COMPLETED" and queue.sent == [("webhooks", store.event_id)]


def test_the_merge_instructions_state_the_length():
    assert "at most 250 words" in MERGE_INSTRUCTIONS.format(words=250)
