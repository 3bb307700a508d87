"""`python -m bench.profile`: where a POST's time goes, per process, with the consumer running.

Starts a stack as `make dev` runs it (event source on, offline LLM at 300 ms, schedules on), warms
it, then drives POST /jobs from 10 keep-alive clients while py-spy samples (`--gil`: only the thread
holding the interpreter lock, so CPU rather than waiting) the runner, the SQS server, one submit
environment and one process environment. Prints each process's CPU per request (from /proc), the
process environments' CPU per job they finished, and the functions that hold most of each
profile's samples, and writes the raw profiles (flame-graph input) under .local/bench/profile/.

Before that, without py-spy, it times the same load next to the process invocations: POSTs grouped
by how many invocations started or ended while they ran (or in the 20 ms before), which shows
whether the slow ones are those that met the consumer's bursts.

Needs py-spy (`.venv/bin/pip install py-spy`) and Linux; py-spy may need root or ptrace rights.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.load import drive, finish, start
from bench.run import E2E_LLM_LATENCY_MS, ROOT, _numbered, _stack_settings, log_as_make_dev_does, submission
from bench.stats import percentile

OUT = ROOT / ".local" / "bench" / "profile"
TICKS = os.sysconf("SC_CLK_TCK")
# POSTs that met this many invocation edges or more are counted together.
MOST_EDGES = 4


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def by_process(stack) -> dict[str, list[int]]:
    """Process name -> pids: the runner (this process), the SQS server, the offline LLM, each
    function's environments."""
    processes = {"runner": [os.getpid()], "sqs server": [stack._sqs._server.pid]}
    if stack.offline_llm is not None:
        processes["offline llm"] = [stack.offline_llm.pid]
    for logical_id, pool in stack.pools.items():
        pids = [env.process.pid for env in list(pool._all)]
        if pids:
            processes[logical_id] = pids
    return processes


