"""The functions as Lambda sets them up: their environment from infra/template.yaml, their code
loaded from its folder with the core layer on the path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from devstack.template import load_yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
FLOOR = ROOT / "bench" / "floor_function"
# What Lambda itself sets, and fake credentials: nothing here reaches AWS.
LAMBDA = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def template() -> dict:
    return load_yaml(TEMPLATE)


def parameter(name: str) -> str:
    return str(template()["Parameters"][name]["Default"])


def names() -> dict[str, str]:
    """Each function's folder name (functions/<name>) -> its logical id in the template."""
    return {
        Path(resource["Properties"]["CodeUri"]).name: logical_id
        for logical_id, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def environment(function: str, **overrides: str) -> dict[str, str]:
    """Globals' and the function's variables with every parameter at its default; a reference to a
    resource (a queue URL, a bucket, a secret) gets a placeholder unless `overrides` name it."""
    document = template()
    if function not in names():  # the floor
        return LAMBDA | {"AWS_LAMBDA_FUNCTION_NAME": function} | overrides
    parameters = {name: str(spec.get("Default", "")) for name, spec in document["Parameters"].items()}
    resources = document["Resources"]
    absent = object()

    def value(node):
        if isinstance(node, dict) and "Ref" in node:
            name = node["Ref"]
            if name == "AWS::NoValue":
                return absent
            if name in parameters:
                return parameters[name]
            if resources.get(name, {}).get("Type") == "AWS::SQS::Queue":
                return f"http://127.0.0.1:9/000000000000/{name}"
            return name.lower()
        if isinstance(node, dict) and "Fn::If" in node:
            condition, when_true, when_false = node["Fn::If"]
            return value(when_true if truth(document["Conditions"][condition]) else when_false)
        if isinstance(node, dict):
            return "placeholder-for-a-value-only-aws-resolves"  # Fn::Sub, Fn::GetAtt: secrets, ARNs
        return str(node).lower() if isinstance(node, bool) else str(node)

    def truth(node) -> bool:
        if "Fn::Not" in node:
            return not truth(node["Fn::Not"][0])
        if "Fn::Equals" in node:
            left, right = (value(side) for side in node["Fn::Equals"])
            return left == right
        if "Condition" in node:
            return truth(document["Conditions"][node["Condition"]])
        raise ValueError(f"a condition bench.functions cannot evaluate: {node}")

    variables = dict(document["Globals"]["Function"]["Environment"]["Variables"])
    own = resources[names()[function]]["Properties"].get("Environment", {})
    variables |= own.get("Variables", {})
    resolved = {name: value(node) for name, node in variables.items()}
    return (
        LAMBDA
        | {"AWS_LAMBDA_FUNCTION_NAME": function}
        | {name: text for name, text in resolved.items() if text is not absent}
        | overrides
    )


def code_dir(function: str) -> Path:
    return FLOOR if function == "floor" else ROOT / "functions" / function


def load(function: str) -> ModuleType:
    """Import the function's app.py as Lambda does (its folder and the layer on sys.path), under its own
    name; the environment must be set before."""
    for path in (str(ROOT / "layers" / "core"), str(code_dir(function))):
        if path not in sys.path:
            sys.path.insert(0, path)
    spec = importlib.util.spec_from_file_location(f"bench_{function}_app", code_dir(function) / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
