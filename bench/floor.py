"""The bare floor: POST /jobs as a plain threaded HTTP server doing the INSERT and the SQS send.

No runner, no Lambda events, no framework: the least this machine can do per submission with
the same PostgreSQL, the same SQS endpoint and the same client libraries. Run as
`python -m bench.floor` with DATABASE_URL, JOBS_QUEUE_URL, AWS_ENDPOINT_URL and API_KEY set; it
prints its port on the first line of stdout and serves until stdin closes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FLOOR_FUNCTION = Path(__file__).with_name("floor_function")


def _floor_function():
    """The floor function's module, loaded from its file as the runner would (it is not a package)."""
    spec = importlib.util.spec_from_file_location("floor_app", FLOOR_FUNCTION / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


floor = _floor_function()


class _Connections:
    """Connections kept across requests and client connections, one per concurrent request."""

    def __init__(self):
        self._idle: queue.LifoQueue = queue.LifoQueue()

    @contextlib.contextmanager
    def borrow(self):
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = floor.connect()
        try:
            yield connection
        except Exception:
            connection.close()
            raise
        self._idle.put(connection)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the load generator measures every request."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("x-api-key") != self.server.api_key:
            self._send(403, {"title": "Forbidden"})
            return
        guidelines = json.loads(body or b"{}").get("guidelines")
        if self.path != "/jobs" or not isinstance(guidelines, str) or not guidelines.strip():
            self._send(422, {"title": "Unprocessable"})
            return
        with self.server.connections.borrow() as connection:
            self._send(202, floor.store_and_send(connection, "bench-floor", guidelines))

    def _send(self, status: int, document: dict) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


def main() -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.api_key = os.environ["API_KEY"]
    server.connections = _Connections()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent closes stdin to stop us
    server.shutdown()


if __name__ == "__main__":
    main()
