"""Through the devstack `Stack` (as `make dev` runs it), with the consumer on and the offline LLM at a
fixed latency: the end-to-end overhead per job against the ideal, then the brief's promise for
POST /jobs (p99 under 200 ms at 10 clients, no errors at 50).

The ideal is the LLM's time alone: its calls times its latency, spread over the process function's
concurrency (ProcessMaxConcurrency, read from the template). What the run takes beyond that, per
job and per environment, is the service's own overhead: queueing, claiming, storing, polling.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import psycopg

from bench import functions
from bench.load import NUMBER, Plan, drive
from bench.report import Row, verdict

LLM_LATENCY_MS = 300
PROMISE_P99_MS = 200
GUIDELINES = Path(__file__).with_name("guidelines.md").read_text(encoding="utf-8")
# Force the embedded database and the offline LLM, whatever the shell or a .env say.
SETTINGS = {
    "OPENAI_API_KEY": "",
    "OPENAI_BASE_URL": "",
    "DATABASE_URL": "",
    "OFFLINE_LLM_FAULTS": "",
    "OFFLINE_LLM_LATENCY_MS": str(LLM_LATENCY_MS),
}


def submissions(stack, concurrency: int, requests: int, series: str) -> Plan:
    """Each body numbered apart: identical documents would be answered from the result cache."""
    body = json.dumps({"guidelines": f"{GUIDELINES}\nReference {series}-{NUMBER}."})
    headers = {"x-api-key": stack.api_key}
    return Plan(stack.base_url, "/jobs", concurrency, requests, headers, body)


def wait_completed(database_url: str, event_ids: list[str], seconds: float) -> tuple[int, float | None]:
    """(how many COMPLETED, the instant the last one did) once all have, or when time runs out."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            done, last = connection.execute(
                "SELECT count(*), extract(epoch FROM max(updated_at))::float FROM jobs"
                " WHERE event_id = ANY(%s::uuid[]) AND status = 'COMPLETED'",
                (event_ids,),
            ).fetchone()
            if done == len(event_ids) or time.monotonic() > deadline:
                return done, last
            time.sleep(0.2)


def end_to_end(stack, jobs: int, say) -> list[Row]:
    concurrency = int(functions.parameter("ProcessMaxConcurrency"))
    # Every process environment through its init and a first job: the ideal describes a steady state.
    warm = drive(submissions(stack, 10, 2 * concurrency, "warm"))
    wait_completed(stack.database_url, warm["collected"], 120)
    before = stack.offline_llm.stats()["requests"]
    say(f"  {jobs} jobs, offline LLM at {LLM_LATENCY_MS} ms a call, {concurrency} process environments")
    submitted = drive(submissions(stack, 10, jobs, "e2e"))
    done, last = wait_completed(stack.database_url, submitted["collected"], max(120, jobs * 3))
    calls = stack.offline_llm.stats()["requests"] - before
    ideal = calls * LLM_LATENCY_MS / 1000 / concurrency
    if done < jobs or last is None:
        return [
            Row("end to end", f"{jobs} jobs", f"{done} COMPLETED", f"ideal {ideal:.1f} s", verdict(False))
        ]
    wall = last - submitted["started_at"]
    overhead_ms = 1000 * (wall - ideal) * concurrency / jobs
    return [
        Row(
            "end to end",
            f"{jobs} jobs, first POST to last COMPLETED",
            f"{wall:.1f} s",
            f"ideal {ideal:.1f} s ({calls / jobs:g} calls a job x {LLM_LATENCY_MS} ms / {concurrency})",
            f"{wall / ideal:.2f}x the ideal",
        ),
        Row(
            "end to end",
            "overhead per job, in one process environment",
            f"{overhead_ms:.0f} ms",
            f"the job's LLM time {calls / jobs * LLM_LATENCY_MS:.0f} ms",
        ),
    ]


def promise(stack, requests: dict[int, int], say) -> list[Row]:
    rows = []
    drive(submissions(stack, 50, 100, "warm-api"))  # the API's environments, up to 50 clients
    for clients, count in requests.items():
        result = drive(submissions(stack, clients, count, f"c{clients}"))
        say(f"  POST /jobs at {clients} clients: p99 {result['p99_ms']} ms, {result['errors']} errors")
        met = result["p99_ms"] < PROMISE_P99_MS if clients == 10 else result["errors"] == 0
        goal = f"p99 < {PROMISE_P99_MS} ms" if clients == 10 else "no errors"
        rows.append(
            Row(
                "promise",
                f"POST /jobs, {clients} clients, consumer on ({result['requests']} requests)",
                f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {result['throughput_rps']} req/s, "
                f"{result['errors']} errors",
                goal,
                verdict(met),
            )
        )
        for sample in result["error_samples"]:
            say(f"    {sample}")
    return rows


def run(quick: bool, say) -> list[Row]:
    from devstack.stack import Stack

    with tempfile.TemporaryDirectory(prefix="bench-stack-") as scratch:
        Path(scratch).chmod(0o755)  # as root, the embedded server runs as its own user
        with Stack(port=0, data_dir=Path(scratch), read_dotenv=False, env=SETTINGS) as stack:
            stack.offline_llm.set_faults(latency_ms=LLM_LATENCY_MS)
            rows = end_to_end(stack, 10 if quick else 200, say)
            return rows + promise(stack, {10: 20, 50: 50} if quick else {10: 2000, 50: 2000}, say)
