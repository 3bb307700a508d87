"""LocalStack's Lambda runtime executor, with each execution environment a local process.

LocalStack's docker executor starts a container whose init (its fork of the Lambda runtime
interface emulator) takes `POST /invoke` on port 9563 and answers through LocalStack's runtime API:
`$LOCALSTACK_RUNTIME_ENDPOINT/status/<id>/ready|error` after the init, and
`/invocations/<request id>/logs`, then `/response` or `/error`, per invocation. `LocalRuntimeInit`
plays that init for one environment: a loopback HTTP server in LocalStack's process, in front of the
project's own execution environment (devstack.runtime.ExecutionEnvironment, worker.py), the code
`make dev` runs functions with. LocalStack's ExecutorEndpoint, assignment and version managers,
event source mappings and log storage are used unchanged.

What a container gives and a process cannot is named in docs/localstack.md: the function's code
runs with this machine's filesystem and network, as the user running LocalStack, and its memory
setting caps the address space (RLIMIT_AS), not the resident memory.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from localstack import config
from localstack.services.lambda_.invocation.executor_endpoint import ExecutorEndpoint
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from devstack.runtime import (
    INIT_REQUEST_ID,
    EnvironmentGone,
    ExecutionEnvironment,
    base_environment,
)
from devstack.template import FunctionSpec

LOG = logging.getLogger(__name__)

HOST = "127.0.0.1"
# Lines of an environment's output kept for LocalStack's get_logs() (its startup error reports).
KEPT_LOG_LINES = 5000
# Set to "0" to run functions without the address-space cap (docs/localstack.md).
MEMORY_LIMIT_SETTING = "LOCAL_PROCESS_EXECUTOR_MEMORY_LIMIT"
NO_PROXIES = {"http": "", "https": ""}


def interpreter_for(runtime: str | None) -> list[str]:
    """The command line of a Python matching the function's runtime (python3.12 -> python3.12).

    Found as `PYTHON312` in the environment, under pyenv, or on PATH (a pyenv shim that fails is
    skipped). Without one, LocalStack's own interpreter runs the function, with a warning.
    Site-packages are left out (-S): the package must carry its dependencies, as on Lambda.
    """
    if not runtime or not runtime.startswith("python3."):
        raise LambdaRuntimeException(f"the local-process executor runs Python functions only, not {runtime}")
    version = runtime.removeprefix("python")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        os.environ.get(f"PYTHON{version.replace('.', '')}", ""),
        *sorted(str(path) for path in pyenv_root.glob(f"versions/{version}*/bin/python{version}")),
        shutil.which(f"python{version}") or "",
    ]
    for candidate in filter(None, candidates):
        if _is_python(candidate, version):
            return [candidate, "-S", "-P"]
    LOG.warning("no python%s found; running %s on %s", version, runtime, sys.version.split()[0])
    return [sys._base_executable, "-S", "-P"]


def _is_python(path: str, version: str) -> bool:
    try:
        found = subprocess.run(  # noqa: S603 - an interpreter path, checked
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return found.returncode == 0 and found.stdout.strip() == version


def _max_memory_used_mb(pid: int) -> int:
    """The process's peak resident memory (VmHWM), as Lambda's REPORT line gives it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return math.ceil(int(line.split()[1]) / 1024)
    return 0


