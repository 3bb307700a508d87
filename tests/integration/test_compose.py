"""Invariants of docker-compose.yml and the LocalStack deployer, checked without Docker.

`docker compose config -q` (scripts/verify-infra.sh) checks the file's syntax; these tests check
what makes the stack work in LocalStack, which no syntax check sees.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from devstack.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "localstack" / "Dockerfile").read_text(encoding="utf-8")
# The last LocalStack release that starts without LOCALSTACK_AUTH_TOKEN.
LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"


def _load_deployer():
    spec = importlib.util.spec_from_file_location("localstack_deployer", ROOT / "localstack" / "deployer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


deployer = _load_deployer()


def service(name: str) -> dict:
    return COMPOSE["services"][name]


def default_of(value: str) -> str:
    """`${VAR:-default}` as compose resolves it when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_localstack_is_pinned_to_the_last_release_without_a_token():
    assert default_of(service("localstack")["image"]) == LOCALSTACK_IMAGE


def test_lambda_containers_join_the_named_network():
    networks = COMPOSE["networks"]
    network = service("localstack")["environment"]["LAMBDA_DOCKER_NETWORK"]
    assert networks[network]["name"] == network
    for name in ("localstack", "postgres", "offline-llm", "deployer"):
        assert network in service(name)["networks"], name


def test_upload_forms_point_at_a_name_both_the_functions_and_this_machine_reach():
    # The functions' AWS_ENDPOINT_URL, which the presigned forms carry, is built from
    # HOSTNAME_FROM_LAMBDA: on the compose network it must be LocalStack (an alias), and on this
    # machine the published loopback port (the name resolves to 127.0.0.1).
    localstack = service("localstack")
    hostname = localstack["environment"]["HOSTNAME_FROM_LAMBDA"]
    network = localstack["environment"]["LAMBDA_DOCKER_NETWORK"]
    assert hostname == "localhost.localstack.cloud"
    assert hostname in localstack["networks"][network]["aliases"]
    assert "127.0.0.1:4566:4566" in localstack["ports"]
    # LocalStack makes HOSTNAME_FROM_LAMBDA the functions' DNS server when its own DNS server runs.
    assert localstack["environment"]["DNS_ADDRESS"] == "0"


def test_localstack_can_start_lambda_containers():
    assert "/var/run/docker.sock:/var/run/docker.sock" in service("localstack")["volumes"]


def test_postgres_is_pinned_healthchecked_and_persistent():
    postgres = service("postgres")
    assert re.fullmatch(r"postgres:1[67](\.\d+)?(-[a-z]+)?", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume, _, mount = postgres["volumes"][0].partition(":")
    assert volume in COMPOSE["volumes"] and mount == "/var/lib/postgresql/data"


def test_deployer_starts_after_healthy_services():
    depends = service("deployer")["depends_on"]
    for name in ("localstack", "postgres", "offline-llm"):
        assert depends[name]["condition"] == "service_healthy", name
        assert "healthcheck" in service(name), name
    assert service("deployer")["restart"] == "no"


def test_deployer_reaches_postgres_and_localstack_by_service_name():
    environment = service("deployer")["environment"]
    assert environment["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert deployer.OFFLINE_LLM_URL.startswith("http://offline-llm:")


def test_only_loopback_ports_are_published():
    for name, definition in COMPOSE["services"].items():
        for port in definition.get("ports", []):
            assert port.startswith("127.0.0.1:"), name


def test_built_images_exist_in_the_dockerfile():
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE, flags=re.MULTILINE))
    for name, definition in COMPOSE["services"].items():
        if "build" in definition:
            assert definition["build"]["dockerfile"] == "localstack/Dockerfile"
            assert definition["build"]["target"] in targets, name


