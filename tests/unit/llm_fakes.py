"""A fake LLM for the chain: the openai client's two methods the chain calls, answered from the
request alone (every normative sentence of the text becomes an item, quoted verbatim), with the
calls recorded and failures scripted. No sockets."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

import httpx2
import openai

NORMATIVE = re.compile(r"\b(must|shall|required|should|recommended|may)\b", re.I)
SENTENCE = re.compile(r"[^.!?\n]+[.!?]")


def rate_limited(retry_after: str = "60") -> openai.RateLimitError:
    """A 429 whose Retry-After is longer than the in-call retry waits: the job is given back."""
    request = httpx2.Request("POST", "http://llm.invalid/v1/chat/completions")
    response = httpx2.Response(429, headers={"retry-after": retry_after}, request=request)
    return openai.RateLimitError("rate limited", response=response, body=None)


class FakeLLM:
    def __init__(self, clock: Callable[[], float] | None = None, seconds_per_call: float = 0.0):
        self.calls: list[dict] = []
        self.answered = Counter()  # user content -> calls answered (paid for)
        self.fail: Callable[[dict], Exception | None] = lambda request: None
        self.clock_advance = seconds_per_call
        self.time = 0.0
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create, parse=self.parse))

    def clock(self) -> float:
        return self.time

    def create(self, **request):
        content = self._answer(request)
        words = " ".join(_sentences(content)[:3]) or content[:80]
        return _completion(SimpleNamespace(content=words, refusal=None, parsed=None))

    def parse(self, *, response_format, **request):
        content = self._answer({**request, "response_format": response_format})
        text = content.split("GUIDELINES:\n", 1)[-1]
        items = [
            {
                "title": sentence[:40],
                "description": sentence,
                "priority": "low",
                "category": "general",
                "source_quote": sentence,
            }
            for sentence in _sentences(text)
            if NORMATIVE.search(sentence)
        ]
        fields = {"items": items}
        if "summary" in response_format.model_fields:
            fields["summary"] = " ".join(_sentences(text)[:2])
        parsed = response_format.model_validate(fields)
        return _completion(SimpleNamespace(content=None, refusal=None, parsed=parsed))

    def _answer(self, request: dict) -> str:
        self.calls.append(request)
        self.time += self.clock_advance
        error = self.fail(request)
        if error is not None:
            raise error
        content = request["messages"][1]["content"]
        self.answered[content] += 1
        return content


def _sentences(text: str) -> list[str]:
    return [match.group().strip() for match in SENTENCE.finditer(text) if match.group().strip()]


def _completion(message):
    return SimpleNamespace(
        model="fake-model",
        choices=[SimpleNamespace(message=message)],
        usage=SimpleNamespace(prompt_tokens=10, completion_tokens=5),
    )
