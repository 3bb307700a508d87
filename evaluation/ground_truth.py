"""Derive the ground truth: the normative statements of each evaluation document, and their pages.

    python -m evaluation.ground_truth      # rewrites evaluation/ground_truth/*.json

The procedure (docs/evaluation.md) is deliberately simpler than, and independent of, the offline
model's sentence splitting: every occurrence of SHALL, SHOULD or MUST (any case) is a statement,
recorded as the keyword with up to LEFT words before it and RIGHT words after it, cut short at a
clause boundary (. ; : ? ! followed by a space, a blank line, a bullet or a table cell). A checklist
item *covers* the statement when its quote holds those words in order (evaluation.metrics.covers).
PDF text is read per page with pypdfium2, so each statement has the page it stands on (1-based).
DOCX and HTML fixtures are made from a Markdown source with pandoc; their statements come from that
source, with the heading path as their section (they have no pages)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "documents"
OUT = Path(__file__).resolve().parent / "ground_truth"
LEFT, RIGHT = 4, 6
KEYWORD = re.compile(r"\b(?:shall|should|must)\b", re.IGNORECASE)
BOUNDARY = re.compile(r"[.;:?!][*\"')\]]*(?=\s)|\n\s*\n|[•|▪●]")
PROVENANCE = (
    "NIST publication, a work of the US government (public domain in the US); see "
    "tests/fixtures/documents/README.md"
)
PDFS = ("NIST_cybersecurity-framework-021214.pdf", "SP800-115.pdf", "SP800-66-Revision1.pdf")
# Markdown sources and the documents pandoc made of them.
MARKDOWN = {"security-assessment-execution.md": ("security-assessment-execution.docx", "security-assessment-execution.html")}  # fmt: skip  # noqa: E501


def statements_of(text: str) -> list[tuple[int, str]]:
    """(offset, statement) for each normative keyword of `text`."""
    found = []
    for match in KEYWORD.finditer(text):
        start = max((b.end() for b in BOUNDARY.finditer(text, 0, match.start())), default=0)
        end = next((b.start() for b in BOUNDARY.finditer(text, match.end())), len(text))
        before = text[start : match.start()].split()[-LEFT:]
        after = text[match.end() : end].split()[:RIGHT]
        found.append((match.start(), " ".join([*before, match.group(), *after])))
    return found


def pdf_truth(path: Path) -> dict:
    import pypdfium2

    pdf = pypdfium2.PdfDocument(path)
    statements = []
    for index in range(len(pdf)):
        text = pdf[index].get_textpage().get_text_range()
        statements += [{"page": index + 1, "text": s} for _, s in statements_of(text)]
    return {"pages": len(pdf), "statements": statements}


def markdown_truth(path: Path) -> dict:
    text = re.sub(r"\A---\n.*?\n---\n", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    statements, headings = [], []
    for block in re.split(r"\n(?=#{1,6} )", text):
        heading = re.match(r"(#{1,6}) (.*)", block)
        if heading:
            headings = [*headings[: len(heading.group(1)) - 1], heading.group(2).strip()]
        body = block.split("\n", 1)[1] if heading else block
        for _, statement in statements_of(body):
            statements.append({"page": None, "section": " > ".join(headings), "text": statement})
    return {"pages": None, "statements": statements}


def write(document: Path, truth: dict, derived_from: Path) -> None:
    record = {
        "document": document.relative_to(ROOT).as_posix(),
        "sha256": hashlib.sha256(document.read_bytes()).hexdigest(),
        "derived_from": derived_from.relative_to(ROOT).as_posix(),
        "provenance": PROVENANCE,
        "procedure": "python -m evaluation.ground_truth (docs/evaluation.md)",
        **truth,
    }
    target = OUT / f"{document.name}.json"
    target.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{target.relative_to(ROOT)}: {len(truth['statements'])} statements")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name in PDFS:
        write(FIXTURES / name, pdf_truth(FIXTURES / name), FIXTURES / name)
    for source, documents in MARKDOWN.items():
        truth = markdown_truth(FIXTURES / source)
        for name in documents:
            write(FIXTURES / name, truth, FIXTURES / source)


if __name__ == "__main__":
    main()
