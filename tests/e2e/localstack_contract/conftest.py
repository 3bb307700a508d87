"""One LocalStack deployment for the whole session: `make localstack`'s own code (localstack/host.py
and the compose deployer), started once, since LocalStack's event source mapping runs one job at a
time. Run with `make test-localstack` (pytest -m localstack); `make test` leaves these out."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


host = _load("localstack_host", ROOT / "localstack" / "host.py")


@dataclass
class Stack:
    api_url: str
    api_key: str
    outputs: dict[str, str]
    functions: dict[str, str]  # logical id -> function name

    def client(self, service: str):
        return boto3.client(service, endpoint_url=host.ENDPOINT, region_name="us-east-1")

    def get(self, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = {"x-api-key": key} if key else {}
        return requests.get(f"{self.api_url}{path}", headers=headers, timeout=60, **kwargs)

    def post(self, path: str, body=None, key: str | None = None, headers: dict | None = None):
        headers = ({"x-api-key": key} if key else {}) | (headers or {})
        return requests.post(f"{self.api_url}{path}", json=body, headers=headers, timeout=60)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Stack:
    with host.LocalStackHost() as running:
        deployment = running.deploy()  # includes the deployer's smoke test: one job COMPLETED
        cloudformation = boto3.client("cloudformation", endpoint_url=host.ENDPOINT, region_name="us-east-1")
        resources = cloudformation.describe_stack_resources(StackName="guideline-ingest")["StackResources"]
        functions = {
            resource["LogicalResourceId"]: resource["PhysicalResourceId"]
            for resource in resources
            if resource["ResourceType"] == "AWS::Lambda::Function"
        }
        # Loopback, not localhost: no name lookups in CI.
        api_url = deployment.api_url.replace("http://localhost:", "http://127.0.0.1:")
        yield Stack(api_url, deployment.api_key, deployment.outputs, functions)


@pytest.fixture(scope="session")
def second_key(stack: Stack) -> str:
    """Another caller: a second API key in the stack's usage plan."""
    apigateway = stack.client("apigateway")
    key = apigateway.create_api_key(name=f"second-{uuid.uuid4().hex[:8]}", enabled=True)
    apigateway.create_usage_plan_key(
        usagePlanId=stack.outputs["UsagePlanId"], keyId=key["id"], keyType="API_KEY"
    )
    return key["value"]
