"""The whole service on this machine (devstack), driven over HTTP while faults are injected.

One stack serves most fault tests (starting one costs seconds); a test that needs other parameters
starts its own with `fault_stack_with`. The template parameters are shrunk so that recovery happens
within seconds, with the production ratios kept: the queue's visibility timeout outlasts a
processing lease, so a redelivery after a crash can claim the job; the backoff cap is below the
retry budget. The sweeper runs on its real schedule (every minute), as deployed; tests that want a
sweep at a given moment run it in addition. The embedded PostgreSQL is used even when DATABASE_URL
is set: the tests stop and start it.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

from devstack.stack import Stack
from guideline_ingest.models import JobStatus

TERMINAL = tuple(status for status in JobStatus if status.is_terminal)
API_KEY = "fault-test-key"
PARAMETERS = {
    # Deadline 5 s (the function stops 5 s before its timeout): two 1.5 s LLM calls fit.
    "ProcessTimeoutSeconds": 10,
    # A lease lasts until the invocation's timeout (10 s); a message comes back after 12 s.
    "JobsVisibilityTimeoutSeconds": 12,
    "MaxReceiveCount": 3,
    "PendingGraceSeconds": 2,
    # A job keeps retrying transient failures for 30 s; deliveries back off 1 s doubling to 4 s.
    "RetryBudgetSeconds": 30,
    "RetryBackoffBaseSeconds": 1,
    "RetryBackoffCapSeconds": 4,
    # Webhooks to the tests' loopback receiver; four attempts (backoff 1, 2, 4 s).
    "AllowLoopbackCallbacks": "true",
    "WebhookMaxAttempts": 4,
}
SETTINGS = {
    "API_KEYS": API_KEY,
    "DATABASE_URL": "",  # the embedded server, which the tests can stop
    "OPENAI_API_KEY": "",
    "OPENAI_BASE_URL": "",  # the offline LLM, whose faults the tests set
    "OFFLINE_LLM_LATENCY_MS": "0",
    "OFFLINE_LLM_FAULTS": "",
    "LOG_LEVEL": "INFO",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}

# Every UPDATE that finishes a job, or touches a finished one, leaves a row here: a job finished
# exactly once has exactly one, from PROCESSING. Test-only: installed in the stack's own database.
FINISH_AUDIT = """
CREATE TABLE IF NOT EXISTS fault_test_finishes (
    event_id uuid NOT NULL, old_status text NOT NULL, new_status text NOT NULL,
    attempts integer NOT NULL, result jsonb, error jsonb
);
CREATE OR REPLACE FUNCTION fault_test_record_finish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fault_test_finishes
    VALUES (NEW.event_id, OLD.status, NEW.status, NEW.attempts, NEW.result, NEW.error);
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS fault_test_finish ON jobs;
CREATE TRIGGER fault_test_finish AFTER UPDATE ON jobs FOR EACH ROW
    WHEN (NEW.status IN ({terminal}) OR OLD.status IN ({terminal}))
    EXECUTE FUNCTION fault_test_record_finish();
""".replace("{terminal}", ", ".join(f"'{status}'" for status in TERMINAL))


# --- the HTTP client ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: object


@dataclass
class Client:
    """A small stdlib client that remembers every status the API answered."""

    base_url: str
    api_key: str = API_KEY
    keep_alive: bool = False
    statuses: Counter = field(default_factory=Counter)
    unavailable: list[Answer] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connection: http.client.HTTPConnection | None = None

    def submit(self, guidelines: str, **headers: str) -> Answer:
        body = json.dumps({"guidelines": guidelines})
        return self.request("POST", "/jobs", body, {"content-type": "application/json", **headers})

    def job(self, event_id: str) -> Answer:
        return self.request("GET", f"/jobs/{event_id}")

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None) -> Answer:
        connection = self._connection or self._connect()
        try:
            connection.request(
                method,
                urlsplit(self.base_url).path + path,
                body=body,
                headers={"x-api-key": self.api_key, **(headers or {})},
            )
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        finally:
            if not self.keep_alive:
                connection.close()
        if self.keep_alive and response.getheader("Connection", "").lower() == "close":
            connection.close()
            self._connection = None
        content_type = response.getheader("Content-Type", "")
        answer = Answer(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=json.loads(raw) if raw and "json" in content_type else raw,
        )
        with self._lock:
            self.statuses[answer.status] += 1
            if answer.status == 503:
                self.unavailable.append(answer)
        return answer

    def _connect(self) -> http.client.HTTPConnection:
        url = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        if self.keep_alive:
            self._connection = connection
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def server_errors(self) -> dict[int, int]:
        """5xx answers other than the intended 503."""
        return {status: n for status, n in self.statuses.items() if status >= 500 and status != 503}


def wait_for(condition, within: float, what: str, every: float = 0.05):
    """Poll `condition` until it is truthy; a bounded wait that fails the test, not a timing claim."""
    give_up = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > give_up:
            pytest.fail(f"gave up after {within:.0f} s waiting for {what}")
        time.sleep(every)
    return value


def assert_clean_unavailable(answer: Answer) -> None:
    """A 503 as the service means it: an RFC 9457 problem that tells the client to come back."""
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.body["status"] == 503 and answer.body["type"].endswith(":service-unavailable")
    assert int(answer.headers["retry-after"]) > 0
    assert "Traceback" not in json.dumps(answer.body)


class InBackground:
    """Runs `_run` in a thread while the `with` block runs; `_stop` is set when the block ends."""

    def __init__(self, name: str):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class QueueWatch(InBackground):
    """Samples a queue's live messages every 0.2 s in a thread, while the test runs."""

    def __init__(self, stack: FaultStack, queue: str = "JobsQueue", every: float = 0.2):
        super().__init__(f"watch-{queue}")
        self.samples: list[int] = []
        self._stack, self._queue, self._every = stack, queue, every

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append(self._stack.live_messages(self._queue))

    @property
    def most(self) -> int:
        return max(self.samples, default=0)


