"""What the docs say about the service agrees with the template, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


def test_the_readme_has_at_most_300_words_of_prose():
    prose = re.sub(r"```.*?```", "", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)
    assert len(prose.split()) <= 300


def test_every_count_of_functions_in_the_docs_is_the_templates():
    template = load_yaml(ROOT / "infra" / "template.yaml")
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    counted = re.compile(r"\b(" + "|".join(NUMBERS) + r")\s+(?:Lambda\s+)?functions\b", re.I)
    claims = [
        (doc.name, match.group(0))
        for doc in DOCS
        for match in counted.finditer(doc.read_text(encoding="utf-8").replace("\n", " "))
    ]
    assert claims, "the docs name the number of functions somewhere"
    assert all(NUMBERS[text.split()[0].lower()] == len(functions) for _, text in claims), claims
