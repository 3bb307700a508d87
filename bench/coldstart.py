"""Cold start of each function, and the size of its package after `sam build`.

A cold start here is the init phase Lambda bills: importing app.py (its folder and the core layer on
the path, as the runtime lays them out) in a new interpreter, median of several. Package sizes are
what Lambda limits: the unzipped function plus its layers, at most 250 MB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench import functions
from bench.report import Row, verdict

ROOT = functions.ROOT
BUILD_DIR = ROOT / ".local" / "bench" / "sam-build"
SAM = Path(os.environ.get("TOOLS", ROOT / ".tools" / "sam")) / "bin" / "sam"
LAMBDA_UNZIPPED_LIMIT_MB = 250
# Heavy modules a reader may want absent: status answers polls and needs neither.
HEAVY = ("boto3", "openai", "pypdfium2")

# What a deployment supplies (a database, a key for the LLM); nothing is reached during init.
DEPLOYMENT = {
    "DATABASE_URL": "postgresql://bench@127.0.0.1:9/never-connected",
    "DATABASE_SSLMODE": "disable",
    "OPENAI_API_KEY": "bench-never-used",
    "JOBS_QUEUE_URL": "http://127.0.0.1:9/000000000000/never-sent",
}
# Runs in the fresh interpreter; nothing is imported before the timer starts.
_INIT = """
import json, sys, time
sys.path[:0] = {paths!r}
started = time.perf_counter()
import app
print(json.dumps({{"init_ms": (time.perf_counter() - started) * 1000, "modules": sorted(sys.modules)}}))
"""


def cold_start(function: str, runs: int) -> dict:
    code_dir = functions.code_dir(function)
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    env |= functions.environment(function, **DEPLOYMENT)
    command = [sys.executable, "-P", "-c", _INIT.format(paths=[str(code_dir), str(ROOT / "layers" / "core")])]
    timings, modules = [], set()
    for _ in range(runs):
        completed = subprocess.run(  # noqa: S603 - our own interpreter and code
            command, capture_output=True, text=True, cwd=code_dir, env=env, check=False
        )
        if completed.returncode != 0:
            raise RuntimeError(f"the cold start of {function} failed: {completed.stderr[-2000:]}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        timings.append(result["init_ms"])
        modules = set(result["modules"])
    return {"init_ms": statistics.median(timings), "heavy": [name for name in HEAVY if name in modules]}


def build() -> str | None:
    """`sam build` of the cloud packages into BUILD_DIR; None when done, else why not."""
    python312 = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "scripts" / "find-python.sh"), "3.12"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not SAM.is_file() or not python312:
        return "not built: needs scripts/sam-tools.sh and python3.12"
    environment = os.environ | {
        "PATH": f"{Path(python312).parent}{os.pathsep}{os.environ['PATH']}",
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(  # noqa: S603 - the SAM CLI of .tools/sam
        [str(SAM), "build", "--template-file", str(functions.TEMPLATE), "--build-dir", str(BUILD_DIR)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        check=False,
    )
    return None if completed.returncode == 0 else f"sam build failed: {completed.stderr[-300:]}"


def _megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def package_rows(functions_by_id: dict[str, str]) -> list[Row]:
    if failure := build():
        return [Row("package", "sizes after sam build", failure)]
    # Every function carries the layers of Globals, the only layers the template builds.
    layers = sum(_megabytes(path) for path in BUILD_DIR.glob("*Layer"))
    rows = []
    for name, logical_id in functions_by_id.items():
        own = _megabytes(BUILD_DIR / logical_id)
        rows.append(
            Row(
                "package",
                f"{name}: unzipped, with its layers",
                f"{own + layers:.1f} MB ({own:.1f} MB own)",
                f"Lambda's limit {LAMBDA_UNZIPPED_LIMIT_MB} MB",
                verdict(own + layers < LAMBDA_UNZIPPED_LIMIT_MB),
            )
        )
    return rows


def run(quick: bool, say) -> list[Row]:
    runs = 1 if quick else 7
    names = functions.names()
    rows = []
    for name in [*names, "floor"]:
        measured = cold_start(name, runs)
        say(f"  {name}: {measured['init_ms']:.0f} ms")
        rows.append(
            Row(
                "cold start",
                f"{name}: import in a fresh interpreter (median of {runs})",
                f"{measured['init_ms']:.0f} ms",
                "loads " + (", ".join(measured["heavy"]) or f"none of {', '.join(HEAVY)}"),
            )
        )
    say("  sam build")
    return rows + package_rows(names)
