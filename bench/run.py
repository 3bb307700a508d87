"""One benchmark run: API load against the service and its overhead floors, end to end, cold start.

Each phase gets a fresh stack on loopback (embedded PostgreSQL in a temporary directory, moto, the
offline LLM), so runs do not depend on what a developer's `.env` or `.local/` hold. The load comes
from separate processes (bench.load) so it never competes with the service for one GIL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bench import coldstart, queries
from bench.load import Plan, drive, finish, start
from bench.stats import summarize
from devstack import logs

ROOT = Path(__file__).resolve().parent.parent
# What the stack logged during the last run (bench.run.log_as_make_dev_does).
STACK_LOG = ROOT / ".local" / "bench" / "stack.log"
FLOOR_TEMPLATE = ROOT / "bench" / "floor_function" / "template.yaml"
PROCESS_EVENT = ROOT / "events" / "process.json"
E2E_LLM_LATENCY_MS = 300
BACKLOG_SETTLE_SECONDS = 5

# A plausible submission (about 1.3 KB): the offline model summarises it as it would a real one.
GUIDELINES = """# Remote work security guidelines

1. Employees must lock their screen whenever they leave their device unattended.
2. All laptops shall use full-disk encryption; IT verifies this every quarter.
3. Passwords must be at least 14 characters long and must never be reused across services.
4. Multi-factor authentication is required for email, the VPN and every customer-facing system.
5. Customer data should be stored only in approved systems and never on personal devices.
6. Staff are expected to report suspected phishing to the security team within one hour.
7. Software updates must be installed within seven days of release.
8. Printed documents containing personal data shall be shredded after use.
9. Do not share access tokens or API keys in chat, tickets or email.
10. Managers should review their team's access rights every six months and remove what is unused.
11. Backups are encrypted and tested monthly; restore tests must be documented.
12. Visitors to the office must be accompanied at all times and sign the visitor log.

