"""What the runner needs from the SAM template: functions, their events, queues and API settings.

The template is the single source of truth, so nothing here has defaults for routes, queues or
timeouts beyond the ones SAM and AWS themselves apply. CloudFormation intrinsics are resolved
against parameters (with overrides, like `sam deploy --parameter-overrides`) and against the local
stand-ins for resources (queue URLs and ARNs); what only exists in the cloud stays `UNRESOLVED`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs match the queues it creates
STACK_NAME = "guideline-ingest-local"

# SAM's own defaults, applied when the template does not say.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
DEFAULT_BATCH_SIZE = 10
IMPLICIT_API = "ServerlessRestApi"
IMPLICIT_STAGE = "Prod"


class _Unresolved:
    """A value that only exists in AWS (a secret ARN, an imported value...)."""

    def __repr__(self) -> str:
        return "UNRESOLVED"


UNRESOLVED = _Unresolved()
NO_VALUE = object()  # AWS::NoValue: the property is removed


class TemplateError(ValueError):
    pass


# --- YAML with CloudFormation short-form tags -------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with tag constructors only


# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRoute:
    path: str  # as in the template, e.g. /jobs/{event_id}
    method: str  # upper case, or ANY
    api_key_required: bool
    api_id: str  # logical id of the API resource
    event_name: str


@dataclass(frozen=True)
class SqsSource:
    queue: str  # logical id of the queue
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None
    enabled: bool = True


@dataclass(frozen=True)
class ScheduleSource:
    expression: str
    enabled: bool
    event_input: Any  # the Input property (a JSON string) or None
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
    reserved_concurrency: int | None
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
    """A bucket without a BucketName is named as CloudFormation would, in the lower case S3 wants."""
    return f"{STACK_NAME}-{logical_id}-{name_suffix or 'local'}".lower()


# --- intrinsic functions -----------------------------------------------------------------------


class _Resolver:
    def __init__(self, doc: dict, parameters: dict[str, str], region: str, refs: dict[str, Any]):
        self.doc = doc
        self.parameters = parameters
        self.region = region
        self.refs = refs  # logical id -> local value of Ref
        self.resources = doc.get("Resources") or {}
        self._conditions: dict[str, bool] = {}
        self.list_parameters = {
            name
            for name, spec in (doc.get("Parameters") or {}).items()
            if str(spec.get("Type", "")).startswith(("List<", "CommaDelimitedList"))
        }

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }.get(name, UNRESOLVED)

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            if name in self.list_parameters:
                return self.parameters[name].split(",")
            return self.parameters[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.refs:
            return self.refs[name]
        if (self.resources.get(name) or {}).get("Type") == "AWS::S3::Bucket":
            return self._bucket(name)
        if name in self.resources or "." in name:  # SAM's `!Ref Api.Stage` style references included
            return UNRESOLVED
        raise TemplateError(f"!Ref to unknown name {name!r}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"!GetAtt on unknown resource {logical_id!r}")
        if resource.get("Type") == "AWS::S3::Bucket":
            name = self.refs[logical_id]
            values = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
            return values.get(attribute, UNRESOLVED)
        if resource.get("Type") == "AWS::SQS::Queue":
            name = self.refs.get(f"{logical_id}.QueueName", logical_id)
            values = {"Arn": queue_arn(name, self.region), "QueueName": name}
            values["QueueUrl"] = self.refs.get(logical_id, UNRESOLVED)
            return values.get(attribute, UNRESOLVED)
        if resource.get("Type") == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{self._bucket(logical_id)}"
        return UNRESOLVED

    def _bucket(self, logical_id: str) -> str:
        name = (self.resources[logical_id].get("Properties") or {}).get("BucketName")
        return name if isinstance(name, str) else bucket_name(logical_id)

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
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
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
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(*[self.resolve(p) for p in parts])
        if name == "Sub":
            return self._sub(arg)
        if name == "If":
            condition, if_true, if_false = arg
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Equals":
            left, right = (self.resolve(a) for a in arg)
            if UNRESOLVED in (left, right):
                return UNRESOLVED
            return str(left) == str(right)
        if name == "Not":
            value = self.resolve(arg[0])
            return UNRESOLVED if value is UNRESOLVED else not value
        if name in ("And", "Or"):
            values = [self.resolve(a) for a in arg]
            if UNRESOLVED in values:
                return UNRESOLVED
            return all(values) if name == "And" else any(values)
        if name == "Join":
            separator, items = arg
            items = self.resolve(items)
            if items is UNRESOLVED or UNRESOLVED in items:
                return UNRESOLVED
            return separator.join(str(i) for i in items)
        # Functions the template does not use (ImportValue, Select...): left to AWS.
        return UNRESOLVED

    def _sub(self, arg: Any) -> Any:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}
        unresolved = False

        def replace(match: re.Match) -> str:
            nonlocal unresolved
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            if value is UNRESOLVED:
                unresolved = True
                return ""
            return str(value)

        result = re.sub(r"\$\{([^}]+)\}", replace, text)
        return UNRESOLVED if unresolved else result


# --- loading -----------------------------------------------------------------------------------


def _parameters(doc: dict, overrides: dict[str, str]) -> dict[str, str]:
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


def _merge_globals(doc: dict, properties: dict) -> dict:
    """SAM's Globals rules: maps merge (function wins), lists concatenate, scalars are replaced."""
    defaults = (doc.get("Globals") or {}).get("Function") or {}

    def merge(base: Any, own: Any) -> Any:
        if isinstance(base, dict) and isinstance(own, dict):
            merged = dict(base)
            for key, value in own.items():
                merged[key] = merge(base[key], value) if key in base else value
            return merged
        if isinstance(base, list) and isinstance(own, list):
            return base + own
        return own

    return merge(defaults, properties)


