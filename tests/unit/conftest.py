"""The unit tier loads no shared fixture (make test-unit: --confcutdir). What the code reads at
import (the request model's limit, the logger's service name) is set as the template gives it."""

import pytest

from support import set_import_environment

set_import_environment()

from .fakes import FakeJobStore, FakeQueue  # noqa: E402 - imports the code, which reads the environment


@pytest.fixture
def store() -> FakeJobStore:
    return FakeJobStore()


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()
