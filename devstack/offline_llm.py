"""An OpenAI-compatible chat completions endpoint that needs no network and no key.

Answers are derived from the request alone, so runs are reproducible: a plain request gets an
extractive summary of the last user message; a structured-output request gets JSON built by walking
the requested schema, with checklist items taken from the sentences of the guidelines that state
obligations. Latency and faults (429 with Retry-After, 5xx, hangs, a poison substring) can be set at
start and changed at run time, for benchmarks and the retry tests.

Standard library only (devstack.children is too): the local runner starts it on every `make dev`
and must not pay for imports.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from devstack.children import end_child

DEFAULT_MODEL = "offline-llm"
MAX_CHECKLIST_ITEMS = 20
MAX_SUMMARY_SENTENCES = 5
MAX_SUMMARY_CHARS = 1200

# ---------------------------------------------------------------------------------------------
# Text: sentences, summary, obligations
# ---------------------------------------------------------------------------------------------

_LINE = re.compile(r"[^\r\n]+")
# Bullets, numbering and markdown headings are layout, not part of the sentence a quote should hold.
_LINE_PREFIX = re.compile(r"[ \t]*(?:(?:[-*+•>]|\d{1,3}[.)]|[a-zA-Z][.)]|#{1,6})[ \t]+)?")
# A sentence ends at . ! or ? (and closing quotes) when the next one starts like a sentence, which
# keeps "e.g. this" and "3.5 days" whole.
_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]]*(\s+)(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")
_STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "do", "does", "for", "from",
    "has", "have", "if", "in", "into", "is", "it", "its", "may", "must", "not", "of", "on", "or", "our",
    "shall", "should", "so", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "we", "were", "will", "with", "within", "without", "you", "your", "all", "any", "each",
    "every", "than", "also",
})  # fmt: skip

_HIGH = re.compile(
    r"\b(?:must|shall|never|required|mandatory|prohibited|forbidden|do not|don't|may not|cannot)\b", re.I
)
_MEDIUM = re.compile(
    r"\b(?:should|ensure|always|need to|needs to|have to|has to|is expected to|are expected to)\b", re.I
)
_IMPERATIVE_START = re.compile(r"^(?:never|always|do not|don't|ensure|make sure|avoid|use|keep)\b", re.I)
_MODAL = re.compile(
    r"\b(must not|must|shall not|shall|should not|should|may not|cannot|can not|"
    r"(?:is|are) required to|needs? to|ha(?:s|ve) to|(?:is|are) expected to)\b",
    re.I,
)
_PLURAL_PRONOUNS = frozenset({"they", "these", "those", "we", "you"})
# Word stems per bucket; the bucket with the most hits wins, the first on a tie.
_CATEGORIES = tuple(
    (name, re.compile(r"\b(?:" + stems + ")", re.I))
    for name, stems in (
        ("security", "password|passphrase|encrypt|tls|ssl|mfa|multi-factor|authentic|authoriz|access|"
                     "credential|secret|token|vulnerab|patch|firewall|malware|phishing|secur|permission|"
                     "privilege|backup"),
        ("privacy", "personal|pii|gdpr|consent|privacy|anonymi|pseudonym|retention|retain|erase|"
                    "confidential|customer data|data subject"),
        ("quality", "test|review|quality|lint|bug|defect|accura|verif|validat|document|standard|style|"
                    "readab"),
        ("process", "approv|deploy|release|report|escalat|incident|notif|schedul|deadline|meeting|ticket|"
                    "workflow|process|audit|log|train"),
    )
)  # fmt: skip


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each an exact substring of it, in order."""
    sentences = []
    for line in _LINE.finditer(text):
        start = _LINE_PREFIX.match(text, line.start(), line.end()).end()
        for brk in _SENTENCE_BREAK.finditer(text, start, line.end()):
            sentences.append(text[start : brk.start(1)])
            start = brk.end(1)
        sentences.append(text[start : line.end()])
    return [s.strip() for s in sentences if _WORD.search(s)]


def _content_words(sentence: str) -> list[str]:
    return [w for w in (m.group().lower() for m in _WORD.finditer(sentence)) if w not in _STOPWORDS]


