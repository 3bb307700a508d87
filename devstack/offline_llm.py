"""An OpenAI-compatible chat completions endpoint, deterministic and extractive, with no key: each
normative sentence (must, shall, should, may, ...) becomes a checklist item quoting it verbatim, and a
plain call gets the sentences that fit the system message's "at most N words". Structured calls are
answered by schema name (Checklist, ChunkExtraction). Latency and faults are set at start and at run
time. Standard library only: `make dev` starts it every time."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from devstack.children import end_child

MODEL = "offline-llm"
FALLBACK_ITEMS = 5  # the checklist of guidelines without a normative sentence: its first sentences

# A sentence ends at .!? before a capital or digit, at a blank line, or before a list item's line.
_BREAK = re.compile(
    r"(?m)(?<!^\d[.)])(?<!^\d\d[.)])(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])"
    r"|\n[ \t]*(?:\r?\n[ \t]*)+|\r?\n(?=[ \t]*(?:[-*+•▪●◦]|\d{1,3}[.)]|[a-z][.)]|#{1,6})[ \t])"
)
_MARKER = re.compile(r"[ \t]*(?:(?:[-*+•▪●◦>]|\d{1,3}[.)]|[a-z][.)]|#{1,6})[ \t]+)?")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")
_STRENGTHS = (  # priority, category, words
    (
        "high",
        "obligation",
        r"(?i:must|shall|required|mandatory|prohibited|needs? to|ha(?:s|ve) to|never|do not)",
    ),
    ("medium", "recommendation", r"(?i:should|recommended|ought to)"),
    ("low", "permission", r"may|MAY|(?i:optional)"),  # not the month "May"
)
_MODAL = re.compile(r"\b(?i:must|shall|should|may|needs? to|ha(?:s|ve) to)(?: not)?\s+(?!be\b)")
_FAULT_SETTINGS = {"retry_after": 1.0, "latency_ms": 0.0, "fail_matching": None}


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each an exact substring of it (list markers left out), in order."""
    trimmed = (s[_MARKER.match(s).end() :].strip() for s in (x.strip() for x in _BREAK.split(text)))
    return [s for s in trimmed if _WORDS.search(s)]


def strength(sentence: str) -> tuple[str, str] | None:
    """(priority, category) by the strongest normative word of the sentence, None without one."""
    return next(((p, c) for p, c, words in _STRENGTHS if re.search(rf"\b{words}\b", sentence)), None)


def checklist_items(text: str, numbered: bool, fallback: bool = False) -> list[dict]:
    """One item per distinct normative sentence of `text`, in order, quoting it verbatim."""
    sentences = list(dict.fromkeys(s for s in split_sentences(text) if len(_WORDS.findall(s)) >= 3))
    chosen = [s for s in sentences if strength(s)] or (sentences[:FALLBACK_ITEMS] if fallback else [])
    items = []
    for number, sentence in enumerate(chosen, start=1):
        flat = " ".join(sentence.split())
        title = _MODAL.split(flat, maxsplit=1)[-1].rstrip(".;:")  # "Users must enable MFA." -> "Enable MFA"
        priority, category = strength(sentence) or ("low", "general")
        items.append({"id": number, "title": title[:1].upper() + title[1:60], "description": flat,
                      "priority": priority, "category": category, "source_quote": sentence})  # fmt: skip
    return items if numbered else [{k: v for k, v in item.items() if k != "id"} for item in items]


