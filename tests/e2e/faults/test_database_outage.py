"""Fault 2: PostgreSQL is stopped during a stream of submits, then started again."""

from __future__ import annotations

import pytest

from .conftest import assert_clean_unavailable, submit_through_an_outage

pytestmark = pytest.mark.faults


def test_submits_get_clean_503s_while_the_database_is_down_and_nothing_is_half_written(service, tag):
    def reading_is_unavailable(client, event_id):
        reading = client.job(event_id)
        assert reading.status == 503
        assert_clean_unavailable(reading)

    # Messages that arrived during the outage failed and come back after the visibility timeout.
    submit_through_an_outage(
        service,
        tag,
        service.stack.stop_postgres,
        service.stack.start_postgres,
        refused_within=30,
        during=reading_is_unavailable,
    )
