"""schemathesis' own CLI through the local runner, with all its checks: its coverage phase also sends
methods the spec does not declare (TRACE...), which API Gateway answers through the template's
MISSING_AUTHENTICATION_TOKEN response. Whatever else it reports, no request may get a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.stack import Stack

from support import local_only

API_KEY = "schemathesis-key"


def test_schemathesis_with_all_checks_finds_no_server_error():
    data_dir = Path(tempfile.mkdtemp(prefix="guideline-ingest-st-"))
    data_dir.chmod(0o755)  # as root the embedded server runs as its own OS user
    settings = local_only(API_KEY, LOG_LEVEL="WARNING", POWERTOOLS_LOG_LEVEL="WARNING")
    try:
        with Stack(port=0, env=settings, read_dotenv=False, data_dir=data_dir) as stack:
            run = subprocess.run(
                [
                    str(Path(sys.executable).with_name("st")),
                    "--no-color",
                    "run",
                    f"{stack.base_url}/openapi.json",
                    "--checks",
                    "all",
                    "--header",
                    f"x-api-key: {API_KEY}",
                    "--max-examples",
                    "15",
                    "--generation-deterministic",
                ],
                cwd=data_dir,  # its cache (.schemathesis/) goes with the run, not into the repository
                capture_output=True,
                text=True,
                timeout=600,
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report = run.stdout + run.stderr
    assert "Test Phase" in report or "Examples" in report, report[-3000:]
    assert "Server error" not in report, report[-6000:]
    assert "500 Internal" not in report and "501 " not in report, report[-6000:]