def summarize(text: str) -> str:
    """The few sentences that carry the most frequent content words, in their original order."""
    every = split_sentences(text)
    sentences = [s for s in every if len(_WORD.findall(s)) >= 4] or every
    if not sentences:
        return text.strip()[:MAX_SUMMARY_CHARS]
    frequency = Counter(w for s in sentences for w in _content_words(s))

    def score(index: int) -> float:
        words = _content_words(sentences[index])
        value = sum(frequency[w] for w in words) / math.sqrt(len(words) or 1)
        if _HIGH.search(sentences[index]) or _MEDIUM.search(sentences[index]):
            value *= 1.5  # guidelines are about what to do
        return value * (1.2 if index == 0 else 1.0)

    wanted = max(1, min(MAX_SUMMARY_SENTENCES, math.ceil(len(sentences) / 4)))
    best = sorted(sorted(range(len(sentences)), key=lambda i: (-score(i), i))[:wanted])
    picked: list[str] = []
    for index in best:
        if picked and sum(len(s) + 1 for s in picked) + len(sentences[index]) > MAX_SUMMARY_CHARS:
            break
        picked.append(sentences[index])
    return " ".join(picked)


def priority_of(sentence: str) -> str:
    if _HIGH.search(sentence):
        return "high"
    return "medium" if _MEDIUM.search(sentence) else "low"


def category_of(sentence: str) -> str:
    hits = [len(stems.findall(sentence)) for _, stems in _CATEGORIES]
    best = max(hits)
    return _CATEGORIES[hits.index(best)][0] if best else "general"


def title_of(sentence: str, max_chars: int = 60) -> str:
    """A short imperative: "Users must enable MFA." -> "Enable MFA"."""
    text = sentence.strip().rstrip(".!?;:")
    modal = None if _IMPERATIVE_START.match(text) else _MODAL.search(text)
    if modal:
        subject, rest = text[: modal.start()].strip(" ,"), text[modal.end() :].strip()
        negative = re.search(r"not|cannot", modal.group(), re.I) is not None
        head, _, tail = rest.partition(" ")
        if subject and (head.lower() == "be" or (head.lower() == "never" and tail)):
            # The subject is what the rule is about: keep it ("Ensure passwords are rotated"), without
            # a leading condition ("If a breach occurs, data ...").
            subject = subject.rsplit(",", 1)[-1].strip() or subject
            words = subject.split()
            plural = words[-1].lower() in _PLURAL_PRONOUNS or re.search(r"[^s]s$", words[-1].lower())
            if not words[0].isupper():
                subject = subject[0].lower() + subject[1:]
            if head.lower() == "be":
                predicate = ("are" if plural else "is") + (" not " if negative else " ") + tail
            else:
                verb, _, objects = tail.partition(" ")
                if verb.lower() == "be":
                    predicate = f"{'are' if plural else 'is'} never {objects}"
                else:
                    predicate = f"never {verb if plural else _third_person(verb)} {objects}"
            text = f"Ensure {subject} {predicate}"
        elif rest:
            text = ("Do not " + rest) if negative else rest[0].upper() + rest[1:]
    if len(text) > max_chars:
        words = text[: max_chars + 1].split()[:-1]
        while len(words) > 1 and words[-1].lower() in _STOPWORDS:  # no title ends in "... to the"
            words.pop()
        text = " ".join(words)
    return text.rstrip(" ,;:") or sentence.strip()


