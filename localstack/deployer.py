"""Build infra/template.yaml for LocalStack and deploy it: the `deployer` service of docker-compose.yml.

`build` runs while the image is built. LocalStack's free image accepts Lambda layers but does not
mount them into the functions, so the built core layer is copied into every function package; and
the functions are built for this machine's own architecture, because LocalStack runs them as local
containers.

`deploy` runs when the compose stack starts: deploy the stack into LocalStack, migrate PostgreSQL,
send one job through the API and print the API URL and a working API key.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack.template import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE_TEMPLATE = ROOT / "infra" / "template.yaml"
BUILD_DIR = Path(os.environ.get("BUILD_DIR", ROOT / ".aws-sam" / "localstack")).resolve()
LOCAL_TEMPLATE = BUILD_DIR.parent / f"{BUILD_DIR.name}-template.yaml"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
LAYER_ID = "CoreLayer"

SAM = os.environ.get("SAM_CLI", "/opt/sam/bin/sam")
STACK_NAME = os.environ.get("STACK_NAME", "guideline-ingest")
ARTIFACT_BUCKET = f"{STACK_NAME}-artifacts"
# Where LocalStack is seen from this container, and from the machine running compose.
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://localstack:4566")
PUBLIC_ENDPOINT = os.environ.get("PUBLIC_ENDPOINT", "http://localhost:4566")
# The keyless stand-in for the OpenAI API (compose service `offline-llm`).
OFFLINE_LLM_URL = os.environ.get("OFFLINE_LLM_URL", "http://offline-llm:8787/v1")
SMOKE_TEST_SECONDS = float(os.environ.get("SMOKE_TEST_SECONDS", "300"))

TERMINAL_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")

ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


# --- build ------------------------------------------------------------------------------------


def native_architecture() -> str:
    machine = platform.machine().lower()
    if machine not in ARCHITECTURES:
        raise SystemExit(f"LocalStack runs Lambda on x86_64 or arm64 only, not {machine}")
    return ARCHITECTURES[machine]


def for_localstack(template: dict, architecture: str) -> dict:
    """The source template built for `architecture`, with code paths that hold from anywhere."""
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = str((SOURCE_TEMPLATE.parent / properties[key]).resolve())
    template["Globals"]["Function"]["Architectures"] = [architecture]
    layer = template["Resources"][LAYER_ID]
    layer["Properties"]["CompatibleArchitectures"] = [architecture]
    layer["Metadata"]["BuildArchitecture"] = architecture
    return template


def without_core_layer(built: dict) -> dict:
    """The built template once the layer lives inside each function package."""
    built = copy.deepcopy(built)
    del built["Resources"][LAYER_ID]
    globals_ = built["Globals"]["Function"]
    globals_["Layers"] = [layer for layer in globals_.get("Layers", []) if layer != {"Ref": LAYER_ID}]
    if not globals_["Layers"]:
        del globals_["Layers"]
    return built


def function_build_dirs(built: dict) -> list[Path]:
    return [
        BUILD_DIR / resource["Properties"]["CodeUri"]
        for resource in built["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    ]


def merge_layer_into(function_dir: Path, layer_python_dir: Path) -> None:
    """Copy the layer's packages next to the function's code; the function's own files win."""
    for entry in layer_python_dir.iterdir():
        target = function_dir / entry.name
        if target.exists():
            continue
        if entry.is_dir():
            shutil.copytree(entry, target)
        else:
            shutil.copy2(entry, target)


def build() -> None:
    architecture = native_architecture()
    BUILD_DIR.parent.mkdir(parents=True, exist_ok=True)
    LOCAL_TEMPLATE.write_text(
        yaml.safe_dump(for_localstack(load_yaml(SOURCE_TEMPLATE), architecture), sort_keys=False),
        encoding="utf-8",
    )
    print(f"building for {architecture}", flush=True)
    subprocess.run(  # noqa: S603 - fixed command line
        [SAM, "build", "--template-file", str(LOCAL_TEMPLATE), "--build-dir", str(BUILD_DIR)],
        cwd=ROOT,
        check=True,
    )
    built = load_yaml(BUILT_TEMPLATE)
    layer_python_dir = BUILD_DIR / built["Resources"][LAYER_ID]["Properties"]["ContentUri"] / "python"
    for function_dir in function_build_dirs(built):
        merge_layer_into(function_dir, layer_python_dir)
    BUILT_TEMPLATE.write_text(yaml.safe_dump(without_core_layer(built), sort_keys=False), encoding="utf-8")
    shutil.rmtree(layer_python_dir.parent)


