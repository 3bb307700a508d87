"""Settings validated once at cold start, and secrets read without boto3 and re-read while warm."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import unquote

import pytest

from devstack.template import ACCOUNT_ID, REGION, UNRESOLVED, load_template
from guideline_ingest import config, db
from guideline_ingest.config import ConfigurationError, load
from guideline_ingest.secrets import read_secret

from conftest import ROOT, load_function
from support import template_environment

DB_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/x"
KEY_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai"


SETTINGS_CLASSES = (
    config.SubmitSettings,
    config.StatusSettings,
    config.ProcessSettings,
    config.SweeperSettings,
    config.WebhookSettings,
    config.LimitSettings,
    config.UploadSettings,
)


def set_document_limits(environment) -> None:
    """Required of the process function, with no default in code (the template has them)."""
    for name, value in {
        "DOCUMENTS_BUCKET": "documents",
        "MAX_DOCUMENT_BYTES": "52428800",
        "MAX_DOCUMENT_PAGES": "2000",
        "MAX_DOCUMENT_CHARS": "10000000",
    }.items():
        environment.setenv(name, value)


@pytest.fixture
def bare_environment(monkeypatch):
    """The template's environment, without what only AWS resolves (queues, secrets): each test sets
    what it is about."""
    for name in {name.upper() for kind in SETTINGS_CLASSES for name in kind.model_fields}:
        monkeypatch.delenv(name, raising=False)
    for name, value in template_environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example/jobs")
    return monkeypatch


def test_a_missing_variable_fails_with_its_name(bare_environment):
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")

    with pytest.raises(ConfigurationError, match=r"JOBS_QUEUE_URL: is required"):
        load(config.SubmitSettings)


def test_a_required_variable_set_to_empty_is_missing(bare_environment):
    bare_environment.setenv("JOBS_QUEUE_URL", "")
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")

    with pytest.raises(ConfigurationError, match=r"JOBS_QUEUE_URL: is required"):
        load(config.SubmitSettings)


def test_no_setting_restates_a_default_of_the_template():
    """A variable the template passes with a value has that value's default there alone: its field
    has none. Only a parameter left empty ("", unset for the settings) leaves the choice to code."""
    passed = {name for name, value in template_environment().items() if value != ""}
    restated = {
        name.upper()
        for kind in SETTINGS_CLASSES
        for name, field in kind.model_fields.items()
        if not field.is_required() and name.upper() in passed
    }
    assert restated == set()


def test_the_settings_take_the_templates_values(bare_environment):
    bare_environment.setenv("JOBS_QUEUE_URL", "https://sqs/jobs")
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")
    bare_environment.setenv("OPENAI_API_KEY", "sk-test")
    template = load_template(ROOT / "infra" / "template.yaml").parameters

    settings = load(config.ProcessSettings)

    assert settings.openai_model == template["OpenAIModel"]
    assert settings.retry_budget_seconds == int(template["RetryBudgetSeconds"])
    assert settings.database_sslmode == template["DatabaseSslMode"]


def test_empty_optional_variables_are_unset_so_the_code_decides(bare_environment):
    """Lambda passes a parameter left empty as "": the one rule, in FunctionSettings, covers all."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY_SECRET_ARN", "DATABASE_SECRET_ARN"):
        bare_environment.setenv(name, "")
    bare_environment.setenv("JOBS_QUEUE_URL", "https://sqs/jobs")
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")
    bare_environment.setenv("OPENAI_API_KEY", "sk-test")
    set_document_limits(bare_environment)
    # Required: the template passes them (no default restated here).
    bare_environment.setenv("CHUNK_TOKEN_BUDGET", "8000")
    bare_environment.setenv("CHUNK_PARALLELISM", "4")

    settings = load(config.ProcessSettings)

    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.openai_api_key_secret_arn is None
    assert settings.database_secret_arn is None


def test_every_function_settings_class_treats_empty_as_unset():
    kinds = [config.DatabaseSettings, config.LimitSettings, *config.DatabaseSettings.__subclasses__()]
    assert all(kind.model_config["env_ignore_empty"] for kind in kinds)


def test_an_invalid_value_names_its_variable(bare_environment):
    bare_environment.setenv("JOBS_QUEUE_URL", "https://sqs/jobs")
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")
    bare_environment.setenv("MAX_RECEIVE_COUNT", "0")
    bare_environment.setenv("PENDING_GRACE_SECONDS", "soon")

    with pytest.raises(ConfigurationError) as failure:
        load(config.SweeperSettings)

    assert "MAX_RECEIVE_COUNT: Input should be greater than 0" in str(failure.value)
    assert "PENDING_GRACE_SECONDS: Input should be a valid integer" in str(failure.value)


