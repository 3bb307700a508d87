"""Fault 3: the SQS endpoint is down during submits."""

from __future__ import annotations

import pytest

from .conftest import submit_through_an_outage

pytestmark = pytest.mark.faults


def test_no_job_is_lost_while_the_queue_is_down(service, tag):
    def reading_needs_no_queue(client, event_id):
        assert client.job(event_id).status == 200

    # A job whose message was lost would be PENDING: the sweeper, on its schedule, sends it again.
    submit_through_an_outage(
        service,
        tag,
        service.stack.stop_sqs,
        service.stack.start_sqs,
        refused_within=60,
        during=reading_needs_no_queue,
        sweep_every=3,
    )
