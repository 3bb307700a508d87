"""Fuzzing the API through the local runner with schemathesis, against the spec it serves.

Every generated request, valid and invalid, must get an answer that is not a server error and that
the spec describes: a documented status, the documented content type, a body matching its schema.
Bounded and derandomized, so a run is short and reproducible.

schemathesis' own pytest loader (`from_fixture`) relies on a pytest internal that pytest 9 removed,
so each operation of the served spec runs as a subtest with a hypothesis test built from its
public strategy API.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.stack import Stack

from support import local_only

pytestmark = pytest.mark.e2e
API_KEY = "fuzz-test-key"
EXAMPLES_PER_MODE = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_stack():
    # Not pytest's private (0700) tmp dir: as root the embedded server runs as its own OS user.
    data_dir = Path(tempfile.mkdtemp(prefix="guideline-ingest-fuzz-"))
    data_dir.chmod(0o755)
    runner_settings = local_only(API_KEY, LOG_LEVEL="WARNING", POWERTOOLS_LOG_LEVEL="WARNING")
    try:
        with Stack(port=0, env=runner_settings, read_dotenv=False, data_dir=data_dir) as stack:
            yield stack
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def fuzz(operation, mode: GenerationMode, base_url: str) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        case.call_and_validate(base_url=base_url, headers={"x-api-key": API_KEY}, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
def test_every_answer_is_documented_and_none_is_a_server_error(fuzz_stack, mode, subtests):
    spec = schemathesis.openapi.from_url(f"{fuzz_stack.base_url}/openapi.json")
    operations = [result.ok() for result in spec.get_all_operations()]
    assert operations
    for operation in operations:
        with subtests.test(operation=operation.label):
            try:
                fuzz(operation, mode, fuzz_stack.base_url)
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                pytest.skip(f"{operation.label} takes no input that could be made invalid")