class LocalRuntimeInit:
    """The runtime init of one execution environment, speaking LocalStack's runtime API."""

    def __init__(self, function_version: FunctionVersion, env_vars: dict[str, str], runtime_endpoint: str):
        cfg = function_version.config
        self.function_version = function_version
        self.runtime_endpoint = runtime_endpoint
        self.spec = FunctionSpec(
            logical_id=function_version.id.function_name,
            code_dir=Path(cfg.code.get_unzipped_code_location()),
            handler=cfg.handler,
            timeout=cfg.timeout,
            memory_size=cfg.memory_size,
            environment={},
            layer_dirs=[],
        )
        self.interpreter = interpreter_for(cfg.runtime)
        self.environment = base_environment() | {name: str(value) for name, value in env_vars.items()}
        self.memory_limit_mb = cfg.memory_size if os.environ.get(MEMORY_LIMIT_SETTING, "1") != "0" else None
        self.kept_logs: collections.deque[str] = collections.deque(maxlen=KEPT_LOG_LINES)
        self._lines: list[str] = []  # output not yet handed to LocalStack (init output included)
        self._lines_lock = threading.Lock()
        self._environment: ExecutionEnvironment | None = None
        self._started = 0
        self._invoking = threading.Lock()

    # --- the environment ------------------------------------------------------------------

    def _on_output(self, line: str) -> None:
        self.kept_logs.append(line)
        with self._lines_lock:
            self._lines.append(line)

    def _take_lines(self) -> list[str]:
        with self._lines_lock:
            lines, self._lines = self._lines, []
        return lines

    def _boot(self) -> tuple[ExecutionEnvironment, dict | None]:
        """A fresh worker with the handler imported, and its init error (None when it worked)."""
        self._started += 1
        environment = ExecutionEnvironment(
            self.spec,
            self.environment,
            self._started,
            interpreter=self.interpreter,
            memory_limit_mb=self.memory_limit_mb,
            on_output=self._on_output,
        )
        try:
            environment.wait_ready()
        except TimeoutError:
            environment.kill()
            environment.close(0)
            return environment, {"errorType": "Sandbox.Timedout", "errorMessage": "init timed out"}
        except EnvironmentGone as exc:
            environment.close(0)
            return environment, {"errorType": "Runtime.ExitError", "errorMessage": str(exc)}
        environment.wait_for_output(INIT_REQUEST_ID)
        if environment.init_error is not None:
            environment.close(0)
            return environment, environment.init_error
        self._environment = environment
        return environment, None

    def start(self) -> None:
        """Cold start, then tell LocalStack the environment is ready (or why it is not)."""
        _, error = self._boot()
        if error is None:
            self._post(f"/status/{self._runtime_id}/ready", b"")
        else:
            for line in self._take_lines():
                LOG.info("[%s init] %s", self.spec.logical_id, line)
            self._post(f"/status/{self._runtime_id}/error", json.dumps(error).encode())

    @property
    def _runtime_id(self) -> str:
        return self.environment["LOCALSTACK_RUNTIME_ID"]

    def stop(self) -> None:
        environment, self._environment = self._environment, None
        if environment is not None:
            environment.kill()
            environment.close(0)

    # --- invocations ----------------------------------------------------------------------

    def invoke(self, request: dict) -> None:
        """One invocation, answered through the runtime API; one at a time, as LocalStack assigns."""
        request_id = request["invoke-id"]
        with self._invoking:
            started = time.perf_counter()
            ok, result, pid = self._run(request, request_id)
            duration_ms = (time.perf_counter() - started) * 1000
            lines = self._take_lines()
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self.spec.memory_size} MB\t"
            f"Max Memory Used: {_max_memory_used_mb(pid) if pid else 0} MB"
        )
        version = self.function_version.id.qualifier
        logs = [f"START RequestId: {request_id} Version: {version}", *lines, f"END RequestId: {request_id}"]
        logs.append(report)
        self._post(f"/invocations/{request_id}/logs", {"logs": "\n".join(logs) + "\n"})
        outcome = "response" if ok else "error"
        self._post(f"/invocations/{request_id}/{outcome}", json.dumps(result).encode())

    def _run(self, request: dict, request_id: str) -> tuple[bool, object, int | None]:
        environment = self._environment
        if environment is None:  # the last one timed out or died: this invocation cold-starts
            environment, error = self._boot()
            if error is not None:
                return False, error | {"requestId": request_id}, None
        pid = environment.process.pid
        event = json.loads(request.get("payload") or "{}")
        try:
            reply = environment.invoke(
                event,
                request_id,
                self.spec.timeout,
                trace_id=request.get("trace-id"),
                invoked_function_arn=request.get("invoked-function-arn"),
            )
        except TimeoutError:
            self.stop()
            message = f"Task timed out after {self.spec.timeout:.2f} seconds"
            self._on_output(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {request_id} {message}")
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: {message}",
            }
            return False, error, pid
        except EnvironmentGone as exc:
            self.stop()
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: {exc}",
            }
            return False, error, pid
        environment.wait_for_output(request_id)
        if reply["ok"]:
            return True, reply.get("result"), pid
        return False, reply["error"], pid

    def _post(self, path: str, body: bytes | dict) -> None:
        """Raw bytes (responses, errors) or a JSON object (logs: LocalStack reads those as JSON)."""
        content = {"data": body} if isinstance(body, bytes) else {"json": body}
        try:
            requests.post(f"{self.runtime_endpoint}{path}", **content, proxies=NO_PROXIES, timeout=30)
        except requests.RequestException as exc:  # LocalStack stopped the environment meanwhile
            LOG.debug("runtime API %s: %s", path, exc)


class _InvokeHandler(BaseHTTPRequestHandler):
    """`POST /invoke`, as the container's init takes it: 202 at once, the answer comes later."""

    server: _InitServer

    def do_POST(self) -> None:
        if self.path != "/invoke":
            self.send_error(404)
            return
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        self.server.runtime_init.invoke(request)

    def log_message(self, format: str, *args) -> None:
        LOG.debug("invoke server: " + format, *args)


class _InitServer(ThreadingHTTPServer):
    daemon_threads = True
    runtime_init: LocalRuntimeInit


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ExecutorEndpoint(self.id, container_address=HOST)
        self._server: _InitServer | None = None
        self._init: LocalRuntimeInit | None = None

    def start(self, env_vars: dict[str, str]) -> None:
        self.executor_endpoint.start()
        self._init = LocalRuntimeInit(self.function_version, env_vars, self.get_runtime_endpoint())
        self._server = _InitServer((HOST, 0), _InvokeHandler)
        self._server.runtime_init = self._init
        self.executor_endpoint.container_port = self._server.server_address[1]
        name = f"lambda-init-{self.id}"
        serve = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        serve.start()
        self._init.start()
        self.executor_endpoint.wait_for_startup()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._init is not None:
            self._init.stop()
        with contextlib.suppress(Exception):
            self.executor_endpoint.shutdown()

    def get_address(self) -> str:
        return HOST

    def get_endpoint_from_executor(self) -> str:
        return HOST

    def get_runtime_endpoint(self) -> str:
        port = config.GATEWAY_LISTEN[0].port
        return f"http://{HOST}:{port}{self.executor_endpoint.get_endpoint_prefix()}"

    def invoke(self, payload: dict[str, str]):
        return self.executor_endpoint.invoke(payload)

    def get_logs(self) -> str:
        return "\n".join(self._init.kept_logs) if self._init else ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.layers:
            # As in LocalStack's free image: layers are accepted, not mounted.
            LOG.warning("%s: layers are not mounted by this executor", function_version.id.function_name)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to undo: the unzipped code belongs to LocalStack's code cache."""

    @classmethod
    def validate_environment(cls) -> bool:
        return True
