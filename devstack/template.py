"""What the runner needs from the SAM template: functions, their events, queues and API settings.

The template is the single source of truth, so nothing here has defaults for routes, queues or
timeouts beyond the ones SAM and AWS themselves apply. aws-sam-translator reads the YAML (short-form
tags) and merges Globals as `sam deploy` does. CloudFormation intrinsics are resolved against
parameters (with overrides, like `sam deploy --parameter-overrides`) and against the local stand-ins
for resources (queue URLs and ARNs); what only exists in the cloud stays `UNRESOLVED`. Only what
infra/template.yaml uses is understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.plugins.globals.globals import Globals
from samtranslator.yaml_helper import yaml_parse

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs match the queues it creates
STACK_NAME = "guideline-ingest-local"

# SAM's and Lambda's own defaults, applied when the template does not say.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
DEFAULT_BATCH_SIZE = 10


class _Unresolved:
    """A value that only exists in AWS (a secret ARN, an imported value...)."""

    def __repr__(self) -> str:
        return "UNRESOLVED"


UNRESOLVED = _Unresolved()
NO_VALUE = object()  # AWS::NoValue: the property is removed


class TemplateError(ValueError):
    pass


def load_yaml(path: Path) -> dict:
    """A template with CloudFormation's short forms (!Ref X) read as their long forms ({"Ref": X})."""
    return yaml_parse(Path(path).read_text(encoding="utf-8"))


# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRoute:
    path: str  # as in the template, e.g. /jobs/{event_id}
    method: str  # upper case
    api_key_required: bool
    api_id: str  # logical id of the API resource


@dataclass(frozen=True)
class SqsSource:
    queue: str  # logical id of the queue
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None


@dataclass(frozen=True)
class ScheduleSource:
    expression: str
    event_name: str


@dataclass
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, Any]  # resolved values, UNRESOLVED where only AWS knows
    layer_dirs: list[Path]
    routes: list[ApiRoute] = field(default_factory=list)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    schedules: list[ScheduleSource] = field(default_factory=list)

    @property
    def short_name(self) -> str:
        """`submit` for SubmitFunction: the name people type and the log prefix."""
        return re.sub(r"Function$", "", self.logical_id).lower() or self.logical_id.lower()


@dataclass
class QueueSpec:
    logical_id: str
    name: str
    attributes: dict[str, str]  # SQS CreateQueue attributes except RedrivePolicy
    dead_letter_queue: str | None  # logical id
    max_receive_count: int | None

    @property
    def arn(self) -> str:
        return queue_arn(self.name)


@dataclass
class BucketSpec:
    logical_id: str
    name: str
    # NotificationConfiguration.QueueConfigurations, resolved: {"Event", "Queue" (an ARN), "Filter"?}
    queue_notifications: list[dict]


@dataclass
class ApiSpec:
    logical_id: str
    stage: str
    api_key_required: bool
    binary_media_types: list[str]
    gateway_responses: dict[str, dict]


@dataclass
class Template:
    path: Path
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    queues: dict[str, QueueSpec]
    apis: dict[str, ApiSpec]
    buckets: dict[str, BucketSpec] = field(default_factory=dict)

    def function(self, name: str) -> FunctionSpec:
        """By logical id (SubmitFunction) or short name (submit)."""
        if name in self.functions:
            return self.functions[name]
        for spec in self.functions.values():
            if spec.short_name == name.lower():
                return spec
        known = ", ".join(f"{s.short_name} ({s.logical_id})" for s in self.functions.values())
        raise KeyError(f"no function {name!r} in the template; known: {known}")


def queue_arn(name: str, region: str = REGION) -> str:
    return f"arn:aws:sqs:{region}:{ACCOUNT_ID}:{name}"


def bucket_name(logical_id: str, name_suffix: str | None = None) -> str:
    """A bucket is named as CloudFormation names one without a BucketName, in the lower case S3 wants."""
    return f"{STACK_NAME}-{logical_id}-{name_suffix or 'local'}".lower()


# --- intrinsic functions -----------------------------------------------------------------------


