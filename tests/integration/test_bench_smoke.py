"""The benchmark's parts measure what they say: the load generator, the template's environment, the
statement counter, cold starts, the in-process phase and the generated section of the docs.

No timing is asserted; `make bench` (or `make bench-smoke`) runs the real thing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from bench import coldstart, functions, handlers, report
from bench.load import NUMBER, Plan, drive, percentile


class _Echo(BaseHTTPRequestHandler):
    """202 with the body's hash as event_id for the right key, 403 otherwise."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        payload = json.dumps({"event_id": hashlib.sha256(body).hexdigest()}).encode()
        self.send_response(202 if self.headers.get("x-api-key") == "key" else 403)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def echo():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_every_request_is_measured_and_numbered_apart(echo):
    plan = Plan(echo, "/jobs", 3, 12, {"x-api-key": "key"}, json.dumps({"guidelines": f"n {NUMBER}"}))

    first, second = drive(plan), drive(plan)

    assert (first["requests"], first["errors"]) == (12, 0)
    assert len(set(first["collected"])) == 12  # every body differs
    assert not set(first["collected"]) & set(second["collected"])  # and from another run's
    assert 0 < first["p50_ms"] <= first["p99_ms"]


def test_unexpected_answers_count_as_errors(echo):
    result = drive(Plan(echo, "/jobs", 2, 5, {"x-api-key": "wrong"}, "{}"))

    assert (result["requests"], result["errors"], result["collected"]) == (5, 5, [])
    assert result["error_samples"][0].startswith("HTTP 403")


def test_percentiles_are_measured_values():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values[:3], 0.99)) == (50, 99, 3)


def test_a_function_gets_the_template_variables_with_parameters_at_their_defaults():
    process = functions.environment("process", JOBS_QUEUE_URL="http://queue")

    assert set(functions.names()) >= {"submit", "status", "process", "sweeper", "webhook"}
    assert process["OPENAI_MODEL"] == functions.parameter("OpenAIModel")
    assert process["JOBS_QUEUE_URL"] == "http://queue"
    assert "DATABASE_URL" not in process  # its condition is false for the default, an empty parameter
    assert process["AWS_LAMBDA_FUNCTION_NAME"] == "process"
    assert "JOBS_QUEUE_URL" not in functions.environment("status")


def test_the_floor_loads_no_framework_and_status_neither_boto3_nor_openai():
    assert coldstart.cold_start("floor", 1)["heavy"] == ["boto3"]
    assert coldstart.cold_start("status", 1)["heavy"] == []


def test_statements_are_counted_per_application(database_url):
    with (
        handlers.statement_log(database_url) as found,
        psycopg.connect(database_url, autocommit=True, application_name="bench-test") as connection,
    ):
        for _ in range(3):
            connection.execute("\n  SELECT count(*)\n  FROM jobs WHERE owner = %s", ("nobody",))
        connection.execute("SELECT 1")

    assert found["bench-test", "SELECT"] == 4
    assert sum(count for (app, _), count in found.items() if app == "bench-test") == 4


def test_the_in_process_phase_compares_the_handlers_with_the_floor():
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "handlers"],
        capture_output=True,
        text=True,
        cwd=functions.ROOT,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "| submit handler: CPU per request |" in completed.stdout
    assert "x the floor |" in completed.stdout
    assert "| submit: database round trips per request | 1 | INSERT 1 |" in completed.stdout


def test_the_docs_section_is_replaced_between_its_markers(tmp_path):
    rows = [report.Row("promise", "POST p99", "12 ms", "< 200 ms", report.verdict(False))]
    docs = tmp_path / "performance.md"
    docs.write_text(f"intro\n{report.DOCS_START}\nSTALE\n{report.DOCS_END}\noutro\n")

    assert report.update_docs(docs, report.table(rows))
    text = docs.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE" not in text
    assert "| promise | POST p99 | 12 ms | < 200 ms | **missed** |" in text
    (tmp_path / "other.md").write_text("no markers\n")
    assert not report.update_docs(tmp_path / "other.md", "table")
