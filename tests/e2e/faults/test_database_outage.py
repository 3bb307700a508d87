"""Fault 2: PostgreSQL is stopped during a stream of submits, then started again."""

from __future__ import annotations

import pytest

from .conftest import SubmitStream, assert_clean_unavailable, wait_for

pytestmark = pytest.mark.faults


def test_submits_get_clean_503s_while_the_database_is_down_and_nothing_is_half_written(service, tag):
    client = service.client()
    with SubmitStream(client, tag) as stream:
        accepted, refused = stream.accepted, stream.refused
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

    for answer in refused:
        assert answer.status == 503
        assert_clean_unavailable(answer)
    # Messages that arrived during the outage failed and come back after the visibility timeout.
    service.wait_until_finished(accepted, within=90)
    assert set(service.jobs_tagged(tag)) == set(accepted), "a refused submit left a job behind"
    service.assert_finished_once(accepted)
    assert client.server_errors() == {}
