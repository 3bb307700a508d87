"""One table of results, and its generated section of docs/performance.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCS_START, DOCS_END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


@dataclass(frozen=True)
class Row:
    phase: str
    measure: str
    value: str
    against: str = ""
    verdict: str = ""  # "met", "missed", a ratio, or empty


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def table(rows: list[Row]) -> str:
    lines = ["| phase | measure | value | against | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.phase} | {r.measure} | {r.value} | {r.against} | {r.verdict} |" for r in rows]
    return "\n".join(lines) + "\n"


def update_docs(docs: Path, section: str) -> bool:
    """Replace what lies between the markers; False when the page has none."""
    text = docs.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(DOCS_START) + ".*?" + re.escape(DOCS_END), re.S)
    if not pattern.search(text):
        return False
    docs.write_text(pattern.sub(lambda _: f"{DOCS_START}\n{section}{DOCS_END}", text), encoding="utf-8")
    return True