def test_everything_the_dockerfile_copies_exists_and_reaches_the_build():
    ignore = (ROOT / "localstack" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    for source in re.findall(r"^COPY (\S+) ", DOCKERFILE, flags=re.MULTILINE):
        assert (ROOT / source).exists(), source
        assert any(source.rstrip("/") == entry or source.startswith(f"{entry}/") for entry in allowed), source


def test_the_image_installs_the_pinned_sam_cli_and_repository_pins():
    tools = (ROOT / "infra" / "requirements-tools.txt").read_text(encoding="utf-8")
    assert re.search(r"^aws-sam-cli==\S+$", tools, flags=re.MULTILINE)
    development = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert re.search(r"^pyyaml==\S+$", development, flags=re.MULTILINE)
    layer = (ROOT / "layers" / "core" / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^boto3==\S+$", layer, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def source_template() -> dict:
    return load_yaml(ROOT / "infra" / "template.yaml")


def test_localstack_build_targets_the_machine_and_keeps_code_paths(source_template):
    local = deployer.for_localstack(source_template, "x86_64")
    assert local["Globals"]["Function"]["Architectures"] == ["x86_64"]
    assert local["Resources"]["CoreLayer"]["Metadata"]["BuildArchitecture"] == "x86_64"
    assert local["Resources"]["CoreLayer"]["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    code_uri = Path(local["Resources"]["SubmitFunction"]["Properties"]["CodeUri"])
    assert code_uri.is_absolute() and (code_uri / "app.py").is_file()
    # The cloud template is left as it is.
    assert source_template["Globals"]["Function"]["Architectures"] == ["arm64"]


def test_the_core_layer_is_folded_into_the_functions(source_template, tmp_path):
    built = deployer.without_core_layer(source_template)
    assert "CoreLayer" not in built["Resources"]
    assert "Layers" not in built["Globals"]["Function"]
    layer = tmp_path / "layer" / "python"
    (layer / "guideline_ingest").mkdir(parents=True)
    (layer / "guideline_ingest" / "__init__.py").write_text("")
    (layer / "shared.py").write_text("layer = True\n")
    function = tmp_path / "function"
    function.mkdir()
    (function / "shared.py").write_text("layer = False\n")
    deployer.merge_layer_into(function, layer)
    assert (function / "guideline_ingest" / "__init__.py").is_file()
    assert (function / "shared.py").read_text() == "layer = False\n"


def test_without_a_key_the_jobs_use_the_offline_llm():
    parameters, line = deployer.stack_parameters({"DATABASE_URL": "postgresql://u:p@postgres:5432/db"})
    assert parameters["OpenAIBaseUrl"] == deployer.OFFLINE_LLM_URL
    assert parameters["OpenAIApiKey"]
    assert parameters["DatabaseUrl"] == "postgresql://u:p@postgres:5432/db"
    assert parameters["CreateApiGatewayLoggingRole"] == "false"
    assert "OPENAI_API_KEY" in line


def test_a_given_key_and_endpoint_reach_the_stack():
    parameters, _ = deployer.stack_parameters(
        {
            "DATABASE_URL": "postgresql://u:p@postgres:5432/db",
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_MODEL": "gpt-4o",
        }
    )
    assert parameters["OpenAIApiKey"] == "sk-test"
    assert parameters["OpenAIModel"] == "gpt-4o"
    # Empty values stay out: the template's defaults apply (here: the OpenAI API itself).
    assert "OpenAIBaseUrl" not in parameters
    keyless, _ = deployer.llm_parameters({"OPENAI_BASE_URL": "http://ollama:11434/v1"})
    assert keyless["OpenAIBaseUrl"] == "http://ollama:11434/v1" and keyless["OpenAIApiKey"]


def test_the_printed_url_has_localstacks_execute_api_form(source_template):
    url = deployer.localstack_api_url("abc123", "v1")
    assert url == "http://localhost:4566/_aws/execute-api/abc123/v1/"
    assert {"ApiId", "ApiStageName", "ApiKeyId"} <= set(source_template["Outputs"])


def _answers(monkeypatch, job: dict) -> None:
    """The smoke test's HTTP calls answered as API Gateway would, ending with `job`."""

    def call(url, api_key=None, body=None):
        if url.endswith("health"):
            return 200, "application/json", {"status": "ok"}
        if body is not None:
            return (403, "application/json", {}) if api_key is None else (202, "", {"event_id": "e1"})
        return 200, "application/json", job

    monkeypatch.setattr(deployer, "call", call)


def test_the_smoke_test_passes_a_completed_job_with_a_checklist(monkeypatch):
    job = {"status": "COMPLETED", "result": {"summary": "s", "checklist": [{"id": 1}]}}
    _answers(monkeypatch, job)
    assert deployer.smoke_test("http://api/", "key") == job


@pytest.mark.parametrize(
    "job",
    [
        {"status": "FAILED", "error": {"type": "llm_unavailable", "message": "connection refused"}},
        {"status": "COMPLETED", "result": {"summary": "s", "checklist": []}},
        {"status": "CANCELLED"},
    ],
)
def test_the_smoke_test_fails_the_deploy_for_any_other_end(monkeypatch, job):
    _answers(monkeypatch, job)
    with pytest.raises(SystemExit) as failure:
        deployer.smoke_test("http://api/", "key")
    assert job["status"] in str(failure.value)
    if "error" in job:
        assert "connection refused" in str(failure.value)


def test_the_smoke_test_gives_up_after_its_deadline(monkeypatch):
    _answers(monkeypatch, {"status": "PROCESSING"})
    monkeypatch.setattr(deployer, "SMOKE_TEST_SECONDS", 0.01)
    monkeypatch.setattr(deployer.time, "sleep", lambda seconds: None)
    with pytest.raises(SystemExit, match="still PROCESSING"):
        deployer.smoke_test("http://api/", "key")
