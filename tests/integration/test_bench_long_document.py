"""bench.long_document on a small document: its report holds what issue 27 asks for."""

from __future__ import annotations

from bench.long_document import measure, run


def test_the_long_document_benchmark_reports_the_floor_and_tokens_per_page():
    report = measure(pages=40, latency_ms=100, budget=4000, parallelism=4)

    chunked, single = report["chunked"], report["single_call"]
    assert chunked["chunks"] > 1 and single["chunks"] == 1 and single["calls"] == 2
    assert chunked["calls"] > chunked["chunks"]  # the map, then the summaries' merges
    assert report["floor_seconds"] > 0 and report["wall_to_floor"] > 0
    # The document's merge waits for every other call: a floor that counts it is never lower.
    assert report["reduce_floor_seconds"] >= report["floor_seconds"]
    assert chunked["items_with_page"] == chunked["items"] > 0
    assert chunked["ungrounded_items_dropped"] == 0
    assert chunked["sections"] > 1
    assert report["tokens_per_page_vs_single_call"] > 0


def test_the_phase_of_python_m_bench_reports_both_floors_and_tokens():
    rows = run(quick=True, say=lambda line: None)

    assert [row.measure for row in rows] == [
        "40 pages at 100 ms a call, wall time",
        "40 pages at 100 ms a call, wall time",
        "tokens per page",
    ]
    assert "calls / 4 x latency" in rows[0].against and "reduce's own depth" in rows[1].against
