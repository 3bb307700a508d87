"""`python -m bench.outage`: an LLM outage through the whole local stack, with the deployed defaults.

Starts the stack as `make dev` does (template defaults, sweeper on its schedule, offline LLM), makes
every LLM call answer 429 with Retry-After, submits a few jobs, keeps the outage on for a while, then
ends it and waits for the jobs. A thread samples the jobs queue every 0.2 s. Prints, and writes as
JSON: each job's outcome and deliveries, when it completed after the recovery, the most live messages
the queue held, and how many LLM calls the backoff schedule allows. docs/reliability.md quotes a run.

    python -m bench.outage                                  # 3 jobs, 20 min, Retry-After 30 s
    python -m bench.outage --outage-minutes 2 --param RetryBackoffBaseSeconds=2 \
        --param RetryBackoffCapSeconds=10
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from bench.run import ROOT, _stack_settings
from devstack.stack import Stack
from devstack.template import load_yaml
from guideline_ingest.logic.backoff import RetryPolicy
from guideline_ingest.logic.retry import IN_CALL_RETRIES, IN_CALL_WAIT_SECONDS

LIVE = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
SAMPLE_SECONDS = 0.2


class QueueSampler(threading.Thread):
    """Live messages (visible + in flight + delayed) of a queue, every SAMPLE_SECONDS."""

    def __init__(self, sqs, url: str):
        super().__init__(name="queue-sampler", daemon=True)
        self.sqs, self.url = sqs, url
        self.samples: list[tuple[float, int]] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(SAMPLE_SECONDS):
            try:
                attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=list(LIVE))
            except Exception:  # noqa: S112 - a missed sample is not a result
                continue
            self.samples.append((time.time(), sum(int(attributes["Attributes"][name]) for name in LIVE)))

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    @property
    def most(self) -> int:
        return max((live for _, live in self.samples), default=0)


def parameter_defaults() -> dict[str, float]:
    parameters = load_yaml(ROOT / "infra" / "template.yaml")["Parameters"]
    return {name: spec.get("Default") for name, spec in parameters.items()}


def expected_deliveries(
    outage: float, retry_after: float, base: float, cap: float, runs: int = 10_000
) -> float:
    """Mean number of deliveries of one job during `outage` seconds, simulated with the policy
    itself (seeded): the first delivery, then one after each backoff that still falls in it."""
    policy = RetryPolicy(base_seconds=base, cap_seconds=cap)
    rng = random.Random(0)
    total = 0
    for _ in range(runs):
        elapsed, deliveries = 0.0, 1
        while (
            elapsed := elapsed + policy.delay(deliveries - 1, retry_after, outage * 10, rng=rng)
        ) <= outage:
            deliveries += 1
        total += deliveries
    return round(total / runs, 1)


def submit(base_url: str, api_key: str, guidelines: str) -> str:
    request = urllib.request.Request(  # noqa: S310 - the local stack's http URL
        f"{base_url}/jobs",
        data=json.dumps({"guidelines": guidelines}).encode(),
        headers={"content-type": "application/json", "x-api-key": api_key},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())["event_id"]


def rows(database_url: str, event_ids: list[str]) -> dict[str, dict]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        found = conn.execute(
            "SELECT event_id, status, attempts, retries, error, created_at, updated_at FROM jobs"
            " WHERE event_id = ANY(%s::uuid[])",
            (event_ids,),
        ).fetchall()
    return {str(row["event_id"]): row for row in found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.outage", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--outage-minutes", type=float, default=20)
    parser.add_argument("--retry-after", type=float, default=30)
    parser.add_argument("--wait-minutes", type=float, default=30, help="after the outage, at most")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter"
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".local" / "bench")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.param)
    defaults = {**parameter_defaults(), **{k: float(v) for k, v in overrides.items()}}
    base, cap = float(defaults["RetryBackoffBaseSeconds"]), float(defaults["RetryBackoffCapSeconds"])
    outage = args.outage_minutes * 60

    data_dir = Path(tempfile.mkdtemp(prefix="guideline-ingest-outage-"))
    data_dir.chmod(0o755)
    say = lambda line: print(f"[{datetime.now(UTC):%H:%M:%S}] {line}", flush=True)  # noqa: E731
    try:
        with Stack(
            port=0, read_dotenv=False, env=_stack_settings(), data_dir=data_dir, parameter_overrides=overrides
        ) as stack:
            sampler = QueueSampler(stack.sqs(), stack.queue_urls["JobsQueue"])
            sampler.start()
            stack.offline_llm.set_faults(**{"429": 1.0, "retry_after": args.retry_after})
            stack.offline_llm.reset_stats()
            event_ids = [
                submit(stack.base_url, stack.api_key, f"Staff must badge in. Outage job {n}.")
                for n in range(args.jobs)
            ]
            say(
                f"{args.jobs} jobs submitted; every LLM call answers 429, Retry-After"
                f" {args.retry_after:g} s, for {args.outage_minutes:g} min"
            )
            outage_ends = time.time() + outage
            while time.time() < outage_ends:
                time.sleep(min(60, max(0.0, outage_ends - time.time())))
                now = rows(stack.database_url, event_ids)
                say(
                    "outage: "
                    + ", ".join(f"{r['status']}/{r['retries']} retries" for r in now.values())
                    + f"; live messages now {sampler.samples[-1][1] if sampler.samples else '?'},"
                    + f" most {sampler.most}"
                )
            outage_calls = stack.offline_llm.stats()
            outage_rows = rows(stack.database_url, event_ids)
            stack.offline_llm.set_faults(**{"429": 0})
            recovered = time.time()
            say("outage over")
            give_up = recovered + args.wait_minutes * 60
            while time.time() < give_up:
                now = rows(stack.database_url, event_ids)
                if all(r["status"] in ("COMPLETED", "FAILED", "CANCELLED") for r in now.values()):
                    break
                time.sleep(1)
            sampler.stop()
            final = rows(stack.database_url, event_ids)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    jobs = [
        {
            "event_id": event_id,
            "status": row["status"],
            "error": row["error"],
            "deliveries": row["attempts"],
            "deliveries_in_outage": outage_rows[event_id]["retries"],
            "completed_after_recovery_s": round(row["updated_at"].timestamp() - recovered, 1),
        }
        for event_id, row in final.items()
    ]
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {
            k: defaults[k]
            for k in (
                "RetryBudgetSeconds",
                "RetryBackoffBaseSeconds",
                "RetryBackoffCapSeconds",
                "JobsVisibilityTimeoutSeconds",
                "MaxReceiveCount",
                "ProcessMaxConcurrency",
            )
        },
        "outage_s": outage,
        "retry_after_s": args.retry_after,
        "jobs": jobs,
        "llm_calls_in_outage": outage_calls["requests"],
        "llm_calls_per_job_in_outage_mean": round(outage_calls["requests"] / args.jobs, 1),
        "deliveries_per_job_in_outage_max": max(j["deliveries_in_outage"] for j in jobs),
        "deliveries_per_job_expected_mean": expected_deliveries(outage, args.retry_after, base, cap),
        # Deliveries are at least Retry-After apart; a Retry-After short enough is also waited in the call.
        "deliveries_per_job_bound": int(1 + outage // args.retry_after),
        "llm_calls_per_delivery_bound": 1 if args.retry_after > IN_CALL_WAIT_SECONDS else 1 + IN_CALL_RETRIES,
        "live_messages_most": sampler.most,
        "queue_samples": len(sampler.samples),
        "failed": sum(j["status"] == "FAILED" for j in jobs),
        "completed_after_recovery_s_max": max(j["completed_after_recovery_s"] for j in jobs),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"outage-{results['date'][:19].replace(':', '')}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    print()
    print(
        f"outage {outage / 60:g} min, every LLM call 429 with Retry-After {args.retry_after:g} s;"
        f" parameters {results['parameters']}"
    )
    print("| job | status | deliveries in all | deliveries during the outage | completed after recovery |")
    print("| --- | --- | --- | --- | --- |")
    for job in jobs:
        print(
            f"| {job['event_id'][:8]} | {job['status']} | {job['deliveries']} | {job['deliveries_in_outage']}"
            f" | {job['completed_after_recovery_s']} s |"
        )
    print(
        f"jobs FAILED: {results['failed']}; most live messages in the jobs queue:"
        f" {results['live_messages_most']}"
        f" for {args.jobs} jobs ({results['queue_samples']} samples, every {SAMPLE_SECONDS} s)"
    )
    print(
        f"LLM calls during the outage: {results['llm_calls_in_outage']} in all,"
        f" {results['llm_calls_per_job_in_outage_mean']} per job; deliveries per job at most"
        f" {results['deliveries_per_job_in_outage_max']}, the schedule allows at most"
        f" {results['deliveries_per_job_bound']} (one per Retry-After,"
        f" {results['llm_calls_per_delivery_bound']}"
        f" LLM call(s) each) and expects {results['deliveries_per_job_expected_mean']} on average"
    )
    print(f"written to {path}")
    return 0 if results["failed"] == 0 and results["live_messages_most"] <= args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
