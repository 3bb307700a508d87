"""`python -m bench [--quick]`: run the benchmarks and write results, tables and a chart.

With BASE_URL and API_KEY set (or --base-url/--api-key), the API of that running stack is loaded
instead of a fresh local one; the floors, the statement counts and the end-to-end run need the
local stack and are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench import report
from bench.run import FULL, QUICK, ROOT, run

RESULTS = ROOT / "bench" / "results"
QUICK_RESULTS = ROOT / ".local" / "bench"
DOCS = ROOT / "docs" / "performance.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny loads and 10 e2e jobs: a smoke for CI")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results folder (default {RESULTS.relative_to(ROOT)}, "
        f"{QUICK_RESULTS.relative_to(ROOT)} with --quick)",
    )
    parser.add_argument(
        "--base-url", default=os.environ.get("BASE_URL"), help="a running stack (env BASE_URL)"
    )
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="its API key (env API_KEY)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md alone")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only redo the tables, chart and docs of a run"
    )
    args = parser.parse_args(argv)
    if args.base_url and not args.api_key:
        parser.error("BASE_URL needs API_KEY")

    if args.render:
        results = json.loads(args.render.read_text(encoding="utf-8"))
        out, stem = args.render.parent, args.render.stem
    else:
        out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
        out.mkdir(parents=True, exist_ok=True)
        profile = QUICK if args.quick else FULL
        results = run(profile, args.base_url, args.api_key, say=lambda line: print(line, flush=True))
        stem = results["date"] + ("-quick" if args.quick else "")
    checks = report.evaluate(results)
    results["targets"] = checks

    chart = out / f"{stem}.png"
    report.chart(results, chart)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(
        f"# Benchmark results {results['date']}\n\n" + report.markdown(results, checks, chart.name),
        encoding="utf-8",
    )
    print(f"\nwrote {out / stem}.json, .md and .png")
    if results["profile"] == FULL.name and not (args.no_docs or args.out or results["external"]):
        section = report.markdown(results, checks, os.path.relpath(chart, DOCS.parent))
        if report.update_docs(DOCS, section):
            print(f"updated {DOCS.relative_to(ROOT)}")
    for check in checks:
        print(
            f"  {'ok  ' if check['met'] else '----' if check['met'] is None else 'MISS'} "
            f"{check['target']}: {check['measured']} (goal {check['goal']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
