"""`python -m bench --only long`: a 300-page document through the chain, in-process as the process
function runs it (the real openai client, ChunkTokenBudget and ChunkParallelism at the template's
defaults), with the offline model at 500 and at 1000 ms a call. Reported (docs/performance.md): wall
time against issue 27's floor, calls / parallelism x latency (target: within 1.5x), and against the
floor with the reduce's own depth; tokens per page against the whole text in today's two calls.
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter

from bench import functions
from bench.report import Row, verdict
from devstack.offline_llm import OfflineLLM

SECTIONS = 10
TARGET = 1.5
FILLER = (
    "This part of the guideline explains the context of the controls above, the risks they "
    "address and the evidence an assessor would look for when reviewing them in practice. "
)


def document(pages: int):
    """Pages of about 2,400 characters, five duties each, under SECTIONS top-level sections."""
    from guideline_ingest.documents import Anchor, DocumentFormat, ExtractedDocument, Location

    text, anchors = "", []
    for page in range(1, pages + 1):
        part = 1 + (page - 1) * SECTIONS // pages
        section = f"{part} Part {part} > {part}.{page % 3 + 1} Controls"
        anchors.append(Anchor(len(text), Location(page=page, section=section)))
        duties = [
            f"Operators must verify control {page}.1 before each release.",
            f"Administrators shall record change {page}.2 in the register.",
            f"Teams should review risk {page}.3 every quarter.",
            f"It is recommended that owners test backup {page}.4 monthly.",
            f"Staff may delegate task {page}.5 to a trained deputy.",
        ]
        text += " ".join(duties) + "\n\n" + FILLER * 8 + "\n\n"
    return ExtractedDocument(text=text, format=DocumentFormat.PDF, anchors=tuple(anchors), page_count=pages)


def run_chain(llm, doc, budget: int, parallelism: int) -> dict:
    from openai import OpenAI

    from guideline_ingest.logic.chain import Chain

    client = OpenAI(api_key="offline", base_url=llm.url, max_retries=0, timeout=600)
    chain = Chain(
        llm=client, model="gpt-4o-mini", max_call_seconds=600, deadline=time.monotonic() + 3600,
        token_budget=budget, parallelism=parallelism,
    )  # fmt: skip
    llm.reset_stats()
    started = time.monotonic()
    result = chain.run(doc)
    wall = time.monotonic() - started
    tokens = sum(step.input_tokens + step.output_tokens for step in chain.steps)
    paged = sum(1 for item in result.checklist if item.locations and item.locations[0].page)
    return {"calls": llm.stats()["requests"], "chunks": chain.progress.chunks_total, "tokens": tokens,
            "wall_seconds": round(wall, 2), "tokens_per_page": round(tokens / doc.page_count, 1),
            "items": len(result.checklist), "items_with_page": paged,
            "ungrounded_items_dropped": result.ungrounded_items_dropped, "sections": len(result.sections),
            "summary_words": len(result.summary.split())}  # fmt: skip


def reduce_floor(doc, budget: int, parallelism: int, calls: int) -> int:
    """Rounds of calls no schedule can beat: the chunks and the sections' merges in whole rounds,
    then the document's merge (its batches, if it has more than one call's worth, then itself)."""
    from guideline_ingest.logic.chunking import cut, top_section

    chunks = cut(doc, budget)
    groups = Counter(top_section(doc.location_at(chunk.start)) for chunk in chunks)
    sections = sum(1 for count in groups.values() if count > 1) if len(groups) > 1 else 0
    final = calls - len(chunks) - sections
    return math.ceil((len(chunks) + sections) / parallelism) + 1 + math.ceil((final - 1) / parallelism)


def measure(pages: int, latency_ms: int, budget: int | None = None, parallelism: int | None = None) -> dict:
    # The service's models read these at import: guideline_ingest is imported only after this.
    os.environ.setdefault("MAX_DOCUMENT_CHARS", functions.parameter("MaxDocumentChars"))
    os.environ.setdefault("MAX_DOCUMENT_PAGES", functions.parameter("MaxDocumentPages"))
    budget = budget or int(functions.parameter("ChunkTokenBudget"))
    parallelism = parallelism or int(functions.parameter("ChunkParallelism"))
    doc = document(pages)
    with OfflineLLM() as llm:
        llm.set_faults(latency_ms=latency_ms)
        chunked = run_chain(llm, doc, budget, parallelism)
        single = run_chain(llm, doc, len(doc.text), 1)  # today's shape: the whole text, two calls
    floor = chunked["calls"] / parallelism * latency_ms / 1000
    rounds = reduce_floor(doc, budget, parallelism, chunked["calls"])
    wall, deep = chunked["wall_seconds"], rounds * latency_ms / 1000
    per_page = round(chunked["tokens_per_page"] / single["tokens_per_page"], 2)
    return {"pages": pages, "characters": len(doc.text), "latency_ms": latency_ms, "parallelism": parallelism,
            "chunk_token_budget": budget, "chunked": chunked, "single_call": single,
            "floor_seconds": round(floor, 2), "wall_to_floor": round(wall / floor, 2),
            "reduce_floor_seconds": round(deep, 2), "wall_to_reduce_floor": round(wall / deep, 2),
            "target_wall_to_floor": TARGET, "met": wall <= TARGET * floor,
            "tokens_per_page_vs_single_call": per_page}  # fmt: skip


def run(quick: bool, say) -> list[Row]:
    rows, phase = [], "long document"
    for latency in (100,) if quick else (500, 1000):
        r = measure(40 if quick else 300, latency)
        c, label = r["chunked"], f"{r['pages']} pages at {latency} ms a call, wall time"
        say(f"  {label}: {c['wall_seconds']} s, {c['calls']} calls, floor {r['floor_seconds']} s")
        floor = f"floor {r['floor_seconds']:.2f} s ({c['calls']} calls / {r['parallelism']} x latency)"
        ratio = f"{r['wall_to_floor']:.2f}x, {verdict(r['met'])} (target {TARGET}x)"
        depth = f"{r['reduce_floor_seconds']:.2f} s, the floor with the reduce's own depth"
        rows += [Row(phase, label, f"{c['wall_seconds']:.2f} s", floor, ratio)]
        rows += [Row(phase, label, f"{c['wall_seconds']:.2f} s", depth, f"{r['wall_to_reduce_floor']:.2f}x")]
    tokens, single = f"{c['tokens_per_page']:.0f}", f"{r['single_call']['tokens_per_page']:.0f}"
    against = f"{single} for the whole text in two calls"
    return [*rows, Row(phase, "tokens per page", tokens, against, f"{r['tokens_per_page_vs_single_call']}x")]
