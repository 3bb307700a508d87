"""`python -m bench.long_document`: a 300-page document through the chain with the offline model at
a fixed latency, against the floor and against a single call.

The chain runs in-process as the process function runs it (the real openai client over HTTP to the
offline model, chunked by ChunkTokenBudget, ChunkParallelism calls at once). Reported:
- wall time against the floor, calls / parallelism x latency (target: within 1.5x);
- tokens per page, against the whole text in today's two calls (one chunk);
- items, sections and the summary's length.
"""

from __future__ import annotations

import argparse
import json
import time

from openai import OpenAI

from devstack.offline_llm import OfflineLLM
from guideline_ingest.documents import Anchor, DocumentFormat, ExtractedDocument, Location
from guideline_ingest.logic.chain import Chain

SECTIONS = 10
FILLER = (
    "This part of the guideline explains the context of the controls above, the risks they "
    "address and the evidence an assessor would look for when reviewing them in practice. "
)


def document(pages: int) -> ExtractedDocument:
    """Pages of about 2,400 characters, five duties each, under SECTIONS top-level sections."""
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


def run(llm: OfflineLLM, doc: ExtractedDocument, budget: int, parallelism: int) -> dict:
    client = OpenAI(api_key="offline", base_url=llm.url, max_retries=0, timeout=600)
    chain = Chain(
        llm=client,
        model="gpt-4o-mini",
        max_call_seconds=600,
        deadline=time.monotonic() + 3600,
        token_budget=budget,
        parallelism=parallelism,
    )
    llm.reset_stats()
    started = time.monotonic()
    result = chain.run(doc)
    wall = time.monotonic() - started
    tokens = sum(step.input_tokens + step.output_tokens for step in chain.steps)
    return {
        "calls": llm.stats()["requests"],
        "chunks": chain.progress.chunks_total,
        "wall_seconds": round(wall, 2),
        "tokens": tokens,
        "tokens_per_page": round(tokens / doc.page_count, 1),
        "items": len(result.checklist),
        "items_with_page": sum(1 for item in result.checklist if item.locations and item.locations[0].page),
        "ungrounded_items_dropped": result.ungrounded_items_dropped,
        "sections": len(result.sections),
        "summary_words": len(result.summary.split()),
    }


def measure(pages: int, latency_ms: int, budget: int, parallelism: int) -> dict:
    doc = document(pages)
    with OfflineLLM() as llm:
        llm.set_faults(latency_ms=latency_ms)
        chunked = run(llm, doc, budget, parallelism)
        # Today's shape: the whole text in one summarize call and one checklist call.
        single = run(llm, doc, len(doc.text), 1)
    floor = chunked["calls"] / parallelism * latency_ms / 1000
    return {
        "pages": pages,
        "characters": len(doc.text),
        "latency_ms": latency_ms,
        "parallelism": parallelism,
        "chunk_token_budget": budget,
        "chunked": chunked,
        "single_call": single,
        "floor_seconds": round(floor, 2),
        "wall_to_floor": round(chunked["wall_seconds"] / floor, 2),
        "target_wall_to_floor": 1.5,
        "met": chunked["wall_seconds"] <= 1.5 * floor,
        "tokens_per_page_vs_single_call": round(chunked["tokens_per_page"] / single["tokens_per_page"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.long_document", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=500, help="the offline model's fixed latency")
    parser.add_argument("--budget", type=int, default=8000, help="ChunkTokenBudget (the template's default)")
    parser.add_argument(
        "--parallelism", type=int, default=4, help="ChunkParallelism (the template's default)"
    )
    args = parser.parse_args(argv)
    report = measure(args.pages, args.latency_ms, args.budget, args.parallelism)
    print(json.dumps(report, indent=2))
    return 0 if report["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