def completed_jobs(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute("SELECT count(*) FROM jobs WHERE status = 'COMPLETED'").fetchone()[0]


def posts_by_invocation_edges(stack, post, requests: int) -> tuple[list[tuple], float]:
    """Drive `requests` POSTs at 10 clients, noting when each process invocation starts and ends,
    and group the POSTs by those edges (`group_by_edges`)."""
    pool = stack.pools["ProcessFunction"]
    edges: list[float] = []
    invoke = pool.invoke

    def timed(event):
        started = time.time()
        try:
            return invoke(event)
        finally:
            edges.extend((started, time.time()))

    pool.invoke = timed
    try:
        result = drive(post.plan(10, requests, keep_alive=True))
    finally:
        pool.invoke = invoke
    posts = [
        (result["started_at"] + offset, latency / 1000)
        for offset, latency in zip(result["offsets_s"], result["latencies_ms"], strict=True)
    ]
    return group_by_edges(posts, edges)


def group_by_edges(posts: list[tuple[float, float]], edges: list[float]) -> tuple[list[tuple], float]:
    """POSTs (start, seconds) by how many edges (instants) fell while each ran or in the 20 ms
    before it, MOST_EDGES or more counted together: rows (edges, POSTs, p50, p90, p99 in ms), and the
    share of the POSTs at or over the p99 of all that met at least one."""
    edges = sorted(edges)

    def met(began: float, seconds: float) -> int:
        return bisect.bisect_right(edges, began + seconds) - bisect.bisect_left(edges, began - 0.02)

    groups: dict[int, list[float]] = collections.defaultdict(list)
    for began, seconds in posts:
        groups[min(met(began, seconds), MOST_EDGES)].append(1000 * seconds)
    rows = []
    for count in sorted(groups):
        ordered = sorted(groups[count])
        rows.append((count, len(ordered), *(percentile(ordered, share) for share in (0.5, 0.9, 0.99))))
    p99 = percentile(sorted(1000 * seconds for _, seconds in posts), 0.99)
    slow = [(began, seconds) for began, seconds in posts if 1000 * seconds >= p99]
    return rows, sum(1 for began, seconds in slow if met(began, seconds)) / len(slow)


def top_frames(raw: Path, count: int) -> list[tuple[float, str]]:
    """Functions by the share of samples they are on the stack of (inclusive)."""
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        total += int(samples)
        for frame in {re.sub(r":\d+\)", ")", frame) for frame in stack.split(";")}:
            inclusive[frame] += int(samples)
    boring = ("threading.py", "socketserver.py", "<module>", "worker.py", "threadpool.py", "runpy")
    frames = [(n, f) for f, n in inclusive.most_common() if not any(b in f for b in boring)]
    return [(round(100 * n / total, 1), frame) for n, frame in frames[:count]]


def by_package(raw: Path) -> list[tuple[float, str]]:
    """Samples by the package of the innermost frame: which library's own code the CPU runs."""
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        found = re.search(r"\(([^):]+)", leaf)
        path = found.group(1) if found else "?"
        package = path.split("/")[0].removesuffix(".py") if "/" in path else path.removesuffix(".py")
        own[package] += int(samples)
        total += int(samples)
    return [(round(100 * n / total, 1), package) for package, n in own.most_common()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="how long py-spy samples")
    parser.add_argument("--top", type=int, default=15, help="functions shown per process")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not py_spy:
        parser.error("py-spy is not installed: .venv/bin/pip install py-spy")
    from devstack.stack import Stack

    log_as_make_dev_does()
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch,
        Stack(
            port=0,
            data_dir=Path(scratch),
            read_dotenv=False,
            env=_stack_settings(OFFLINE_LLM_LATENCY_MS=str(E2E_LLM_LATENCY_MS)),
        ) as stack,
    ):
        post = submission(
            "submit", "POST /jobs", stack.base_url, stack.api_key, guidelines=_numbered("PROFILE")
        )
        drive(post.plan(10, 200, keep_alive=True))  # every submit environment started
        # The process environments' first jobs (their init, the SDK's lazy imports) end before the window.
        time.sleep(5)
        edge_rows, slow_at_edges = posts_by_invocation_edges(stack, post, 4000)
        processes = by_process(stack)
        before = {name: sum(map(cpu_seconds, pids)) for name, pids in processes.items()}
        completed_before = completed_jobs(stack.database_url)
        requests = int(args.seconds * 400)  # more than 10 clients finish in that time here
        loader = start(post.plan(10, requests, keep_alive=True))
        time.sleep(1)
        targets = {
            "runner": processes["runner"][0],
            "sqs server": processes["sqs server"][0],
            "submit environment": processes["SubmitFunction"][0],
            "process environment": processes["ProcessFunction"][0],
        }
        spies = {}
        for name, pid in targets.items():
            output = OUT / f"{name.replace(' ', '-')}.txt"
            command = [py_spy, "record", "--gil", "-r", "200", "-d", str(int(args.seconds))]
            command += ["-f", "raw", "-p", str(pid), "-o", str(output)]
            spies[name] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        for spy in spies.values():
            spy.wait()
        result = finish(loader)
        done = len(result["latencies_ms"]) + result["errors"]
        after = {name: sum(map(cpu_seconds, pids)) for name, pids in processes.items()}
        jobs = completed_jobs(stack.database_url) - completed_before
    print("POSTs at 10 clients by the process invocations that started or ended while they ran (no py-spy):")
    for edges, count, p50, p90, p99 in edge_rows:
        label = f"{edges}+" if edges == MOST_EDGES else str(edges)
        print(f"  {label:>2} edges  {count:5} POSTs  p50 {p50:6.1f}  p90 {p90:6.1f}  p99 {p99:6.1f} ms")
    print(f"  {100 * slow_at_edges:.0f}% of the POSTs at or over the p99 met at least one\n")
    print(f"{done} POSTs in {result['wall_s']:.1f} s ({done / result['wall_s']:.0f} req/s), 10 clients")
    print("CPU per request (ms):")
    for name in processes:
        print(f"  {name:<20} {1000 * (after[name] - before[name]) / done:6.2f}")
    if jobs:
        spent = after["ProcessFunction"] - before["ProcessFunction"]
        print(f"process environments: {jobs} jobs finished, {1000 * spent / jobs:.1f} ms CPU per job")
    for name in targets:
        raw = OUT / f"{name.replace(' ', '-')}.txt"
        if not raw.exists():
            print(f"\n{name}: py-spy wrote nothing (permissions?)")
            continue
        print(f"\n{name}: share of samples holding the GIL, by the innermost frame's package")
        print("  " + ", ".join(f"{package} {share:.0f}%" for share, package in by_package(raw)[: args.top]))
        print("  inclusive, by function:")
        for share, frame in top_frames(raw, args.top):
            print(f"  {share:5.1f}% {frame[:110]}")
    print(f"\nraw profiles: {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
