"""The runner's pool of execution environments: its cap queues invocations, first come first served."""

from __future__ import annotations

import threading
import time

import pytest

from devstack.runtime import FunctionPool, base_environment
from devstack.template import FunctionSpec

HANDLER = """
import time


def handler(event, context):
    time.sleep(event["seconds"])
    return event["n"]
"""


@pytest.fixture
def pool(tmp_path):
    (tmp_path / "app.py").write_text(HANDLER)
    spec = FunctionSpec(
        logical_id="QueueingFunction",
        code_dir=tmp_path,
        handler="app.handler",
        timeout=10,
        memory_size=128,
        environment={},
        layer_dirs=[],
    )
    environment = base_environment() | {
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        "AWS_REGION": "us-east-1",
        "DEVSTACK_ACCOUNT_ID": "000000000000",
    }
    pool = FunctionPool(spec, environment, max_environments=1)
    pool.invoke({"n": -1, "seconds": 0})  # started and warm
    yield pool
    pool.close()


def invoke_in_order(pool: FunctionPool, count: int, seconds: float) -> list:
    """`count` invocations arriving 20 ms apart while the only environment is busy."""
    finished: list = []
    lock = threading.Lock()

    def call(n: int) -> None:
        invocation = pool.invoke({"n": n, "seconds": seconds})
        with lock:
            finished.append(invocation.payload if invocation.ok else invocation.error_type)

    threads = []
    for n in range(count):
        thread = threading.Thread(target=call, args=(n,))
        thread.start()
        threads.append(thread)
        time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=30)
    return finished


def test_invocations_beyond_the_cap_are_served_in_arrival_order(pool):
    assert invoke_in_order(pool, 6, seconds=0.1) == [0, 1, 2, 3, 4, 5]
    assert pool.size == 1


def test_room_left_by_a_killed_environment_goes_to_the_waiting_invocations(pool):
    finished: list = []
    waiting = threading.Thread(target=lambda: finished.extend(invoke_in_order(pool, 4, seconds=0.5)))
    waiting.start()
    time.sleep(0.2)  # the first runs, three wait
    assert pool.kill_all() == 1
    waiting.join(timeout=30)
    # The killed one fails as Lambda reports it; the waiting ones run, in order, on a new environment.
    assert finished == ["Runtime.ExitError", 1, 2, 3]
    assert pool.size == 1


def test_closing_the_pool_releases_every_waiting_invocation(pool):
    errors: list = []

    def call() -> None:
        try:
            pool.invoke({"n": 0, "seconds": 0})
        except RuntimeError as error:
            errors.append(str(error))

    busy = threading.Thread(target=pool.invoke, args=({"n": 0, "seconds": 1},))
    busy.start()
    time.sleep(0.2)
    waiters = [threading.Thread(target=call) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.2)
    pool.close()
    for waiter in waiters:
        waiter.join(timeout=10)
    assert errors == ["QueueingFunction is stopped"] * 3
    busy.join(timeout=10)
