"""A bounded HTTP load: N POSTs from C threads over keep-alive http.client connections.

It runs in its own process (`python -m bench.load '<plan as JSON>'` prints its result as JSON), so
the generator never shares a GIL with the stack it measures.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "{number}"  # replaced in a body by a number unique to the request


@dataclass
class Plan:
    """`requests` POSTs of `body` to the API's `url` + `path`, from `concurrency` clients."""

    url: str  # the API's base URL, stage included
    path: str
    concurrency: int
    requests: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    expect: int = 202
    collect: str | None = "event_id"  # a member of the JSON answers to return


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank: every value reported is one that was measured."""
    return ordered[max(1, math.ceil(share * len(ordered))) - 1] if ordered else math.nan


def run(plan: Plan) -> dict:
    url = urlsplit(plan.url)
    headers = {"Content-Type": "application/json"} | plan.headers
    path = url.path.rstrip("/") + plan.path
    # Unique across runs too: a body seen before would be answered from the service's result cache.
    run_id = uuid.uuid4().hex[:8]
    tickets = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    collected: list[str] = []
    failures: list[str] = []
    start_line = threading.Barrier(plan.concurrency + 1)

    def worker() -> None:
        connection = None
        start_line.wait()
        while (ticket := next(tickets)) < plan.requests:
            body = plan.body.replace(NUMBER, f"{run_id}-{ticket}").encode()
            started = time.perf_counter()
            try:
                connection = connection or http.client.HTTPConnection(url.hostname, url.port, timeout=60)
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                connection = None
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                if response.status != plan.expect:
                    failures.append(f"HTTP {response.status}: {payload[:200].decode(errors='replace')}")
                    continue
                latencies.append(elapsed_ms)
                if plan.collect:
                    collected.append(json.loads(payload)[plan.collect])
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(plan.concurrency)]
    for thread in threads:
        thread.start()
    started, started_at = time.perf_counter(), time.time()
    start_line.wait()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies) + len(failures),
        "errors": len(failures),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "throughput_rps": round((len(latencies) + len(failures)) / wall_s, 1),
        "started_at": started_at,
        "error_samples": failures[:3],
        "collected": collected,
    }


def drive(plan: Plan) -> dict:
    """The load in a process of its own, and its result."""
    command = [sys.executable, "-m", "bench.load", json.dumps(asdict(plan))]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)  # noqa: S603
    if completed.returncode != 0:
        raise RuntimeError(f"the load generator failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout)


if __name__ == "__main__":
    json.dump(run(Plan(**json.loads(sys.argv[1]))), sys.stdout)
