"""Fault 3: the SQS endpoint is down during submits."""

from __future__ import annotations

import pytest

from .conftest import SubmitStream, assert_clean_unavailable, wait_for

pytestmark = pytest.mark.faults


def test_no_job_is_lost_while_the_queue_is_down(service, tag):
    client = service.client()
    with SubmitStream(client, tag) as stream:
        accepted, refused = stream.accepted, stream.refused
        wait_for(lambda: len(accepted) >= 5, within=30, what="submits before the outage")
        service.stack.stop_sqs()
        try:
            wait_for(lambda: len(refused) >= 5, within=60, what="submits refused during the outage")
            assert client.job(accepted[0]).status == 200  # reading needs no queue
        finally:
            service.stack.start_sqs()
        before = len(accepted)
        wait_for(lambda: len(accepted) >= before + 5, within=30, what="submits accepted after the restart")

    for answer in refused:
        assert answer.status == 503
        assert_clean_unavailable(answer)
    # A job whose message was lost would be PENDING: the sweeper, on its schedule, sends it again.
    service.wait_until_finished(accepted, within=90, sweep_every=3)
    assert set(service.jobs_tagged(tag)) == set(accepted), "a refused submit left a job behind"
    service.assert_finished_once(accepted)
    assert client.server_errors() == {}
