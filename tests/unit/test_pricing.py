"""The price table: known models get an estimate, unknown ones none."""

import pytest

from guideline_ingest.logic.reading import usage_of
from guideline_ingest.models import Step
from guideline_ingest.pricing import estimated_cost_usd


def test_a_known_model_is_priced_per_million_tokens():
    assert estimated_cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)


def test_a_dated_snapshot_costs_what_its_alias_costs():
    assert estimated_cost_usd("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == pytest.approx(0.75)


@pytest.mark.parametrize("model", ["llama3:8b", "offline-llm", "gpt-4o-mini-custom"])
def test_an_unknown_model_gets_no_guess(model):
    assert estimated_cost_usd(model, 10, 10) is None


def test_one_unpriced_step_makes_the_total_cost_unknown():
    steps = [
        Step(name="summarize", model="gpt-4o-mini", input_tokens=10, output_tokens=5),
        Step(name="checklist", model="llama3:8b", input_tokens=20, output_tokens=7),
    ]

    usage = usage_of(steps)

    assert (usage.input_tokens, usage.output_tokens, usage.estimated_cost_usd) == (30, 12, None)