# --- deploy -----------------------------------------------------------------------------------


def llm_parameters(environ: dict[str, str]) -> tuple[dict[str, str], str]:
    """Stack parameters for the LLM, and a line telling the user which LLM the jobs will use."""
    key = environ.get("OPENAI_API_KEY", "")
    base_url = environ.get("OPENAI_BASE_URL", "")
    model = environ.get("OPENAI_MODEL", "")
    parameters = {"OpenAIModel": model} if model else {}
    if key:
        parameters |= {"OpenAIApiKey": key, "OpenAIBaseUrl": base_url}
        return parameters, f"LLM: {base_url or 'the OpenAI API'} with your OPENAI_API_KEY"
    if base_url:
        # An OpenAI-compatible server that needs no key still gets one: the SDK insists on it.
        parameters |= {"OpenAIApiKey": "not-needed", "OpenAIBaseUrl": base_url}
        return parameters, f"LLM: {base_url} (no OPENAI_API_KEY given)"
    parameters |= {"OpenAIApiKey": "offline", "OpenAIBaseUrl": OFFLINE_LLM_URL}
    return parameters, (
        "LLM: the offline stand-in (deterministic, no network). For real summaries set OPENAI_API_KEY "
        "(and OPENAI_BASE_URL / OPENAI_MODEL for another OpenAI-compatible server) and run "
        "`docker compose up --build` again."
    )


def stack_parameters(environ: dict[str, str]) -> tuple[dict[str, str], str]:
    llm, llm_line = llm_parameters(environ)
    parameters = {
        # The Lambda containers share the compose network, so they reach PostgreSQL as this container does.
        "DatabaseUrl": environ["DATABASE_URL"],
        # LocalStack needs no account-wide API Gateway logging role.
        "CreateApiGatewayLoggingRole": "false",
        **llm,
    }
    return {name: value for name, value in parameters.items() if value != ""}, llm_line


def localstack_api_url(api_id: str, stage: str, endpoint: str = PUBLIC_ENDPOINT) -> str:
    return f"{endpoint}/_aws/execute-api/{api_id}/{stage}/"


def wait_for_localstack(deadline_seconds: float = 180) -> None:
    needed = {"cloudformation", "lambda", "apigateway", "sqs", "s3", "iam", "logs", "events"}
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=5) as response:  # noqa: S310
                services = json.loads(response.read())["services"]
            missing = {name for name in needed if services.get(name) not in ("available", "running")}
            if not missing:
                return
        except (OSError, ValueError, KeyError) as error:
            missing = {str(error)}
        if time.monotonic() > deadline:
            raise SystemExit(f"LocalStack is not ready: {sorted(missing)}")
        time.sleep(2)


def sam_deploy(parameters: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client("s3")
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    if ARTIFACT_BUCKET not in existing:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    subprocess.run(  # noqa: S603 - fixed command line; values go as separate arguments
        [
            SAM,
            "deploy",
            "--template-file",
            str(BUILT_TEMPLATE),
            "--stack-name",
            STACK_NAME,
            "--s3-bucket",
            ARTIFACT_BUCKET,
            "--capabilities",
            "CAPABILITY_IAM",
            "CAPABILITY_AUTO_EXPAND",
            "--no-confirm-changeset",
            "--no-fail-on-empty-changeset",
            "--parameter-overrides",
            *(f"{name}={value}" for name, value in parameters.items()),
        ],
        cwd=ROOT,
        check=True,
    )


def stack_outputs() -> dict[str, str]:
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def api_key_value(api_key_id: str) -> str:
    import boto3

    return boto3.client("apigateway").get_api_key(apiKey=api_key_id, includeValue=True)["value"]


def migrate(database_url: str) -> None:
    from guideline_ingest.migrations import migrate as apply

    applied = apply(database_url)
    print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}", flush=True)


