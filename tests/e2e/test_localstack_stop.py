"""A stopped `make localstack` leaves no process behind and port 4566 free, whatever signal reaches
its process group: SIGKILL (a CI timeout, `kill -9`) as well as SIGTERM.

LocalStack runs in a session of its own, so a SIGKILL of make's group does not reach it; it stops
because its stdin, a pipe from localstack/host.py, closes (localstack/host.py, WATCHED_MAIN).
Needs LocalStack's virtualenv (scripts/localstack-tools.sh): run by `make test-localstack`, before
the contract tests, which hold port 4566 for their whole session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.localstack


def _processes_of(data_dir: Path) -> list[str]:
    """Processes started from, or working in, the run's data directory (LocalStack, PostgreSQL)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # ended meanwhile
            continue
        if str(data_dir) in command or cwd.startswith(str(data_dir)):
            found.append(f"{entry.name}: {command}")
    return found


def _port_4566_taken() -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", 4566)) == 0


@pytest.fixture
def data_dir():
    # Not under pytest's private (0700) temporary directory: as root, the embedded PostgreSQL runs
    # as its own user, which must reach its data directory.
    parent = Path(tempfile.mkdtemp(prefix="localstack-stop-"))
    parent.chmod(0o755)
    yield parent / "localstack"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_signal_to_the_process_group_leaves_nothing_running(data_dir, signum):
    assert not _port_4566_taken(), "port 4566 is taken before the test: stop that LocalStack first"
    host = subprocess.Popen(  # as make runs it: a process group of its own
        [sys.executable, "localstack/host.py", "--no-deploy"],
        cwd=ROOT,
        env=os.environ | {"LOCALSTACK_DATA_DIR": str(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = []
        while (line := host.stdout.readline()) and not line.startswith("LocalStack is up"):
            output.append(line)
        assert line.startswith("LocalStack is up"), "".join(output)
        assert _port_4566_taken()
        running = _processes_of(data_dir)
        assert any("localstack.runtime.main" in process for process in running), running
        assert any("postgres" in process for process in running), running
    except BaseException:
        os.killpg(host.pid, signal.SIGTERM)  # what this test started, stopped the ordinary way
        host.wait(timeout=60)
        raise

    os.killpg(host.pid, signum)
    host.wait(timeout=60)
    host.stdout.close()
    deadline = time.monotonic() + 60
    while (_processes_of(data_dir) or _port_4566_taken()) and time.monotonic() < deadline:
        time.sleep(0.5)

    assert _processes_of(data_dir) == []
    assert not _port_4566_taken()
