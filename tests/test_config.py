"""Settings validated once at cold start, and secrets read without boto3."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from guideline_ingest import config, db
from guideline_ingest.secrets import read_secret

from conftest import ROOT


def test_a_missing_variable_fails_the_cold_start_with_its_name(environment, monkeypatch):
    monkeypatch.delenv("JOBS_QUEUE_URL")
    config.submit_settings.cache_clear()
    try:
        with pytest.raises(config.ConfigurationError, match="jobs_queue_url"):
            config.submit_settings()
    finally:
        monkeypatch.undo()
        config.submit_settings.cache_clear()


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_max_guidelines_chars_must_be_a_positive_integer(monkeypatch, value):
    monkeypatch.setenv("MAX_GUIDELINES_CHARS", value)
    with pytest.raises(config.ConfigurationError, match="MAX_GUIDELINES_CHARS"):
        config.max_guidelines_chars()


@pytest.fixture
def secrets_extension(monkeypatch):
    """A stand-in for the AWS Parameters and Secrets Lambda Extension on localhost."""
    seen = []

    class Extension(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("X-Aws-Parameters-Secrets-Token")))
            secret = {
                "host": "db.example",
                "port": 5432,
                "username": "app",
                "password": "p@ss word",
                "dbname": "jobs",
            }
            body = json.dumps({"SecretString": json.dumps(secret)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Extension)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(server.server_port))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    yield seen
    server.shutdown()


def test_the_database_url_comes_from_a_secret_when_not_given(environment, monkeypatch, secrets_extension):
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DATABASE_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/x")
    db.database_url.cache_clear()
    try:
        url = db.database_url()
    finally:
        monkeypatch.undo()
        db.database_url.cache_clear()

    assert "host=db.example" in url and "user=app" in url and "dbname=jobs" in url
    assert "password='p@ss word'" in url
    [(path, token)] = secrets_extension
    assert (
        path
        == "/secretsmanager/get?secretId="
        + "arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123456789012%3Asecret%3Adb%2Fx"
    )
    assert token == "session-token"


def test_read_secret_returns_the_secret_string(secrets_extension):
    assert json.loads(read_secret("x"))["username"] == "app"


def test_without_any_database_setting_the_error_says_what_to_set(environment, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    db.database_url.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="DATABASE_URL or DATABASE_SECRET_ARN"):
            db.database_url()
    finally:
        monkeypatch.undo()
        db.database_url.cache_clear()


def test_migrate_command(database_url):
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "guideline_ingest.migrations"],
        env=env,
        cwd=ROOT / "layers" / "core",
        capture_output=True,
        text=True,
        check=True,
    )
    assert "up to date" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "guideline_ingest.migrations"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=ROOT / "layers" / "core",
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "DATABASE_URL" in missing.stderr


def test_the_status_function_loads_neither_boto3_nor_openai(environment):
    code = (
        "import sys, runpy; sys.path[:0] = ['layers/core', 'functions/status'];"
        "runpy.run_path('functions/status/app.py');"
        "print(sorted(m for m in ('boto3', 'openai') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