def call(url: str, api_key: str | None = None, body: dict | None = None) -> tuple[int, str, dict]:
    """Status, content type and JSON body (empty when the body is not JSON); status 0 if unreachable."""
    headers = {"content-type": "application/json"} | ({"x-api-key": api_key} if api_key else {})
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the LocalStack URL built above
        url, data=data, headers=headers, method="POST" if data else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - LocalStack URL
            status, content_type, raw = (
                response.status,
                response.headers.get("content-type", ""),
                response.read(),
            )
    except urllib.error.HTTPError as error:
        status, content_type, raw = error.code, error.headers.get("content-type", ""), error.read()
    except OSError:
        return 0, "", {}
    try:
        return status, content_type, json.loads(raw or b"{}")
    except ValueError:
        return status, content_type, {}


def smoke_test(api_url: str, api_key: str) -> dict:
    """One job through API Gateway, the submit Lambda, SQS, the process Lambda and PostgreSQL.

    Passes only when the job COMPLETED with a checklist; a FAILED or CANCELLED job, or none
    finished in SMOKE_TEST_SECONDS, fails the deploy with what the API said about it.
    """
    deadline = time.monotonic() + SMOKE_TEST_SECONDS
    guidelines = {
        "guidelines": "Staff must lock their screens when away. Visitors must sign in at reception."
    }
    # The first calls pull the Lambda runtime image and cold-start the functions.
    while (status := call(f"{api_url}health")[0]) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke test: GET /health still answers {status}")
        time.sleep(3)
    # Emulator parity, not our code, decides these two: warn rather than fail the stack.
    status, content_type, _ = call(f"{api_url}jobs", None, guidelines)
    if status != 403 or not content_type.startswith("application/problem+json"):
        print(f"WARNING: POST /jobs without an API key answered {status} {content_type}, not a 403 problem")
    status, _, accepted = call(f"{api_url}jobs", api_key, guidelines)
    if status != 202:
        raise SystemExit(f"smoke test: POST /jobs answered {status}: {accepted}")
    event_id = accepted["event_id"]
    job_url = f"{api_url}jobs/{event_id}"
    while (job := call(job_url, api_key)[2]).get("status") not in TERMINAL_STATUSES:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"smoke test: job {event_id} is still {job.get('status')} after {SMOKE_TEST_SECONDS:.0f} s: "
                f"{json.dumps(job)}"
            )
        time.sleep(1)
    checklist = (job.get("result") or {}).get("checklist") or []
    if job["status"] != "COMPLETED" or not checklist:
        raise SystemExit(
            f"smoke test: job {event_id} ended {job['status']} with {len(checklist)} checklist items; "
            f"error: {json.dumps(job.get('error'))}"
        )
    print(f"smoke test: job {event_id} COMPLETED with {len(checklist)} checklist items", flush=True)
    return job


@dataclass(frozen=True)
class Deployment:
    """What a deploy leaves for its caller: the stack's outputs, its API and a working key."""

    outputs: dict[str, str]
    api_url: str  # as seen from the machine running compose (PUBLIC_ENDPOINT)
    api_key: str


def deploy() -> Deployment:
    parameters, llm_line = stack_parameters(dict(os.environ))
    wait_for_localstack()
    migrate(os.environ["DATABASE_URL"])
    sam_deploy(parameters)
    outputs = stack_outputs()
    api_key = api_key_value(outputs["ApiKeyId"])
    inside_url = localstack_api_url(outputs["ApiId"], outputs["ApiStageName"], ENDPOINT)
    if SMOKE_TEST_SECONDS > 0:
        smoke_test(inside_url, api_key)
    api_url = localstack_api_url(outputs["ApiId"], outputs["ApiStageName"])
    print(
        "\n".join(
            [
                "",
                "guideline-ingest is running in LocalStack.",
                f"  API:     {api_url}",
                f"  API key: {api_key}",
                f"  {llm_line}",
                "",
                f"  export API={api_url} KEY={api_key}",
                '  curl -s -X POST "${API}jobs" -H "x-api-key: $KEY" -H "content-type: application/json" \\',
                '       -d \'{"guidelines": "Staff must lock their screens when away."}\'',
                '  curl -s "${API}jobs/<event_id>" -H "x-api-key: $KEY"',
                "",
            ]
        ),
        flush=True,
    )
    return Deployment(outputs, api_url, api_key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "deploy"])
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
    else:
        deploy()


if __name__ == "__main__":
    main()
