"""SnapStart (ApiColdStart: snapstart): what init left behind is made again after a restore.

Lambda's Python runtime provides `snapshot_restore_py`; here a stand-in module with the same
`register_after_restore` collects the hooks the API functions register at init, and the test calls
them as the runtime would after resuming a snapshot. The template offers the option as AWS accepts it.
"""

from __future__ import annotations

import sys
import types

import pytest

from guideline_ingest import db, queue, snapstart
from guideline_ingest.snapstart import register_restore_hooks

from conftest import LambdaContext, event, http, load_function


@pytest.fixture
def snapshot_runtime(monkeypatch):
    """The runtime's snapshot_restore_py: hooks are kept to be called 'after a restore'."""
    hooks: list = []
    module = types.ModuleType("snapshot_restore_py")
    module.register_after_restore = lambda hook, *args, **kwargs: hooks.append((hook, args, kwargs))
    module.register_before_snapshot = lambda hook, *args, **kwargs: None
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)

    def restore() -> None:
        for hook, args, kwargs in hooks:
            hook(*args, **kwargs)

    restore.hooks = hooks
    return restore


@pytest.mark.parametrize("function", ["submit", "status"])
def test_the_api_functions_register_their_hooks_at_init(environment, snapshot_runtime, function):
    load_function(function)
    assert [hook for hook, _, _ in snapshot_runtime.hooks] == [snapstart.renew_after_restore]


def test_after_a_restore_the_connection_and_the_sqs_client_are_new(queues, database, snapshot_runtime):
    submit = load_function("submit")
    answer = http(submit.handler(event("submit.json"), LambdaContext("SubmitFunction")))
    assert answer.status == 202
    connection, client = db.connection(), queue.sqs_client()
    assert not connection.closed

    snapshot_runtime()

    assert connection.closed  # the snapshot's socket is not used again
    assert db.connection() is not connection
    assert queue.sqs_client() is not client
    # And the function works on the new ones, from the first request after the restore.
    answer = http(submit.handler(event("submit.json"), LambdaContext("SubmitFunction")))
    assert answer.status == 202
    messages = queues.receive(wait=1)
    assert len(messages) == 2


def test_random_is_seeded_again_after_a_restore(snapshot_runtime):
    import random

    register_restore_hooks()
    random.seed(42)
    snapshot = random.getstate()
    snapshot_runtime()
    assert random.getstate() != snapshot


def test_without_the_snapstart_runtime_nothing_is_registered(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails, as off Lambda
    assert register_restore_hooks() is False
