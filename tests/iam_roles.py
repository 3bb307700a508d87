"""Each function's IAM role as AWS creates it from the template, and the question "may it do this?".

aws-sam-translator turns the SAM template into CloudFormation as `sam deploy` does: one role per
function, with the expanded policy templates (SQSSendMessagePolicy...) inline and the managed
policies that SAM attaches on its own (basic execution, X-Ray, VPC, the SQS event source's). The
inline documents are resolved against the local queues; the managed ones are not in the
translator, so their documents are copied here. A role is then asked with moto's policy evaluator
(`IAMPolicy.is_action_permitted`), which applies IAM's matching rules (wildcards, Deny wins).

Used by the static check of the functions' AWS calls (tests/test_iam.py); the local runner does
not enforce the roles at run time (docs/local-runner.md says why).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devstack.template import REGION, UNRESOLVED, Resolver, TemplateError, load_yaml, parameter_values

# Documents of the AWS managed policies SAM attaches (AWS Managed Policy Reference Guide:
# AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess, AWSLambdaVPCAccessExecutionRole,
# AWSLambdaSQSQueueExecutionRole, default versions as of 2026). The SQS event source adds the last
# one: receive, delete and GetQueueAttributes on every queue, and nothing else.
_LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
MANAGED_POLICIES: dict[str, dict] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": _LOGS, "Resource": "*"}],
    },
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": ["*"],
            }
        ],
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    *_LOGS,
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": "*",
            }
        ],
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", *_LOGS],
                "Resource": "*",
            }
        ],
    },
}

# SQS authorizes a batch call as the single action (there is no sqs:SendMessageBatch IAM action).
_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

# What the SQS event source mapping calls with the function's role, as Lambda's pollers do.
EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


def iam_action(service: str, operation: str) -> str:
    """`sqs:SendMessage` for the API operation SendMessageBatch of service sqs."""
    if service == "sqs":
        operation = _BATCH_ACTIONS.get(operation, operation)
    return f"{service}:{operation}"


def queue_arn_from_url(queue_url: str, region: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> of `http://host/<account>/<name>` (AWS, moto, LocalStack)."""
    account, name = [part for part in urlsplit(queue_url).path.split("/") if part][-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


@dataclass(frozen=True)
class Role:
    function: str  # logical id of the function that has it
    documents: tuple[str, ...]  # policy documents (JSON), inline and managed

    def allows(self, action: str, resource: str) -> bool:
        return _allowed(self.documents, action, resource)


@functools.cache
def _allowed(documents: tuple[str, ...], action: str, resource: str) -> bool:
    """IAM's rule over several policies: an explicit Deny wins, else any Allow allows."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    results = [IAMPolicy(document).is_action_permitted(action, resource) for document in documents]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def sam_translate(doc: dict) -> dict:
    """The CloudFormation template `sam deploy` would create from `doc`, offline: code locations
    become s3:// placeholders (the translator wants packaged code) and no IAM lookup is made."""
    from samtranslator.translator.transform import transform

    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    doc = copy.deepcopy(doc)
    for resource in (doc.get("Resources") or {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = "s3://local-placeholder/code.zip"
        if resource.get("Type") == "AWS::Serverless::LayerVersion" and "ContentUri" in props:
            props["ContentUri"] = "s3://local-placeholder/layer.zip"

    class _NoManagedPolicyLookup:
        """Policies named by their managed policy's name would need IAM's list; the template uses none."""

        def load(self) -> dict[str, str]:
            return {}

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator asks boto3 for a partition
    return transform(doc, {}, _NoManagedPolicyLookup())


def function_roles(
    template: Path | dict,
    parameter_overrides: dict[str, str] | None = None,
    queue_names: dict[str, str] | None = None,
) -> dict[str, Role]:
    """Function logical id -> its role. `queue_names` (logical id -> name) places the queues; by
    default each queue is named by its logical id."""
    doc = load_yaml(Path(template)) if isinstance(template, (str, Path)) else template
    translated = sam_translate(doc)
    resources = translated["Resources"]
    if queue_names is None:
        queue_names = {lid: lid for lid, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
    roles: dict[str, Role] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        role_ref = resource["Properties"].get("Role")
        if not (isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref):
            raise TemplateError(f"{logical_id}: only roles SAM creates are understood, not {role_ref!r}")
        role = resources[role_ref["Fn::GetAtt"][0]]["Properties"]
        policies = {key: role.get(key) or [] for key in ("Policies", "ManagedPolicyArns")}
        resolved = resolve_with_queues(translated, policies, parameter_overrides, queue_names)
        documents = [_document(logical_id, policy["PolicyDocument"]) for policy in resolved["Policies"]]
        for arn in resolved["ManagedPolicyArns"]:
            if arn not in MANAGED_POLICIES:
                raise TemplateError(
                    f"{logical_id}: the managed policy {arn} is not known to tests/iam_roles.py"
                )
            documents.append(json.dumps(MANAGED_POLICIES[arn]))
        roles[logical_id] = Role(logical_id, tuple(documents))
    return roles


def _document(function: str, document: Any) -> str:
    return json.dumps(document, default=lambda value: _unresolvable(function, value))


def _unresolvable(function: str, value: Any) -> Any:
    if value is UNRESOLVED:
        raise TemplateError(f"{function}: a policy names a resource that only exists in AWS")
    raise TypeError(f"{value!r} is not JSON")


def resolve_with_queues(
    doc: dict,
    node: Any,
    parameter_overrides: dict[str, str] | None,
    queue_names: dict[str, str],
    region: str = REGION,
) -> Any:
    """Resolve `node` of `doc` (a template, also a SAM-translated one) with the local queues' names
    (logical id -> name): `!GetAtt Queue.QueueName` and `.Arn` become the local queue's."""
    refs: dict[str, Any] = {}
    for logical_id, name in queue_names.items():
        refs[logical_id] = UNRESOLVED
        refs[f"{logical_id}.QueueName"] = name
    parameters = parameter_values(doc, dict(parameter_overrides or {}))
    return Resolver(doc, parameters, refs, region).resolve(node)
