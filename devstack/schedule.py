"""Scheduled events (EventBridge rules with rate expressions), invoking a function on its rate."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from datetime import UTC, datetime

from devstack.runtime import FunctionPool, Invocation
from devstack.template import ACCOUNT_ID, REGION, ScheduleSource

log = logging.getLogger("devstack.schedule")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|hour|day)s?\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs for `rate(...)`; None for `cron(...)`, which the runner does not run."""
    match = _RATE.match(expression.strip())
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


class Schedule:
    def __init__(self, pool: FunctionPool, source: ScheduleSource):
        self.pool = pool
        self.source = source
        self.rule_name = f"{pool.spec.logical_id}{source.event_name}"
        self.period = rate_seconds(source.expression)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.period is None:
            log.warning(
                "%s: %s is not run locally (only rate(...) is)", self.rule_name, self.source.expression
            )
            return
        self._thread = threading.Thread(target=self._run, name=f"schedule-{self.rule_name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Like a new rule, the first run comes one period after the start.
        while not self._stop.wait(self.period):
            self.run_now()

    def run_now(self) -> Invocation:
        """Invoke the function with the event EventBridge sends for a scheduled rule."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{self.rule_name}"],
            "detail": {},
        }
        invocation = self.pool.invoke(event)
        if invocation.ok:
            log.info("%s ran (%.0f ms)", self.rule_name, invocation.duration_ms)
        else:
            log.warning("%s failed: %s", self.rule_name, invocation.payload.get("errorMessage"))
        return invocation

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