def _as_int(value: Any, what: str) -> int:
    if value is UNRESOLVED:
        raise TemplateError(f"{what} is not resolvable locally")
    return int(value)


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
    parameters = _parameters(doc, dict(parameter_overrides or {}))
    resources = doc.get("Resources") or {}
    base = path.parent

    refs: dict[str, Any] = {}
    for logical_id, resource in resources.items():
        props = resource.get("Properties") or {}
        kind = resource.get("Type")
        if kind == "AWS::SQS::Queue":
            refs[logical_id] = (queue_urls or {}).get(logical_id, UNRESOLVED)
            name = props.get("QueueName")
            if not isinstance(name, str):
                name = f"{STACK_NAME}-{logical_id}-{name_suffix}" if name_suffix else logical_id
            refs[f"{logical_id}.QueueName"] = name
        elif kind == "AWS::S3::Bucket":
            name = props.get("BucketName")
            if not isinstance(name, str):  # CloudFormation's names are lower case
                name = bucket_name(logical_id, name_suffix)
            refs[logical_id] = name
        elif kind == "AWS::Serverless::Function":
            refs[logical_id] = logical_id
        elif kind == "AWS::Serverless::Api":
            refs[logical_id] = logical_id.lower()
        elif kind == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            # A local layer resolves to its directory: it goes on the function's sys.path.
            refs[logical_id] = (base / props["ContentUri"]).resolve()
    resolver = _Resolver(doc, parameters, region, refs)

    def included(resource: dict) -> bool:
        condition = resource.get("Condition")
        return condition is None or resolver.condition(condition)

    apis: dict[str, ApiSpec] = {}
    api_globals = (doc.get("Globals") or {}).get("Api") or {}
    for lid, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::Api" and included(resource):
            props = resolver.resolve({**api_globals, **(resource.get("Properties") or {})})
            apis[lid] = _api_spec(lid, props)

    queues = {
        lid: _queue_spec(lid, resolver.resolve(r.get("Properties") or {}), resolver)
        for lid, r in resources.items()
        if r.get("Type") == "AWS::SQS::Queue" and included(r)
    }

    functions: dict[str, FunctionSpec] = {}
    for lid, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function" or not included(resource):
            continue
        props = _merge_globals(doc, resource.get("Properties") or {})
        spec = _function_spec(lid, props, resolver, base)
        for event_name, event in (props.get("Events") or {}).items():
            _add_event(spec, event_name, event, resolver, apis, api_globals)
        functions[lid] = spec
    buckets = {}
    for lid, resource in resources.items():
        if resource.get("Type") == "AWS::S3::Bucket" and included(resource):
            notifications = resolver.resolve(
                (resource.get("Properties") or {}).get("NotificationConfiguration") or {}
            )
            buckets[lid] = BucketSpec(lid, refs[lid], list(notifications.get("QueueConfigurations") or []))
    return Template(
        path=path, parameters=parameters, functions=functions, queues=queues, apis=apis, buckets=buckets
    )


def _api_spec(logical_id: str, props: dict) -> ApiSpec:
    auth = props.get("Auth") or {}
    return ApiSpec(
        logical_id=logical_id,
        stage=str(props.get("StageName", IMPLICIT_STAGE)),
        api_key_required=_as_bool(auth.get("ApiKeyRequired", False)),
        binary_media_types=[t.replace("~1", "/") for t in props.get("BinaryMediaTypes") or []],
        gateway_responses=props.get("GatewayResponses") or {},
    )


