"""The runner with throwaway handlers: API Gateway events and responses, Lambda environments,
the SQS event source mapping and schedules. No database, so these stay fast."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import textwrap
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from devstack.apigateway import api_key_id
from devstack.esm import POLL_WAIT_SECONDS, EventSourceMapping, succeeded_records
from devstack.runtime import Invocation
from devstack.schedule import rate_seconds
from devstack.stack import Stack
from devstack.template import SqsSource

from support import wait_for

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
API_KEY = "test-key"

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  WorkVisibility: {Type: Number, Default: 30}
Globals:
  Function:
    # SAM rejects a function without a runtime; the IAM roles come from SAM's translation.
    Runtime: python3.12
    Timeout: 2
    Environment:
      Variables:
        SHARED: from-globals
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: test
      Auth: {ApiKeyRequired: true}
      BinaryMediaTypes: ["application~1octet-stream"]
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Handler: app.handler
      Events:
        Item: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/items/{item_id}", Method: GET}}
        Create: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /items, Method: POST}}
        Open:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /open, Method: GET, Auth: {ApiKeyRequired: false}}
  ConsumerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: consumer/
      Handler: app.handler
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
            ScalingConfig: {MaximumConcurrency: 2}
  TickerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ticker/
      Handler: app.handler
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(1 day)}}
  Work:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: !Ref WorkVisibility
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dead.Arn, maxReceiveCount: 2}
  Dead:
    Type: AWS::SQS::Queue
"""

ECHO = """
import base64, json, os, time

COUNT = 0
print("echo imported")


def handler(event, context):
    global COUNT
    COUNT += 1
    query = event["queryStringParameters"] or {}
    if "sleep" in query:
        time.sleep(float(query["sleep"]))
    if "raise" in query:
        raise ValueError("asked to fail")
    if "malformed" in query:
        return "not a proxy response"
    if "binary" in query:
        return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(b"\\x00\\x01binary").decode(), "isBase64Encoded": True}
    print("hello from the echo handler")
    body = {
        "event": event,
        "count": COUNT,
        "pid": os.getpid(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "env": dict(os.environ),
    }
    return {"statusCode": 200, "multiValueHeaders": {"X-Many": ["a", "b"]}, "body": json.dumps(body)}
"""

CONSUMER = """
import os, time


def handler(event, context):
    failures = []
    for record in event["Records"]:
        body = record["body"]
        first = record["attributes"]["ApproximateReceiveCount"] == "1"
        if body.startswith("poison"):
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        if body.startswith("slow") and first:
            time.sleep(30)
        with open(os.environ["OUT_FILE"], "a") as out:
            out.write(body + "\\n")
    return {"batchItemFailures": failures}
"""

TICKER = """
def handler(event, context):
    return {"got": event}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "template.yaml").write_text(TEMPLATE)
    for name, code in (("echo", ECHO), ("consumer", CONSUMER), ("ticker", TICKER)):
        (root / name).mkdir()
        (root / name / "app.py").write_text(textwrap.dedent(code))
    return root


@pytest.fixture(scope="module")
def out_file(project) -> Path:
    path = project / "consumed.txt"
    path.touch()
    return path


def sample_stack(project, **options) -> Stack:
    """The test project's stack on any free port, without a database or a .env."""
    return Stack(
        root=project, template=project / "template.yaml", port=0, read_dotenv=False, database=False, **options
    )


@pytest.fixture(scope="module")
def stack(project, out_file):
    with sample_stack(
        project,
        env={"API_KEYS": f"{API_KEY},second-key", "DEVSTACK_MAX_ENVIRONMENTS": "3"},
        parameter_overrides={"WorkVisibility": 1},
        function_env={"OUT_FILE": str(out_file)},
    ) as running:
        yield running