class Resolver:
    """Ref, GetAtt, Sub, Join, If and the condition functions, against parameter values and `refs`
    (logical id -> the local value of its Ref; "<queue>.QueueName" -> the local queue's name)."""

    def __init__(self, doc: dict, parameters: dict[str, str], refs: dict[str, Any], region: str = REGION):
        self.doc = doc
        self.parameters = parameters
        self.region = region
        self.resources = doc.get("Resources") or {}
        buckets = [lid for lid, r in self.resources.items() if r.get("Type") == "AWS::S3::Bucket"]
        self.refs = {lid: bucket_name(lid) for lid in buckets} | refs
        self._conditions: dict[str, bool] = {}
        self.list_parameters = {
            name
            for name, spec in (doc.get("Parameters") or {}).items()
            if str(spec.get("Type", "")).startswith(("List<", "CommaDelimitedList"))
        }

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            value = self.parameters[name]
            return value.split(",") if name in self.list_parameters else value
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::Partition": "aws",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.resources or "." in name or name.startswith("AWS::"):  # `!Ref Api.Stage` too
            return UNRESOLVED
        raise TemplateError(f"!Ref to unknown name {name!r}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        kind = (self.resources.get(logical_id) or {}).get("Type")
        if kind is None:
            raise TemplateError(f"!GetAtt on unknown resource {logical_id!r}")
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{self.refs[logical_id]}" if attribute == "Arn" else UNRESOLVED
        if kind == "AWS::SQS::Queue":
            name = self.refs.get(f"{logical_id}.QueueName", logical_id)
            values = {"Arn": queue_arn(name, self.region), "QueueName": name}
            return values.get(attribute, UNRESOLVED)
        return UNRESOLVED

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.doc.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name!r}")
            value = self.resolve(conditions[name])
            if value is UNRESOLVED:
                raise TemplateError(f"condition {name!r} depends on something only AWS knows")
            self._conditions[name] = bool(value)
        return self._conditions[name]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [item for item in map(self.resolve, node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any) -> Any:
        if name == "GetAtt":
            return self.get_att(*[self.resolve(part) for part in arg])
        if name == "Sub":
            return self._sub(arg)
        if name == "If":
            condition, if_true, if_false = arg
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name not in ("Equals", "Not", "Or", "Join"):
            return UNRESOLVED  # functions the template does not use (ImportValue...): left to AWS
        values = self.resolve(arg)
        if UNRESOLVED in values or (name == "Join" and UNRESOLVED in values[1]):
            return UNRESOLVED
        if name == "Equals":
            return str(values[0]) == str(values[1])
        if name == "Not":
            return not values[0]
        if name == "Or":
            return any(values)
        return values[0].join(map(str, values[1]))

    def _sub(self, arg: Any) -> Any:
        text, variables = (arg[0], self.resolve(arg[1])) if isinstance(arg, list) else (arg, {})
        values = []

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            values.append(value)
            return str(value)

        result = re.sub(r"\$\{([^}]+)\}", replace, text)
        return UNRESOLVED if UNRESOLVED in values else result


def parameter_values(doc: dict, overrides: dict[str, str]) -> dict[str, str]:
    declared = doc.get("Parameters") or {}
    unknown = set(overrides) - set(declared)
    if unknown:
        raise TemplateError(f"parameter overrides for unknown parameters: {', '.join(sorted(unknown))}")
    values = {}
    for name, spec in declared.items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            default = spec["Default"]
            values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        else:
            raise TemplateError(f"parameter {name} has no default: pass it as a parameter override")
    return values


# --- loading -----------------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, UNRESOLVED) else int(value)


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def load_template(
    path: Path,
    parameter_overrides: dict[str, str] | None = None,
    queue_urls: dict[str, str] | None = None,
    region: str = REGION,
    name_suffix: str | None = None,
) -> Template:
    """Parse and resolve `path`. `queue_urls` (logical id -> URL) feeds `!Ref Queue` once queues exist.

    Queues without a QueueName are named `<stack>-<LogicalId>-<name_suffix>` when a suffix is given, as
    CloudFormation names them, so several stacks can share one SQS endpoint; else by logical id."""
    path = Path(path).resolve()
    doc = load_yaml(path)
    parameters = parameter_values(doc, dict(parameter_overrides or {}))
    resources = doc.get("Resources") or {}

    def of_type(kind: str) -> dict[str, dict]:
        return {lid: r.get("Properties") or {} for lid, r in resources.items() if r.get("Type") == kind}

    refs: dict[str, Any] = {lid: lid for lid in of_type("AWS::Serverless::Function")}
    refs |= {lid: lid.lower() for lid in of_type("AWS::Serverless::Api")}
    for lid, props in of_type("AWS::SQS::Queue").items():
        refs[lid] = (queue_urls or {}).get(lid, UNRESOLVED)
        name = props.get("QueueName")
        if not isinstance(name, str):
            name = f"{STACK_NAME}-{lid}-{name_suffix}" if name_suffix else lid
        refs[f"{lid}.QueueName"] = name
    refs |= {lid: bucket_name(lid, name_suffix) for lid in of_type("AWS::S3::Bucket")}
    for lid, props in of_type("AWS::Serverless::LayerVersion").items():
        if isinstance(props.get("ContentUri"), str):  # a local layer: its directory goes on sys.path
            refs[lid] = (path.parent / props["ContentUri"]).resolve()
    resolver = Resolver(doc, parameters, refs, region)
    globals_ = Globals(doc)

    apis = {
        lid: _api_spec(lid, resolver.resolve(globals_.merge("AWS::Serverless::Api", props)))
        for lid, props in of_type("AWS::Serverless::Api").items()
    }
    queue_arns = {queue_arn(refs[f"{lid}.QueueName"], region): lid for lid in of_type("AWS::SQS::Queue")}
    queues = {}
    for lid, props in of_type("AWS::SQS::Queue").items():
        props = resolver.resolve(props)
        redrive = props.get("RedrivePolicy") or {}
        keys = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
        attributes = {key: str(props[key]) for key in keys if props.get(key, UNRESOLVED) is not UNRESOLVED}
        queues[lid] = QueueSpec(
            logical_id=lid,
            name=refs[f"{lid}.QueueName"],
            attributes=attributes,
            dead_letter_queue=queue_arns.get(redrive.get("deadLetterTargetArn")),
            max_receive_count=_int_or_none(redrive.get("maxReceiveCount")),
        )
    functions = {}
    for lid, props in of_type("AWS::Serverless::Function").items():
        # Policies are the IAM check's (tests/iam_roles.py), not the runner's.
        merged = globals_.merge("AWS::Serverless::Function", props, lid)
        props = resolver.resolve({key: value for key, value in merged.items() if key != "Policies"})
        spec = _function_spec(lid, props, path.parent)
        for name, event in (props.get("Events") or {}).items():
            _add_event(spec, name, event, apis, queue_arns)
        functions[lid] = spec
    buckets = {
        lid: BucketSpec(
            lid,
            refs[lid],
            (resolver.resolve(props).get("NotificationConfiguration") or {}).get("QueueConfigurations") or [],
        )
        for lid, props in of_type("AWS::S3::Bucket").items()
    }
    return Template(path, parameters, functions, queues, apis, buckets)


def _api_spec(logical_id: str, props: dict) -> ApiSpec:
    return ApiSpec(
        logical_id=logical_id,
        stage=str(props["StageName"]),
        api_key_required=_as_bool((props.get("Auth") or {}).get("ApiKeyRequired", False)),
        binary_media_types=[t.replace("~1", "/") for t in props.get("BinaryMediaTypes") or []],
        gateway_responses=props.get("GatewayResponses") or {},
    )


def _function_spec(lid: str, props: dict, base: Path) -> FunctionSpec:
    if not isinstance(props.get("CodeUri"), str) or not isinstance(props.get("Handler"), str):
        raise TemplateError(f"{lid}: CodeUri and Handler must be local paths/strings")
    return FunctionSpec(
        logical_id=lid,
        code_dir=(base / props["CodeUri"]).resolve(),
        handler=props["Handler"],
        timeout=int(props.get("Timeout", DEFAULT_TIMEOUT)),
        memory_size=int(props.get("MemorySize", DEFAULT_MEMORY)),
        environment=dict((props.get("Environment") or {}).get("Variables") or {}),
        # Layers published elsewhere (ARNs) have no local content; the venv stands in for them.
        layer_dirs=[layer for layer in props.get("Layers") or [] if isinstance(layer, Path)],
    )


def _add_event(
    spec: FunctionSpec,
    name: str,
    event: dict,
    apis: dict[str, ApiSpec],
    queue_arns: dict[str, str],
) -> None:
    kind, props = event.get("Type"), event.get("Properties") or {}
    if kind == "Api":
        # RestApiId resolves to the API's local id (its logical id in lower case); SAM's implicit
        # API (an event without RestApiId) is not emulated: the template does not use it.
        api_id = next(lid for lid in apis if lid.lower() == props["RestApiId"])
        required = (props.get("Auth") or {}).get("ApiKeyRequired", apis[api_id].api_key_required)
        route = ApiRoute(props["Path"], str(props["Method"]).upper(), _as_bool(required), api_id)
        spec.routes.append(route)
    elif kind == "SQS":
        queue = queue_arns.get(props["Queue"])
        if queue is None:
            raise TemplateError(
                f"{spec.logical_id}.{name}: the queue {props['Queue']!r} is not in the template"
            )
        source = SqsSource(
            queue=queue,
            batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
            report_batch_item_failures="ReportBatchItemFailures"
            in (props.get("FunctionResponseTypes") or []),
            maximum_concurrency=_int_or_none((props.get("ScalingConfig") or {}).get("MaximumConcurrency")),
        )
        spec.sqs_sources.append(source)
    elif kind == "Schedule":
        spec.schedules.append(ScheduleSource(props["Schedule"], name))