def _queue_spec(logical_id: str, props: dict, resolver: _Resolver) -> QueueSpec:
    attributes = {}
    for key in (
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "DelaySeconds",
        "MaximumMessageSize",
        "ReceiveMessageWaitTimeSeconds",
        "FifoQueue",
        "ContentBasedDeduplication",
    ):
        if key in props and props[key] is not UNRESOLVED:
            value = props[key]
            attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
    redrive = props.get("RedrivePolicy") or {}
    target = redrive.get("deadLetterTargetArn")
    dlq = next((lid for lid, arn in _queues_by_arn(resolver).items() if arn == target), None)
    max_receive = redrive.get("maxReceiveCount")
    return QueueSpec(
        logical_id=logical_id,
        name=resolver.refs[f"{logical_id}.QueueName"],
        attributes=attributes,
        dead_letter_queue=dlq,
        max_receive_count=int(max_receive) if max_receive not in (None, UNRESOLVED) else None,
    )


def _function_spec(lid: str, props: dict, resolver: _Resolver, base: Path) -> FunctionSpec:
    code_uri = resolver.resolve(props.get("CodeUri"))
    handler = resolver.resolve(props.get("Handler"))
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"{lid}: CodeUri and Handler must be local paths/strings")
    env = resolver.resolve(((props.get("Environment") or {}).get("Variables")) or {})
    # Layers published elsewhere (ARNs) have no local content; the venv stands in for them.
    layer_dirs = [layer for layer in resolver.resolve(props.get("Layers") or []) if isinstance(layer, Path)]
    reserved = resolver.resolve(props.get("ReservedConcurrentExecutions"))
    return FunctionSpec(
        logical_id=lid,
        code_dir=(base / code_uri).resolve(),
        handler=handler,
        timeout=_as_int(resolver.resolve(props.get("Timeout", DEFAULT_TIMEOUT)), f"{lid} Timeout"),
        memory_size=_as_int(resolver.resolve(props.get("MemorySize", DEFAULT_MEMORY)), f"{lid} MemorySize"),
        environment=dict(env),
        layer_dirs=layer_dirs,
        reserved_concurrency=int(reserved) if reserved not in (None, UNRESOLVED) else None,
    )


def _add_event(
    spec: FunctionSpec, name: str, event: dict, resolver: _Resolver, apis: dict, api_globals: dict
) -> None:
    kind = event.get("Type")
    props = event.get("Properties") or {}
    if kind == "Api":
        rest_api = props.get("RestApiId")
        api_id = rest_api["Ref"] if isinstance(rest_api, dict) and "Ref" in rest_api else IMPLICIT_API
        if api_id not in apis:
            apis[api_id] = _api_spec(api_id, resolver.resolve(api_globals))
        auth = resolver.resolve(props.get("Auth") or {})
        required = auth.get("ApiKeyRequired", apis[api_id].api_key_required)
        spec.routes.append(
            ApiRoute(
                path=resolver.resolve(props["Path"]),
                method=str(resolver.resolve(props["Method"])).upper(),
                api_key_required=_as_bool(required),
                api_id=api_id,
                event_name=name,
            )
        )
    elif kind == "SQS":
        props = resolver.resolve(props)
        queue_ref = props["Queue"]
        queue = next((lid for lid, q in _queues_by_arn(resolver).items() if q == queue_ref), None)
        if queue is None:
            raise TemplateError(f"{spec.logical_id}.{name}: the queue {queue_ref!r} is not in the template")
        scaling = props.get("ScalingConfig") or {}
        concurrency = scaling.get("MaximumConcurrency")
        spec.sqs_sources.append(
            SqsSource(
                queue=queue,
                batch_size=int(props.get("BatchSize", DEFAULT_BATCH_SIZE)),
                batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in (props.get("FunctionResponseTypes") or []),
                maximum_concurrency=int(concurrency) if concurrency not in (None, UNRESOLVED) else None,
                enabled=_as_bool(props.get("Enabled", True)),
            )
        )
    elif kind in ("Schedule", "ScheduleV2"):
        props = resolver.resolve(props)
        expression = props.get("Schedule") or props.get("ScheduleExpression")
        state = props.get("State")
        enabled = _as_bool(props.get("Enabled", True)) and state != "DISABLED"
        spec.schedules.append(
            ScheduleSource(
                expression=expression, enabled=enabled, event_input=props.get("Input"), event_name=name
            )
        )


def _queues_by_arn(resolver: _Resolver) -> dict[str, str]:
    return {
        lid: queue_arn(resolver.refs[f"{lid}.QueueName"], resolver.region)
        for lid, r in resolver.resources.items()
        if r.get("Type") == "AWS::SQS::Queue"
    }