Document reference: RW-SEC-{number}.
"""
# Each submission gets its own reference number, unique across the run (bench.load): identical
# documents would be served from the service's result cache instead of the LLM, and every step
# measures the LLM path.
NUMBER = "{number}"


@dataclass(frozen=True)
class Profile:
    name: str
    requests: dict[int, int]  # concurrency -> requests measured (best case)
    user_requests: dict[int, int]  # concurrency -> requests measured with the consumer on
    clients: tuple[str, ...]
    warmup: int
    e2e_jobs: int
    coldstart_runs: int
    counted_requests: int
    backlog: int  # jobs queued before the backlog step


FULL = Profile(
    "full",
    {1: 200, 10: 300, 50: 400},
    # Several seconds a step: a p99 from thousands of requests, with the schedules and the
    # consumer's work falling inside the window as they would for a user.
    {1: 300, 10: 2_000, 50: 2_000},
    ("keep-alive", "new-connection"),
    warmup=100,
    e2e_jobs=200,
    coldstart_runs=7,
    counted_requests=20,
    backlog=5_000,
)
# A smoke for CI: every phase runs, on counts too small to mean anything.
QUICK = Profile(
    "quick",
    {1: 5, 10: 20, 50: 50},
    {1: 5, 10: 20, 50: 50},
    ("keep-alive",),
    warmup=20,
    e2e_jobs=10,
    coldstart_runs=1,
    counted_requests=3,
    backlog=50,
)


@dataclass
class Target:
    key: str
    label: str
    base_url: str
    method: str
    paths: list[str]
    api_key: str
    expect: int
    body: str | None = None

    def plan(self, concurrency: int, requests: int, keep_alive: bool, collect: str | None = None) -> Plan:
        """`requests` requests from `concurrency` clients; NUMBER in the body becomes the request number."""
        url = urlsplit(self.base_url)
        return Plan(
            host=url.hostname,
            port=url.port or 80,
            method=self.method,
            paths=[url.path.rstrip("/") + path for path in self.paths],
            concurrency=concurrency,
            requests=requests,
            keep_alive=keep_alive,
            expect=self.expect,
            headers={"x-api-key": self.api_key},
            body=self.body,
            collect=collect,
            number_token=NUMBER if self.body and NUMBER in self.body else None,
        )


def submission(key: str, label: str, base_url: str, api_key: str, guidelines: str = GUIDELINES) -> Target:
    body = json.dumps({"guidelines": guidelines})
    return Target(key, label, base_url, "POST", ["/jobs"], api_key, 202, body)


def _stack_settings(**extra: str) -> dict[str, str]:
    """Force the offline LLM and the embedded database, whatever the shell or .env say."""
    return {
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "DATABASE_URL": "",
        "OFFLINE_LLM_FAULTS": "",
        **extra,
    }


# --- the bare floor process -----------------------------------------------------------------------


@contextlib.contextmanager
def bare_floor(database_url: str, sqs_endpoint: str, queue_url: str, api_key: str):
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        {
            "DATABASE_URL": database_url,
            "JOBS_QUEUE_URL": queue_url,
            "AWS_ENDPOINT_URL": sqs_endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "API_KEY": api_key,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.floor"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _environ(**values: str):
    """Variables for the processes the stack starts (moto's server lets us purge more than once a minute)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- phases ---------------------------------------------------------------------------------------


def _scenario(target: Target, concurrency: int, client: str, result: dict) -> dict:
    summary = summarize(result["latencies_ms"], result["errors"], result["wall_s"])
    return {
        "target": target.key,
        "label": target.label,
        "concurrency": concurrency,
        "client": client,
        **summary,
        "generator_cpu_pct": round(100 * result["generator_cpu_s"] / result["wall_s"], 1),
        "machine_cpu_busy_pct": result["machine_cpu_busy_pct"],
        "error_samples": result["error_samples"],
    }


def _warm(target: Target, profile: Profile) -> dict:
    """Start every execution environment the pool will use, outside the measurement."""
    concurrency = max(profile.requests)
    collect = "event_id" if target.expect == 202 else None
    return drive(target.plan(concurrency, max(profile.warmup, concurrency), keep_alive=True, collect=collect))


def measure_load(targets: list[Target], profile: Profile, say, between=lambda: None) -> list[dict]:
    scenarios = []
    # Targets interleaved per step, so a machine that gets busier mid-run affects all of them alike.
    for concurrency, requests in profile.requests.items():
        for client in profile.clients:
            for target in targets:
                between()
                result = drive(target.plan(concurrency, requests, keep_alive=client == "keep-alive"))
                scenario = _scenario(target, concurrency, client, result)
                scenarios.append(scenario)
                say(
                    f"  {target.label:<22} c={concurrency:<3} {client:<14} p50 {scenario['p50_ms']:7.1f} "
                    f"p99 {scenario['p99_ms']:7.1f} ms  {scenario['throughput_rps']:6.1f} req/s  "
                    f"errors {scenario['errors']}"
                )
    return scenarios


def _first_request(target: Target) -> tuple[float | None, list[str]]:
    """One request on a new connection to a pool with no environment yet: a cold start."""
    result = drive(target.plan(1, 1, keep_alive=False, collect="event_id" if target.expect == 202 else None))
    return (result["latencies_ms"] or [None])[0], result["collected"]


def queue_depth(sqs, queue_url: str) -> int:
    """Messages in the queue: visible, in flight and delayed, as SQS counts them."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def user_phase(profile: Profile, data_dir: Path, say) -> dict:
    """The API as a user of `make dev` meets it: the consumer on, the offline LLM at 300 ms a call,
    schedules on, so a backlog builds while the load runs; then the same load at a fixed backlog."""
    from devstack.stack import Stack

    with Stack(
        port=0,
        data_dir=data_dir / "user",
        read_dotenv=False,
        env=_stack_settings(OFFLINE_LLM_LATENCY_MS=str(E2E_LLM_LATENCY_MS)),
    ) as stack:
        sqs = stack.sqs()
        jobs_queue = stack.queue_urls["JobsQueue"]
        submit = submission(
            "submit", "POST /jobs", stack.base_url, stack.api_key, guidelines=_numbered("USER")
        )
        say("warming up every execution environment")
        warm_ids = _warm(submit, profile)["collected"]
        status = Target(
            "status",
            "GET /jobs/{id}",
            stack.base_url,
            "GET",
            [f"/jobs/{i}" for i in warm_ids],
            stack.api_key,
            200,
        )
        _warm(status, profile)
        # The warm-up's jobs are processed before the first step: it starts on an (almost) empty queue.
        _drain(sqs, jobs_queue, deadline=time.time() + 120)

        def step(label: str):
            def measure(target: Target, concurrency: int, requests: int) -> dict:
                before = queue_depth(sqs, jobs_queue)
                result = drive(target.plan(concurrency, requests, keep_alive=True))
                scenario = _scenario(target, concurrency, "keep-alive", result)
                scenario |= {
                    "step": label,
                    "queue_depth_before": before,
                    "queue_depth_after": queue_depth(sqs, jobs_queue),
                }
                say(
                    f"  {label:<14} {target.label:<16} c={concurrency:<3} p50 {scenario['p50_ms']:7.1f} "
                    f"p99 {scenario['p99_ms']:7.1f} ms  {scenario['throughput_rps']:6.1f} req/s  "
                    f"errors {scenario['errors']}  queue {before} -> {scenario['queue_depth_after']}"
                )
                return scenario

            return measure

        say("load with the consumer running (the backlog builds)")
        scenarios = []
        measure = step("consumer on")
        for concurrency, requests in profile.user_requests.items():
            for target in (submit, status):
                scenarios.append(measure(target, concurrency, requests))

        say(f"a backlog of {profile.backlog} queued jobs (the event source paused while they are submitted)")
        stack.disable_event_sources()
        fill = _numbered("BACKLOG")
        missing = profile.backlog - queue_depth(sqs, jobs_queue)
        if missing > 0:
            drive(
                submission("submit", "POST /jobs", stack.base_url, stack.api_key, fill).plan(
                    10, missing, True
                )
            )
        # A user's backlog built up over time: let PostgreSQL write out the fill (thousands of
        # INSERTs a moment ago) so the step measures the backlog, not the fill; the event source
        # stays paused meanwhile, so the step starts at the full backlog.
        time.sleep(BACKLOG_SETTLE_SECONDS)
        stack.enable_event_sources()
        measure = step("backlog")
        concurrency = 10
        for target in (submit, status):
            scenarios.append(measure(target, concurrency, profile.user_requests[concurrency]))
        return {
            "llm_latency_ms": E2E_LLM_LATENCY_MS,
            "backlog": profile.backlog,
            "process_concurrency": int(stack.template.parameters["ProcessMaxConcurrency"]),
            "scenarios": scenarios,
        }


def _drain(sqs, queue_url: str, deadline: float) -> None:
    while queue_depth(sqs, queue_url) and time.time() < deadline:
        time.sleep(0.5)


def api_phase(profile: Profile, data_dir: Path, say) -> dict:
    """The best case: no consumer and an empty queue before each step."""
    from devstack.stack import Stack

    # No event source and no schedule: the API is measured alone, as it runs alone on Lambda.
    with (
        _environ(MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR="false"),
        Stack(
            port=0,
            data_dir=data_dir / "api",
            read_dotenv=False,
            env=_stack_settings(),
            event_sources=False,
            schedules=False,
        ) as stack,
    ):
        jobs_queue = stack.queue_urls["JobsQueue"]
        floor_settings = {"DATABASE_URL": stack.database_url, "API_KEYS": stack.api_key}
        with (
            Stack(
                port=0,
                template=FLOOR_TEMPLATE,
                data_dir=data_dir / "floor",
                read_dotenv=False,
                env=floor_settings,
                migrate=False,
                schedules=False,
                event_sources=False,
                sqs_endpoint=stack.sqs_endpoint,
                queue_urls={"JobsQueue": jobs_queue},
            ) as floor_stack,
            bare_floor(stack.database_url, stack.sqs_endpoint, jobs_queue, stack.api_key) as bare_url,
        ):
            submit = submission("submit", "POST /jobs", stack.base_url, stack.api_key)
            floor_runner = submission(
                "floor_runner", "POST floor (runner)", floor_stack.base_url, stack.api_key
            )
            floor_bare = submission("floor_bare", "POST floor (bare)", bare_url, stack.api_key)

            sqs = stack.sqs()

            def empty_queue() -> None:
                # Nothing consumes here, and moto's send_message slows down with the queue's depth
                # (it counts every message on each send): each step starts from an empty queue.
                sqs.purge_queue(QueueUrl=jobs_queue)

            say("first requests (cold environments)")
            first_post, ids = _first_request(submit)
            status = Target(
                "status",
                "GET /jobs/{id}",
                stack.base_url,
                "GET",
                [f"/jobs/{i}" for i in ids],
                stack.api_key,
                200,
            )
            first_get, _ = _first_request(status)
            first_floor, _ = _first_request(floor_runner)

            say("warming up every execution environment")
            status.paths = [f"/jobs/{i}" for i in _warm(submit, profile)["collected"]]
            for target in (status, floor_runner, floor_bare):
                _warm(target, profile)

            say("load")
            scenarios = measure_load([submit, status, floor_runner, floor_bare], profile, say, empty_queue)

            say("statements per request")
            empty_queue()
            counted = count_statements(stack.database_url, submit, status, floor_runner, floor_bare, profile)
            environments = {name: pool.size for name, pool in stack.pools.items() if pool.size}
            environments["FloorFunction"] = floor_stack.pools["FloorFunction"].size

    return {
        "first_request_ms": {"submit": first_post, "status": first_get, "floor_runner": first_floor},
        "scenarios": scenarios,
        "queries": counted,
        "environments": environments,
    }


def count_statements(database_url: str, submit, status, floor_runner, floor_bare, profile: Profile) -> dict:
    unavailable = queries.available(database_url)
    if unavailable:
        return {"measured": False, "reason": unavailable}
    n = profile.counted_requests
    with queries.StatementLog(database_url) as log:
        for target in (submit, status, floor_runner, floor_bare):
            drive(target.plan(1, n, keep_alive=True))
        found = log.statements()
    return {
        "measured": True,
        "method": "PostgreSQL log (log_statement=all) per application_name",
        "submit": queries.per_request(found, "SubmitFunction", n),
        "status": queries.per_request(found, "StatusFunction", n),
        "floor": queries.per_request(found, "bench-floor", 2 * n),
    }


def _warm_process(stack, concurrency: int) -> None:
    """Cold-start all the process environments the event source may use, with a no-op event."""
    event = json.loads(PROCESS_EVENT.read_text())
    threads = [threading.Thread(target=stack.invoke, args=("process", event)) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def e2e_phase(profile: Profile, data_dir: Path, say) -> dict:
    from devstack.stack import Stack

    with Stack(
        port=0,
        data_dir=data_dir / "e2e",
        read_dotenv=False,
        env=_stack_settings(OFFLINE_LLM_LATENCY_MS=str(E2E_LLM_LATENCY_MS)),
        schedules=False,
    ) as stack:
        process = stack.template.function("process")
        concurrency = int(stack.template.parameters["ProcessMaxConcurrency"])
        mapping = next(m for m in stack.mappings if m.pool.spec is process)
        jobs = profile.e2e_jobs
        ideal = 2 * E2E_LLM_LATENCY_MS / 1000 * jobs / concurrency

        # The ideal describes a pipeline in steady state: every environment has been through its
        # init and its first job (which loads boto3 in submit and the LLM client's lazy modules in
        # process). What those cost is reported beside: first invocations here, cold start below.
        say(f"warming up the {concurrency} process environments and the submit environments")
        _warm_process(stack, concurrency)
        invocations = _Invocations(stack.pools[process.logical_id])
        warm_jobs = 2 * concurrency
        warm = submission("submit", "POST /jobs", stack.base_url, stack.api_key, guidelines=_numbered("WARM"))
        drive(warm.plan(10, warm_jobs, keep_alive=False))
        _watch_jobs(stack.database_url, warm_jobs, since=0, deadline=time.time() + 60)
        first_jobs_ms = invocations.take()
        stack.offline_llm.reset_stats()

        say(f"{jobs} jobs, offline LLM at {E2E_LLM_LATENCY_MS} ms per call, ideal {ideal:.1f} s")
        submit = submission("submit", "POST /jobs", stack.base_url, stack.api_key)
        since = time.time()
        loader = start(submit.plan(10, jobs, keep_alive=True, collect="event_id"))
        progress, finished = _watch_jobs(
            stack.database_url, jobs, since=since, deadline=time.time() + max(60, 5 * ideal)
        )
        submitted = finish(loader)
        llm = stack.offline_llm.stats()
        started_at = submitted["started_at"]
        completions = [round(at - started_at, 3) for at in finished]
        wall = completions[-1] if len(completions) == jobs else None
        per_job = _per_job(completions, invocations.take(), concurrency)
        if per_job:
            per_job["warm_up_invocations_ms"] = [round(d, 1) for d in first_jobs_ms]

        say("statements per processed job")
        counted = _count_process_statements(stack, max(2, profile.counted_requests // 2))
        return {
            "jobs": jobs,
            "llm_latency_ms": E2E_LLM_LATENCY_MS,
            "process_concurrency": concurrency,
            "event_source_concurrency": mapping.concurrency,
            "batch_size": mapping.source.batch_size,
            "batching_window_s": mapping.source.batching_window_seconds,
            "ideal_s": round(ideal, 2),
            "wall_s": wall,
            "ratio": round(wall / ideal, 3) if wall else None,
            "completed": len(completions),
            "statuses": progress,
            "submit_errors": submitted["errors"],
            "submission_s": round(max(submitted["offsets_s"], default=0), 2),
            "completions_s": completions,
            "llm": llm,
            "per_job": per_job,
            "statements": counted,
        }


class _Invocations:
    """How long each process invocation took, as the runner's pool measured it."""

    def __init__(self, pool):
        self._durations_ms: list[float] = []
        invoke = pool.invoke

        def timed(event):
            invocation = invoke(event)
            self._durations_ms.append(invocation.duration_ms)
            return invocation

        pool.invoke = timed

    def take(self) -> list[float]:
        """The durations so far, in completion order; the next call returns only newer ones."""
        taken, self._durations_ms = self._durations_ms, []
        return taken


def _per_job(completions: list[float], durations_ms: list[float], concurrency: int) -> dict | None:
    """Where a job's time goes at steady state: inside the function, and between invocations."""
    if len(completions) < 8 or not durations_ms:
        return None
    # The middle half of the run: no start-up, no tail. Each environment finishes one job a cycle,
    # so a completion and the one `concurrency` places later are one cycle apart, whether the
    # environments move in step (they finish together, waiting out the same LLM latency) or not.
    # (Counting jobs over the span between two completions misses one cycle when they do.)
    ordered_completions = sorted(completions)
    quarter = len(completions) // 4
    cycles = [
        later - earlier
        for earlier, later in zip(
            ordered_completions[quarter : -quarter - concurrency],
            ordered_completions[quarter + concurrency : -quarter],
            strict=True,
        )
    ]
    if not cycles:
        return None
    cycle_ms = 1000 * statistics.median(cycles)
    ordered = sorted(durations_ms)
    invocation_ms = ordered[len(ordered) // 2]
    return {
        "cycle_ms": round(cycle_ms, 1),  # one job's share of one process environment's time
        "invocation_median_ms": round(invocation_ms, 1),
        "invocation_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "llm_ms": 2 * E2E_LLM_LATENCY_MS,
        "in_function_ms": round(invocation_ms - 2 * E2E_LLM_LATENCY_MS, 1),
        "between_invocations_ms": round(cycle_ms - invocation_ms, 1),
    }


def _numbered(series: str) -> str:
    """The document numbered apart from the timed jobs, so that none of them is a cache hit."""
    return GUIDELINES.replace("RW-SEC-", f"RW-SEC-{series}-")


def _count_process_statements(stack, jobs: int) -> dict:
    unavailable = queries.available(stack.database_url)
    if unavailable:
        return {"measured": False, "reason": unavailable}
    submit = submission(
        "submit", "POST /jobs", stack.base_url, stack.api_key, guidelines=_numbered("COUNTED")
    )
    with queries.StatementLog(stack.database_url) as log:
        since = time.time()
        drive(submit.plan(1, jobs, keep_alive=True))
        _watch_jobs(stack.database_url, jobs, since=since, deadline=time.time() + 60)
        found = log.statements()
    return {
        "measured": True,
        "process": queries.per_request(found, "ProcessFunction", jobs),
        "submit": queries.per_request(found, "SubmitFunction", jobs),
    }


def _watch_jobs(database_url: str, jobs: int, since: float, deadline: float) -> tuple[dict, list[float]]:
    """Poll the table until the jobs created after `since` are finished; completion instants
    come from the rows themselves."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        progress: dict[str, int] = {}
        while time.time() < deadline:
            progress = dict(
                connection.execute(
                    "SELECT status, count(*) FROM jobs WHERE created_at >= to_timestamp(%s) GROUP BY status",
                    (since,),
                ).fetchall()
            )
            if progress.get("COMPLETED", 0) + progress.get("FAILED", 0) >= jobs:
                break
            time.sleep(0.1)
        finished = connection.execute(
            "SELECT extract(epoch FROM updated_at)::float FROM jobs"
            " WHERE status = 'COMPLETED' AND created_at >= to_timestamp(%s) ORDER BY 1",
            (since,),
        ).fetchall()
    return progress, [row[0] for row in finished]


def external_phase(base_url: str, api_key: str, profile: Profile, say) -> dict:
    """A stack that is already running: only its API can be measured from here."""
    submit = submission("submit", "POST /jobs", base_url, api_key)
    ids = _warm(submit, profile)["collected"]
    status = Target("status", "GET /jobs/{id}", base_url, "GET", [f"/jobs/{i}" for i in ids], api_key, 200)
    _warm(status, profile)
    say("load")
    return {"scenarios": measure_load([submit, status], profile, say)}


# --- the whole run --------------------------------------------------------------------------------


def code_version() -> dict:
    """The commit measured, and whether the service's code differed from it."""

    def git(*args: str) -> str:
        command = ["git", *args]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603 - git
        return completed.stdout.strip() if completed.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "layers", "functions", "infra", "devstack")
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_changes": bool(changed)}


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        # Which build: a distribution's (optimized) or pyenv's default differ by about a fifth in CPU.
        "interpreter": os.path.realpath(sys._base_executable),
        "platform": platform.platform(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def log_as_make_dev_does() -> None:
    """The runner and the functions log at INFO, as under `make dev`: writing those lines is part of
    the runner's work for each request. They go to STACK_LOG rather than the terminal; warnings are
    shown as well."""
    STACK_LOG.parent.mkdir(parents=True, exist_ok=True)
    logs.configure("INFO", stream=STACK_LOG.open("w", encoding="utf-8"))  # open while the run lasts
    shown = logging.StreamHandler(sys.stderr)
    shown.setLevel(logging.WARNING)
    shown.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(shown)


def run(profile: Profile, base_url: str | None = None, api_key: str | None = None, say=print) -> dict:
    started = time.perf_counter()
    log_as_make_dev_does()
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "profile": profile.name,
        "machine": machine(),
        "code": code_version(),
        "external": base_url,
    }
    say(f"cold start ({profile.coldstart_runs} fresh interpreters per function)")
    results["cold_start"] = coldstart.run(profile.coldstart_runs)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        if base_url:
            results["api"] = external_phase(base_url, api_key, profile, say)
        else:
            say("API as a user meets it: consumer on, offline LLM at 300 ms")
            results["user"] = user_phase(profile, Path(scratch), say)
            say("API, best case: no consumer, the queue emptied before each step")
            results["api"] = api_phase(profile, Path(scratch), say)
            say("end to end")
            results["e2e"] = e2e_phase(profile, Path(scratch), say)
    results["duration_s"] = round(time.perf_counter() - started, 1)
    return results
