"""Helpers shared by tests in several folders (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from dotenv import dotenv_values

from devstack.template import UNRESOLVED, load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
FUNCTIONS = ("submit", "status", "process", "sweeper", "webhook")


def set_import_environment() -> None:
    """Set, before any test module imports the code, the template's environment: some of it is read
    at import (the shared logger and metrics, the request model's limit). Not the local runner's own
    settings (.env.example names them): from this process's environment they would beat the
    template parameters a test gives a Stack."""
    runner_settings = set(dotenv_values(ROOT / ".env.example"))
    os.environ.update(
        {name: value for name, value in template_environment().items() if name not in runner_settings}
        | {"POWERTOOLS_TRACE_DISABLED": "true"}
    )


def template_environment(*functions: str, **parameters: str) -> dict[str, str]:
    """The functions' environment as the template gives it (all five when none is named), each
    parameter at its default unless given: the one place settings' values come from. Variables
    only AWS resolves (queue URLs, secrets) are left out, and an empty parameter stays "" as
    Lambda passes it."""
    template = load_template(TEMPLATE, parameters)
    return {
        name: str(value)
        for function in functions or FUNCTIONS
        for name, value in template.function(function).environment.items()
        if value is not UNRESOLVED
    }


def local_only(*api_keys: str, **settings: str) -> dict[str, str]:
    """Runner settings for a stack that uses nothing of the developer's machine: the offline LLM,
    the embedded PostgreSQL, and these API keys; `settings` adds or replaces runner settings."""
    return {
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "DATABASE_URL": "",
        "API_KEYS": ",".join(api_keys),
        **settings,
    }


def wait_for(predicate, seconds: float = 60.0, every: float = 0.2):
    """Poll until `predicate()` is truthy and return it; bounded in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(every)
    raise AssertionError("condition not met in time")


class WebhookReceiver:
    """A webhook receiver on loopback that records each delivery and answers `status`."""

    def __init__(self, status: int = 204):
        self.deliveries: list[tuple[dict, bytes]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each delivery
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrivals.append(time.monotonic())
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/jobs"

    def stop(self) -> None:
        self.server.shutdown()
