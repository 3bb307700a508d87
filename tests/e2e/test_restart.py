"""No job is lost to a crash of `make dev`: its queue dies with it, and the next run re-sends a message
for every unfinished job (docs/local-runner.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.stack import PROJECT_ROOT

JOBS = 12


def start_dev(data_dir: Path) -> tuple[subprocess.Popen, str]:
    # An offline model slow enough that every job is still in flight when the runner dies.
    env = {
        **os.environ,
        "PORT": "0",
        "OFFLINE_LLM_LATENCY_MS": "1500",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "dev", "--data-dir", str(data_dir)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    for line in process.stdout:
        if line.startswith("ready: "):
            return process, line.split()[1]
    raise AssertionError("make dev exited before it was ready")


def test_jobs_in_flight_complete_after_a_sigkill_and_a_restart(tmp_path):
    data_dir = Path(tmp_path) / "local"
    data_dir.parent.chmod(0o755)  # the embedded server runs as its own OS user when we are root
    process, base_url = start_dev(data_dir)
    try:
        headers = {"x-api-key": "local-dev-key"}
        ids = []
        for number in range(JOBS):
            body = {"guidelines": f"Staff must use MFA on system {number}. Logs should be kept."}
            response = httpx.post(f"{base_url}/jobs", json=body, headers=headers)
            assert response.status_code == 202, response.text
            ids.append(response.json()["event_id"])
        time.sleep(1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    process, base_url = start_dev(data_dir)
    try:
        deadline = time.monotonic() + 120
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = {
                event_id: httpx.get(f"{base_url}/jobs/{event_id}", headers=headers).json()["status"]
                for event_id in ids
            }
            if set(statuses.values()) == {"COMPLETED"}:
                break
            time.sleep(2)
        assert set(statuses.values()) == {"COMPLETED"}, statuses
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
