"""A long document through the process function in-process: the real openai client against the
offline LLM, real PostgreSQL and SQS. An outage in the middle of the document, or in its reduce: on
recovery the job completes and no chunk nor merge is paid for twice."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from devstack.esm import lambda_sqs_record
from guideline_ingest.logic.chain import MERGE_INSTRUCTIONS

from conftest import job, sqs_event, submitted

CLAUSES = 40
# Each clause about 500 characters: with a budget of 500 tokens (2,000 characters), 10 chunks.
FILLER = "The background of this clause is explained here in plain words for the reader. " * 5
GUIDELINES = "\n\n".join(
    f"Clause {n}: operators must check device {n} daily. {FILLER}" for n in range(CLAUSES)
)


class CountingClient:
    """The function's openai client, counting the chunk extractions it got an answer to, by chunk."""

    def __init__(self, client):
        self.answered = Counter()
        self._parse = client.chat.completions.parse
        self.chat = SimpleNamespace(
            completions=SimpleNamespace(create=client.chat.completions.create, parse=self.parse)
        )

    def parse(self, **request):
        completion = self._parse(**request)
        if request["response_format"].__name__ == "ChunkExtraction":
            self.answered[request["messages"][1]["content"]] += 1
        return completion


@pytest.fixture
def chunked(functions, queues, monkeypatch):
    """The process function cuts at 500 tokens, counts its calls per chunk and gives jobs back to
    this test's jobs queue."""
    module = functions["process"]
    update = {"chunk_token_budget": 500, "chunk_parallelism": 2, "jobs_queue_url": queues.jobs}
    monkeypatch.setattr(module, "settings", module.settings.model_copy(update=update))
    monkeypatch.setattr(module, "llm", CountingClient(module.llm))
    return module.llm


def delivered(queues) -> dict:
    """The submit's message as the event source mapping delivers it: a real receipt handle."""
    [message] = queues.receive()
    return {"Records": [lambda_sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:jobs")]}


def chunk_rows(database, event_id: str) -> list[dict]:
    return database.execute(
        "SELECT chunk_index, input_tokens FROM job_chunks WHERE event_id = %s ORDER BY chunk_index",
        (event_id,),
    ).fetchall()


def test_an_llm_outage_mid_document_resumes_and_pays_no_chunk_twice(
    invoke, queues, chunked, database, offline_llm
):
    event_id = submitted(invoke, GUIDELINES)
    # Every call holding clause 25 fails: the chunks before it (and those under way) are stored.
    offline_llm.set_faults(fail_matching="device 25 daily")

    result = invoke("process", delivered(queues))

    assert result == {"batchItemFailures": []}
    row = job(database, event_id)
    assert row["status"] == "PENDING" and row["retries"] == 1
    kept = len(chunk_rows(database, event_id))
    total = row["progress"]["chunks_total"]
    assert 0 < kept < total and row["progress"]["chunks_done"] == kept
    first = offline_llm.stats()["by_status"]
    assert first.get("200") == kept  # every answer paid for was stored

    offline_llm.set_faults(reset=True)
    offline_llm.reset_stats()
    invoke("process", sqs_event(event_id))

    row = job(database, event_id)
    assert row["status"] == "COMPLETED" and row["progress"] == {"chunks_done": total, "chunks_total": total}
    # Each chunk answered exactly once over both deliveries: nothing stored was asked again.
    assert len(chunked.answered) == total and set(chunked.answered.values()) == {1}
    assert offline_llm.stats()["by_status"].keys() == {"200"}
    # The chunks, then the merge of their summaries (plain text: no sections).
    assert [r["chunk_index"] for r in chunk_rows(database, event_id)][:total] == list(range(total))
    quotes = [item["source_quote"] for item in row["result"]["checklist"]]
    assert all(f"device {n} daily" in " ".join(quotes) for n in range(CLAUSES))
    assert row["steps"][0]["name"] == "extract"
    assert row["steps"][0]["input_tokens"] == sum(
        r["input_tokens"] for r in chunk_rows(database, event_id)[:total]
    )


def test_an_llm_outage_in_the_reduce_resumes_with_every_chunk_stored(
    invoke, queues, chunked, database, offline_llm
):
    event_id = submitted(invoke, GUIDELINES)
    # Every merge of summaries fails (its instructions are in the request); the map does not.
    offline_llm.set_faults(fail_matching=MERGE_INSTRUCTIONS[:40])

    assert invoke("process", delivered(queues)) == {"batchItemFailures": []}

    row = job(database, event_id)
    total = row["progress"]["chunks_total"]
    assert row["status"] == "PENDING" and row["retries"] == 1
    assert len(chunk_rows(database, event_id)) == total == row["progress"]["chunks_done"]

    offline_llm.set_faults(reset=True)
    offline_llm.reset_stats()
    invoke("process", sqs_event(event_id))

    row = job(database, event_id)
    assert row["status"] == "COMPLETED" and row["result"]["summary"]
    assert len(chunked.answered) == total and set(chunked.answered.values()) == {1}
    # The second delivery asked only for the merges, and stored each after the chunks.
    merges = offline_llm.stats()["requests"]
    assert merges >= 1 and len(chunk_rows(database, event_id)) == total + merges
    summarize = row["steps"][1]
    assert summarize["name"] == "summarize" and summarize["input_tokens"] == sum(
        r["input_tokens"] for r in chunk_rows(database, event_id)[total:]
    )


def test_a_document_longer_than_one_invocation_continues_in_its_next_deliveries(
    invoke, queues, chunked, database, offline_llm
):
    short = "\n\n".join(GUIDELINES.split("\n\n")[:20])  # 5 chunks
    event_id = submitted(invoke, short)
    # 8 s invocations (a 3 s deadline) and 1 s calls: about two chunks a delivery.
    offline_llm.set_faults(latency_ms=1000)

    deliveries = 0
    while job(database, event_id)["status"] == "PENDING" and deliveries < 10:
        assert invoke("process", delivered(queues), timeout_ms=8000) == {"batchItemFailures": []}
        deliveries += 1

    row = job(database, event_id)
    assert row["status"] == "COMPLETED" and row["retries"] == 0
    assert row["continuations"] == deliveries - 1 >= 2
    assert set(chunked.answered.values()) == {1} and len(chunked.answered) == 5
    assert row["progress"] == {"chunks_done": 5, "chunks_total": 5}