def test_no_backoff_is_longer_than_the_longest_sqs_delay(bare_environment):
    bare_environment.setenv("JOBS_QUEUE_URL", "https://sqs/jobs")
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")
    bare_environment.setenv("OPENAI_API_KEY", "sk-test")
    bare_environment.setenv("RETRY_BACKOFF_CAP_SECONDS", "901")

    with pytest.raises(
        ConfigurationError, match="RETRY_BACKOFF_CAP_SECONDS: Input should be less than or equal to 900"
    ):
        load(config.ProcessSettings)


def test_the_webhook_timeout_is_read(bare_environment):
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")
    bare_environment.setenv("WEBHOOK_SIGNING_SECRET", "s" * 32)
    bare_environment.setenv("WEBHOOK_TIMEOUT_SECONDS", "2.5")

    assert load(config.WebhookSettings).webhook_timeout_seconds == 2.5


def test_a_short_signing_secret_fails_without_showing_it(bare_environment):
    bare_environment.setenv("WEBHOOK_SIGNING_SECRET", "too-short-a-secret")

    with pytest.raises(
        ConfigurationError, match="WEBHOOK_SIGNING_SECRET: String should have at least 32"
    ) as e:
        load(config.StatusSettings)
    assert "too-short-a-secret" not in str(e.value)


def test_a_function_needs_a_database_and_the_process_function_a_key(bare_environment):
    bare_environment.delenv("DATABASE_URL")
    bare_environment.setenv("JOBS_QUEUE_URL", "https://sqs/jobs")
    bare_environment.setenv("WEBHOOK_QUEUE_URL", "https://sqs/webhooks")

    with pytest.raises(ConfigurationError, match="set DATABASE_URL or DATABASE_SECRET_ARN"):
        load(config.DatabaseSettings)
    bare_environment.setenv("DATABASE_SECRET_ARN", DB_SECRET)
    set_document_limits(bare_environment)
    bare_environment.setenv("CHUNK_TOKEN_BUDGET", "8000")
    bare_environment.setenv("CHUNK_PARALLELISM", "4")
    with pytest.raises(ConfigurationError, match="set OPENAI_API_KEY or OPENAI_API_KEY_SECRET_ARN"):
        load(config.ProcessSettings)


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_max_document_chars_must_be_a_positive_integer(monkeypatch, value):
    monkeypatch.setenv("MAX_DOCUMENT_CHARS", value)
    with pytest.raises(ConfigurationError, match="MAX_DOCUMENT_CHARS"):
        config.max_document_chars()


def test_a_cold_start_without_a_required_variable_fails_naming_it(environment):
    env = {k: v for k, v in os.environ.items() if k != "JOBS_QUEUE_URL"}
    code = (
        "import runpy, sys; sys.path[:0] = ['layers/core', 'functions/submit'];"
        "runpy.run_path('functions/submit/app.py')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)

    assert done.returncode != 0
    assert "ConfigurationError" in done.stderr and "JOBS_QUEUE_URL: is required" in done.stderr


# --- secrets, through the Parameters and Secrets extension's HTTP interface -------------------


def _answer_json(handler: BaseHTTPRequestHandler, payload: dict) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _serve(handler: type[BaseHTTPRequestHandler]) -> HTTPServer:
    handler.log_message = lambda *args: None
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class FakeExtension:
    """The AWS Parameters and Secrets Lambda Extension on localhost: the edge of the network."""

    def __init__(self):
        self.values: dict[str, str] = {}
        self.seen: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.seen.append((self.path, self.headers.get("X-Aws-Parameters-Secrets-Token")))
                secret_id = self.path.split("secretId=", 1)[1]
                _answer_json(self, {"SecretString": outer.values[unquote(secret_id)]})

        self.server = _serve(Handler)
        self.port = self.server.server_port


@pytest.fixture
def secrets_extension(monkeypatch):
    extension = FakeExtension()
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(extension.port))
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
    yield extension
    extension.server.shutdown()


def rds_secret(password: str) -> str:
    return json.dumps(
        {"host": "db.example", "port": 5432, "username": "app", "password": password, "dbname": "jobs"}
    )


