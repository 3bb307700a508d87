"""Fault 2: PostgreSQL is stopped during a stream of submits, then started again."""

from __future__ import annotations

import threading
import time

import pytest

from .conftest import assert_clean_unavailable, guidelines, wait_for

pytestmark = pytest.mark.faults
MAX_SUBMITS = 400


def test_submits_get_clean_503s_while_the_database_is_down_and_nothing_is_half_written(service, tag):
    client = service.client()
    accepted: list[str] = []
    refused = []
    stop = threading.Event()

    def stream() -> None:
        for n in range(MAX_SUBMITS):
            if stop.is_set():
                return
            answer = client.submit(guidelines(tag, n))
            if answer.status == 202:
                accepted.append(answer.body["event_id"])
            else:
                refused.append(answer)
            time.sleep(0.05)

    submitter = threading.Thread(target=stream, name="submits")
    submitter.start()
    try:
        wait_for(lambda: len(accepted) >= 5, within=30, what="submits before the outage")
        service.stack.stop_postgres()
        try:
            wait_for(lambda: len(refused) >= 5, within=30, what="submits refused during the outage")
            reading = client.job(accepted[0])
            assert reading.status == 503
            assert_clean_unavailable(reading)
        finally:
            service.stack.start_postgres()
        before = len(accepted)
        wait_for(lambda: len(accepted) >= before + 5, within=30, what="submits accepted after the restart")
    finally:
        stop.set()
        submitter.join()

    for answer in refused:
        assert answer.status == 503
        assert_clean_unavailable(answer)
    # Messages that arrived during the outage failed and come back after the visibility timeout.
    service.wait_until_finished(accepted, within=90)
    assert set(service.jobs_tagged(tag)) == set(accepted), "a refused submit left a job behind"
    service.assert_finished_once(accepted)
    assert client.server_errors() == {}