def _third_person(verb: str) -> str:
    if re.search(r"(?:s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    return verb[:-1] + "ies" if re.search(r"[^aeiou]y$", verb) else verb + "s"


def obligations(guidelines: str, limit: int = MAX_CHECKLIST_ITEMS) -> list[dict]:
    """One checklist record per sentence that states an obligation (the first sentences otherwise)."""
    sentences = [s for s in split_sentences(guidelines) if len(_WORD.findall(s)) >= 3]
    chosen = [s for s in sentences if _HIGH.search(s) or _MEDIUM.search(s)] or sentences
    unique = list(dict.fromkeys(chosen))[:limit]
    return [
        {
            "id": number,
            "title": title_of(sentence),
            "description": sentence,
            "summary": sentence,
            "priority": priority_of(sentence),
            "category": category_of(sentence),
            "source_quote": sentence,
        }
        for number, sentence in enumerate(unique, start=1)
    ]


def split_prompt(text: str) -> tuple[str, str]:
    """(summary, guidelines) from the checklist prompt "SUMMARY:\\n...\\n\\nGUIDELINES:\\n..."."""
    marker = re.search(r"(?:^|\n)GUIDELINES:[ \t]*\r?\n", text)
    if not marker:
        return "", text
    summary = text[: marker.start()]
    summary = re.sub(r"^\s*SUMMARY:[ \t]*\r?\n", "", summary).strip()
    return summary, text[marker.end() :]


# ---------------------------------------------------------------------------------------------
# JSON schema: a value that validates, filled from the records where a field is known by name
# ---------------------------------------------------------------------------------------------

MAX_SCHEMA_DEPTH = 16
_FIELD_ALIASES = {
    **dict.fromkeys(("id", "index", "number", "rank", "order", "position"), "id"),
    **dict.fromkeys(("title", "name", "task", "action", "label", "headline"), "title"),
    **dict.fromkeys(
        ("description", "details", "detail", "text", "content", "explanation", "rationale", "requirement"),
        "description",
    ),
    "summary": "summary",
    **dict.fromkeys(("priority", "severity", "importance"), "priority"),
    **dict.fromkeys(("category", "area", "topic", "kind", "group", "section"), "category"),
    **dict.fromkeys(("sourcequote", "quote", "source", "evidence", "citation", "excerpt"), "source_quote"),
}
_PRIORITY_RANK = {"high": 1, "medium": 2, "low": 3}
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "offline@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/offline",
}


class SchemaError(ValueError):
    """The response_format schema cannot be satisfied (the API answers such requests with 400)."""


