"""The local runner enforces each function's role as AWS would: a missing permission is AccessDenied.

One stack runs a copy of the template whose process function lost its SendMessage on the webhook
queue (the defect of issue 11); the default template's webhook path is in test_features.py.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest
import requests

from devstack.iam import role_credentials
from devstack.sqs import LocalSQS, sqs_client
from devstack.stack import PROJECT_ROOT, Stack
from devstack.template import load_yaml

from support import WebhookReceiver, local_only, wait_for

pytestmark = pytest.mark.e2e

KEY = "iam-key"
SETTINGS = local_only(KEY, ALLOW_LOOPBACK_CALLBACKS="true")


def template_without_webhook_send(root) -> object:
    """The template, with the process function's SendMessage on the webhook queue removed."""
    text = (PROJECT_ROOT / "infra" / "template.yaml").read_text()
    policy = "        - SQSSendMessagePolicy:\n            QueueName: !GetAtt WebhookQueue.QueueName\n"
    process = text.index("  ProcessFunction:")
    start = text.index(policy, process)
    assert start < text.index("  SweeperFunction:"), "the process function's webhook policy moved"
    (root / "infra").mkdir()
    # CodeUri and ContentUri are relative to the template: the copy sees the real code.
    for name in ("functions", "layers"):
        (root / name).symlink_to(PROJECT_ROOT / name)
    path = root / "infra" / "template.yaml"
    path.write_text(text[:start] + text[start + len(policy) :])
    doc = load_yaml(path)
    assert "WebhookQueue" not in str(doc["Resources"]["ProcessFunction"]["Properties"]["Policies"])
    return path


@pytest.fixture(scope="module")
def crippled(tmp_path_factory):
    root = tmp_path_factory.mktemp("iam")
    template = template_without_webhook_send(root)
    with Stack(port=0, template=template, data_dir=root / "data", read_dotenv=False, env=SETTINGS) as stack:
        yield stack


def test_a_missing_permission_is_access_denied_and_the_webhook_is_not_queued(crippled, caplog):
    receiver = WebhookReceiver()
    try:
        with caplog.at_level(logging.WARNING, logger="devstack.iam"):
            response = requests.post(
                f"{crippled.base_url}/jobs",
                headers={"x-api-key": KEY},
                json={"guidelines": f"Wear badges ({uuid.uuid4().hex}).", "callback_url": receiver.url},
                timeout=30,
            )
            assert response.status_code == 202, response.text
            event_id = response.json()["event_id"]
            job = wait_for(
                lambda: (
                    (
                        j := requests.get(
                            f"{crippled.base_url}/jobs/{event_id}", headers={"x-api-key": KEY}, timeout=30
                        ).json()
                    )["status"]
                    == "COMPLETED"
                    and j
                )
            )
            webhook_queue = crippled.template.queues["WebhookQueue"].arn
            wait_for(lambda: ("ProcessFunction", "sqs:SendMessage", webhook_queue) in crippled.iam_denials)
        # The job is done, but its webhook waits for the sweeper, as it did on AWS.
        time.sleep(2)
        assert job["webhook"]["status"] == "PENDING"
        assert receiver.deliveries == []
        assert any("ProcessFunction may not sqs:SendMessage" in r.getMessage() for r in caplog.records)
    finally:
        receiver.stop()


def wiring_only(**extra) -> dict:
    """Stack options that start SQS and the IAM check only (no database, API, pollers or schedules)."""
    return dict(
        port=0, read_dotenv=False, database=False, api=False, schedules=False, event_sources=False, **extra
    )


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """A stack on an SQS endpoint it does not run (as on LocalStack's): the IAM gateway checks there."""
    upstream = LocalSQS({})
    upstream.start()
    try:
        with Stack(
            data_dir=tmp_path_factory.mktemp("external"),
            env=SETTINGS,
            **wiring_only(sqs_endpoint=upstream.endpoint),
        ) as stack:
            yield stack
    finally:
        upstream.close()


@pytest.fixture(params=["server", "gateway"])
def enforcing(request, crippled, external):
    """The two places a role is checked: in the SQS server the stack runs, and in the gateway."""
    return crippled if request.param == "server" else external


def test_a_role_gets_the_error_sqs_gives(enforcing):
    """AccessDenied as botocore reports it from SQS (JSON protocol, query-compatible error code)."""
    from botocore.exceptions import ClientError

    assert (enforcing.iam_gateway is None) == (enforcing.external_sqs is None)
    process = sqs_client(enforcing.function_sqs_endpoint, credentials=role_credentials("ProcessFunction"))
    status = sqs_client(enforcing.function_sqs_endpoint, credentials=role_credentials("StatusFunction"))
    queue = enforcing.queue_urls["JobsQueue"]
    with pytest.raises(ClientError) as denied:
        status.send_message(QueueUrl=queue, MessageBody="{}")
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "is not authorized to perform: sqs:sendmessage" in error["Message"]
    # The SQS server reports its denials to the runner as they happen, beside the answer.
    denial = ("StatusFunction", "sqs:SendMessage", enforcing.template.queues["JobsQueue"].arn)
    assert wait_for(lambda: denial in enforcing.iam_denials, seconds=5)
    with pytest.raises(ClientError):
        status.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    # What the role allows passes, and the runner's own credentials are not checked.
    process.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    sqs_client(enforcing.function_sqs_endpoint).send_message(
        QueueUrl=enforcing.queue_urls["WebhookDeadLetterQueue"], MessageBody="{}"
    )


def test_the_query_protocol_gets_sqs_s_403(enforcing):
    queue = enforcing.queue_urls["JobsQueue"]
    key = role_credentials("StatusFunction")["AWS_ACCESS_KEY_ID"]
    response = requests.post(
        enforcing.function_sqs_endpoint,
        data={"Action": "SendMessage", "QueueUrl": queue, "MessageBody": "{}", "Version": "2012-11-05"},
        headers={
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/us-east-1/sqs/aws4_request, x"
        },
        timeout=10,
    )
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert response.headers["x-amzn-query-error"] == "AccessDenied;Sender"


def test_the_gateway_refuses_a_key_of_no_role(external):
    """Only the runner and its functions call through the gateway: any other key is invalid."""
    from botocore.exceptions import ClientError

    stranger = {**role_credentials("StatusFunction"), "AWS_ACCESS_KEY_ID": "ASIALOCALSTRANGER"}
    with pytest.raises(ClientError) as refused:
        sqs_client(external.function_sqs_endpoint, credentials=stranger).list_queues()
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_the_switch_turns_enforcement_off(tmp_path):
    with Stack(data_dir=tmp_path, env={**SETTINGS, "DEVSTACK_IAM": "off"}, **wiring_only()) as stack:
        assert stack.iam_gateway is None
        status = sqs_client(stack.function_sqs_endpoint, credentials=role_credentials("StatusFunction"))
        status.send_message(QueueUrl=stack.queue_urls["JobsQueue"], MessageBody="{}")
        assert stack.iam_denials == []
