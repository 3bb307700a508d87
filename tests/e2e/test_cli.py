"""The `ingest` command-line client against the docker-free runner: the real API, handlers,
database, queue and offline LLM, driven through `main(argv)` as a user would type it."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from devstack.stack import Stack
from ingest_cli.__main__ import main
from ingest_cli.errors import UsageError
from ingest_cli.render import WaitDisplay
from ingest_cli.settings import resolve

pytestmark = pytest.mark.e2e

KEYS = "cli-key,other-key"
GUIDELINES = (
    "All staff must enable multi-factor authentication. Passwords should be rotated every 90 days. "
    "Never share credentials with anyone. Incidents must be reported within 24 hours."
)
LOCAL_ONLY = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "DATABASE_URL": "", "API_KEYS": KEYS}
DOCUMENTS = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Variables that would change what the CLI reads or how rich renders; the tests set their own.
CLEARED = ("INGEST_BASE_URL", "INGEST_API_KEY", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


@pytest.fixture(scope="module")
def stack():
    # Run as root, the embedded PostgreSQL drops to its own OS user: it must be able to enter here.
    data_dir = Path(tempfile.mkdtemp(prefix="ingest-cli-"))
    data_dir.chmod(0o755)
    try:
        with Stack(port=0, data_dir=data_dir, read_dotenv=False, env=LOCAL_ONLY) as running:
            yield running
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


class Cli:
    def __init__(self, capsys):
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    def json(self, *argv: str) -> dict:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(stack, capsys, monkeypatch, tmp_path):
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("INGEST_BASE_URL", stack.base_url)
    monkeypatch.setenv("INGEST_API_KEY", "cli-key")
    # Away from the checkout, whose .env would otherwise be read.
    monkeypatch.chdir(tmp_path)
    return Cli(capsys)


def unique_guidelines() -> str:
    # A text never sent before, so the job really runs the chain rather than reuse a stored result.
    return f"{GUIDELINES} Quote reference {uuid.uuid4()} in every report."


@pytest.fixture
def document(tmp_path) -> Path:
    path = tmp_path / "guidelines.txt"
    path.write_text(unique_guidelines(), encoding="utf-8")
    return path


@pytest.fixture
def offline_llm(stack):
    yield stack.offline_llm
    stack.offline_llm.set_faults(reset=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- submit -------------------------------------------------------------------------------------


def test_submit_wait_ends_with_the_summary_and_the_checklist_table(cli, document):
    code, out, err = cli("submit", str(document), "--wait")

    assert code == 0, err
    event_id = UUID.search(out).group()
    job = cli.json("status", event_id)
    checklist = job["result"]["checklist"]
    assert job["status"] == "COMPLETED"
    assert "Summary" in out
    assert f"Checklist ({len(checklist)} items)" in out
    for column in ("id", "priority", "item", "category"):
        assert column in out
    for item in checklist:
        assert item["priority"] in out
        assert item["category"] in out
    assert "estimated cost" in out
    assert "finished in" in err


def test_submit_wait_json_prints_the_final_job(cli, document):
    job = cli.json("submit", str(document), "--wait")

    assert job["status"] == "COMPLETED"
    assert job["result"]["checklist"]
    assert [step["status"] for step in job["steps"]] == ["COMPLETED", "COMPLETED"]
    assert job["usage"]["input_tokens"] > 0


@pytest.mark.parametrize(
    ("name", "where"),
    [("NIST_cybersecurity-framework-021214.pdf", "page"), ("security-assessment-execution.docx", "section")],
)
def test_submit_upload_posts_the_file_to_the_presigned_form_and_the_job_completes(cli, name, where):
    # The real presigned POST to the stack's S3, whose notification reaches the uploads queue and
    # the upload function: only that can start a job that waits for its upload.
    path = DOCUMENTS / name
    code, out, err = cli("submit", str(path), "--upload", "--wait")

    assert code == 0, err
    assert f"uploaded {path.stat().st_size:,} bytes" in err
    job = cli.json("status", UUID.search(out).group())
    assert job["status"] == "COMPLETED"
    assert job["document"]["filename"] == name and job["document"]["size_bytes"] == path.stat().st_size
    items = job["result"]["checklist"]
    assert items
    assert all(item["locations"] and all(loc[where] for loc in item["locations"]) for item in items)


def test_submit_without_wait_prints_only_the_event_id(cli, document):
    code, out, err = cli("submit", str(document))

    assert code == 0, err
    assert UUID.fullmatch(out.strip())


def test_submit_reads_standard_input(cli, monkeypatch):
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(unique_guidelines().encode()), encoding="utf-8")
    )

    job = cli.json("submit", "-", "--wait")

    assert job["status"] == "COMPLETED"


def test_idempotency_key_returns_the_same_job(cli, document):
    first = cli.json("submit", str(document), "--idempotency-key", "cli-test-key")
    again = cli.json("submit", str(document), "--idempotency-key", "cli-test-key")

    assert again["event_id"] == first["event_id"]


def test_a_failed_job_exits_1_with_its_error(cli, document, offline_llm):
    offline_llm.set_faults("400=1")

    code, out, _ = cli("submit", str(document), "--wait")

    assert code == 1
    assert "FAILED" in out
    assert "llm_rejected_request" in out


# --- status, list, cancel -----------------------------------------------------------------------


def test_cancel_a_running_job_then_cancel_again_is_refused(cli, document, offline_llm):
    # The job cannot finish before the cancel arrives. First in its section so that the slowed call
    # still in flight ends while later tests run, not while the stack shuts down.
    offline_llm.set_faults(latency_ms=3000)
    event_id = cli.json("submit", str(document))["event_id"]

    code, out, err = cli("cancel", event_id)
    status_code, status_out, _ = cli("status", event_id)
    again_code, _, again_err = cli("cancel", event_id)

    assert code == 0, err
    assert "CANCELLED" in out
    assert status_code == 1
    assert "CANCELLED" in status_out
    assert again_code == 1
    assert "409" in again_err


def test_status_shows_the_steps_and_the_result(cli, document):
    event_id = cli.json("submit", str(document), "--wait")["event_id"]

    code, out, err = cli("status", event_id)

    assert code == 0, err
    assert "COMPLETED" in out
    assert "Steps" in out
    assert "summarize" in out
    assert "checklist" in out
    assert "Summary" in out


def test_list_shows_the_callers_jobs_newest_first(cli, document):
    older = cli.json("submit", str(document))["event_id"]
    newer = cli.json("submit", str(document))["event_id"]

    listed = [item["event_id"] for item in cli.json("list")["items"]]
    code, out, err = cli("list", "--limit", "1")

    assert listed.index(newer) < listed.index(older)
    assert code == 0, err
    assert newer in out
    assert "--all" in err


def test_list_all_follows_the_cursor(cli, document):
    for _ in range(3):
        cli("submit", str(document))

    everything = cli.json("list", "--limit", "2", "--all")
    first_page = cli.json("list", "--limit", "2")

    assert len(everything["items"]) >= 3
    assert everything["next_cursor"] is None
    assert len(first_page["items"]) == 2
    assert first_page["next_cursor"]
    assert len({item["event_id"] for item in everything["items"]}) == len(everything["items"])


def test_list_filters_by_status(cli, document):
    cli("submit", str(document), "--wait")

    page = cli.json("list", "--status", "completed")

    assert page["items"]
    assert {item["status"] for item in page["items"]} == {"COMPLETED"}


# --- errors -------------------------------------------------------------------------------------


def test_unreachable_service(cli, document):
    url = f"http://127.0.0.1:{closed_port()}"

    code, out, err = cli("--base-url", url, "submit", str(document))

    assert code == 1
    assert f"cannot reach {url}: connection refused" in err
    assert "make dev" in err
    assert "Traceback" not in err
    assert out == ""


def test_bad_api_key(cli, document):
    code, _, err = cli("submit", str(document), "--api-key", "not-a-key")

    assert code == 1
    assert "403" in err
    assert "A valid API key is required" in err
    assert "Traceback" not in err


def test_another_keys_job_is_not_found(cli, document):
    event_id = cli.json("submit", str(document))["event_id"]

    code, _, err = cli("status", event_id, "--api-key", "other-key")

    assert code == 1
    assert "404" in err


def test_missing_file(cli, tmp_path):
    code, out, err = cli("submit", str(tmp_path / "nope.txt"))

    assert code == 2
    assert "no such file" in err
    assert out == ""


def test_empty_file(cli, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n", encoding="utf-8")

    code, _, err = cli("submit", str(empty))

    assert code == 2
    assert "is empty" in err


def test_the_live_line_shows_the_status_and_the_running_step():
    display = WaitDisplay("the-event-id")
    display.update(
        {
            "status": "PROCESSING",
            "steps": [
                {"name": "summarize", "status": "COMPLETED"},
                {"name": "checklist", "status": "RUNNING"},
            ],
        }
    )
    console = Console(file=io.StringIO(), width=120)

    console.print(display)

    line = console.file.getvalue()
    assert "PROCESSING  step 2/2 checklist" in line
    assert "the-event-id" in line
    assert " s " in line


# --- settings -----------------------------------------------------------------------------------


def test_settings_flags_beat_environment_beat_dotenv(tmp_path):
    (tmp_path / ".env").write_text(
        "INGEST_BASE_URL=http://127.0.0.1:4100/v1\nAPI_KEYS=first, second\n", encoding="utf-8"
    )
    environ = {"INGEST_BASE_URL": "http://127.0.0.1:4200/", "INGEST_API_KEY": "from-env"}

    from_dotenv = resolve(environ={}, cwd=tmp_path)
    from_env = resolve(environ=environ, cwd=tmp_path)
    from_flags = resolve("https://api.example.test/prod", "from-flag", environ, tmp_path)

    assert (from_dotenv.base_url, from_dotenv.api_key) == ("http://127.0.0.1:4100/v1", "first")
    assert (from_env.base_url, from_env.api_key) == ("http://127.0.0.1:4200", "from-env")
    assert (from_flags.base_url, from_flags.api_key) == ("https://api.example.test/prod", "from-flag")


def test_settings_dotenv_names(tmp_path):
    (tmp_path / ".env").write_text(
        'export INGEST_BASE_URL="http://localhost:4300"\nINGEST_API_KEY=k # comment\n', encoding="utf-8"
    )
    named = resolve(environ={}, cwd=tmp_path)
    assert (named.base_url, named.api_key) == ("http://localhost:4300", "k")


def write_stack_state(checkout: Path, pid: int, api: str) -> None:
    (checkout / ".local").mkdir(parents=True, exist_ok=True)
    (checkout / ".local" / "devstack.json").write_text(json.dumps({"pid": pid, "api": api}), encoding="utf-8")


def test_without_settings_the_cli_finds_the_running_stack_and_the_runners_key(tmp_path):
    """No constant stands in for them: the URL is what `make dev` wrote, the key the runner's."""
    write_stack_state(tmp_path, os.getpid(), "http://127.0.0.1:4567/v1")
    (tmp_path / ".env.example").write_text("PORT=3000\nAPI_KEYS=example-key\n", encoding="utf-8")

    found = resolve(environ={}, cwd=tmp_path)

    assert (found.base_url, found.api_key) == ("http://127.0.0.1:4567/v1", "example-key")


