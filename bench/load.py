"""A bounded load: N requests from C threads over http.client, keep-alive or one connection per request.

Run in its own process (`python -m bench.load '<plan as JSON>'` writes its result as JSON) so
the generator never shares a GIL with the service it measures; it reports its own CPU time so a
reader can tell whether it could have been the bottleneck.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Plan:
    host: str
    port: int
    method: str
    paths: list[str]  # cycled through, one per request
    concurrency: int
    requests: int
    keep_alive: bool
    expect: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    collect: str | None = None  # a member of the JSON answers to return, e.g. event_id
    number_token: str | None = None  # replaced in the body by the request's number, to make each one unique


@dataclass
class _Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)


def _cpu_busy() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, to show how loaded both cores were."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(value) for value in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def run(plan: Plan) -> dict:
    headers = dict(plan.headers)
    if plan.body is not None:
        headers.setdefault("Content-Type", "application/json")

    # Unique across runs too: a step that reused an earlier step's numbers would send documents the
    # service has processed already, and the consumer would serve them from its result cache at
    # CPU speed instead of waiting on the LLM.
    run_id = uuid.uuid4().hex[:8]

    def body_of(ticket: int) -> bytes | None:
        if plan.body is None:
            return None
        if plan.number_token:
            return plan.body.replace(plan.number_token, f"{run_id}-{ticket}").encode()
        return plan.body.encode()

    if not plan.keep_alive:
        headers["Connection"] = "close"
    tickets = itertools.count()
    outcomes = [_Outcome() for _ in range(plan.concurrency)]
    start_line = threading.Barrier(plan.concurrency + 1)

    def worker(outcome: _Outcome) -> None:
        connection = None
        start_line.wait()
        while (ticket := next(tickets)) < plan.requests:
            path = plan.paths[ticket % len(plan.paths)]
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(plan.host, plan.port, timeout=60)
                connection.request(plan.method, path, body=body_of(ticket), headers=headers)
                response = connection.getresponse()
                payload = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if not plan.keep_alive or response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                if connection is not None:
                    connection.close()
                    connection = None
                _error(outcome, f"{type(exc).__name__}: {exc}")
                continue
            if response.status != plan.expect:
                _error(outcome, f"HTTP {response.status}: {payload[:200].decode(errors='replace')}")
                continue
            outcome.starts.append(started)
            outcome.latencies_ms.append(elapsed)
            if plan.collect:
                outcome.collected.append(json.loads(payload)[plan.collect])
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=worker, args=(outcome,), daemon=True) for outcome in outcomes]
    for thread in threads:
        thread.start()
    cpu_before, machine_before = os.times(), _cpu_busy()
    started, started_at = time.perf_counter(), time.time()
    start_line.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu_after, machine_after = os.times(), _cpu_busy()
    own_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    machine = None
    if machine_before and machine_after:
        busy = machine_after[0] - machine_before[0]
        total = machine_after[1] - machine_before[1]
        machine = round(100 * busy / total, 1) if total else None
    return {
        "latencies_ms": [round(value, 3) for o in outcomes for value in o.latencies_ms],
        "offsets_s": [round(start - started, 4) for o in outcomes for start in o.starts],
        "errors": sum(o.errors for o in outcomes),
        "error_samples": [sample for o in outcomes for sample in o.error_samples][:5],
        "collected": [value for o in outcomes for value in o.collected],
        "started_at": started_at,
        "wall_s": round(wall, 4),
        "generator_cpu_s": round(own_cpu, 4),
        "machine_cpu_busy_pct": machine,
    }


def _error(outcome: _Outcome, description: str) -> None:
    outcome.errors += 1
    if len(outcome.error_samples) < 5:
        outcome.error_samples.append(description)


def start(plan: Plan) -> subprocess.Popen:
    """The load in a process of its own; `finish` collects its result."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.load", json.dumps(asdict(plan))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(process: subprocess.Popen) -> dict:
    output, errors = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed: {errors[-2000:]}")
    return json.loads(output)


def drive(plan: Plan) -> dict:
    return finish(start(plan))


def main() -> None:
    plan = Plan(**json.loads(sys.argv[1]))
    json.dump(run(plan), sys.stdout)


if __name__ == "__main__":
    main()
