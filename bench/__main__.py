"""`python -m bench [--quick] [--only PHASE ...]`: measure the service and print one table.

A full run (`make bench`) rewrites the generated section of docs/performance.md; `--quick` (`make
bench-smoke`, CI) runs every phase on tiny counts and writes .local/bench/quick.md instead.

A phase is a module with `run(quick: bool, say) -> list[bench.report.Row]`: add it to PHASES.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench import coldstart, handlers, long_document, report, stack
from bench.functions import ROOT

PHASES = {
    "handlers": handlers,  # CPU and database round trips per request, in-process, against the floor
    "coldstart": coldstart,  # import time per function, package sizes after sam build
    "stack": stack,  # end to end against the ideal, and POST /jobs's promise, through the Stack
    "long": long_document,  # 300 pages through the chain against the floor, at 500 and 1000 ms a call
}
DOCS = ROOT / "docs" / "performance.md"
QUICK_OUT = ROOT / ".local" / "bench" / "quick.md"


def _commit() -> str:
    command = ["git", "rev-parse", "--short", "HEAD"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    return completed.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke, nothing judged")
    parser.add_argument("--only", nargs="+", choices=PHASES, default=list(PHASES), help="phases to run")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    rows: list[report.Row] = []
    for name in args.only:
        print(f"{name}:", flush=True)
        rows += PHASES[name].run(args.quick, lambda line: print(line, flush=True))
    seconds = time.perf_counter() - started
    section = (
        f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on commit {_commit()}"
        f"{' (--quick: counts too small to mean anything)' if args.quick else ''}, {seconds:.0f} s.\n\n"
        + report.table(rows)
    )
    print("\n" + section)
    if args.quick or args.only != list(PHASES):
        QUICK_OUT.parent.mkdir(parents=True, exist_ok=True)
        QUICK_OUT.write_text(section, encoding="utf-8")
        print(f"wrote {QUICK_OUT.relative_to(ROOT)}")
    elif report.update_docs(DOCS, section):
        print(f"updated {DOCS.relative_to(ROOT)}")
    return 1 if any(row.verdict == report.verdict(False) for row in rows) and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