def test_without_settings_the_cli_finds_the_running_localstack_deployment_and_its_key(tmp_path):
    """`make localstack` writes its API and key (localstack/host.py); `make dev`, if it runs too, wins."""
    state = tmp_path / ".local" / "localstack" / "api.json"
    state.parent.mkdir(parents=True)
    api = "http://localhost:4566/_aws/execute-api/abc123/v1/"
    state.write_text(
        json.dumps({"pid": os.getpid(), "api": api, "api_key": "deployed-key"}), encoding="utf-8"
    )
    (tmp_path / ".env.example").write_text("API_KEYS=example-key\n", encoding="utf-8")

    found = resolve(environ={}, cwd=tmp_path)
    keyed = resolve(environ={"INGEST_API_KEY": "mine"}, cwd=tmp_path)
    write_stack_state(tmp_path, os.getpid(), "http://127.0.0.1:4567/v1")
    both = resolve(environ={}, cwd=tmp_path)

    assert (found.base_url, found.api_key) == (api.rstrip("/"), "deployed-key")
    assert keyed.api_key == "mine"
    assert (both.base_url, both.api_key) == ("http://127.0.0.1:4567/v1", "example-key")


def test_without_a_running_stack_or_settings_the_cli_says_what_to_do(tmp_path):
    (tmp_path / ".env.example").write_text("API_KEYS=example-key\n", encoding="utf-8")
    with pytest.raises(UsageError, match="make dev"):
        resolve(environ={}, cwd=tmp_path)
    write_stack_state(tmp_path, 2**31 - 1, "http://127.0.0.1:4567/v1")  # no such process: it stopped
    with pytest.raises(UsageError, match="make dev"):
        resolve(environ={}, cwd=tmp_path)


def test_installed_console_script():
    script = Path(sys.executable).with_name("ingest")
    assert script.exists(), "the console script is installed by `pip install -e .` (make install)"

    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    for name in ("submit", "status", "list", "cancel"):
        assert name in result.stdout


def test_python_dash_m_works():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingest_cli",
            "status",
            "x",
            "--base-url",
            f"http://127.0.0.1:{closed_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )

    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr
