"""The whole service on one machine, driven by infra/template.yaml.

    with Stack(port=0, data_dir=tmp_path) as stack:
        requests.post(f"{stack.base_url}/jobs", headers={"x-api-key": stack.api_key}, ...)

Starts PostgreSQL (embedded, or DATABASE_URL), applies migrations, starts the SQS endpoint with the
template's queues, the LLM (offline unless configured), one pool of execution environments per
function, the API Gateway stand-in, the SQS event source mappings and the schedules.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from devstack.apigateway import ApiGateway, Route
from devstack.esm import DEFAULT_CONCURRENCY, EventSourceMapping
from devstack.postgres import database_url_or_embedded
from devstack.runtime import FunctionPool, Invocation, base_environment
from devstack.schedule import Schedule
from devstack.settings import Settings, load_settings
from devstack.sqs import FAKE_CREDENTIALS, LocalSQS, redrive_all, sqs_client
from devstack.template import ACCOUNT_ID, REGION, UNRESOLVED, FunctionSpec, Template, load_template
from guideline_ingest.migrations import migrate
from guideline_ingest.status import JobStatus

log = logging.getLogger("devstack")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_API_KEY = "offline-llm-needs-no-key"


def default_max_environments() -> int:
    """One environment per core, and one more to run while another waits on a reply.

    On Lambda every environment has a CPU of its own; here they all share this machine's cores,
    and past about one per core more of them add no parallelism, only contention: the same submit
    handler costs 1.75 ms of CPU per call looped in 2-3 processes and 3.0 ms in 10, on 2 cores
    (docs/performance.md)."""
    return (os.cpu_count() or 1) + 1


@dataclass
class LlmChoice:
    base_url: str
    api_key: str
    offline: bool

    @property
    def label(self) -> str:
        return "offline" if self.offline else (self.base_url or "OpenAI API")


class Stack:
    def __init__(
        self,
        *,
        port: int | None = None,
        parameter_overrides: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        root: Path = PROJECT_ROOT,
        template: Path | None = None,
        read_dotenv: bool = True,
        database: bool = True,
        schedules: bool = True,
        state_file: Path | None = None,
        api: bool = True,
        event_sources: bool = True,
        sqs_endpoint: str | None = None,
        queue_urls: dict[str, str] | None = None,
        function_env: dict[str, str] | None = None,
    ):
        self.root = Path(root)
        self.template_path = Path(template) if template else self.root / "infra" / "template.yaml"
        self.parameter_overrides = {k: str(v) for k, v in (parameter_overrides or {}).items()}
        self.settings: Settings = load_settings(self.root, env, read_dotenv=read_dotenv)
        self.port = int(self.settings.get("PORT", "3000")) if port is None else port
        self.data_dir = Path(data_dir) if data_dir else self.root / ".local"
        self.host = "127.0.0.1"
        self.use_database = database
        self.schedules_enabled = schedules
        self.state_file = state_file
        self.serve_api = api
        self.event_sources_enabled = event_sources
        self.external_sqs = sqs_endpoint
        self.external_queue_urls = queue_urls
        self.name_suffix = uuid.uuid4().hex[:12].upper()
        self.function_env = dict(function_env or {})

        self.template: Template | None = None
        self.database_url: str | None = None
        self.offline_llm = None
        self.llm: LlmChoice | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.mappings: list[EventSourceMapping] = []
        self.schedules: dict[str, list[Schedule]] = {}
        self._postgres = None
        self._sqs: LocalSQS | None = None
        self._api: ApiGateway | None = None

    # --- what tests and tools read ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API's URL, stage included (http://127.0.0.1:3000/v1), as API Gateway's invoke URL."""
        return f"http://{self.host}:{self._api.port}{self._api.base_path}"

    @property
    def api_key(self) -> str:
        return self.settings.api_keys[0]

    @property
    def sqs_endpoint(self) -> str:
        return self._sqs.endpoint

    @property
    def queue_urls(self) -> dict[str, str]:
        return dict(self._sqs.queue_urls)

    def sqs(self):
        """A boto3 SQS client for the local endpoint."""
        return sqs_client(self.sqs_endpoint)

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> Stack:
        started = time.perf_counter()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        log.info("stack up in %.1f s", time.perf_counter() - started)
        return self

    def _start(self) -> None:
        bare = load_template(self.template_path, self.parameter_overrides, name_suffix=self.name_suffix)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-start") as starting:
            database = starting.submit(self._start_database)
            self._sqs = LocalSQS(bare.queues, bare.buckets, self.external_sqs, self.external_queue_urls)
            self._sqs.start()
            database.result()

        self.llm = self._choose_llm(bare)
        self.template = load_template(
            self.template_path,
            {**self._llm_parameters(bare), **self.parameter_overrides},
            self._sqs.queue_urls,
            name_suffix=self.name_suffix,
        )
        for spec in self.template.functions.values():
            self.pools[spec.logical_id] = FunctionPool(
                spec, self._function_environment(spec), self._cap(spec)
            )

        routes = [
            Route(route, self.template.apis[route.api_id], self.pools[spec.logical_id])
            for spec in self.template.functions.values()
            for route in spec.routes
        ]
        if self.serve_api:
            self._api = ApiGateway(routes, self.settings.api_keys, host=self.host, port=self.port)
            self._api.start()

        for spec in self.template.functions.values():
            pool = self.pools[spec.logical_id]
            for source in spec.sqs_sources if self.event_sources_enabled else []:
                queue, url = self.template.queues[source.queue], self._sqs.queue_urls[source.queue]
                self.mappings.append(EventSourceMapping(source, url, queue.arn, pool, self.sqs_endpoint))
            self.schedules[spec.logical_id] = [Schedule(pool, s) for s in spec.schedules]
        self.enable_event_sources()
        for schedule in self._all_schedules() if self.schedules_enabled else []:
            schedule.start()
        self._resend_unfinished_jobs()
        if self.state_file:
            self._write_state()
        # What the runner has loaded and built lives as long as it does: frozen, a full garbage
        # collection no longer walks it while every thread waits (40-60 ms at ~110k objects).
        gc.collect()
        gc.freeze()

    def _resend_unfinished_jobs(self) -> None:
        """The queue lives in this runner's memory: a runner that died (SIGKILL) took the messages of
        its jobs in flight with it. Send one again for every unfinished job; a duplicate is harmless,
        as claims are guarded (docs/local-runner.md)."""
        environments = [spec.environment for spec in self.template.functions.values()]
        queue_url = next((env["JOBS_QUEUE_URL"] for env in environments if "JOBS_QUEUE_URL" in env), None)
        if self.external_sqs or not self.database_url or not isinstance(queue_url, str):
            return
        unfinished = [JobStatus.PENDING.value, JobStatus.PROCESSING.value]
        with psycopg.connect(self.database_url) as connection:
            rows = connection.execute(
                "SELECT event_id FROM jobs WHERE status::text = ANY(%s)", [unfinished]
            ).fetchall()
        client = self.sqs()
        for start in range(0, len(rows), 10):
            entries = [
                {"Id": str(i), "MessageBody": json.dumps({"event_id": str(row[0])})}
                for i, row in enumerate(rows[start : start + 10])
            ]
            client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if rows:
            log.info("re-sent the messages of %d unfinished job(s) the last run left", len(rows))

    def _start_database(self) -> None:
        if self.use_database:
            pgdata = self.data_dir / "pgdata"
            self.database_url, self._postgres = database_url_or_embedded(
                pgdata, self.settings.get("DATABASE_URL")
            )
            applied = migrate(self.database_url)
            log.info("migrations: %s", ", ".join(applied) if applied else "up to date")

    def _choose_llm(self, template: Template) -> LlmChoice | None:
        if not any(
            name.startswith("OPENAI_") for spec in template.functions.values() for name in spec.environment
        ):
            return None
        key = self.settings.get("OPENAI_API_KEY")
        base_url = self.settings.get("OPENAI_BASE_URL")
        if key or base_url:
            return LlmChoice(base_url, key or "not-needed", offline=False)
        from devstack.offline_llm import OfflineLLMProcess

        latency = self.settings.get("OFFLINE_LLM_LATENCY_MS")
        self.offline_llm = OfflineLLMProcess(
            self.host,
            latency_ms=float(latency) if latency else 0.0,
            faults=self.settings.get("OFFLINE_LLM_FAULTS") or "",
        ).start()
        return LlmChoice(self.offline_llm.url, OFFLINE_API_KEY, offline=True)

    def _llm_parameters(self, template: Template) -> dict[str, str]:
        """The chosen LLM reaches the functions as a deploy would give it: through the template's
        parameters (a `parameter_overrides` entry of the caller's still wins)."""
        if self.llm is None:
            return {}
        wanted = {"OpenAIBaseUrl": self.llm.base_url or "", "OpenAIApiKey": self.llm.api_key}
        return {name: value for name, value in wanted.items() if name in template.parameters}

    def _cap(self, spec: FunctionSpec) -> int:
        if spec.sqs_sources:
            return max(s.maximum_concurrency or DEFAULT_CONCURRENCY for s in spec.sqs_sources)
        return int(self.settings.get("DEVSTACK_MAX_ENVIRONMENTS") or default_max_environments())

    def _function_environment(self, spec: FunctionSpec) -> dict[str, str]:
        """See docs/local-runner.md, "Precedence"."""
        env = base_environment()
        env.update(FAKE_CREDENTIALS)
        env.update(
            {
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.sqs_endpoint,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
                "TZ": ":UTC",
                # No X-Ray daemon here; the traces would only produce warnings.
                "POWERTOOLS_TRACE_DISABLED": "true",
                "DEVSTACK_ACCOUNT_ID": ACCOUNT_ID,
            }
        )
        for name, value in spec.environment.items():
            # As CloudFormation sets them: an empty value stays "". Only a value that exists in AWS
            # alone (a resolved secret) is taken from the runner's settings, or left out.
            explicit = self.settings.explicit_value(name)
            if explicit:
                env[name] = explicit
            elif value is not UNRESOLVED:
                env[name] = str(value)
            elif self.settings.get(name):
                env[name] = self.settings.get(name)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        env.update(self.function_env)
        return env

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "api": self.base_url if self._api else None,
            "sqs_endpoint": self.sqs_endpoint,
            "queue_urls": self.queue_urls,
            "database_url": self.database_url,
            "llm": self.llm.base_url if self.llm else None,
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    def _all_schedules(self) -> list[Schedule]:
        return [schedule for schedules in self.schedules.values() for schedule in schedules]

    def stop(self) -> None:
        schedules = self._all_schedules()
        for running in [*schedules, *self.mappings]:
            running.signal_stop()
        if self._api is not None:
            self._api.stop()
        for pool in self.pools.values():
            pool.close()
        for running in [*self.mappings, *schedules]:
            running.stop()
        if self.offline_llm is not None:
            self.offline_llm.stop()
        if self._sqs is not None:
            self._sqs.close()
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        if self.state_file and self.state_file.exists():
            self.state_file.unlink()
        self.mappings.clear()
        self.pools.clear()

    # --- driving it ----------------------------------------------------------------------------

    def invoke(self, function: str, event: Any) -> Invocation:
        return self.pools[self.template.function(function).logical_id].invoke(event)

    def kill_environments(self, function: str) -> int:
        """SIGKILL every execution environment of a function, as a crash would."""
        return self.pools[self.template.function(function).logical_id].kill_all()

    def run_schedule(self, function: str) -> Invocation:
        """Run a scheduled function now, with the event its (first) schedule sends."""
        logical_id = self.template.function(function).logical_id
        schedules = self.schedules.get(logical_id)
        if not schedules:
            raise KeyError(f"{logical_id} has no schedule in the template")
        return schedules[0].run_now()

    def redrive(self) -> int:
        """Move the messages of every dead-letter queue back to its source queue."""
        return redrive_all(self.sqs(), self.template.queues, self.queue_urls)

    def stop_postgres(self) -> None:
        if self._postgres is None:
            raise RuntimeError("only the embedded PostgreSQL can be stopped (DATABASE_URL is set)")
        self._postgres.stop()
        log.warning("PostgreSQL stopped")

    def start_postgres(self) -> None:
        if self._postgres is None:
            raise RuntimeError("only the embedded PostgreSQL can be started (DATABASE_URL is set)")
        url = self._postgres.start()
        if url != self.database_url:
            raise RuntimeError(f"PostgreSQL came back at {url}, not {self.database_url}")
        log.warning("PostgreSQL started")

    def disable_event_sources(self) -> None:
        """Stop polling the queues, as `update-event-source-mapping --no-enabled` does; messages stay."""
        for mapping in self.mappings:
            mapping.stop()

    def enable_event_sources(self) -> None:
        for mapping in self.mappings:
            mapping.start()

    def stop_sqs(self) -> None:
        self._sqs.stop()
        log.warning("SQS endpoint stopped")

    def start_sqs(self) -> None:
        self._sqs.start()
        log.warning("SQS endpoint started")
