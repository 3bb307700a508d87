"""Invariants of infra/template.yaml, checked without AWS, Docker or the network.

The template is the single source of truth for routes, queues, timeouts and
environment; these tests hold it to the code it deploys.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest

from devstack.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "template.yaml"
LAYER_DIR = ROOT / "layers" / "core"

# What each function is promised by the environment contract (docs: shared context).
# A variable read anywhere in the code must appear here, and the template must set it.
COMMON_ENV = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "MAX_DOCUMENT_CHARS",
}
DATABASE_ENV = {"DATABASE_URL", "DATABASE_SECRET_ARN"}  # one of the two, chosen by a Condition
FUNCTION_ENV = {
    "SubmitFunction": {
        "JOBS_QUEUE_URL",
        "WEBHOOK_QUEUE_URL",
        "ALLOW_LOOPBACK_CALLBACKS",
        "DOCUMENTS_BUCKET",
        "MAX_DOCUMENT_BYTES",
        "UPLOAD_EXPIRY_SECONDS",
    },
    "StatusFunction": {"WEBHOOK_SIGNING_SECRET"},
    "ProcessFunction": {
        "OPENAI_MODEL",
        "OPENAI_BASE_URL",
        "OPENAI_TIMEOUT_SECONDS",
        "OPENAI_API_KEY",
        "OPENAI_API_KEY_SECRET_ARN",
        "CACHE_SHARED_ACROSS_API_KEYS",
        "JOBS_QUEUE_URL",
        "WEBHOOK_QUEUE_URL",
        "RETRY_BUDGET_SECONDS",
        "RETRY_BACKOFF_BASE_SECONDS",
        "RETRY_BACKOFF_CAP_SECONDS",
        "DOCUMENTS_BUCKET",
        "MAX_DOCUMENT_BYTES",
        "MAX_DOCUMENT_PAGES",
        "CHUNK_TOKEN_BUDGET",
        "CHUNK_PARALLELISM",
    },
    "UploadFunction": {"JOBS_QUEUE_URL"},
    "SweeperFunction": {
        "JOBS_QUEUE_URL",
        "WEBHOOK_QUEUE_URL",
        "MAX_RECEIVE_COUNT",
        "PENDING_GRACE_SECONDS",
        "JOBS_VISIBILITY_TIMEOUT_SECONDS",
        "RETRY_BUDGET_SECONDS",
    },
    "WebhookFunction": {
        "WEBHOOK_QUEUE_URL",
        "WEBHOOK_SIGNING_SECRET",
        "WEBHOOK_MAX_ATTEMPTS",
        "RETRY_BACKOFF_BASE_SECONDS",
        "RETRY_BACKOFF_CAP_SECONDS",
        "ALLOW_LOOPBACK_CALLBACKS",
    },
}
# Set by the Lambda runtime or the secrets extension, never by the template.
RUNTIME_ENV = re.compile(r"^(AWS_|LAMBDA_|_HANDLER$|PARAMETERS_SECRETS_EXTENSION_)")
# Routes that API Gateway serves without an API key.
OPEN_ROUTES = {("/health", "get"), ("/openapi.json", "get"), ("/docs", "get")}
# Served by the status function but not part of the API they describe.
DOCUMENTATION_ROUTES = {("/openapi.json", "get"), ("/docs", "get")}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Packages that only the process function may carry.
LLM_PACKAGES = {"openai"}


def load_template() -> dict:
    return load_yaml(TEMPLATE_PATH)


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def functions(template: dict) -> dict[str, dict]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def code_dir(properties: dict) -> Path:
    return (TEMPLATE_PATH.parent / properties["CodeUri"]).resolve()


def environment(template: dict, function: str) -> dict:
    """Globals merged with the function's own variables, as SAM merges them."""
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    merged.update(functions(template)[function].get("Environment", {}).get("Variables", {}))
    return merged


def parameter_default(template: dict, name: str):
    return template["Parameters"][name]["Default"]


def import_env(template: dict, function: str) -> dict:
    """The environment a cold start sees: nothing of this process's, only what
    scripts/import_environment.py gives (the template's values, stand-ins for what only AWS
    resolves), as scripts/verify-infra.sh passes it to `env -i`."""
    lines = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_environment.py"), function],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    return {
        "PATH": os.environ["PATH"],
        **dict(line.split("=", 1) for line in lines),
        "PYTHONPATH": os.pathsep.join([str(LAYER_DIR), str(code_dir(functions(template)[function]))]),
    }


