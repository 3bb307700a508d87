"""The benchmark's parts work: load generator, statistics, statement counting, report and chart.

No timings are asserted; `make bench` (or `python -m bench --quick`) runs the real thing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from bench import coldstart, queries, report, run
from bench.load import Plan, drive
from bench.stats import percentile, summarize


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        status = 202 if self.headers.get("x-api-key") == "key" else 403
        payload = json.dumps({"event_id": hashlib.sha256(body).hexdigest()}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _plan(port: int, keep_alive: bool, api_key: str = "key") -> Plan:
    return Plan(
        host="127.0.0.1",
        port=port,
        method="POST",
        paths=["/jobs"],
        concurrency=3,
        requests=12,
        keep_alive=keep_alive,
        expect=202,
        headers={"x-api-key": api_key},
        body=json.dumps({"guidelines": "Staff must lock screens. Reference {n}."}),
        collect="event_id",
    )


@pytest.mark.parametrize("keep_alive", [True, False])
def test_the_load_generator_runs_every_request_in_its_own_process(server, keep_alive):
    result = drive(_plan(server, keep_alive))

    assert result["errors"] == 0
    assert len(result["latencies_ms"]) == len(result["offsets_s"]) == len(result["collected"]) == 12
    assert result["generator_cpu_s"] >= 0


def test_a_number_token_makes_every_body_unique(server):
    plan = _plan(server, keep_alive=True)

    assert len(set(drive(plan)["collected"])) == 1
    numbered = dataclasses.replace(plan, number_token="{n}")
    first, second = (set(drive(numbered)["collected"]) for _ in range(2))
    assert len(first) == len(second) == 12
    assert not first & second  # a second run's bodies differ from the first's


def test_unexpected_answers_count_as_errors(server):
    result = drive(_plan(server, keep_alive=True, api_key="wrong"))

    assert result["errors"] == 12
    assert result["latencies_ms"] == []
    assert result["error_samples"][0].startswith("HTTP 403")


def test_percentiles_are_measured_values():
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.99) == 99
    summary = summarize(values, errors=2, wall_seconds=2.0)
    assert (summary["requests"], summary["errors"], summary["max_ms"]) == (102, 2, 100)


@pytest.mark.parametrize("in_step", [True, False])
def test_a_job_cycle_is_measured_whether_the_environments_move_in_step_or_not(in_step):
    """Five environments, 680 ms a job each: finishing together (as with a fixed LLM latency) or
    spread evenly, the steady-state cycle is 680 ms and the time between invocations what the
    invocation does not cover."""
    cycle, environments = 0.68, 5
    completions = [
        group * cycle + (0.001 * env if in_step else env * cycle / environments)
        for group in range(1, 41)
        for env in range(environments)
    ]
    per_job = run._per_job(completions, durations_ms=[660.0] * 200, concurrency=environments)
    assert per_job["cycle_ms"] == pytest.approx(680, abs=1)
    assert per_job["between_invocations_ms"] == pytest.approx(20, abs=1)


def test_statements_are_counted_per_application(database_url):
    assert queries.available(database_url) is None
    with queries.StatementLog(database_url) as log:
        with psycopg.connect(database_url, autocommit=True, application_name="bench-smoke") as connection:
            for _ in range(3):
                connection.execute(
                    "\n    SELECT count(*)\n      FROM jobs\n     WHERE owner = %s", ("nobody",)
                )
        found = log.statements()

    counted = queries.per_request(found, "bench-smoke", 3)
    assert counted["statements"] == 3
    assert counted["per_request"] == 1
    assert counted["distinct"][0]["statement"] == "SELECT count(*) FROM jobs WHERE owner = $1"


def _scenario(target: str, concurrency: int, p99: float, errors: int = 0) -> dict:
    return {
        "target": target,
        "label": target,
        "concurrency": concurrency,
        "client": "keep-alive",
        "requests": 100,
        "errors": errors,
        "p50_ms": p99 / 2,
        "p95_ms": p99 * 0.9,
        "p99_ms": p99,
        "max_ms": p99 * 1.2,
        "throughput_rps": 100.0,
        "generator_cpu_pct": 5.0,
        "machine_cpu_busy_pct": 50.0,
        "error_samples": [],
    }


def _user(
    step: str, target: str, concurrency: int, p99: float, rps: float, depth: int, errors: int = 0
) -> dict:
    return _scenario(target, concurrency, p99, errors) | {
        "throughput_rps": rps,
        "step": step,
        "queue_depth_before": depth,
        "queue_depth_after": depth + 100,
    }


@pytest.fixture(scope="module")
def results():
    floor = coldstart.measure("floor", coldstart.function_dirs()["floor"], runs=1)
    status = dict(floor, function="status", imports=floor["imports"] | {"boto3": False})
    return {
        "date": "2026-01-01",
        "started_at": "2026-01-01T00:00:00+0000",
        "profile": "test",
        "duration_s": 1.0,
        "machine": {
            "cpus": 2,
            "python": "3.11",
            "platform": "Linux",
            "load_average_at_start": [0.1, 0.1, 0.1],
        },
        "user": {
            "llm_latency_ms": 300,
            "backlog": 5000,
            "process_concurrency": 5,
            "scenarios": [
                _user("consumer on", "submit", 10, 45.0, 320.0, 0),
                _user("consumer on", "status", 10, 20.0, 400.0, 100),
                _user("consumer on", "submit", 50, 300.0, 310.0, 200, errors=2),
                _user("consumer on", "status", 50, 90.0, 500.0, 300),
                _user("backlog", "submit", 10, 90.0, 250.0, 5000),
                _user("backlog", "status", 10, 22.0, 450.0, 5100),
            ],
        },
        "api": {
            "scenarios": [
                _scenario("submit", 10, 40.0),
                _scenario("floor_runner", 10, 30.0),
                _scenario("floor_bare", 10, 25.0),
                _scenario("submit", 50, 90.0, errors=1),
            ],
            "first_request_ms": {"submit": 900.0, "status": 800.0, "floor_runner": 500.0},
            "environments": {"SubmitFunction": 10},
            "queries": {"measured": False, "reason": "not in this test"},
        },
        "e2e": {
            "jobs": 4,
            "llm_latency_ms": 300,
            "process_concurrency": 2,
            "batch_size": 1,
            "batching_window_s": 0,
            "ideal_s": 1.2,
            "wall_s": 1.5,
            "ratio": 1.25,
            "completed": 4,
            "statuses": {"COMPLETED": 4},
            "submit_errors": 0,
            "submission_s": 0.1,
            "completions_s": [0.7, 0.8, 1.4, 1.5],
            "llm": {"requests": 8, "by_status": {"200": 8}},
        },
        "cold_start": {"handlers": [floor, status], "packages": {"built": False}},
    }


def test_the_minimal_handler_imports_no_framework(results):
    floor = results["cold_start"]["handlers"][0]

    assert floor["imports"]["openai"] is False
    assert "aws_lambda_powertools" not in floor["third_party_packages"]
    assert "psycopg" in floor["third_party_packages"]


def test_targets_say_what_was_missed_and_by_how_much(results):
    checks = {check["target"]: check for check in report.evaluate(results)}

    assert checks["POST throughput, 10 clients, consumer on"]["met"] is True
    assert checks["POST throughput, 10 clients, consumer on"]["measured"] == "320.0 req/s, queue 0 -> 100"
    assert checks["POST p99, 10 clients, consumer on"]["met"] is True
    assert checks["No errors at 50 clients, consumer on"]["gap"] == "2 errors"
    assert checks["POST p99, 50 clients, consumer on"]["gap"] == "50.0 ms over (1.20x the goal)"
    backlog = checks["POST p99 at a 5,000-message backlog vs the empty queue"]
    assert backlog["met"] is False
    assert backlog["measured"].startswith("2.00x (90.0 ms at 5000 queued / 45.0 ms from 0)")
    assert checks["GET throughput, 10 clients, consumer on"]["gap"] == "50.0 req/s short (0.89x the goal)"
    assert checks["Best case: no errors at concurrency 50"]["met"] is False
    assert checks["Best case: POST p99 at concurrency 10"]["met"] is True
    assert checks["Best case: POST p99 at concurrency 10 vs minimal handler"]["measured"].startswith("1.33x")
    assert checks["End to end, 4 jobs"]["gap"] == "0.2 s over"
    assert checks["status imports neither boto3 nor openai"]["met"] is True
    assert checks["submit and status packages contain no openai"]["measured"] == "not built"


def test_the_report_has_tables_and_a_chart(results, tmp_path):
    checks = report.evaluate(results)
    text = report.markdown(results, checks, "chart.png")
    report.chart(results, tmp_path / "chart.png")

    assert "![latency" in text and "| submit |" in text and "**missed**" in text
    assert "| backlog | submit | 10 |" in text and "| 5000 -> 5100 |" in text
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
    docs = tmp_path / "performance.md"
    docs.write_text(f"intro\n{report.DOCS_START}\nSTALE SECTION\n{report.DOCS_END}\noutro\n")
    assert report.update_docs(docs, text)
    assert docs.read_text().startswith("intro\n") and "STALE SECTION" not in docs.read_text()


def test_the_report_says_when_the_machine_itself_was_too_slow_for_a_target(results):
    """The bare floor (100 req/s, p99 25 ms here) tells a slow phase of the machine from a slow service."""
    text = report.markdown(results, report.evaluate(results), None)
    assert "gave 100.0 req/s with a p99 of 25.0 ms at 10 keep-alive clients; it misses 300 req/s" in text
    bare = next(s for s in results["api"]["scenarios"] if s["target"] == "floor_bare")
    bare["throughput_rps"] = 400.0
    assert "it meets the POST targets at 10 clients" in report.markdown(results, [], None)


def test_profiles_are_summarised_by_inclusive_share(tmp_path):
    from bench.profile import top_frames

    raw = tmp_path / "runner.txt"
    raw.write_text(
        "main (app.py:1);handle (api.py:10);send (sqs.py:5) 3\n"
        "main (app.py:1);handle (api.py:12);parse (api.py:40) 1\n"
    )
    shares = dict((frame, share) for share, frame in top_frames(raw, 10))
    assert shares["handle (api.py)"] == 100.0  # lines of one function count once
    assert shares["send (sqs.py)"] == 75.0
    assert shares["parse (api.py)"] == 25.0


def test_posts_are_grouped_by_the_invocation_edges_they_met():
    """An edge counts while a POST runs and in the 20 ms before it; the slow share is of the p99."""
    from bench.profile import group_by_edges

    quick = [(float(second), 0.010) for second in range(50)]  # none near an edge
    slow = (200.0, 0.050)  # from 200.0 to 200.05 s: one edge before it, two during it
    rows, slow_at_edges = group_by_edges([*quick, slow], edges=[200.04, 199.99, 200.01, 150.5])
    assert rows == [(0, 50, 10.0, 10.0, 10.0), (3, 1, 50.0, 50.0, 50.0)]
    assert slow_at_edges == 1.0  # the p99 of 51 POSTs is the slow one