def request(stack, method, path, body=None, headers=None, stage=True):
    """`path` within the stage, like a client of the invoke URL; stage=False sends it as it is."""
    url = urlsplit(stack.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, url.path + path if stage else path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_exchange(stack, data: bytes) -> bytes:
    """Send bytes as they are on one connection; everything the server answers until it closes."""
    port = urlsplit(stack.base_url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def echo(stack, path, **kwargs):
    status, _headers, body = request(stack, "GET", path, headers={"x-api-key": API_KEY}, **kwargs)
    assert status == 200, body
    return json.loads(body)


def shape(value):
    """Keys, recursively: what must match between a real event and ours."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return None


# --- API Gateway ---------------------------------------------------------------------------------


def test_proxy_event_has_the_shape_and_values_api_gateway_sends(stack):
    got = echo(stack, "/items/abc%20d?x=1&x=2&flag=")
    event = got["event"]
    reference = json.loads((EVENTS / "status.json").read_text())
    assert set(event) == set(reference)
    assert shape(event["requestContext"]) == shape(reference["requestContext"])
    assert set(event["headers"]) >= {"X-Forwarded-For", "X-Forwarded-Proto", "X-Amzn-Trace-Id", "Host"}

    assert event["resource"] == "/items/{item_id}"
    assert event["path"] == "/items/abc%20d"
    assert event["pathParameters"] == {"item_id": "abc%20d"}  # REST APIs pass path parameters undecoded
    assert event["queryStringParameters"] == {"x": "2", "flag": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "flag": [""]}
    # Header names arrive in werkzeug's canonical casing (docs/local-runner.md).
    assert event["headers"]["X-Api-Key"] == API_KEY
    assert event["multiValueHeaders"]["X-Api-Key"] == [API_KEY]
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["path"] == "/test/items/abc%20d"
    assert context["stage"] == "test"
    assert context["resourcePath"] == "/items/{item_id}"
    assert context["identity"]["apiKey"] == API_KEY
    assert context["identity"]["apiKeyId"] == api_key_id(API_KEY)
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    uuid.UUID(context["requestId"])


@pytest.mark.parametrize(
    ("content_type", "sent", "base64_encoded"),
    [
        ("application/json", json.dumps({"guidelines": "Be kind."}).encode(), False),
        ("application/octet-stream", bytes(range(256)), True),
    ],
)
def test_post_bodies_text_and_binary(stack, content_type, sent, base64_encoded):
    status, _, body = request(
        stack, "POST", "/items", body=sent, headers={"x-api-key": API_KEY, "Content-Type": content_type}
    )

    event = json.loads(body)["event"]
    assert (status, event["isBase64Encoded"]) == (200, base64_encoded)
    received = base64.b64decode(event["body"]) if base64_encoded else event["body"].encode()
    assert received == sent


def test_response_headers_and_base64_bodies(stack):
    status, headers, body = request(stack, "GET", "/items/x", headers={"x-api-key": API_KEY})
    assert headers["X-Many"] == "a, b" or headers["X-Many"] in ("a", "b")
    assert headers["Content-Type"] == "application/json"
    status, headers, body = request(stack, "GET", "/items/x?binary=1", headers={"x-api-key": API_KEY})
    assert (status, body, headers["Content-Type"]) == (200, b"\x00\x01binary", "application/octet-stream")


def test_the_api_is_served_under_its_stage_only_as_api_gateway_serves_it(stack):
    assert stack.base_url.endswith("/test")
    event = echo(stack, "/items/abc")["event"]
    assert (event["path"], event["requestContext"]["path"]) == ("/items/abc", "/test/items/abc")
    for path in ("/items/abc", "/", "/other-stage/items/abc"):
        status, _, body = request(stack, "GET", path, headers={"x-api-key": API_KEY}, stage=False)
        assert (status, json.loads(body)) == (403, {"message": "Forbidden"}), path


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_routes_that_need_a_key_answer_403_without_a_valid_one(stack, key):
    headers = {"x-api-key": key} if key else {}
    status, _, body = request(stack, "GET", "/items/abc", headers=headers)
    assert status == 403
    assert json.loads(body) == {"message": "Forbidden"}  # this template customises no gateway responses


def test_routes_without_key_need_none_and_identify_none(stack):
    status, _, body = request(stack, "GET", "/open", headers={"x-api-key": API_KEY})
    identity = json.loads(body)["event"]["requestContext"]["identity"]
    assert status == 200
    assert identity["apiKey"] is None and identity["apiKeyId"] is None


def test_every_configured_key_is_accepted_and_identified_apart(stack):
    status, _, body = request(stack, "GET", "/items/a", headers={"x-api-key": "second-key"})
    assert status == 200
    assert json.loads(body)["event"]["requestContext"]["identity"]["apiKeyId"] == api_key_id("second-key")
    assert api_key_id("second-key") != api_key_id(API_KEY)


def test_unknown_route_and_wrong_method(stack):
    # Not customised by this template: API Gateway's own answer (the project's template makes it 404).
    status, _, body = request(stack, "GET", "/nothing/here", headers={"x-api-key": API_KEY})
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    # A method the path does not declare is answered as an unknown path, as API Gateway does.
    for method in ("DELETE", "TRACE", "PROPFIND"):
        status, _, body = request(stack, method, "/items", headers={"x-api-key": API_KEY})
        assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})


def test_a_body_over_10_mb_is_refused_with_413_before_it_is_read(stack):
    answer = raw_exchange(
        stack,
        b"POST /test/items HTTP/1.1\r\nHost: x\r\nx-api-key: test-key\r\n"
        b"Content-Length: 10485761\r\nContent-Type: application/json\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")


def test_handler_errors_and_malformed_results_are_502(stack):
    for query in ("raise=1", "malformed=1"):
        status, _, body = request(stack, "GET", f"/items/x?{query}", headers={"x-api-key": API_KEY})
        assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_warm_environments_keep_module_state_and_get_a_lambda_context(stack):
    first = echo(stack, "/items/1")
    second = echo(stack, "/items/2")
    assert second["pid"] == first["pid"]
    assert second["count"] == first["count"] + 1
    assert second["function_name"] == "EchoFunction"
    assert second["memory"] == "128"
    assert second["arn"].endswith(":function:EchoFunction")
    assert 0 < second["remaining_ms"] <= 2000
    env = second["env"]
    assert env["SHARED"] == "from-globals"
    assert env["AWS_ENDPOINT_URL"] == stack.sqs_endpoint
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "2"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"  # fake; roles are not enforced locally
    assert "API_KEYS" not in env  # runner settings are not function variables


def test_a_new_environment_starts_when_all_are_busy_up_to_the_cap(stack):
    results = []

    def call():
        results.append(echo(stack, "/items/c?sleep=0.5"))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = {result["pid"] for result in results}
    assert len(results) == 5
    assert 1 < len(pids) <= 3  # DEVSTACK_MAX_ENVIRONMENTS
    assert stack.pools["EchoFunction"].size <= 3


def test_without_a_setting_a_function_gets_one_environment_per_core_and_one_more(project, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    with sample_stack(project, env={"DEVSTACK_MAX_ENVIRONMENTS": ""}) as running:
        assert running.pools["EchoFunction"].max_environments == 5
        assert running.pools["TickerFunction"].max_environments == 5
        # An SQS consumer keeps the template's MaximumConcurrency, whatever the cores.
        assert running.pools["ConsumerFunction"].max_environments == 2


def test_the_timeout_kills_the_environment_and_the_next_call_cold_starts(stack):
    stack.kill_environments("echo")  # start from a single environment
    before = echo(stack, "/items/t")
    status, _, _body = request(stack, "GET", "/items/t?sleep=10", headers={"x-api-key": API_KEY})
    assert status == 502
    after = echo(stack, "/items/t")
    assert after["pid"] != before["pid"]
    assert after["count"] == 1  # a fresh module: the cold start happened again
    timed_out = stack.invoke("EchoFunction", {"queryStringParameters": {"sleep": "10"}})
    assert timed_out.timed_out and timed_out.error_type == "Sandbox.Timedout"


def test_handler_output_reaches_the_log_with_the_environment_label(stack, caplog):
    def logged() -> bool:
        lines = [(getattr(r, "source", ""), r.getMessage()) for r in caplog.records]
        return any(source.startswith("echo#") and "hello from the echo handler" in m for source, m in lines)

    with caplog.at_level(logging.INFO, logger="devstack.functions"):
        echo(stack, "/items/log")
        # A thread relays each environment's output, so a line may land just after the response.
        assert wait_for(logged, seconds=5, every=0.05)


def test_an_import_error_is_reported_like_lambda(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "app.py").write_text("import no_such_module\n")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Broken:\n    Type: AWS::Serverless::Function\n"
        "    Properties: {CodeUri: broken/, Handler: app.handler, Runtime: python3.12}\n"
    )
    template = tmp_path / "template.yaml"
    with Stack(
        root=tmp_path, template=template, port=0, read_dotenv=False, database=False, api=False
    ) as broken:
        invocation = broken.invoke("Broken", {})
    assert invocation.error_type == "Runtime.ImportModuleError"
    assert "no_such_module" in invocation.payload["errorMessage"]


# --- SQS event source mapping and schedules -------------------------------------------------------


def test_records_are_built_like_lambda_builds_them(stack):
    sqs = stack.sqs()
    marker = f"poison-shape-{uuid.uuid4()}"
    captured = {}
    original = stack.pools["ConsumerFunction"].invoke

    def spy(event):
        for record in event["Records"]:
            if record["body"] == marker:
                captured["record"] = record
        return original(event)

    stack.pools["ConsumerFunction"].invoke = spy
    try:
        sqs.send_message(QueueUrl=stack.queue_urls["Work"], MessageBody=marker)
        record = wait_for(lambda: captured.get("record"))
    finally:
        del stack.pools["ConsumerFunction"].invoke
    reference = json.loads((EVENTS / "process.json").read_text())["Records"][0]
    assert shape(record) == shape(reference)
    assert record["eventSourceARN"].endswith(":" + stack.template.queues["Work"].name)


def test_successes_are_deleted_and_poison_goes_to_the_dead_letter_queue(stack, out_file):
    sqs = stack.sqs()
    tag = uuid.uuid4().hex
    for body in (f"ok-{tag}-1", f"poison-{tag}", f"ok-{tag}-2"):
        sqs.send_message(QueueUrl=stack.queue_urls["Work"], MessageBody=body)

    wait_for(lambda: out_file.read_text().count(tag) >= 2)

    def dead_letters():
        messages = sqs.receive_message(
            QueueUrl=stack.queue_urls["Dead"], MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0
        ).get("Messages", [])
        return [m for m in messages if tag in m["Body"]]

    (dead,) = wait_for(dead_letters)
    assert dead["Body"] == f"poison-{tag}"
    assert out_file.read_text().count(tag) == 2  # each success processed once


class _SucceedingPool:
    """A function that records what it is invoked with, waits until `finish` is set, and succeeds."""

    spec = SimpleNamespace(short_name="succeeding")

    def __init__(self, finish: threading.Event | None = None):
        self.invoked: list[dict] = []
        self.finish = finish

    def invoke(self, event):
        self.invoked.extend(event["Records"])
        if self.finish is not None:
            self.finish.wait(10)
        return Invocation(ok=True, payload=None, request_id="r", duration_ms=1.0)


def _mapping_with_messages(stack, pool: _SucceedingPool, concurrency: int, messages: int):
    """A BatchSize 1 mapping onto a new queue holding `messages` numbered messages, and a function
    that counts the queue's (visible, in flight) messages."""
    sqs = stack.sqs()
    url = sqs.create_queue(QueueName=f"mapping-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(messages)]
    )
    source = SqsSource("Mapped", 1, report_batch_item_failures=True, maximum_concurrency=concurrency)
    mapping = EventSourceMapping(
        source, url, "arn:aws:sqs:us-east-1:000000000000:m", pool, stack.sqs_endpoint
    )

    def counts() -> tuple[int, int]:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        visible, in_flight = "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
        return int(attributes[visible]), int(attributes[in_flight])

    return mapping, counts


def test_records_that_succeed_are_deleted_even_when_the_mapping_stops_right_after(stack):
    """Nothing may be left in flight when every record succeeded, also for the records of the last
    invocations before a stop."""
    pool = _SucceedingPool()
    mapping, counts = _mapping_with_messages(stack, pool, concurrency=3, messages=10)
    mapping.start()
    try:
        wait_for(lambda: len(pool.invoked) >= 10)
    finally:
        mapping.stop()
    assert sorted(record["body"] for record in pool.invoked) == [str(i) for i in range(10)]
    assert counts() == (0, 0)


def test_a_poller_receives_its_next_batch_after_its_invocation(stack):
    """One batch in flight per poller, as Lambda's pollers wait for the function; the invoked one is
    deleted once its invocation succeeds, and the others were never received."""
    finish = threading.Event()
    pool = _SucceedingPool(finish)
    mapping, counts = _mapping_with_messages(stack, pool, concurrency=1, messages=3)
    mapping.start()
    try:
        wait_for(lambda: pool.invoked and counts() == (2, 1))  # one invoked, two left
        time.sleep(POLL_WAIT_SECONDS)  # a poller that read ahead would have by now
        assert counts() == (2, 1) and len(pool.invoked) == 1
        mapping.signal_stop()
    finally:
        finish.set()
        mapping.stop()
    assert [record["body"] for record in pool.invoked] == ["0"]
    assert counts() == (2, 0)


def test_a_killed_environment_fails_its_batch_and_the_message_comes_back(stack, out_file):
    body = f"slow-{uuid.uuid4().hex}"
    stack.sqs().send_message(QueueUrl=stack.queue_urls["Work"], MessageBody=body)
    wait_for(lambda: stack.pools["ConsumerFunction"].size > 0 and _busy(stack))
    assert stack.kill_environments("consumer") >= 1
    wait_for(lambda: body in out_file.read_text())  # redelivered (receive count 2), then processed


def _busy(stack) -> bool:
    pool = stack.pools["ConsumerFunction"]
    return len(pool._all) > len(pool._idle)


def test_the_sqs_endpoint_can_go_down_and_come_back(stack, out_file):
    stack.stop_sqs()
    with pytest.raises(Exception):  # noqa: B017 - any connection error will do
        stack.sqs().send_message(QueueUrl=stack.queue_urls["Work"], MessageBody="lost")
    stack.start_sqs()
    body = f"ok-after-outage-{uuid.uuid4().hex}"
    stack.sqs().send_message(QueueUrl=stack.queue_urls["Work"], MessageBody=body)
    wait_for(lambda: body in out_file.read_text())


def test_run_schedule_sends_an_eventbridge_scheduled_event(stack):
    invocation = stack.run_schedule("ticker")
    assert invocation.ok
    event = invocation.payload["got"]
    reference = json.loads((EVENTS / "sweeper.json").read_text())
    assert shape(event) == shape(reference)
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"


def test_redrive_moves_dead_letters_back(stack):
    sqs = stack.sqs()
    sqs.send_message(QueueUrl=stack.queue_urls["Dead"], MessageBody=f"poison-redriven-{uuid.uuid4().hex}")
    assert stack.redrive() >= 1


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions(expression, seconds):
    assert rate_seconds(expression) == seconds


def test_cron_expressions_are_not_run():
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_batch_item_failures_follow_lambda_rules():
    records = [{"messageId": "a"}, {"messageId": "b"}]
    assert succeeded_records(records, None, True) == records
    assert succeeded_records(records, {"batchItemFailures": []}, True) == records
    assert succeeded_records(records, {"batchItemFailures": [{"itemIdentifier": "a"}]}, True) == [records[1]]
    assert succeeded_records(records, {"batchItemFailures": [{"itemIdentifier": "zzz"}]}, True) == []
    assert succeeded_records(records, {"batchItemFailures": [{"itemIdentifier": ""}]}, True) == []
    assert succeeded_records(records, {"batchItemFailures": [{"itemIdentifier": "a"}]}, False) == records


def _project_stack(env: dict[str, str]) -> Stack:
    return Stack(
        port=0,
        root=ROOT,
        read_dotenv=False,
        # Only the functions' configuration is inspected: nothing that would run is started.
        database=False,
        api=False,
        event_sources=False,
        schedules=False,
        env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", **env},
    )


def test_functions_get_the_template_environment_as_cloudformation_sets_it():
    """Issue 11: empty values stay "" (the runner used to drop them, hiding defect 1)."""
    from devstack.template import UNRESOLVED, load_template

    with _project_stack({"OPENAI_API_KEY": "sk-real"}) as stack:
        overrides = {"OpenAIApiKey": "sk-real", "OpenAIBaseUrl": ""}
        deployed = load_template(
            ROOT / "infra" / "template.yaml", overrides, stack.queue_urls, name_suffix=stack.name_suffix
        )
        for logical_id, spec in deployed.functions.items():
            env = stack.pools[logical_id].environment
            for name, value in spec.environment.items():
                if value is not UNRESOLVED:
                    assert env[name] == str(value), (logical_id, name)
        process = stack.pools["ProcessFunction"].environment
    assert process["OPENAI_BASE_URL"] == ""
    assert process["OPENAI_API_KEY"] == "sk-real"


def test_the_offline_llm_reaches_the_process_function_through_the_template_parameters():
    with _project_stack({}) as stack:
        process = stack.pools["ProcessFunction"].environment
        assert stack.template.parameters["OpenAIBaseUrl"] == stack.offline_llm.url
        assert process["OPENAI_BASE_URL"] == stack.offline_llm.url
        assert process["OPENAI_API_KEY"] == stack.template.parameters["OpenAIApiKey"]
        assert "OPENAI_BASE_URL" not in stack.pools["SubmitFunction"].environment
