"""Every AWS call each function's code can make is allowed by its role, as `sam deploy` creates it.

The calls are read from the source (tests/aws_calls.py), with the resource traced to the environment
variable it comes from, then through the template's environment to the queue or secret. The event
source mappings' own calls count too: on AWS they use the function's role. The roles come from the
SAM translation and moto's policy evaluator (tests/iam_roles.py). This is the guard: the local
runner does not enforce the roles at run time (docs/local-runner.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from aws_calls import CodeBase

from devstack.template import ACCOUNT_ID, REGION, bucket_name, load_template, load_yaml
from guideline_ingest.objects import DOCUMENT_PREFIX, UPLOAD_PREFIX

from iam_roles import EVENT_SOURCE_ACTIONS, function_roles, iam_action, queue_arn_from_url

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "infra" / "template.yaml"
# The documents bucket as the local runner names it (devstack.template.bucket_name).
BUCKET = bucket_name("DocumentsBucket")
LAYER_DIR = ROOT / "layers" / "core"
# Deployed "the cloud way": both secrets from Secrets Manager, so the secret reads are checked too.
SECRET_PARAMETERS = {
    "DatabaseSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:db-AbCdEf",
    "OpenAIApiKeySecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:openai-AbCdEf",
}
FUNCTIONS = [
    "SubmitFunction",
    "StatusFunction",
    "ProcessFunction",
    "SweeperFunction",
    "WebhookFunction",
    "UploadFunction",
]


def required_permissions(template_path: Path, parameters: dict[str, str]) -> dict[str, set[tuple[str, str]]]:
    """Function -> the (IAM action, resource ARN) pairs its code and its event sources need."""
    queue_urls = {
        lid: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{lid}" for lid in _queues(template_path)
    }
    template = load_template(template_path, parameters, queue_urls)
    # Variables a Condition leaves out in this configuration (a secret ARN when none is given):
    # the code checks for them, so the calls they feed are not made.
    conditional = load_template(template_path, SECRET_PARAMETERS, queue_urls).functions
    needed: dict[str, set[tuple[str, str]]] = {}
    for lid, spec in template.functions.items():
        code = CodeBase(ROOT / "functions" / spec.code_dir.name, LAYER_DIR)
        reachable = code.reachable(spec.handler, {(route.method, route.path) for route in spec.routes})
        needed[lid] = set()
        for call in code.aws_calls(reachable):
            assert call.env_var, f"{lid}: cannot tell which resource {call.operation} at {call.where} uses"
            if call.env_var not in spec.environment and call.env_var in conditional[lid].environment:
                continue
            value = spec.environment.get(call.env_var)
            assert isinstance(value, str) and value, (
                f"{lid}: {call.operation} at {call.where} reads {call.env_var}; the template does not set it"
            )
            action = iam_action(call.service, call.operation)
            if call.service == "s3":
                # An object call on the bucket: documents and uploads alike (objects.py's prefixes).
                for prefix in (DOCUMENT_PREFIX, UPLOAD_PREFIX):
                    needed[lid].add((action, f"arn:aws:s3:::{value}/{prefix}owner/event/key"))
                continue
            resource = queue_arn_from_url(value, REGION) if call.service == "sqs" else value
            needed[lid].add((action, resource))
        for source in spec.sqs_sources:
            needed[lid].update((action, template.queues[source.queue].arn) for action in EVENT_SOURCE_ACTIONS)
    return needed


def missing_permissions(template_path: Path, parameters: dict[str, str] = SECRET_PARAMETERS) -> set:
    roles = function_roles(template_path, parameters)
    return {
        (function, action, resource.rsplit(":", 1)[-1])
        for function, needs in required_permissions(template_path, parameters).items()
        for action, resource in needs
        if not roles[function].allows(action, resource)
    }


def _queues(template_path: Path) -> list[str]:
    resources = load_yaml(template_path)["Resources"]
    return [lid for lid, resource in resources.items() if resource["Type"] == "AWS::SQS::Queue"]


def test_every_aws_call_of_every_function_is_allowed_by_its_role():
    assert missing_permissions(TEMPLATE_PATH) == set()


def test_also_with_the_default_parameters():
    assert missing_permissions(TEMPLATE_PATH, {}) == set()


def test_the_scan_finds_each_call_the_code_makes():
    needed = required_permissions(TEMPLATE_PATH, SECRET_PARAMETERS)

    def short(function):
        return {
            (action, resource.rsplit(":", 1)[-1].split("/", 2)[0]) for action, resource in needed[function]
        }

    database = ("secretsmanager:GetSecretValue", "db-AbCdEf")
    poller = {(action, queue) for action in EVENT_SOURCE_ACTIONS for queue in ["JobsQueue"]}
    assert short("SubmitFunction") == {
        ("sqs:SendMessage", "JobsQueue"),  # enqueue_job
        ("sqs:SendMessage", "WebhookQueue"),  # a cancelled job's webhook
        # put_document, and the presigned upload form, which S3 authorizes as this role's PutObject
        ("s3:PutObject", BUCKET),
        database,
    }
    # The status function also registers the writing routes (for the OpenAPI document), but
    # API Gateway never routes them to it: their queue calls are not its calls.
    assert short("StatusFunction") == {database}
    # s3:GetObject (load_document) once functions/process/app.py passes the loader to process_job.
    assert short("ProcessFunction") - {("s3:GetObject", BUCKET)} == {
        ("sqs:SendMessage", "JobsQueue"),  # requeue_job: a job given back, re-sent delayed
        ("sqs:DeleteMessage", "JobsQueue"),  # requeue_job deletes the message it replaces
        ("sqs:SendMessage", "WebhookQueue"),  # announce_finished
        ("secretsmanager:GetSecretValue", "openai-AbCdEf"),
        database,
        *poller,
    }
    assert short("SweeperFunction") == {
        ("sqs:SendMessage", "JobsQueue"),  # SendMessageBatch is authorized as SendMessage
        ("sqs:SendMessage", "WebhookQueue"),
        database,
    }
    # The S3 event carries the key and size: no S3 call, only the start of the job.
    assert short("UploadFunction") == {
        ("sqs:SendMessage", "JobsQueue"),
        database,
        *{(action, "UploadsQueue") for action in EVENT_SOURCE_ACTIONS},
    }
    assert short("WebhookFunction") == {
        ("sqs:ChangeMessageVisibility", "WebhookQueue"),  # the backoff
        database,
        *{(action, "WebhookQueue") for action in EVENT_SOURCE_ACTIONS},
    }


def test_the_document_loader_wired_as_a_partial_is_seen_with_its_bucket(tmp_path):
    """How functions/process/app.py passes the loader to process_job: the S3 read it makes is found,
    on the bucket of DOCUMENTS_BUCKET, and the process role allows it."""
    (tmp_path / "app.py").write_text(
        "from functools import partial\n"
        "from guideline_ingest import objects\n"
        "from guideline_ingest.config import process_settings\n"
        "from guideline_ingest.dal import jobs\n"
        "from guideline_ingest.logic.document_loading import document_limits, load_document\n"
        "settings = process_settings()\n"
        "def handler(event, context):\n"
        "    loader = partial(load_document, store=jobs, objects=objects,\n"
        "                     bucket=settings.documents_bucket, limits=document_limits(settings))\n"
        "    return loader(event)\n"
    )
    code = CodeBase(tmp_path, LAYER_DIR)
    calls = {
        (c.service, c.operation, c.env_var) for c in code.aws_calls(code.reachable("app.handler", set()))
    }
    assert calls == {
        ("s3", "GetObject", "DOCUMENTS_BUCKET"),
        ("secretsmanager", "GetSecretValue", "DATABASE_SECRET_ARN"),  # every function's database
    }
    role = function_roles(TEMPLATE_PATH)["ProcessFunction"]
    assert role.allows("s3:GetObject", f"arn:aws:s3:::{BUCKET}/uploads/owner/event/token")
    assert role.allows("s3:GetObject", f"arn:aws:s3:::{BUCKET}/documents/owner/event/token")
    assert not role.allows("s3:PutObject", f"arn:aws:s3:::{BUCKET}/uploads/owner/event/token")
    assert not role.allows("s3:GetObject", "arn:aws:s3:::someotherbucket/uploads/x")


# The Policies blocks as they were before issue 11: the check must report exactly what AWS denied.
OLD_POLICIES = {
    "ProcessFunction": [{"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["JobsQueue", "QueueName"]}}}],
    "WebhookFunction": [],
}


def test_the_check_reports_exactly_what_the_old_policies_lacked(tmp_path):
    doc = load_yaml(TEMPLATE_PATH)
    for function, policies in OLD_POLICIES.items():
        secrets = [p for p in doc["Resources"][function]["Properties"]["Policies"] if "Fn::If" in p]
        doc["Resources"][function]["Properties"]["Policies"] = policies + secrets
    old = tmp_path / "template.yaml"
    old.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert missing_permissions(old) == {
        ("ProcessFunction", "sqs:SendMessage", "WebhookQueue"),
        ("ProcessFunction", "sqs:SendMessage", "JobsQueue"),  # issue 13's delayed re-send
        ("WebhookFunction", "sqs:ChangeMessageVisibility", "WebhookQueue"),
        # issue 26: the document a job came from, read by the loader
        ("ProcessFunction", "s3:GetObject", f"{BUCKET}/documents/owner/event/key"),
        ("ProcessFunction", "s3:GetObject", f"{BUCKET}/uploads/owner/event/key"),
    }


def test_the_delayed_re_send_of_a_job_needs_its_own_grant(tmp_path):
    """The event source lets Lambda's poller delete; the function deletes and re-sends itself."""
    doc = load_yaml(TEMPLATE_PATH)
    policies = doc["Resources"]["ProcessFunction"]["Properties"]["Policies"]
    doc["Resources"]["ProcessFunction"]["Properties"]["Policies"] = [
        policy
        for policy in policies
        if policy != {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["JobsQueue", "QueueName"]}}}
    ]
    without = tmp_path / "template.yaml"
    without.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert missing_permissions(without) == {("ProcessFunction", "sqs:SendMessage", "JobsQueue")}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_role_allows_nothing_beyond_its_queues(function):
    role = function_roles(TEMPLATE_PATH)[function]
    other = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:SomeOtherQueue"
    assert not role.allows("sqs:SendMessage", other)
    assert not role.allows("sqs:PurgeQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:JobsQueue")
    assert not role.allows("secretsmanager:GetSecretValue", SECRET_PARAMETERS["DatabaseSecretArn"])