# --- the stack and its database ---------------------------------------------------------------------

LIVE_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class FaultStack:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.llm = stack.offline_llm

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def client(self, **options) -> Client:
        return Client(self.base_url, **options)

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        # A connection per query: the tests stop the server under it.
        with psycopg.connect(self.stack.database_url, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def jobs(self, event_ids) -> dict[str, dict]:
        rows = self.query("SELECT * FROM jobs WHERE event_id = ANY(%s::uuid[])", (list(event_ids),))
        return {str(row["event_id"]): row for row in rows}

    def jobs_tagged(self, tag: str) -> dict[str, dict]:
        rows = self.query("SELECT * FROM jobs WHERE guidelines LIKE %s", (f"%{tag}%",))
        return {str(row["event_id"]): row for row in rows}

    def wait_until_finished(self, event_ids, within: float, sweep_every: float | None = None) -> dict:
        """Poll until every job is COMPLETED or FAILED; a bounded wait, so a lost job fails the test.
        With `sweep_every`, run the sweeper on that period, as its schedule does every minute."""
        wanted = set(event_ids)
        give_up = time.monotonic() + within
        next_sweep = time.monotonic() + (sweep_every or 0)
        while True:
            rows = self.jobs(wanted)
            if len(rows) == len(wanted) and all(row["status"] in TERMINAL for row in rows.values()):
                return rows
            if time.monotonic() > give_up:
                stuck = {e: (rows[e]["status"] if e in rows else "missing") for e in wanted}
                pytest.fail(f"jobs not finished after {within:.0f} s: {stuck}")
            if sweep_every and time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + sweep_every
            time.sleep(0.25)

    def sweep(self) -> dict:
        invocation = self.stack.run_schedule("SweeperFunction")
        assert invocation.ok, invocation.payload
        return invocation.payload

    def finishes(self, event_ids) -> dict[str, list[dict]]:
        rows = self.query(
            "SELECT * FROM fault_test_finishes WHERE event_id = ANY(%s::uuid[])", (list(event_ids),)
        )
        found: dict[str, list[dict]] = {str(e): [] for e in event_ids}
        for row in rows:
            found[str(row["event_id"])].append(row)
        return found

    def assert_finished_once(self, event_ids, expected: tuple[str, ...] = ("COMPLETED",)) -> dict:
        """Each job reached a final state through exactly one guarded UPDATE, stored its result
        (or its reason) once, and is seen so over HTTP."""
        rows = self.jobs(event_ids)
        assert set(rows) == {str(e) for e in event_ids}, "a job that got a 202 does not exist"
        for event_id, finishes in self.finishes(event_ids).items():
            row = rows[event_id]
            assert row["status"] in expected, (event_id, row["status"], row["error"])
            assert len(finishes) == 1, f"job {event_id} was finished {len(finishes)} times: {finishes}"
            (finish,) = finishes
            assert (finish["old_status"], finish["new_status"]) == ("PROCESSING", row["status"])
            assert finish["attempts"] == row["attempts"]
            if row["status"] == "COMPLETED":
                assert finish["result"] == row["result"]
                assert row["result"]["summary"] and row["result"]["checklist"]
            else:
                assert finish["error"] == row["error"]
                assert row["error"]["type"] and row["error"]["message"]
        client = self.client()
        for event_id, row in rows.items():
            answer = client.job(event_id)
            assert (answer.status, answer.body["status"]) == (200, row["status"])
        return rows

    def live_messages(self, queue: str = "JobsQueue") -> int:
        """Visible + in flight + delayed: every message of the queue that can still be delivered."""
        attributes = self.stack.sqs().get_queue_attributes(
            QueueUrl=self.stack.queue_urls[queue], AttributeNames=list(LIVE_ATTRIBUTES)
        )["Attributes"]
        return sum(int(attributes[name]) for name in LIVE_ATTRIBUTES)

    def dead_letters(self, queue: str = "JobsDeadLetterQueue") -> list[dict]:
        sqs = self.stack.sqs()
        url = self.stack.queue_urls[queue]
        messages = []
        while batch := sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        ).get("Messages", []):
            messages.extend(batch)
        return messages


