"""CPU and database round trips per request of the submit and status handlers, warm and in-process.

The handlers run in this process, called with the event files of events/ as Lambda calls them;
PostgreSQL (embedded) and SQS (moto's own server) run in processes of their own, so this process's
CPU time is the handler's: our code, its framework and the client libraries. The floor
(bench/floor_function) does only the INSERT and the SendMessage of a submission, with no framework:
measured in the same run, in turns with the handlers, it makes the ratio independent of the
machine's speed. Round trips are counted from PostgreSQL's own log (the embedded server has no
pg_stat_statements, which needs a preloaded library): each statement is one, the service never
pipelines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import boto3
import botocore.exceptions
import psycopg

from bench import functions
from bench.report import Row

EVENTS = functions.ROOT / "events"
APPLICATION = "bench-handler"  # the handlers' application_name (from AWS_LAMBDA_FUNCTION_NAME)
GUIDELINES = (Path(__file__).with_name("guidelines.md")).read_text(encoding="utf-8")


_PREFIX = "%m [%p] app=%a "
# Each entry starts with the prefix; a statement's own newlines continue the entry.
_ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[\d+\] app=", re.M)
# `statement:` for simple queries, `execute <name>:` for the extended protocol psycopg uses.
_STATEMENT = re.compile(r"(\S*) LOG:\s+(?:statement|execute [^:]*): (.*)", re.S)


@contextlib.contextmanager
def statement_log(database_url: str):
    """Every statement logged while open (superuser, the server log in the data directory): yields a
    Counter of (application_name, the statement's first word), filled as the block ends."""
    found: Counter = Counter()
    size = "SELECT size FROM pg_stat_file('log')"
    with psycopg.connect(database_url, autocommit=True) as connection:

        def configure(statement: str | None, prefix: str | None) -> None:
            for name, value in (("log_statement", statement), ("log_line_prefix", prefix)):
                connection.execute(
                    f"ALTER SYSTEM SET {name} = {value}" if value else f"ALTER SYSTEM RESET {name}"
                )
            connection.execute("SELECT pg_reload_conf()")
            time.sleep(0.3)  # backends apply a reload at their next command

        start = connection.execute(size).fetchone()[0]
        configure("'all'", f"'{_PREFIX}'")
        try:
            yield found
            time.sleep(0.3)  # the server writes its log asynchronously to our reads
            end = connection.execute(size).fetchone()[0]
            text = connection.execute("SELECT pg_read_file('log', %s, %s)", (start, end - start)).fetchone()[
                0
            ]
        finally:
            configure(None, None)
    for entry in _ENTRY.split(text):
        if match := _STATEMENT.match(entry):
            found[match.group(1), match.group(2).split()[0]] += 1


# What a handler reads of Lambda's context object.
CONTEXT = SimpleNamespace(
    function_name=APPLICATION,
    memory_limit_in_mb=512,
    invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{APPLICATION}",
    aws_request_id="bench",
    get_remaining_time_in_millis=lambda: 10_000,
)


@contextlib.contextmanager
def services():
    """Embedded PostgreSQL (migrated) and moto's server with the two queues: the functions' settings."""
    from devstack.postgres import LocalPostgres
    from guideline_ingest.migrations import migrate

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", endpoint.rsplit(":", 1)[1]]
    moto = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    with tempfile.TemporaryDirectory(prefix="bench-handlers-") as scratch:
        Path(scratch).chmod(0o755)  # as root, the embedded server runs as its own user
        postgres = LocalPostgres(Path(scratch) / "pgdata")
        try:
            database_url = postgres.start()
            migrate(database_url)
            os.environ.update(functions.LAMBDA)
            sqs = boto3.client("sqs", endpoint_url=endpoint)
            for _ in range(100):  # moto's server takes a moment to listen
                with contextlib.suppress(botocore.exceptions.EndpointConnectionError):
                    queues = [sqs.create_queue(QueueName=f"bench-{n}")["QueueUrl"] for n in ("jobs", "hooks")]
                    break
                time.sleep(0.2)
            yield {
                "DATABASE_URL": database_url,
                "DATABASE_SSLMODE": "disable",
                "AWS_ENDPOINT_URL": endpoint,
                "JOBS_QUEUE_URL": queues[0],
                "WEBHOOK_QUEUE_URL": queues[1],
                "WEBHOOK_SIGNING_SECRET": "bench-webhook-signing-secret-0123456789",
            }
        finally:
            moto.terminate()
            moto.wait()
            postgres.stop()


def _event(name: str, **changes) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8")) | changes


@contextlib.contextmanager
def _quiet():
    """The functions log each request to stdout, as on Lambda: the writing is measured, the lines dropped."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run(quick: bool, say) -> list[Row]:
    rounds, per_round = (2, 3) if quick else (15, 40)
    with services() as settings:
        os.environ.update(
            functions.environment("submit", **settings)
            | functions.environment("status", **settings)
            | {"AWS_LAMBDA_FUNCTION_NAME": APPLICATION}
        )
        handlers = {name: functions.load(name).handler for name in ("submit", "status", "floor")}
        numbers = iter(range(10**9))

        def submit_event() -> dict:
            return _event(
                "submit.json", body=json.dumps({"guidelines": f"{GUIDELINES}\nRef {next(numbers)}"})
            )

        with _quiet():
            answer = handlers["submit"](submit_event(), CONTEXT)
        event_id = json.loads(answer["body"])["event_id"]
        status_event = _event("status.json", path=f"/jobs/{event_id}", pathParameters={"event_id": event_id})
        events = {"submit": submit_event, "status": lambda: status_event, "floor": submit_event}
        expected = {"submit": 202, "status": 200, "floor": 202}

        def call(name: str, times: int) -> float:
            """CPU seconds per call of `times` calls."""
            batch = [events[name]() for _ in range(times)]
            started = time.process_time()
            for event in batch:
                status = handlers[name](event, CONTEXT)["statusCode"]
                if status != expected[name]:
                    raise RuntimeError(f"{name} answered {status}")
            return (time.process_time() - started) / times

        say(f"  CPU: {rounds} rounds of {per_round} calls per handler, in turns")
        cpu: dict[str, list[float]] = {name: [] for name in handlers}
        with _quiet():
            for name in handlers:
                call(name, per_round)  # warm: connections made, lazy imports done
            for _ in range(rounds):
                for name in handlers:
                    cpu[name].append(call(name, per_round))
            statements = {}
            for name in handlers:
                with statement_log(settings["DATABASE_URL"]) as found:
                    call(name, per_round)
                application = "bench-floor" if name == "floor" else APPLICATION
                statements[name] = {kind: n for (app, kind), n in found.items() if app == application}
    median_ms = {name: 1000 * statistics.median(values) for name, values in cpu.items()}
    rows = [
        Row(
            "in-process",
            f"{name} handler: CPU per request",
            f"{median_ms[name]:.2f} ms",
            f"floor {median_ms['floor']:.2f} ms",
            f"{median_ms[name] / median_ms['floor']:.2f}x the floor",
        )
        for name in ("submit", "status")
    ]
    for name in ("submit", "status", "floor"):
        counted = statements[name]
        kinds = ", ".join(f"{kind} {count / per_round:g}" for kind, count in counted.items())
        rows.append(
            Row(
                "in-process",
                f"{name}: database round trips per request",
                f"{sum(counted.values()) / per_round:g}",
                kinds,
            )
        )
    return rows