@pytest.fixture
def secret_database(bare_environment, secrets_extension):
    bare_environment.delenv("DATABASE_URL")
    bare_environment.setenv("DATABASE_SECRET_ARN", DB_SECRET)
    config.database_settings.cache_clear()
    yield secrets_extension
    bare_environment.undo()
    config.database_settings.cache_clear()


def test_the_database_url_comes_from_the_secret_with_sslmode(secret_database):
    secret_database.values[DB_SECRET] = rds_secret("p@ss word")

    url = db.database_url()

    assert "host=db.example" in url and "user=app" in url and "dbname=jobs" in url
    assert "password='p@ss word'" in url and "sslmode=require" in url
    [(path, token)] = secret_database.seen
    assert path == "/secretsmanager/get?secretId=" + (
        "arn%3Aaws%3Asecretsmanager%3Aus-east-1%3A123456789012%3Asecret%3Adb%2Fx"
    )
    assert token == "session-token"


def test_sslmode_is_configurable(secret_database, monkeypatch):
    secret_database.values[DB_SECRET] = rds_secret("pw")
    monkeypatch.setenv("DATABASE_SSLMODE", "verify-full")
    config.database_settings.cache_clear()

    assert "sslmode=verify-full" in db.database_url()


def test_a_new_connection_uses_the_rotated_password(secret_database):
    """The extension caches a secret at most 5 minutes; the code keeps none, so the connection
    opened after a rotation reaches the database with the new password."""
    secret_database.values[DB_SECRET] = rds_secret("before")
    assert "password=before" in db.database_url()

    secret_database.values[DB_SECRET] = rds_secret("after")

    assert "password=after" in db.database_url()


def test_read_secret_returns_the_secret_string(secrets_extension):
    secrets_extension.values["x"] = rds_secret("pw")
    assert json.loads(read_secret("x"))["username"] == "app"


class RecordingLLM:
    """An OpenAI-compatible endpoint that records the Authorization header of each call."""

    def __init__(self):
        self.authorizations: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.authorizations.append(self.headers.get("Authorization"))
                _answer_json(
                    self,
                    {
                        "id": "c",
                        "object": "chat.completion",
                        "created": 1,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "ok"},
                            }
                        ],
                    },
                )

        self.server = _serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"


def test_a_warm_process_function_uses_the_rotated_openai_key(environment, secrets_extension, monkeypatch):
    llm = RecordingLLM()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ARN", KEY_SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", llm.url)
    secrets_extension.values[KEY_SECRET] = "sk-before"
    config.process_settings.cache_clear()
    try:
        process = load_function("process")

        def ask():
            process.llm.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])

        ask()
        secrets_extension.values[KEY_SECRET] = "sk-after"
        ask()
    finally:
        monkeypatch.undo()
        config.process_settings.cache_clear()
        llm.server.shutdown()

    assert llm.authorizations == ["Bearer sk-before", "Bearer sk-after"]


def test_with_every_optional_parameter_empty_the_llm_client_uses_the_openai_default(secrets_extension):
    """Defect 1 of issue 11. The process function's environment exactly as Lambda gets it from a
    deploy that leaves OpenAIBaseUrl and every other optional parameter empty (only the two
    secrets a real deployment needs are given), then its real cold start in a process of its own."""
    overrides = {"DatabaseSecretArn": DB_SECRET, "OpenAIApiKeySecretArn": KEY_SECRET}
    bare = load_template(ROOT / "infra" / "template.yaml", overrides)
    queue_urls = {
        lid: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{q.name}" for lid, q in bare.queues.items()
    }
    spec = load_template(ROOT / "infra" / "template.yaml", overrides, queue_urls).function("process")
    assert UNRESOLVED not in spec.environment.values()
    template_env = {name: str(value) for name, value in spec.environment.items()}
    assert template_env["OPENAI_BASE_URL"] == ""  # as CloudFormation renders the empty parameter
    secrets_extension.values[KEY_SECRET] = "sk-from-the-secret"
    lambda_env = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_SESSION_TOKEN": "session-token",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # The fake extension's port (the real one listens on its default, 2773).
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(secrets_extension.port),
        **template_env,
    }
    code = (
        "import runpy, sys; sys.path[:0] = ['functions/process', 'layers/core'];"
        "app = runpy.run_path('functions/process/app.py');"
        "print(app['llm'].base_url); print(app['llm']._refresh_api_key())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=lambda_env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    base_url, api_key = done.stdout.split()
    assert base_url == "https://api.openai.com/v1/"
    assert api_key == "sk-from-the-secret"


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
