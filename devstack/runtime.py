"""Lambda execution environments as long-lived subprocesses, pooled per function.

An environment imports the handler once (the cold start) and keeps its module state between
invocations, like a warm Lambda. A pool reuses an idle environment and starts a new one when all
are busy, up to a cap. The function's timeout is enforced by killing the environment, so the next
invocation cold-starts, as on Lambda.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from devstack.template import FunctionSpec

log = logging.getLogger("devstack.lambda")
function_output = logging.getLogger("devstack.functions")

WORKER = Path(__file__).with_name("worker.py")
# The worker writes this line, then the request id, once a handler's output is flushed (worker.py).
OUTPUT_DONE_MARKER = "\x00devstack-output-done "
INIT_REQUEST_ID = "init"
# Lambda allows 10 s for an on-demand init; a laptop running the whole stack gets more slack.
INIT_TIMEOUT_SECONDS = 30
# Passed through so tests can measure the handlers' coverage inside the environments.
_PASSTHROUGH_PREFIXES = ("COVERAGE_", "COV_CORE_")
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


@dataclass
class Invocation:
    ok: bool
    payload: Any  # the handler's result, or Lambda's error document
    request_id: str
    duration_ms: float
    timed_out: bool = False

    @property
    def error_type(self) -> str | None:
        return None if self.ok else self.payload.get("errorType")


class EnvironmentGone(Exception):
    """The environment's process died (killed, crashed or exited) or stopped answering."""