def run_in_function(template: dict, function: str, code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter laid out like the function's execution environment."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=code_dir(functions(template)[function]),
        env=import_env(template, function),
        capture_output=True,
        text=True,
        timeout=120,
    )


def env_names_read(directory: Path) -> set[str]:
    """Environment variable names the Python code under `directory` reads."""
    pattern = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*["']([A-Z][A-Z0-9_]*)["']""")
    names = set()
    for path in directory.rglob("*.py"):
        names.update(pattern.findall(path.read_text(encoding="utf-8")))
    return names


def api_routes(template: dict) -> dict[tuple[str, str], dict]:
    routes = {}
    for properties in functions(template).values():
        for event in properties.get("Events", {}).values():
            if event["Type"] == "Api":
                routes[(event["Properties"]["Path"], event["Properties"]["Method"].lower())] = event[
                    "Properties"
                ]
    return routes


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_loader_reads_intrinsics(template):
    queue = template["Resources"]["JobsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}


def test_the_local_runner_finds_the_logical_ids_it_reads(template):
    resources = template["Resources"]
    for logical_id in ("CoreLayer", "JobsApi", "JobsQueue", "JobsDeadLetterQueue"):
        assert logical_id in resources
    assert set(functions(template)) == set(FUNCTION_ENV)


@pytest.mark.parametrize("function", sorted(FUNCTION_ENV))
def test_handler_path_exists(template, function):
    properties = functions(template)[function]
    module, _, attribute = properties["Handler"].rpartition(".")
    assert code_dir(properties).is_dir(), properties["CodeUri"]
    assert (code_dir(properties) / f"{module.replace('.', '/')}.py").is_file(), properties["Handler"]
    assert attribute == "handler"


@pytest.mark.parametrize("function", sorted(FUNCTION_ENV))
def test_handler_imports_with_the_layer_and_the_template_environment(template, function):
    module, _, attribute = functions(template)[function]["Handler"].rpartition(".")
    result = run_in_function(
        template,
        function,
        f"import {module}, sys; sys.exit(0 if callable(getattr({module}, {attribute!r}, None)) else 3)",
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_runtime_and_architecture(template):
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert globals_["Architectures"] == ["arm64"]
    layer = template["Resources"]["CoreLayer"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}
    for name, properties in functions(template).items():
        assert "Runtime" not in properties and "Architectures" not in properties, name


def test_memory_and_timeout_are_chosen_and_explained(template):
    text = TEMPLATE_PATH.read_text(encoding="utf-8").splitlines()
    for name, properties in functions(template).items():
        assert "Timeout" in properties and "MemorySize" in properties, name
        start = text.index(f"  {name}:")
        block = text[start : start + 20]
        for setting in ("Timeout:", "MemorySize:"):
            line = next(i for i, row in enumerate(block) if row.strip().startswith(setting))
            is_parameter = "!Ref" in block[line]
            assert is_parameter or block[line - 1].strip().startswith("#"), (
                f"{name} {setting} lacks its reason"
            )


@pytest.mark.parametrize("function", sorted(FUNCTION_ENV))
def test_every_promised_variable_is_set_for_the_function(template, function):
    variables = set(environment(template, function))
    missing = (COMMON_ENV | DATABASE_ENV | FUNCTION_ENV[function]) - variables
    assert not missing, f"{function} lacks {sorted(missing)}"


def test_every_variable_the_code_reads_is_promised():
    promised = COMMON_ENV | DATABASE_ENV | set().union(*FUNCTION_ENV.values())
    read = env_names_read(LAYER_DIR / "guideline_ingest") | env_names_read(ROOT / "functions")
    unknown = {name for name in read if not RUNTIME_ENV.match(name)} - promised
    assert not unknown, (
        f"read by the code but not in the contract (and so not in the template): {sorted(unknown)}"
    )


@pytest.mark.parametrize("function", sorted(FUNCTION_ENV))
def test_variables_read_in_a_function_directory_are_set_for_that_function(template, function):
    read = env_names_read(code_dir(functions(template)[function]))
    missing = {name for name in read if not RUNTIME_ENV.match(name)} - set(environment(template, function))
    assert not missing, f"{function} reads {sorted(missing)} but the template does not set them"


def test_database_connection_comes_from_exactly_the_parameter_given(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["DATABASE_URL"] == {
        "Fn::If": ["UseDatabaseUrl", {"Ref": "DatabaseUrl"}, {"Ref": "AWS::NoValue"}]
    }
    assert variables["DATABASE_SECRET_ARN"] == {
        "Fn::If": ["UseDatabaseSecret", {"Ref": "DatabaseSecretArn"}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Parameters"]["DatabaseUrl"]["NoEcho"] is True
    assert template["Parameters"]["OpenAIApiKey"]["NoEcho"] is True


def test_secrets_extension_is_added_only_where_a_secret_is_read(template):
    def layer_if(condition):
        return [{"Fn::If": [condition, {"Ref": "SecretsExtensionLayerArn"}, {"Ref": "AWS::NoValue"}]}]

    for name, properties in functions(template).items():
        # The process function reads the OpenAI key through the extension too.
        wanted = "ProcessReadsSecrets" if name == "ProcessFunction" else "UseDatabaseSecret"
        assert properties["Layers"] == layer_if(wanted), name
    assert template["Conditions"]["ProcessReadsSecrets"] == {
        "Fn::Or": [{"Condition": "UseDatabaseSecret"}, {"Condition": "UseOpenAIApiKeySecret"}]
    }
    default = parameter_default(template, "SecretsExtensionLayerArn")
    assert re.fullmatch(
        r"arn:aws:lambda:us-east-1:\d{12}:layer:AWS-Parameters-and-Secrets-Lambda-Extension-Arm64:\d+",
        default,
    )


def test_visibility_timeout_is_at_least_six_process_timeouts_plus_the_batching_window(template):
    process = functions(template)["ProcessFunction"]
    assert process["Timeout"] == {"Ref": "ProcessTimeoutSeconds"}
    queue = template["Resources"]["JobsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {"Ref": "JobsVisibilityTimeoutSeconds"}
    window = process["Events"]["JobsQueueEvent"]["Properties"]["MaximumBatchingWindowInSeconds"]
    timeout = parameter_default(template, "ProcessTimeoutSeconds")
    visibility = parameter_default(template, "JobsVisibilityTimeoutSeconds")
    assert visibility >= 6 * timeout + window
    # Even at its largest allowed timeout the process function fits SQS's 12-hour ceiling.
    assert 6 * template["Parameters"]["ProcessTimeoutSeconds"]["MaxValue"] + window <= 43200


def test_dead_letter_queue_wiring(template):
    resources = template["Resources"]
    redrive = resources["JobsQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert parameter_default(template, "MaxReceiveCount") == 5
    # The sweeper counts dead workers against the same count the queue enforces; the process
    # function no longer reads it: receive counts do not decide a transient failure.
    assert environment(template, "SweeperFunction")["MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}
    assert "MAX_RECEIVE_COUNT" not in environment(template, "ProcessFunction")
    # A message keeps its first enqueue time in the DLQ, so the DLQ must keep messages longer.
    retention = resources["JobsQueue"]["Properties"]["MessageRetentionPeriod"]
    assert resources["JobsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] > retention
    for queue in ("JobsQueue", "JobsDeadLetterQueue"):
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True


def test_sqs_event_source_reports_partial_failures_and_caps_concurrency(template):
    event = functions(template)["ProcessFunction"]["Events"]["JobsQueueEvent"]
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["JobsQueue", "Arn"]}
    assert 1 <= event["Properties"]["BatchSize"] <= 10
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "ProcessMaxConcurrency"}
    assert template["Parameters"]["ProcessMaxConcurrency"]["MinValue"] >= 2


def test_sweeper_runs_every_minute(template):
    sweeper = functions(template)["SweeperFunction"]
    schedules = [event for event in sweeper["Events"].values() if event["Type"] == "Schedule"]
    assert [event["Properties"]["Schedule"] for event in schedules] == ["rate(1 minute)"]
    assert parameter_default(template, "PendingGraceSeconds") == 120


def test_api_key_is_required_except_on_open_routes(template):
    api = template["Resources"]["JobsApi"]["Properties"]
    assert api["Auth"]["ApiKeyRequired"] is True
    for route, properties in api_routes(template).items():
        open_route = properties.get("Auth", {}).get("ApiKeyRequired") is False
        assert open_route == (route in OPEN_ROUTES), route


def test_usage_plan_throttles_and_quotas_the_stack_api_key(template):
    resources = template["Resources"]
    plan = resources["JobsUsagePlan"]["Properties"]
    # The stage by its name plus a dependency on the stage SAM generates, not `!Ref JobsApi.Stage`:
    # LocalStack's default engine resolves references before the transform and rejects that one.
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "JobsApi"}, "Stage": {"Ref": "StageName"}}]
    assert resources["JobsApi"]["Properties"]["StageName"] == {"Ref": "StageName"}
    assert resources["JobsUsagePlan"]["DependsOn"] == "JobsApiStage"
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert plan["Quota"]["Period"] == "DAY"
    key = resources["JobsUsagePlanKey"]["Properties"]
    assert key == {
        "KeyId": {"Ref": "JobsApiKey"},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": "JobsUsagePlan"},
    }
    assert template["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "JobsApiKey"}


def test_api_is_traced_and_access_logged(template):
    api = template["Resources"]["JobsApi"]["Properties"]
    assert api["TracingEnabled"] is True
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    record = json.loads(api["AccessLogSetting"]["Format"])
    assert {"requestId", "apiKeyId", "status"} <= set(record)


def test_gateway_errors_are_problem_details(template):
    responses = template["Resources"]["JobsApi"]["Properties"]["GatewayResponses"]
    for required in (
        "INVALID_API_KEY",
        "THROTTLED",
        "QUOTA_EXCEEDED",
        "REQUEST_TOO_LARGE",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ):
        assert required in responses
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    for response_type, response in responses.items():
        assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/problem+json'"
        body_template = response["ResponseTemplates"]["application/json"]
        # The gateway substitutes these; a quoted string stands in for each.
        body = json.loads(
            body_template.replace("$context.error.messageString", '"message"').replace(
                "$context.requestId", "id"
            )
        )
        assert body["type"].startswith("urn:guideline-ingest:problem:"), response_type
        assert body["detail"], response_type
        if "StatusCode" in response:
            assert body["status"] == int(response["StatusCode"]), response_type
            assert body["title"] == HTTPStatus(body["status"]).phrase, response_type


def test_api_routes_equal_the_openapi_paths(template):
    result = run_in_function(
        template,
        "StatusFunction",
        "import json, app\n"
        "paths = json.loads(app.app.get_openapi_json_schema())['paths']\n"
        "print(json.dumps([[p, m] for p, ops in paths.items()"
        f" for m in ops if m in {sorted(HTTP_METHODS)!r}]))",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    documented = {tuple(route) for route in json.loads(result.stdout.strip().splitlines()[-1])}
    deployed = set(api_routes(template)) - DOCUMENTATION_ROUTES
    assert deployed == documented


def test_status_function_has_no_queue_and_no_llm_access(template):
    status = functions(template)["StatusFunction"]
    policies = json.dumps(status.get("Policies", []))
    assert "SQS" not in policies and "OpenAI" not in policies
    variables = environment(template, "StatusFunction")
    assert not {name for name in variables if name.startswith("OPENAI") or name == "JOBS_QUEUE_URL"}


def test_each_function_gets_only_the_queue_permissions_it_needs(template):
    """Policy templates and the queue each names; test_iam.py checks they cover every call."""

    def grants(function):
        found = set()
        for policy in functions(template)[function].get("Policies", []):
            if isinstance(policy, dict) and "Fn::If" in policy:
                policy = policy["Fn::If"][1]
            if "Statement" in policy:  # an inline statement: S3, checked by tests/test_iam.py
                found.update((statement["Action"], "DocumentsBucket") for statement in policy["Statement"])
                continue
            for name, arguments in policy.items():
                queue = (arguments or {}).get("QueueName", {}).get("Fn::GetAtt", [None])[0]
                found.add((name, queue))
        return found

    secret = ("AWSSecretsManagerGetSecretValuePolicy", None)
    assert grants("SubmitFunction") == {
        ("SQSSendMessagePolicy", "JobsQueue"),
        ("SQSSendMessagePolicy", "WebhookQueue"),  # a cancelled job's webhook
        ("s3:PutObject", "DocumentsBucket"),  # a document in the request; the upload form's signature
        secret,
    }
    assert grants("UploadFunction") == {("SQSSendMessagePolicy", "JobsQueue"), secret}
    assert grants("SweeperFunction") == {
        ("SQSSendMessagePolicy", "JobsQueue"),
        ("SQSSendMessagePolicy", "WebhookQueue"),
        secret,
    }
    assert grants("ProcessFunction") == {
        ("SQSPollerPolicy", "JobsQueue"),  # deleting the message of a job it gives back
        ("SQSSendMessagePolicy", "JobsQueue"),  # ... and sending it again, delayed by its backoff
        ("SQSSendMessagePolicy", "WebhookQueue"),  # a finished job's webhook
        ("s3:GetObject", "DocumentsBucket"),  # load_document
        secret,
    }
    assert grants("WebhookFunction") == {("SQSPollerPolicy", "WebhookQueue"), secret}  # the backoff
    assert grants("StatusFunction") == {secret}


def test_a_hung_database_or_queue_fails_a_submission_before_the_function_times_out(template, monkeypatch):
    """A Lambda timeout would leave a stored job behind a 502; the submit path's own bounds must
    end first, so the client gets a clean 503 and nothing is stored."""
    from guideline_ingest import db, queue

    timeout = functions(template)["SubmitFunction"]["Timeout"]
    assert db.CONNECT_SECONDS + queue.worst_case_sqs_call_seconds() < timeout
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    retries = queue.sqs_client.__wrapped__().meta.config.retries
    assert retries["total_max_attempts"] == queue.SQS_ATTEMPTS


def test_the_retry_budget_never_outlives_the_jobs_queue_messages(template):
    """A job may wait out an outage for its whole budget: its message must not expire meanwhile.
    CloudFormation enforces MaxValue, so no deploy can set a longer budget."""
    parameters = template["Parameters"]
    retention = template["Resources"]["JobsQueue"]["Properties"]["MessageRetentionPeriod"]
    budget = parameters["RetryBudgetSeconds"]
    assert budget["Default"] == 21600  # six hours
    assert budget["MaxValue"] == retention
    assert budget["Default"] <= retention


def test_the_backoff_cap_is_the_longest_sqs_delay(template):
    from guideline_ingest.logic.backoff import MAX_DELIVERY_DELAY_SECONDS

    cap = template["Parameters"]["RetryBackoffCapSeconds"]
    assert cap["Default"] == cap["MaxValue"] == MAX_DELIVERY_DELAY_SECONDS == 900
    assert template["Parameters"]["RetryBackoffBaseSeconds"]["Default"] == 30


def test_alarms_cover_dead_letters_errors_and_message_age(template):
    alarms = [
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    watched = {(a["Namespace"], a["MetricName"], json.dumps(a["Dimensions"][0]["Value"])) for a in alarms}
    assert (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        json.dumps({"Fn::GetAtt": ["JobsDeadLetterQueue", "QueueName"]}),
    ) in watched
    assert (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        json.dumps({"Fn::GetAtt": ["JobsQueue", "QueueName"]}),
    ) in watched
    for function in FUNCTION_ENV:
        assert ("AWS/Lambda", "Errors", json.dumps({"Ref": function})) in watched, function


def test_a_refused_llm_key_is_alarmed_on_the_metric_powertools_emits(template):
    alarm = template["Resources"]["LLMAuthFailuresAlarm"]["Properties"]
    function_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == function_env["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["MetricName"] == "LLMAuthFailures"
    # Powertools Metrics adds one dimension, `service`, set from POWERTOOLS_SERVICE_NAME.
    assert alarm["Dimensions"] == [{"Name": "service", "Value": function_env["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_database_sslmode_reaches_every_function_and_defaults_to_require(template):
    function_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert function_env["DATABASE_SSLMODE"] == {"Ref": "DatabaseSslMode"}
    assert parameter_default(template, "DatabaseSslMode") == "require"


def test_outputs_give_the_deployer_what_it_needs(template):
    assert {"ApiUrl", "ApiId", "ApiStageName", "ApiKeyId", "JobsQueueUrl", "JobsDeadLetterQueueUrl"} <= set(
        template["Outputs"]
    )


@pytest.mark.parametrize(
    "package", ["functions/submit", "functions/status", "functions/sweeper", "layers/core"]
)
def test_only_the_process_function_ships_the_llm_sdk(package):
    assert not requirement_names(ROOT / package / "requirements.txt") & LLM_PACKAGES
    assert "openai" in requirement_names(ROOT / "functions/process/requirements.txt")


def test_secret_references_name_every_part(template):
    """`{{resolve:secretsmanager:<id>:SecretString:<json-key>:<version-stage>}}` in full (empty parts
    allowed by AWS): CloudFormation engines that split on `:SecretString:` (LocalStack's) fail on
    the short form with "list index out of range"."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    references = re.findall(r"\{\{resolve:secretsmanager:\$\{\w+\}[^}]*\}\}", text)
    assert references, "the webhook signing key is resolved from Secrets Manager"
    for reference in references:
        pattern = r"\{\{resolve:secretsmanager:\$\{\w+\}:SecretString:[^:}]*:[^:}]*\}\}"
        assert re.fullmatch(pattern, reference), reference
