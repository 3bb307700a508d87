"""Identical inputs reuse the stored result, within an API key unless sharing is enabled."""

from conftest import event, http, job, sqs_event, submitted

TEXT = "Staff must wear badges.\nVisitors must sign in."


def submitted_as(invoke, guidelines: str, api_key_id: str) -> str:
    data = event("submit.json")
    data["body"] = '{"guidelines": ' + __import__("json").dumps(guidelines) + "}"
    data["requestContext"]["identity"]["apiKeyId"] = api_key_id
    return http(invoke("submit", data)).body["event_id"]


def test_the_same_text_up_to_whitespace_is_served_from_the_cache(invoke, queues, database, offline_llm):
    first = submitted(invoke, guidelines=TEXT)
    invoke("process", sqs_event(first))
    second = submitted(invoke, guidelines="  Staff must   wear badges. Visitors must sign in.\n")

    invoke("process", sqs_event(second))

    assert offline_llm.stats()["requests"] == 2  # only the first job asked the LLM
    original, reused = job(database, first)["result"], job(database, second)["result"]
    assert reused["cached"] is True and original["cached"] is False
    assert reused["checklist"] == original["checklist"] and reused["summary"] == original["summary"]
    read = http(
        invoke("status", event("status.json", path=f"/jobs/{second}", pathParameters={"event_id": second}))
    )
    assert read.body["usage"]["input_tokens"] == 0 and read.body["usage"]["output_tokens"] == 0
    assert [s["status"] for s in read.body["steps"]] == ["COMPLETED", "COMPLETED"]


def test_other_text_is_not_served_from_the_cache(invoke, queues, database, offline_llm):
    invoke("process", sqs_event(submitted(invoke, guidelines=TEXT)))
    other = submitted(invoke, guidelines=TEXT + " Doors must be locked.")

    invoke("process", sqs_event(other))

    assert job(database, other)["result"]["cached"] is False
    assert offline_llm.stats()["requests"] == 4


def test_the_cache_never_crosses_api_keys_unless_enabled(
    invoke, queues, database, offline_llm, functions, monkeypatch
):
    invoke("process", sqs_event(submitted_as(invoke, TEXT, "key-a")))
    theirs = submitted_as(invoke, TEXT, "key-b")

    invoke("process", sqs_event(theirs))
    assert job(database, theirs)["result"]["cached"] is False

    process = functions["process"]
    monkeypatch.setattr(
        process, "settings", process.settings.model_copy(update={"cache_shared_across_api_keys": True})
    )
    shared = submitted_as(invoke, TEXT, "key-c")
    invoke("process", sqs_event(shared))
    assert job(database, shared)["result"]["cached"] is True