def summarize(text: str, max_words: int) -> str:
    """The normative sentences (or else all), in order, within max_words and half the text's words."""
    sentences = [" ".join(s.split()) for s in split_sentences(text)]
    picked, words, max_words = set(), 0, min(max_words, len(text.split()) // 2 or 1)
    for index in [i for i, s in enumerate(sentences) if strength(s)] or range(len(sentences)):
        if words + len(sentences[index].split()) <= max_words:
            picked.add(index)
            words += len(sentences[index].split())
    # No sentence fits: the first words.
    return " ".join(sentences[i] for i in sorted(picked)) or " ".join(text.split()[:max_words])


def complete(request: dict) -> dict:
    """The chat.completion answering `request` (ValueError for one the API would answer 400), in
    the name of this server's one model, so callers report the model that answered and price none."""
    messages = [(m.get("role"), m["content"]) for m in request["messages"] if isinstance(m["content"], str)]
    if not messages or request.get("stream"):
        raise ValueError("'messages' must be a non-empty array of messages with text, and no stream")
    system = "\n".join(content for role, content in messages if role in ("system", "developer"))
    limit = re.search(r"at most (\d+) words", system, re.I)
    max_words = int(limit.group(1)) if limit else 200  # the chain's one-call summary
    user = ([content for role, content in messages if role == "user"] or [messages[-1][1]])[-1]
    response_format = request.get("response_format") or {}
    spec = response_format.get("json_schema") or {}
    kind, schema = (response_format.get("type", "text"), spec.get("name")), spec.get("schema") or {}
    objects = [schema, *schema.get("$defs", {}).values()]  # an item is the object with a source_quote
    numbered = any({"id", "source_quote"} <= set(o.get("properties", {})) for o in objects)  # if asked
    if kind == ("json_schema", "Checklist"):
        guidelines = re.split(r"(?:^|\n)GUIDELINES:[ \t]*\r?\n", user, maxsplit=1)[-1]  # after the summary
        answer = {"items": checklist_items(guidelines, numbered, fallback=True)}
    elif kind == ("json_schema", "ChunkExtraction"):
        answer = {"summary": summarize(user, max_words), "items": checklist_items(user, numbered)}
    elif kind[0] == "text":
        answer = summarize(user, max_words)
    else:
        raise ValueError(f"the offline model answers text, Checklist and ChunkExtraction: {response_format}")
    content = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    prompt = sum(math.ceil(len(text) / 4) for _, text in messages)  # about 4 characters a token
    completion = math.ceil(len(content) / 4)
    return {"id": f"chatcmpl-offline-{time.time_ns()}", "object": "chat.completion",
            "created": int(time.time()), "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}  # fmt: skip


def error_body(status: int, message: str) -> dict:
    kind = {400: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_exceeded"}
    return {"error": {"message": message, "type": kind.get(status, "server_error"), "code": None}}


def parse_faults(spec: str | dict | None) -> dict:
    """Normalise "429=0.3,500=0.1,retry_after=2" (or the same as a dict): each status's probability,
    and retry_after (seconds), latency_ms, fail_matching (a substring answered 500), reset."""
    if isinstance(spec, str):  # ValueError unless each item is key=value
        spec = dict(item.split("=", 1) for item in spec.split(",") if item.strip())
    settings: dict = {}
    for key, value in (spec or {}).items():
        key = str(key).strip().lower()
        if key == "fail_matching":
            settings[key] = str(value) if value else None
        elif key == "reset":
            settings[key] = str(value) in ("True", "1", "true")
        elif key in _FAULT_SETTINGS or (key.isdigit() and 400 <= int(key) <= 599):
            settings[key] = float(value)
            if not 0 <= settings[key] < (math.inf if key in _FAULT_SETTINGS else 1.000001):
                raise ValueError(f"{key}={value} is out of range")
        else:
            raise ValueError(f"unknown fault {key!r}: an HTTP status 400-599, {', '.join(_FAULT_SETTINGS)}")
    return settings


class _Server(ThreadingHTTPServer):
    """The endpoint and its state: fault settings (a reset restores those it started with), counts."""

    daemon_threads, block_on_close = True, False

    def __init__(self, address: tuple[str, int], defaults: dict):
        super().__init__(address, _Handler)
        self.defaults, self.lock, self.rates = {**_FAULT_SETTINGS, **defaults}, threading.Lock(), {}
        self.random, self.requests, self.by_status = random.Random(0), 0, Counter()  # noqa: S311 (not secret)
        self.set_faults({"reset": True})

    def set_faults(self, changes: dict) -> dict:
        changes = parse_faults(changes)
        with self.lock:
            if changes.pop("reset", False):
                self.rates, changes = {}, {**self.defaults, **changes}
            for key, value in changes.items():
                setattr(self, key, value) if key in _FAULT_SETTINGS else self.rates.update({key: value})
            settings = {key: getattr(self, key) for key in _FAULT_SETTINGS}
            return {**{key: rate for key, rate in sorted(self.rates.items()) if rate}, **settings}

    def stats(self, reset: bool = False) -> dict:
        with self.lock:
            if reset:
                self.requests, self.by_status = 0, Counter()
            return {"requests": self.requests, "by_status": dict(self.by_status)}

    def answer(self, body: bytes) -> tuple[int, dict, dict]:
        """(status, payload, headers) of one chat completion request: a drawn fault, or the answer."""
        with self.lock:
            draw, bound = self.random.random(), 0.0
            bounds = [(key, bound := bound + rate) for key, rate in sorted(self.rates.items())]
            status = next((int(key) for key, up_to in bounds if draw < up_to), 200)
        try:
            request = json.loads(body or b"null")
            if self.fail_matching and self.fail_matching in body.decode(errors="replace"):
                status, payload = 500, error_body(500, "The offline model fails requests with the poison.")
            elif status == 429:
                payload = error_body(429, f"Rate limit reached (offline): retry in {self.retry_after:g}s.")
            else:
                payload = complete(request) if status == 200 else error_body(status, "An offline fault.")
        except (ValueError, AttributeError, LookupError, TypeError) as error:  # a malformed request
            status, payload = 400, error_body(400, f"Bad request: {error}")
        with self.lock:
            self.requests += 1
            self.by_status[str(status)] += 1
        return status, payload, {"Retry-After": f"{self.retry_after:g}"} if status == 429 else {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version, disable_nagle_algorithm = "HTTP/1.1", True  # keep-alive: the SDK pools connections

    def log_message(self, format: str, *args: object) -> None: ...  # quiet

    def do_GET(self) -> None:
        started, server, path = time.perf_counter(), self.server, urlsplit(self.path).path.rstrip("/")
        body, status, headers = self.rfile.read(int(self.headers.get("Content-Length") or 0)), 200, {}
        if self.command == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            status, payload, headers = server.answer(body)
            while (left := started + server.latency_ms / 1000 - time.perf_counter()) > 0:  # work included
                time.sleep(left / 2 if left > 0.002 else left)  # in steps: timers here fire late
        elif path == "/_faults" and self.command in ("GET", "POST"):
            payload = server.set_faults(json.loads(body or b"{}"))  # checked by OfflineLLM.set_faults
        elif path == "/_stats" and self.command in ("GET", "DELETE"):
            payload = server.stats(reset=self.command == "DELETE")
        else:
            status, payload = 404, error_body(404, f"Unknown request URL: {self.command} {path}")
        data = json.dumps(payload).encode()
        self.send_response(status)
        headers |= {"Content-Type": "application/json", "Content-Length": len(data)}
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = do_GET


class OfflineLLM:
    """`with OfflineLLM() as llm: OpenAI(base_url=llm.url, api_key="offline")`: in a process of its own
    (its answers would hold the caller's interpreter lock), which exits when its stdin closes, so a
    killed caller takes it along."""

    def __init__(self, host: str = "127.0.0.1", latency_ms: float = 0.0, faults: str = ""):
        parse_faults(f"latency_ms={latency_ms},{faults}")  # a bad setting fails here, with its message
        self._command = [sys.executable, "-m", "devstack.offline_llm", "--host", host, "--port", "0"]
        self._command += ["--latency-ms", str(latency_ms), "--faults", faults, "--until-stdin-closes"]
        self._process: subprocess.Popen | None = None
        self.url = ""  # once started

    def start(self) -> OfflineLLM:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.url = self._process.stdout.readline().removeprefix("offline llm: ").strip()
        if not self.url.startswith("http"):
            self.stop()
            raise RuntimeError("the offline LLM did not start")
        return self

    def stop(self) -> None:
        if self._process is not None:
            end_child(self._process)
            self._process.stdout.close()
            self._process = None

    def __enter__(self) -> OfflineLLM:
        return self if self._process else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_faults(self, spec: str | dict | None = None, **settings: object) -> dict:
        """Merge fault settings (see parse_faults); `reset=True` first restores the start settings."""
        return self._call("POST", "/_faults", {**parse_faults(spec), **parse_faults(settings)})

    def faults(self) -> dict:
        return self._call("GET", "/_faults")

    def stats(self) -> dict:
        return self._call("GET", "/_stats")

    def reset_stats(self) -> None:
        self._call("DELETE", "/_stats")

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.removesuffix("/v1") + path, data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the child's own URL)
            return json.loads(response.read())


OfflineLLMProcess = OfflineLLM  # the name the local runner uses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.offline_llm", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="per call, its own work included")
    parser.add_argument("--faults", default="", help="e.g. 429=0.3,500=0.1,retry_after=2")
    parser.add_argument("--until-stdin-closes", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    server = _Server((args.host, args.port), {**parse_faults(args.faults), "latency_ms": args.latency_ms})
    if args.until_stdin_closes:  # a parent's pipe: the parent has gone
        threading.Thread(target=lambda: (sys.stdin.read(), server.shutdown()), daemon=True).start()
    host = "127.0.0.1" if args.host in ("", "0.0.0.0") else args.host  # noqa: S104 (a client URL)
    print(f"offline llm: http://{host}:{server.server_address[1]}/v1", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
