"""S3 in the local runner: each bucket of the template with its notifications to its queues, the
bucket's name in the functions' environment from `!Ref`, presigned POSTs a client on this machine
can use, and API Gateway's binary media types deciding when the proxy event's body is base64."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import pytest

from devstack.stack import Stack

from support import wait_for

API_KEY = "s3-test-key"

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Globals:
  Function: {Runtime: python3.12, Timeout: 10}
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth: {ApiKeyRequired: true}
      BinaryMediaTypes: ["application~1pdf"]
  FrontFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: front/
      Handler: app.handler
      Environment: {Variables: {BUCKET: !Ref Files}}
      Events:
        Upload: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /uploads, Method: POST}}
  UploadedFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: uploaded/
      Handler: app.handler
      Events:
        Uploads: {Type: SQS, Properties: {Queue: !GetAtt Uploads.Arn, BatchSize: 1}}
  Files:
    Type: AWS::S3::Bucket
    Properties:
      NotificationConfiguration:
        QueueConfigurations:
          - Event: s3:ObjectCreated:*
            Queue: !GetAtt Uploads.Arn
            Filter: {S3Key: {Rules: [{Name: prefix, Value: incoming/}]}}
  Uploads:
    Type: AWS::SQS::Queue
"""

FRONT = """
import json, os
import boto3

def handler(event, context):
    post = boto3.client("s3").generate_presigned_post(
        os.environ["BUCKET"], "incoming/doc.pdf", Conditions=[["content-length-range", 1, 1000]]
    )
    seen = {"isBase64Encoded": event["isBase64Encoded"], "body": event["body"]}
    seen["bucket"] = os.environ["BUCKET"]
    return {"statusCode": 200, "body": json.dumps({"post": post, "seen": seen})}
"""

UPLOADED = """
import json, os

def handler(event, context):
    with open(os.environ["OUT_FILE"], "a") as out:
        for record in event["Records"]:
            out.write(record["body"] + "\\n")
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3project")
    (root / "template.yaml").write_text(TEMPLATE)
    for name, code in (("front", FRONT), ("uploaded", UPLOADED)):
        (root / name).mkdir()
        (root / name / "app.py").write_text(textwrap.dedent(code))
    out = root / "uploaded.txt"
    out.touch()
    with Stack(
        root=root,
        template=root / "template.yaml",
        port=0,
        read_dotenv=False,
        database=False,
        env={"API_KEYS": API_KEY},
        function_env={"OUT_FILE": str(out)},
    ) as running:
        running.out_file = out
        yield running


def post(stack, body: bytes, content_type: str) -> dict:
    headers = {"x-api-key": API_KEY, "content-type": content_type}
    response = httpx.post(f"{stack.base_url}/uploads", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_binary_media_types_decide_when_the_body_is_base64(stack):
    assert post(stack, b"%PDF-1.7 bytes", "application/pdf")["seen"]["isBase64Encoded"] is True
    seen = post(stack, b'{"a": 1}', "application/json")["seen"]
    assert (seen["isBase64Encoded"], seen["body"]) == (False, '{"a": 1}')


def test_a_presigned_post_upload_reaches_the_notified_queue_and_its_function(stack):
    answer = post(stack, b"{}", "application/json")
    form = answer["post"]
    assert answer["seen"]["bucket"] == stack.template.buckets["Files"].name
    # moto does not check the form's policy (docs/local-runner.md): only the upload itself is tested.
    upload = httpx.post(
        form["url"], data=form["fields"], files={"file": ("doc.pdf", b"%PDF-1.7 small")}, timeout=30
    )
    assert upload.status_code in (200, 201, 204), upload.text

    def delivered() -> list[dict]:
        lines = Path(stack.out_file).read_text().splitlines()
        return [record for line in lines for record in json.loads(line).get("Records", [])]

    wait_for(delivered, seconds=30)
    (record,) = delivered()
    assert record["eventName"].startswith("ObjectCreated:")
    # Keys arrive URL-encoded, as S3 sends them (moto also encodes "/").
    assert unquote_plus(record["s3"]["object"]["key"]) == "incoming/doc.pdf"


def test_a_proxy_event_over_lambdas_6_mb_is_413_as_on_aws(stack):
    # 4.8 MB of binary is 6.4 MB once base64-encoded in the event: under API Gateway's 10 MB,
    # over what a synchronous Lambda invocation takes.
    headers = {"x-api-key": API_KEY, "content-type": "application/pdf"}
    body = b"%PDF" + b"\x00" * (4_800_000)
    response = httpx.post(f"{stack.base_url}/uploads", content=body, headers=headers, timeout=60)
    assert response.status_code == 413
    assert post(stack, b"%PDF" + b"\x00" * 4_000_000, "application/pdf")["seen"]["isBase64Encoded"] is True
