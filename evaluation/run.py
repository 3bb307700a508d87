"""Run the evaluation documents through the service as a user would, and score the results.

Each document is sent as the body of POST /jobs with its media type (the intake contract of issue
26) to a devstack `Stack` started in-process, with the offline model, or with the endpoint that
OPENAI_BASE_URL and OPENAI_API_KEY name when both are set. The job is polled until it ends, then
scored against the committed ground truth (evaluation.metrics)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import requests

from evaluation.metrics import Score, score, targets, total
from guideline_ingest.documents.extraction import DocumentLimits, extract
from guideline_ingest.documents.formats import media_type_of, sniff
from ingest_cli.render import TERMINAL_STATUSES

ROOT = Path(__file__).resolve().parents[1]
TRUTH = Path(__file__).resolve().parent / "ground_truth"
FIXTURES = "tests/fixtures/documents/"
SETS = {
    # What CI runs: a PDF of 41 pages, and a DOCX and an HTML page made from one Markdown source.
    "small": (
        "NIST_cybersecurity-framework-021214.pdf",
        "security-assessment-execution.docx",
        "security-assessment-execution.html",
    ),
    "large": ("NIST_cybersecurity-framework-021214.pdf", "SP800-115.pdf", "SP800-66-Revision1.pdf"),
}
API_KEY = "eval-key"
# Only to check the returned quotes against the document's text here; the service has its own.
LIMITS = DocumentLimits(max_pages=5000, max_chars=50_000_000, max_decompressed_bytes=500_000_000)


class NotAccepted(Exception):
    """The API refused a document: it does not take document bodies yet, or not this one."""


def stack_settings() -> dict[str, str]:
    """The offline model unless OPENAI_BASE_URL and OPENAI_API_KEY are both set; always the embedded
    database and this run's API key, whatever the developer's .env says."""
    own = os.environ.get("OPENAI_BASE_URL") and os.environ.get("OPENAI_API_KEY")
    llm = {key: os.environ[key] if own else "" for key in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    return {**llm, "DATABASE_URL": "", "API_KEYS": API_KEY}


def submit(base_url: str, document: Path) -> str:
    data = document.read_bytes()
    media_type = media_type_of(sniff(data))
    response = requests.post(
        f"{base_url}/jobs",
        data=data,
        headers={"Content-Type": media_type, "x-api-key": API_KEY},
        timeout=60,
    )
    if response.status_code != 202:
        raise NotAccepted(
            f"POST /jobs with {document.name} as a {media_type} body answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    return response.json()["event_id"]


def wait(base_url: str, event_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(f"{base_url}/jobs/{event_id}", headers={"x-api-key": API_KEY}, timeout=30).json()
        if job["status"] in TERMINAL_STATUSES or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def evaluate(base_url: str, name: str, timeout: float) -> tuple[Score, dict]:
    document = ROOT / FIXTURES / name
    truth = json.loads((TRUTH / f"{name}.json").read_text(encoding="utf-8"))
    started = time.monotonic()
    job = wait(base_url, submit(base_url, document), timeout)
    seconds = time.monotonic() - started
    text = extract(document.read_bytes(), None, LIMITS).text
    pages = truth["pages"] or (job.get("document") or {}).get("page_count")
    return score(name, {**truth, "pages": pages}, job, text, seconds), job


def report(scores: list[Score], jobs: list[dict], llm: str) -> str:
    lines = [
        f"Evaluation against {llm}",
        "",
        "| document | status | recall | page +-1 | duplicates | similar | dropped | unfound | tokens/page "
        "| s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for each, job in [*zip(scores, jobs, strict=True), (total(scores), {"status": ""})]:
        accuracy = "-" if each.page_accuracy is None else f"{each.page_accuracy:.1%} of {each.located_items}"
        per_page = "-" if each.tokens_per_page is None else f"{each.tokens_per_page:,.0f}"
        lines.append(
            f"| {each.document} | {job['status']} | {each.recall:.1%} ({each.covered}/{each.statements}) "
            f"| {accuracy} | {each.duplicate_share:.1%} ({each.duplicates}/{each.items}) "
            f"| {each.similar / max(each.items, 1):.1%} ({each.similar}) | {each.dropped} "
            f"| {each.unverified} | {per_page} | {each.seconds:.1f} |"
        )
    lines += ["", "Targets of issue 27, over all documents:"]
    lines += [
        f"- {'met   ' if met else 'MISSED'} {name}: {number}" for name, met, number in targets(total(scores))
    ]
    for each, job in zip(scores, jobs, strict=True):
        if job.get("error"):
            lines.append(
                f"- {each.document} FAILED: {job['error'].get('type')}: {job['error'].get('message')}"
            )
        lines += [f"  missed in {each.document}, page {m['page']}: {m['text']}" for m in each.missed[:5]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set", choices=[*SETS, "all"], default="small", help="which documents (default: small)"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds a document may take")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    args = parser.parse_args(argv)
    names = dict.fromkeys(n for key, names in SETS.items() if args.set in (key, "all") for n in names)
    from devstack.stack import Stack  # starts nothing on import, but costs a second

    with (
        tempfile.TemporaryDirectory(prefix="eval-") as data_dir,
        Stack(port=0, data_dir=Path(data_dir), read_dotenv=False, env=stack_settings()) as stack,
    ):
        llm = "the offline model" if stack.offline_llm else os.environ["OPENAI_BASE_URL"]
        scores, jobs = [], []
        try:
            for name in names:
                each, job = evaluate(stack.base_url, name, args.timeout)
                scores.append(each)
                jobs.append(job)
                print(f"{name}: {job['status']} in {each.seconds:.1f} s", file=sys.stderr, flush=True)
        except NotAccepted as refused:
            print(f"make eval: the API did not accept a document. {refused}", file=sys.stderr)
            print("Document bodies at POST /jobs come with issue 26 (the intake branch).", file=sys.stderr)
            return 2
    print(report(scores, jobs, llm))
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in scores], indent=1) + "\n", encoding="utf-8")
    met = all(met for _, met, _ in targets(total(scores)))
    return 0 if met and all(job["status"] == "COMPLETED" for job in jobs) else 1