class SchemaFiller:
    def __init__(self, root: dict, records: list[dict], document: dict):
        self.root = root
        self.records = records
        self.document = document

    def fill(self) -> object:
        return self._value(self.root, "", self.document, 0, 0)

    def _resolve(self, schema: dict, depth: int) -> dict:
        if depth > MAX_SCHEMA_DEPTH:
            raise SchemaError("schema nests too deeply")
        if not isinstance(schema, dict):
            raise SchemaError(f"not a schema: {schema!r}")
        if "$ref" in schema:
            target = self._pointer(schema["$ref"])
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            return self._resolve({**target, **siblings}, depth + 1)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part, depth + 1)
                merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
            return merged
        return schema

    def _pointer(self, ref: str) -> dict:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"only local $ref is supported: {ref!r}")
        node = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"unresolvable $ref: {ref}")
            node = node[part]
        return node

    def _value(self, schema: dict, name: str, record: dict, index: int, depth: int) -> object:
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            concrete = [o for o in options if self._resolve(o, depth + 1).get("type") != "null"]
            if not concrete or (depth > MAX_SCHEMA_DEPTH // 2 and len(concrete) < len(options)):
                return None
            return self._value(concrete[0], name, record, index, depth + 1)
        known = self._known(name, record)
        if "enum" in schema:
            choices = schema["enum"]
            if not choices:
                raise SchemaError(f"empty enum for {name!r}")
            return known if known in choices else choices[index % len(choices)]
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            array = "items" in schema or "prefixItems" in schema
            kind = "object" if "properties" in schema else "array" if array else "string"
        if kind == "object":
            return {
                prop: self._value(sub, prop, record, index, depth + 1)
                for prop, sub in schema.get("properties", {}).items()
            }
        if kind == "array":
            return self._array(schema, name, record, depth)
        if kind in ("integer", "number"):
            return self._number(schema, known, index, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, name, known, index)

    def _known(self, name: str, record: dict) -> object:
        key = _FIELD_ALIASES.get(re.sub(r"[^a-z]", "", name.lower()))
        return record.get(key) if key else None

    def _array(self, schema: dict, name: str, record: dict, depth: int) -> list:
        if "prefixItems" in schema:
            return [self._value(s, name, record, i, depth + 1) for i, s in enumerate(schema["prefixItems"])]
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        items = self._resolve(schema.get("items", {}), depth + 1)
        if items.get("type") == "object" or "properties" in items:
            # Lists of objects are the checklist: one element per record; nested lists get their own.
            rows = self.records if record is self.document else [record]
        else:
            rows = [record] * 2
        if "enum" in items and schema.get("uniqueItems"):
            rows = rows[: len(items["enum"])]
        if len(rows) < low:
            rows = rows + [rows[-1] if rows else self.document] * (low - len(rows))
        if high is not None:
            rows = rows[:high]
        return [self._value(items, name, row, i, depth + 1) for i, row in enumerate(rows)]

    @staticmethod
    def _number(schema: dict, known: object, index: int, integer: bool) -> float:
        if isinstance(known, str):
            known = _PRIORITY_RANK.get(known)
        usable = isinstance(known, int) and not isinstance(known, bool)
        value = known if usable else (index + 1 if integer else 0.5)
        low, high = schema.get("minimum"), schema.get("maximum")
        above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")

        def fits(number: float) -> bool:
            return (
                (low is None or number >= low)
                and (high is None or number <= high)
                and (above is None or number > above)
                and (below is None or number < below)
            )

        lower = max((b for b in (low, above) if b is not None), default=None)
        upper = min((b for b in (high, below) if b is not None), default=None)
        if not fits(value):
            if integer:
                value = math.ceil(lower) if lower is not None else math.floor(upper)
                value += 0 if fits(value) else (1 if lower is not None else -1)
            elif lower is not None and upper is not None:
                value = (lower + upper) / 2
            else:
                value = lower + 1 if lower is not None else upper - 1
        multiple = schema.get("multipleOf")
        if integer and isinstance(multiple, int) and multiple > 0:
            value = math.ceil(value / multiple) * multiple
        return value

    @staticmethod
    def _string(schema: dict, name: str, known: object, index: int) -> str:
        if schema.get("format") in _FORMATS:
            return _FORMATS[schema["format"]]
        value = str(known) if known is not None else f"{name or 'value'} {index + 1}"
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if len(value) < low:
            value = value + "." * (low - len(value))
        return value[:high] if high is not None else value


def structured_content(schema: dict, last_user: str) -> object:
    summary, guidelines = split_prompt(last_user)
    records = obligations(guidelines)
    first = split_sentences(guidelines)[:1] or [guidelines.strip()]
    summary = summary or summarize(guidelines)
    document = {
        "id": 1,
        "title": title_of(first[0]) if first[0] else "Summary",
        "description": summary,
        "summary": summary,
        "priority": "medium",
        "category": category_of(guidelines),
        "source_quote": first[0],
    }
    return SchemaFiller(schema, records, document).fill()


# ---------------------------------------------------------------------------------------------
# Chat completions
# ---------------------------------------------------------------------------------------------


class BadRequest(ValueError):
    """The request is one the API would reject with 400."""


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: only the text ones carry input for us
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def estimate_tokens(text: str) -> int:
    words = len(text.split())
    return math.ceil(words * 4 / 3)


def complete(request: dict, model: str = DEFAULT_MODEL) -> dict:
    """The chat.completion object answering `request`, deterministic in the request's content.

    `model` is the one model this server runs, whatever the request asked for, as a server that
    serves one model answers: callers report the model that really answered, and price none."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("'messages' must be a non-empty array of message objects")
    if request.get("stream"):
        raise BadRequest("streaming is not supported by the offline model")
    users = [m for m in messages if m.get("role") == "user"]
    last_user = message_text(users[-1] if users else messages[-1])
    response_format = request.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be an object")
        try:
            content = json.dumps(structured_content(schema, last_user), ensure_ascii=False)
        except SchemaError as error:
            raise BadRequest(f"Invalid schema for response_format: {error}") from error
    elif kind == "json_object":
        summary, guidelines = split_prompt(last_user)
        content = json.dumps({"summary": summary or summarize(guidelines), "items": obligations(guidelines)})
    else:
        content = summarize(last_user)
    prompt_tokens = sum(estimate_tokens(message_text(m)) for m in messages)
    completion_tokens = estimate_tokens(content)
    return {
        "id": f"chatcmpl-offline-{os.urandom(12).hex()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_offline",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(status: int, message: str) -> dict:
    kinds = {
        400: ("invalid_request_error", None),
        404: ("invalid_request_error", "not_found"),
        429: ("requests", "rate_limit_exceeded"),
        504: ("timeout", "timeout"),
    }
    kind, code = kinds.get(status, ("server_error", "server_error") if status >= 500 else ("error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------

_SETTINGS = ("retry_after", "latency_ms", "hang_seconds", "fail_matching", "reset")


def parse_faults(spec: str | dict | None) -> dict:
    """Normalise "429=0.3,500=0.1,timeout=0.05,retry_after=2" (or the same as a dict)."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = [item.partition("=") for item in spec.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise ValueError(f"faults must look like '429=0.3,500=0.1,timeout=0.05', got {spec!r}")
        spec = {key.strip(): value.strip() for key, _, value in pairs}
    settings: dict = {}
    for key, value in spec.items():
        key = str(key).strip().lower()
        if key == "fail_matching":
            settings[key] = str(value) if value else None
        elif key == "reset":
            settings[key] = value is True or str(value).lower() in ("1", "true", "yes")
        elif key in _SETTINGS:
            settings[key] = _non_negative(key, value)
        elif key == "timeout" or (key.isdigit() and 400 <= int(key) <= 599):
            rate = _non_negative(key, value)
            if rate > 1:
                raise ValueError(f"fault probability {key}={value} is above 1")
            settings[key] = rate
        else:
            raise ValueError(f"unknown fault {key!r}: use an HTTP status 400-599, 'timeout' or {_SETTINGS}")
    return settings


def _non_negative(key: str, value: object) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    if number < 0 or not math.isfinite(number):
        raise ValueError(f"{key} must be a finite number of at least 0, got {value!r}")
    return number


def _env_number(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    return _non_negative(name, raw) if raw else None


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODEL_PATHS = ("/v1/models", "/models")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK pools connections
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "offline-llm"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.llm._track(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.llm._track(self.connection, opened=False)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per request goes through OfflineLLM's log, only when it is verbose."""

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        self._started = time.perf_counter()
        path = urlsplit(self.path).path.rstrip("/") or "/"
        llm = self.server.llm
        body = self._read_body()
        if method == "POST" and path in _CHAT_PATHS:
            self._send(*llm._chat(body, received=self._started))
        elif method == "GET" and path in _MODEL_PATHS:
            self._send(200, {"object": "list", "data": [llm._model_card()]})
        elif method == "GET" and path.rsplit("/", 1)[0] in _MODEL_PATHS:
            self._send(200, llm._model_card())
        elif path == "/_faults" and method in ("GET", "POST"):
            self._send(*llm._control(body if method == "POST" else b"{}"))
        elif path == "/_stats" and method in ("GET", "DELETE"):
            if method == "DELETE":
                llm.reset_stats()
            self._send(200, llm.stats())
        else:
            self._send(404, error_body(404, f"Unknown request URL: {method} {path}"))

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, payload: dict | None, headers: dict | None = None) -> None:
        if payload is None:  # a hang that ended: the client has most likely given up already
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{os.urandom(12).hex()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        self.server.llm._log(f"offline-llm {self.command} {self.path} {status} {elapsed_ms:.0f}ms")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a hung request must not hold up stop()
    request_queue_size = 128
    llm: OfflineLLM

    def handle_error(self, request, client_address) -> None:
        # A client that gave up during a hang breaks the pipe: expected, not worth a traceback.
        if self.llm.verbose and not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class OfflineLLM:
    """The endpoint, served from a daemon thread.

    `with OfflineLLM() as llm: OpenAI(base_url=llm.url, api_key="offline")`
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float | None = None,
        faults: str | dict | None = None,
        seed: int = 0,
        *,
        model: str = DEFAULT_MODEL,
        verbose: bool = False,
        log=None,
    ):
        self.host = host
        self.port = port
        self.model = model
        self.verbose = verbose
        self._log_line = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 (reproducible fault injection, not security)
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        latency = _env_number("OFFLINE_LLM_LATENCY_MS") if latency_ms is None else latency_ms
        spec = os.environ.get("OFFLINE_LLM_FAULTS") if faults is None else faults
        self._defaults = {**parse_faults(spec), "latency_ms": _non_negative("latency_ms", latency or 0)}
        self._rates: dict[str, float] = {}
        self.retry_after = 1.0
        self.latency_ms = 0.0
        self.hang_seconds = 30.0
        self.fail_matching: str | None = None
        self.set_faults(self._defaults)
        self.reset_stats()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OfflineLLM:
        self._closing.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.llm = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="offline-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._closing.set()  # releases hung and sleeping requests
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would otherwise still be served
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OfflineLLM:
        return self if self._server else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104 (a client URL)
        return f"http://{host}:{self.port}/v1"

    # -- faults and stats ------------------------------------------------------------------

    def set_faults(self, spec: str | dict | None = None, **settings: object) -> dict:
        """Merge new fault settings (as for /_faults); `reset=True` first restores the start settings.

        Status keys ("429", "500", ...) and "timeout" are probabilities; "retry_after" is the 429's
        Retry-After in seconds; "hang_seconds" how long a timeout hangs; "fail_matching" a substring
        whose requests always get a 500 (None clears it).
        """
        changes = {**parse_faults(spec), **parse_faults(settings)}
        with self._lock:
            if changes.pop("reset", False):
                self._rates, self.retry_after, self.hang_seconds, self.fail_matching = {}, 1.0, 30.0, None
                changes = {**self._defaults, **changes}
            for key, value in changes.items():
                if key in _SETTINGS:
                    setattr(self, key, value)
                elif value:
                    self._rates[key] = value
                else:
                    self._rates.pop(key, None)
        return self.faults

    @property
    def faults(self) -> dict:
        with self._lock:
            return {
                **dict(sorted(self._rates.items())),
                "retry_after": self.retry_after,
                "latency_ms": self.latency_ms,
                "hang_seconds": self.hang_seconds,
                "fail_matching": self.fail_matching,
            }

    def stats(self) -> dict:
        with self._lock:
            return {"requests": self._requests, "by_status": dict(self._by_status)}

    def reset_stats(self) -> None:
        with self._lock:
            self._requests, self._by_status = 0, Counter()

    # -- request handling (called from the handler threads) --------------------------------

    def _count(self, status: int | str) -> None:
        with self._lock:
            self._requests += 1
            self._by_status[str(status)] += 1

    def _track(self, connection: socket.socket, opened: bool) -> None:
        with self._lock:
            (self._connections.add if opened else self._connections.discard)(connection)

    def _log(self, line: str) -> None:
        if self.verbose:
            self._log_line(line)

    def _model_card(self) -> dict:
        return {"id": self.model, "object": "model", "created": 0, "owned_by": "offline"}

    def _draw_fault(self) -> str | None:
        with self._lock:
            draw, threshold = self._random.random(), 0.0
            for fault in sorted(self._rates, key=lambda k: (k != "timeout", k)):
                threshold += self._rates[fault]
                if draw < threshold:
                    return fault
        return None

    def _reply(self, status: int, payload: dict, headers: dict | None = None) -> tuple:
        self._count(status)
        return status, payload, headers

    def _chat(self, body: bytes, received: float) -> tuple:
        """(status, payload, headers) for one chat completion request, `latency_ms` after it was
        `received` (a perf_counter reading).

        The answer is made while the latency runs, as a hosted model's latency includes its work:
        made after it, concurrent calls would queue for this process's GIL and each take longer
        than the latency it was set to."""
        reply = self._answer(body)
        self._wait_until(received + self.latency_ms / 1000)
        return reply

    def _wait_until(self, deadline: float) -> None:
        """Until `deadline` (perf_counter) or stop(). In shrinking steps: on some VMs (this one) a
        timer fires late in proportion to its timeout (300 ms waits took 302-307 ms), and a
        stand-in that is slower than the latency it was set to makes the service look slower."""
        while (remaining := deadline - time.perf_counter()) > 0:
            if self._closing.wait(remaining / 2 if remaining > 0.002 else remaining):
                return

    def _answer(self, body: bytes) -> tuple:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            return self._reply(400, error_body(400, "We could not parse the JSON body of your request."))
        if not isinstance(request, dict):
            return self._reply(400, error_body(400, "The request body must be a JSON object."))
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        if self.fail_matching and any(self.fail_matching in message_text(m) for m in messages):
            poisoned = "The offline model fails every request that contains the poison text."
            return self._reply(500, error_body(500, poisoned))
        fault = self._draw_fault()
        if fault == "timeout":
            self._count("timeout")
            self._closing.wait(self.hang_seconds)
            # After stop() nobody is listening; otherwise tell a patient client what happened.
            timed_out = None if self._closing.is_set() else error_body(504, "The offline model timed out.")
            return 504, timed_out, None
        if fault == "429":
            seconds = f"{self.retry_after:g}"
            message = f"Rate limit reached for {self.model} (offline). Please try again in {seconds}s."
            return self._reply(429, error_body(429, message), {"Retry-After": seconds})
        if fault:
            failed = "The server had an error while processing your request."
            return self._reply(int(fault), error_body(int(fault), failed))
        try:
            return self._reply(200, complete(request, self.model))
        except BadRequest as error:
            return self._reply(400, error_body(400, str(error)))

    def _control(self, body: bytes) -> tuple:
        try:
            return 200, self.set_faults(json.loads(body or b"{}"))
        except (ValueError, AttributeError) as error:
            return 400, error_body(400, f"bad fault settings: {error}")


class OfflineLLMProcess:
    """The endpoint in a process of its own, driven over its control endpoints: the methods of
    OfflineLLM that the stack, its tests and the benchmarks use.

    A hosted model runs apart from the service. In the runner's process, its answers (a few ms of
    CPU each, two per job) held the interpreter lock that the API front and the event source
    mapping need (docs/performance.md). The server exits when its stdin closes, so a runner that
    is killed takes it along."""

    def __init__(self, host: str = "127.0.0.1", latency_ms: float = 0.0, faults: str = ""):
        parse_faults(faults)  # a bad setting fails here, in the runner, with its message
        self._command = [sys.executable, "-m", "devstack.offline_llm", "--host", host, "--port", "0"]
        self._command += ["--latency-ms", str(_non_negative("latency_ms", latency_ms)), "--faults", faults]
        self._command.append("--until-stdin-closes")
        self._process: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> OfflineLLMProcess:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops it
        )
        first = self._process.stdout.readline()
        if not first.startswith("offline llm: "):
            self.stop()
            raise RuntimeError(f"the offline LLM did not start: {first!r}")
        self.url = first.removeprefix("offline llm: ").strip()
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        end_child(self._process)
        self._process.stdout.close()
        self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def set_faults(self, spec: str | dict | None = None, **settings: object) -> dict:
        """As OfflineLLM.set_faults."""
        return self._call("POST", "/_faults", {**parse_faults(spec), **parse_faults(settings)})

    @property
    def faults(self) -> dict:
        return self._call("GET", "/_faults")

    def stats(self) -> dict:
        return self._call("GET", "/_stats")

    def reset_stats(self) -> None:
        self._call("DELETE", "/_stats")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        split = urlsplit(self.url)
        connection = http.client.HTTPConnection(split.hostname, split.port, timeout=10)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read() or b"{}")
        finally:
            connection.close()
        if response.status != 200:
            raise ValueError(answer.get("error", {}).get("message", f"HTTP {response.status}"))
        return answer


# ---------------------------------------------------------------------------------------------
# python -m devstack.offline_llm
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.offline_llm", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--latency-ms", type=float, help="per call (default: $OFFLINE_LLM_LATENCY_MS or 0)")
    parser.add_argument("--faults", help="e.g. 429=0.3,500=0.1,timeout=0.05 (default: $OFFLINE_LLM_FAULTS)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="one line per request on stderr")
    parser.add_argument(
        "--until-stdin-closes", action="store_true", help="stop when stdin closes (a parent's pipe)"
    )
    args = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    if args.until_stdin_closes:

        def stop_at_end_of_input() -> None:
            sys.stdin.read()
            stopping.set()

        threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    llm = OfflineLLM(args.host, args.port, args.latency_ms, args.faults, args.seed, verbose=args.verbose)
    with llm.start():
        print(f"offline llm: {llm.url}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
