"""Fault 6: 50 concurrent clients submitting and polling for a while (FAULT_SOAK_SECONDS, 30 s)."""

from __future__ import annotations

import http.client
import os
import threading
import time

import pytest

from .conftest import TERMINAL, guidelines

pytestmark = pytest.mark.faults
CLIENTS = 50
SOAK_SECONDS = float(os.environ.get("FAULT_SOAK_SECONDS") or 30)
# After the soak, how long a client keeps polling its last job before the test gives up on it.
DRAIN_SECONDS = 60
POLL_SECONDS = 0.5


def test_fifty_clients_submitting_and_polling_get_no_5xx_and_exhaust_nothing(service, tag):
    clients = [service.client(keep_alive=True) for _ in range(CLIENTS)]
    accepted: list[str] = []
    errors: list[str] = []
    unfinished: list[str] = []
    peak_connections = [0]
    start = threading.Barrier(CLIENTS + 1)
    soak_ends = time.monotonic() + SOAK_SECONDS + 5  # the barrier is reached within that margin

    def run(number: int) -> None:
        client = clients[number]
        start.wait()
        submitted = 0
        try:
            while time.monotonic() < soak_ends:
                submitted += 1
                answer = client.submit(guidelines(tag, f"{number}-{submitted}"))
                if answer.status != 202:
                    errors.append(f"submit answered {answer.status}: {answer.body}")
                    return  # one failure is enough to fail the test; hammering would add nothing
                event_id = answer.body["event_id"]
                accepted.append(event_id)
                give_up = max(soak_ends, time.monotonic()) + DRAIN_SECONDS
                while True:
                    reading = client.job(event_id)
                    if reading.status != 200:
                        errors.append(f"poll answered {reading.status}: {reading.body}")
                        return
                    if reading.body["status"] in TERMINAL:
                        break
                    if time.monotonic() > give_up:
                        unfinished.append(event_id)
                        return
                    time.sleep(POLL_SECONDS)
        except (OSError, http.client.HTTPException) as error:
            errors.append(f"client {number}: {type(error).__name__}: {error}")
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(n,), name=f"client-{n}") for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    while any(thread.is_alive() for thread in threads):
        rows = service.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'"
        )
        peak_connections[0] = max(peak_connections[0], rows[0]["n"])
        time.sleep(1)
    for thread in threads:
        thread.join()

    assert errors == []
    assert unfinished == []
    assert len(accepted) >= CLIENTS
    for client in clients:
        assert client.server_errors() == {} and client.statuses[503] == 0
    # One connection per warm execution environment, whatever the number of clients.
    environments = sum(pool.max_environments for pool in service.stack.pools.values())
    assert peak_connections[0] <= environments + 1
    service.assert_finished_once(accepted)
