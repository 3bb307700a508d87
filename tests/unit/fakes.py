"""In-memory stand-ins for what the logic talks to: the job store (guideline_ingest.dal.jobs), the
queues (guideline_ingest.queue) and the random source of a jitter. Each keeps the rules of the real
one that the logic relies on (a finished job never changes, the sweeper's notion of a silent job)
and nothing else; add a method when a logic module's Protocol names a new one."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from guideline_ingest.dal.jobs import IDEMPOTENCY_RETENTION_HOURS, WEBHOOK_LOST_AFTER_SECONDS
from guideline_ingest.models import JobStatus
from guideline_ingest.queue import QueueUnavailable


class FakeJobStore:
    """Rows as the store returns them, keyed by event_id, and a clock the test moves (`advance`)."""

    def __init__(self) -> None:
        self.rows: dict[UUID, dict] = {}
        self.idempotency_keys: dict[tuple[str, str], datetime] = {}
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def add(self, owner: str = "owner", status: JobStatus = JobStatus.PENDING, **columns) -> UUID:
        """A job as if it had been inserted now; `columns` override any column."""
        event_id = columns.pop("event_id", None) or uuid4()
        self.rows[event_id] = {
            "event_id": event_id,
            "owner": owner,
            "status": status,
            "guidelines": "Staff must wash hands.",
            "created_at": self.now,
            "updated_at": self.now,
            "due_at": self.now,
            "result": None,
            "error": None,
            "steps": [],
            "attempts": 0,
            "retries": 0,
            "lease_expires_at": None,
            "last_transient_error": None,
            "callback_url": None,
            "webhook_status": None,
            "webhook_attempts": 0,
            "webhook_last_error": None,
            "webhook_delivered_at": None,
            "webhook_enqueued_at": None,
            **columns,
        }
        return event_id

    def status(self, event_id: UUID) -> JobStatus:
        return JobStatus(self.rows[event_id]["status"])

    # --- reading and cancelling ------------------------------------------------------------------

    def find_job(self, event_id: UUID, owner: str) -> dict | None:
        row = self.rows.get(event_id)
        return dict(row) if row and row["owner"] == owner else None

    def list_jobs(self, owner: str, status: str | None, after: tuple | None, limit: int) -> list[dict]:
        rows = sorted(
            (r for r in self.rows.values() if r["owner"] == owner and status in (None, r["status"])),
            key=lambda r: (r["created_at"], r["event_id"]),
            reverse=True,
        )
        if after:
            rows = [r for r in rows if (r["created_at"], r["event_id"]) < after]
        return [dict(r) for r in rows[:limit]]

    def cancel_job(self, event_id: UUID, owner: str) -> dict | None:
        row = self.rows.get(event_id)
        if row is None or row["owner"] != owner or JobStatus(row["status"]).is_terminal:
            return None
        self._finish(row, JobStatus.CANCELLED)
        return dict(row)

    # --- webhooks ------------------------------------------------------------------------------

    def find_webhook_delivery(self, event_id: UUID) -> dict | None:
        row = self.rows.get(event_id)
        return dict(row) if row else None

    def record_webhook_attempt(self, event_id: UUID, error: str) -> None:
        row = self.rows[event_id]
        if row["webhook_status"] == "PENDING":
            row.update(
                webhook_attempts=row["webhook_attempts"] + 1,
                webhook_last_error=error,
                webhook_enqueued_at=self.now,
            )

    def finish_webhook(self, event_id: UUID, delivered: bool, error: str | None) -> None:
        row = self.rows[event_id]
        if row["webhook_status"] == "PENDING":
            row.update(
                webhook_status="DELIVERED" if delivered else "FAILED",
                webhook_attempts=row["webhook_attempts"] + 1,
                webhook_last_error=error,
                webhook_delivered_at=self.now if delivered else None,
            )

    # --- the sweeper -----------------------------------------------------------------------------

    def fail_abandoned_jobs(self, max_attempts: int) -> list[dict]:
        return self._fail(
            lambda r: self._lease_expired(r) and r["attempts"] - r["retries"] >= max_attempts,
            lambda r: "attempts_exhausted",
            "never finished",
        )

    def fail_expired_uploads(self, grace_seconds: float) -> list[dict]:
        # The fake holds no jobs awaiting an upload (tests/integration/test_intake.py covers expiry).
        return []

    def fail_jobs_out_of_budget(
        self, budget_seconds: float, silent_seconds: float, budget: str, llm_reason: str
    ) -> list[dict]:
        def kind(row: dict) -> str:
            if row["last_transient_error"]:
                return "llm_unavailable"
            return "attempts_exhausted" if row["attempts"] else "not_started"

        return self._fail(
            lambda r: self._silent(r, silent_seconds) and self._older(r, budget_seconds),
            kind,
            f"retry budget of {budget}",
        )

    def mark_forgotten_jobs_enqueued(self, silent_seconds: float, limit: int) -> list[UUID]:
        silent = sorted(
            (r for r in self.rows.values() if self._silent(r, silent_seconds)), key=lambda r: r["due_at"]
        )
        for row in silent[:limit]:
            row.update(due_at=self.now)
        return [row["event_id"] for row in silent[:limit]]

    def mark_lost_webhooks_enqueued(self, limit: int) -> list[UUID]:
        lost_before = self.now - timedelta(seconds=WEBHOOK_LOST_AFTER_SECONDS)
        lost = sorted(
            (
                r
                for r in self.rows.values()
                if r["webhook_status"] == "PENDING" and r["webhook_enqueued_at"] < lost_before
            ),
            key=lambda r: r["webhook_enqueued_at"],
        )
        for row in lost[:limit]:
            row.update(webhook_enqueued_at=self.now)
        return [row["event_id"] for row in lost[:limit]]

    def delete_expired_idempotency_keys(self) -> int:
        expired_before = self.now - timedelta(hours=IDEMPOTENCY_RETENTION_HOURS)
        expired = [key for key, created in self.idempotency_keys.items() if created < expired_before]
        for key in expired:
            del self.idempotency_keys[key]
        return len(expired)

    # --- rules shared by the methods -------------------------------------------------------------

    def _finish(self, row: dict, status: JobStatus, error: dict | None = None) -> None:
        """Every move to a final state: a job with a callback now has a webhook to deliver."""
        due = row["callback_url"] is not None
        row.update(
            status=status,
            error=error,
            lease_expires_at=None,
            updated_at=self.now,
            webhook_status="PENDING" if due else None,
            webhook_enqueued_at=self.now if due else None,
        )

    def _fail(self, selected, kind, message: str) -> list[dict]:
        failed = []
        for row in self.rows.values():
            if not JobStatus(row["status"]).is_terminal and selected(row):
                self._finish(row, JobStatus.FAILED, {"type": kind(row), "message": message})
                failed.append({"event_id": row["event_id"], "webhook_due": row["webhook_status"] is not None})
        return failed

    def _lease_expired(self, row: dict) -> bool:
        return row["status"] == JobStatus.PROCESSING and row["lease_expires_at"] < self.now

    def _silent(self, row: dict, silent_seconds: float) -> bool:
        """No live message can bring the job any more."""
        unclaimed = row["status"] == JobStatus.PENDING or self._lease_expired(row)
        return unclaimed and row["due_at"] < self.now - timedelta(seconds=silent_seconds)

    def _older(self, row: dict, seconds: float) -> bool:
        return row["created_at"] < self.now - timedelta(seconds=seconds)


class FakeQueue:
    """What was sent to which queue URL; `unavailable = True` fails every call as SQS down does."""

    def __init__(self) -> None:
        self.sent: dict[str, list[UUID]] = defaultdict(list)
        self.delays: list[tuple[str, str, int]] = []  # (queue_url, receipt_handle or event_id, seconds)
        self.unavailable = False

    def enqueue_job(self, queue_url: str, event_id: UUID) -> None:
        self._reachable()
        self.sent[queue_url].append(event_id)

    def enqueue_jobs(self, queue_url: str, event_ids: list[UUID]) -> None:
        self._reachable()
        self.sent[queue_url].extend(event_ids)

    def requeue_job(self, queue_url: str, event_id: UUID, receipt_handle: str, delay_seconds: int) -> None:
        self._reachable()
        self.sent[queue_url].append(event_id)
        self.delays.append((queue_url, str(event_id), delay_seconds))

    def delay_redelivery(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        self._reachable()
        self.delays.append((queue_url, receipt_handle, seconds))

    def _reachable(self) -> None:
        if self.unavailable:
            raise QueueUnavailable("the fake queue is unavailable")


class Draws:
    """A stand-in for random: uniform(a, b) returns the fraction `at` of the way from a to b."""

    def __init__(self, at: float):
        self.at = at

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.at