@contextmanager
def fault_stack_with(parameters: dict | None = None, **options):
    """A stack with PARAMETERS, changed by `parameters`, and its schedules on."""
    # Not pytest's private (0700) tmp dir: as root the embedded server runs as its own OS user.
    data_dir = Path(tempfile.mkdtemp(prefix="guideline-ingest-faults-"))
    data_dir.chmod(0o755)
    try:
        with Stack(
            port=0,
            parameter_overrides={**PARAMETERS, **(parameters or {})},
            env=SETTINGS,
            read_dotenv=False,
            data_dir=data_dir,
            **options,
        ) as stack:
            with psycopg.connect(stack.database_url, autocommit=True) as conn:
                conn.execute(FINISH_AUDIT)
            yield FaultStack(stack)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def fault_stack():
    with fault_stack_with() as stack:
        yield stack


@pytest.fixture
def service(fault_stack):
    """The shared stack, healthy and with a well-behaved LLM at the start of each test."""
    fault_stack.llm.set_faults(reset=True)
    fault_stack.llm.reset_stats()
    yield fault_stack
    fault_stack.llm.set_faults(reset=True)


@pytest.fixture
def tag() -> str:
    """A marker in a test's guidelines, to find its rows."""
    return f"tag-{uuid.uuid4().hex}"


def guidelines(tag: str, n: int = 0) -> str:
    return (
        f"Reference {tag}-{n}. Staff must enable multi-factor authentication on every account. "
        "Passwords should be rotated every 90 days. Incidents must be reported within 24 hours."
    )


class SubmitStream(InBackground):
    """Submits a steady stream of jobs from a thread until stopped; sorts the answers."""

    def __init__(self, client: Client, tag: str, limit: int = 400, pause: float = 0.05):
        super().__init__("submits")
        self.accepted: list[str] = []
        self.refused: list[Answer] = []
        self._client, self._tag, self._limit, self._pause = client, tag, limit, pause

    def _run(self) -> None:
        for n in range(self._limit):
            if self._stop.is_set():
                return
            answer = self._client.submit(guidelines(self._tag, n))
            if answer.status == 202:
                self.accepted.append(answer.body["event_id"])
            else:
                self.refused.append(answer)
            time.sleep(self._pause)


def submit_through_an_outage(
    service: FaultStack,
    tag: str,
    stop,
    start,
    *,
    refused_within: float,
    during,
    sweep_every: float | None = None,
) -> None:
    """A stream of submits across an outage: five accepted, `stop()`, five refused, `during(client,
    an accepted event_id)`, `start()`, five accepted again. Then every refusal is a clean 503 that
    left no job behind, and every accepted job finishes once (with the sweeper every `sweep_every`
    seconds, for jobs whose message was lost)."""
    client = service.client()
    with SubmitStream(client, tag) as stream:
        accepted, refused = stream.accepted, stream.refused
        wait_for(lambda: len(accepted) >= 5, within=30, what="submits before the outage")
        stop()
        try:
            wait_for(
                lambda: len(refused) >= 5, within=refused_within, what="submits refused during the outage"
            )
            during(client, accepted[0])
        finally:
            start()
        before = len(accepted)
        wait_for(lambda: len(accepted) >= before + 5, within=30, what="submits accepted after the restart")

    for answer in refused:
        assert answer.status == 503
        assert_clean_unavailable(answer)
    service.wait_until_finished(accepted, within=90, sweep_every=sweep_every)
    assert set(service.jobs_tagged(tag)) == set(accepted), "a refused submit left a job behind"
    service.assert_finished_once(accepted)
    assert client.server_errors() == {}