def base_environment() -> dict[str, str]:
    """What a function's process inherits from the runner: almost nothing, as on Lambda."""
    env = {k: v for k, v in os.environ.items() if k in _PASSTHROUGH or k.startswith(_PASSTHROUGH_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"  # handler logs reach the combined stream as they happen
    return env


class ExecutionEnvironment:
    """One worker process. `make dev` pools them (FunctionPool); LocalStack's runtime executor
    (localstack/executor) runs one per LocalStack execution environment."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        number: int,
        *,
        interpreter: Sequence[str] = (sys.executable, "-P"),
        memory_limit_mb: int | None = None,
        on_output: Callable[[str], None] | None = None,
    ):
        self.spec = spec
        self.label = f"{spec.short_name}#{number}"
        self._on_output = on_output or self._log_output
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        # Length-prefixed messages over the pipes, with a poll for the timeout.
        self._requests, self._replies = (
            Connection(request_write, readable=False),
            Connection(reply_read, writable=False),
        )
        env = dict(environment)
        env["_HANDLER"] = spec.handler
        env["PYTHONPATH"] = os.pathsep.join([str(spec.code_dir), *map(str, spec.layer_dirs)])
        env["LAMBDA_TASK_ROOT"] = str(spec.code_dir)
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        env.setdefault("AWS_LAMBDA_LOG_STREAM_NAME", stream)
        limit = [str(memory_limit_mb)] if memory_limit_mb else []
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and worker module
                [*interpreter, str(WORKER), str(request_read), str(reply_write), *limit],
                cwd=spec.code_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(request_read, reply_write),
                # Its own process group: Ctrl-C in the terminal reaches the runner only, which then
                # stops the environments; a timeout kills whatever the handler started too.
                start_new_session=True,
            )
        finally:
            os.close(request_read)
            os.close(reply_write)
        self._output_done = threading.Condition()
        self._last_finished: str | None = None
        self._relay = threading.Thread(target=self._relay_output, name=f"out-{self.label}", daemon=True)
        self._relay.start()
        self.init_ms: float | None = None
        self.init_error: dict | None = None

    def _log_output(self, line: str) -> None:
        function_output.info("%s", line, extra={"source": self.label})

    def _relay_output(self) -> None:
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(OUTPUT_DONE_MARKER):
                with self._output_done:
                    self._last_finished = line.removeprefix(OUTPUT_DONE_MARKER)
                    self._output_done.notify_all()
            else:
                self._on_output(line)

    def wait_for_output(self, request_id: str, timeout: float = 2.0) -> bool:
        """Block until every line the handler wrote during `request_id` has reached on_output."""
        with self._output_done:
            return self._output_done.wait_for(lambda: self._last_finished == request_id, timeout)

    def _read_message(self, timeout: float) -> dict:
        if not self._replies.poll(max(timeout, 0)):
            raise TimeoutError
        try:
            return json.loads(self._replies.recv_bytes())
        except (EOFError, OSError) as exc:
            raise EnvironmentGone(self._exit_description()) from exc

    def _exit_description(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "Runtime closed its connection"
        if code < 0:
            name = signal.Signals(-code).name.removeprefix("SIG").lower()
            return f"Runtime exited with error: signal: {'killed' if name == 'kill' else name}"
        return f"Runtime exited with error: exit status {code}"

    def wait_ready(self) -> None:
        """Block until the handler is imported; sets init_ms or init_error."""
        message = self._read_message(INIT_TIMEOUT_SECONDS)
        self.init_ms = message["init_ms"]
        self.init_error = message["error"]

    def invoke(
        self,
        event: Any,
        request_id: str,
        timeout: float,
        trace_id: str | None = None,
        invoked_function_arn: str | None = None,
    ) -> dict:
        deadline_ms = int((time.time() + timeout) * 1000)
        trace_id = trace_id or (
            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
        )
        request = {"event": event, "request_id": request_id, "deadline_ms": deadline_ms, "trace_id": trace_id}
        if invoked_function_arn:
            request["invoked_function_arn"] = invoked_function_arn
        try:
            self._requests.send_bytes(json.dumps(request).encode())
        except OSError as exc:
            raise EnvironmentGone(self._exit_description()) from exc
        return self._read_message(timeout)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def close(self, grace: float = 2.0) -> None:
        """Let the worker exit by itself (so it can flush), then make sure it is gone."""
        self._requests.close()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        # The handler may have left children in the group; they go with it.
        self.kill()
        self._relay.join(timeout=2)
        self._replies.close()
        if self.process.stdout:
            self.process.stdout.close()


class FunctionPool:
    """The execution environments of one function."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], max_environments: int):
        self.spec = spec
        self.environment = environment
        self.max_environments = max_environments
        self._idle: list[ExecutionEnvironment] = []
        self._all: set[ExecutionEnvironment] = set()
        # Invocations waiting for an environment, oldest first; only the oldest may take one.
        self._waiting: collections.deque[object] = collections.deque()
        self._starting = 0
        self._created = 0
        self._closed = False
        self._changed = threading.Condition()

    @property
    def size(self) -> int:
        with self._changed:
            return len(self._all)

    def _acquire(self) -> tuple[ExecutionEnvironment, bool]:
        """An idle environment, or a new one within the cap; else wait for one in arrival order.

        Lambda itself never queues (it scales out or throttles); the cap is the runner's, to
        spare a laptop. Waiting invocations are served first come, first served: a released
        environment goes to the oldest one, never to whichever thread takes the lock first."""
        turn = object()
        with self._changed:
            self._waiting.append(turn)
            try:
                while not self._closed:
                    if self._waiting[0] is turn and self._idle:
                        return self._idle.pop(), False  # the most recently used one, like Lambda tends to
                    if self._waiting[0] is turn and len(self._all) + self._starting < self.max_environments:
                        self._starting += 1
                        self._created += 1
                        number = self._created
                        break
                    self._changed.wait()
                else:
                    raise RuntimeError(f"{self.spec.logical_id} is stopped")
            finally:
                self._waiting.remove(turn)
                self._changed.notify_all()
        try:
            env = ExecutionEnvironment(self.spec, self.environment, number)
            with self._changed:
                self._all.add(env)
            return env, True
        finally:
            with self._changed:
                self._starting -= 1
                self._changed.notify_all()

    def _release(self, env: ExecutionEnvironment, healthy: bool) -> None:
        with self._changed:
            if healthy and not self._closed and env.alive:
                self._idle.append(env)
            else:
                self._all.discard(env)
            self._changed.notify_all()
        if not healthy:
            env.kill()
            threading.Thread(target=env.close, args=(0,), daemon=True).start()

    def invoke(self, event: Any) -> Invocation:
        request_id = str(uuid.uuid4())
        env, cold = self._acquire()
        started = time.perf_counter()
        healthy = False
        try:
            if cold:
                env.wait_ready()
                if env.init_error is None:
                    log.info("cold start, init %.0f ms", env.init_ms, extra={"source": env.label})
                else:
                    payload = env.init_error | {"requestId": request_id}
                    log.error("init failed: %s", payload["errorMessage"], extra={"source": env.label})
                    return Invocation(False, payload, request_id, 0.0)
            reply = env.invoke(event, request_id, self.spec.timeout)
            healthy = True
            duration = (time.perf_counter() - started) * 1000
            log.debug(
                "REPORT RequestId: %s Duration: %.1f ms", request_id, duration, extra={"source": env.label}
            )
            return Invocation(
                reply["ok"], reply.get("result") if reply["ok"] else reply["error"], request_id, duration
            )
        except TimeoutError:
            message = f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout:.2f} seconds"
            log.warning("%s; environment killed", message, extra={"source": env.label})
            payload = {"errorType": "Sandbox.Timedout", "errorMessage": message}
            return Invocation(
                False, payload, request_id, (time.perf_counter() - started) * 1000, timed_out=True
            )
        except EnvironmentGone as exc:
            message = f"RequestId: {request_id} Error: {exc}"
            log.warning("%s", message, extra={"source": env.label})
            payload = {"errorType": "Runtime.ExitError", "errorMessage": message}
            return Invocation(False, payload, request_id, (time.perf_counter() - started) * 1000)
        finally:
            self._release(env, healthy)

    def kill_all(self) -> int:
        """SIGKILL every environment, busy or idle (a crash, for fault tests). Returns how many."""
        with self._changed:
            victims = list(self._all)
            idle, self._idle = self._idle, []
            self._all.difference_update(idle)  # busy ones leave when their invocation fails
            self._changed.notify_all()
        for env in victims:
            env.kill()
        for env in idle:
            threading.Thread(target=env.close, args=(0,), daemon=True).start()
        return len(victims)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            victims = list(self._all)
            self._idle.clear()
            self._all.clear()
            self._changed.notify_all()
        threads = [threading.Thread(target=env.close, daemon=True) for env in victims]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
