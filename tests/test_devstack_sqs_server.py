"""devstack.sqs_server: its shortcut to moto's SQS handler answers exactly as moto's own application,
and its socket reader serves kept-alive and pipelined requests as cheroot's own.

The same requests (both SQS protocols, successes and errors) go to SqsApplication and to moto's
DomainDispatcherApplication in this process; status, headers and bodies must match, apart from the
values moto makes up per call (request ids, message ids, receipt handles) and the CORS header that
only moto's Flask app adds.
"""

from __future__ import annotations

import io
import json
import re
import socket
import uuid
from urllib.parse import urlencode

import pytest

from devstack.sqs import sqs_client
from devstack.sqs_server import SqsApplication, SqsServer

AUTH = (
    "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/{service}/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)
JSON = "application/x-amz-json-1.0"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
# Made up by moto per call: request ids, message ids, receipt handles, timestamps.
_PER_CALL = re.compile(
    r"(RequestId|requestid|MessageId|ReceiptHandle|SentTimestamp|ApproximateFirstReceiveTimestamp)"
    r"""(["']?\s*[:>=,]\s*["']?|", ")[^"'<,]+"""
)


@pytest.fixture(scope="module")
def apps():
    fast = SqsApplication()
    return fast, fast.moto


def call(app, body: bytes, content_type: str, path: str = "/", target: str = "", service: str = "sqs"):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "RAW_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:5000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": content_type,
        "HTTP_AUTHORIZATION": AUTH.format(service=service),
        "HTTP_X_AMZ_DATE": "20261201T000000Z",
    }
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, headers

    content = b"".join(app(environ, start_response)).decode()
    headers = sorted(
        (name.lower(), _PER_CALL.sub(r"\1\2*", f"{name.lower()}: {value}"))
        for name, value in answer["headers"]
        if name.lower() not in ("access-control-allow-origin", "content-length")
    )
    return answer["status"], headers, _PER_CALL.sub(r"\1\2*", content)


def json_call(app, action: str, **params):
    return call(app, json.dumps(params).encode(), JSON, target=f"AmazonSQS.{action}")


def query_call(app, path: str, **params):
    return call(app, urlencode({**params, "Version": "2012-11-05"}).encode(), FORM, path=path)


def both(apps, send):
    """Each request twice (the two apps share moto's state): once to each, as alike as can be."""
    fast, moto = apps
    ours, theirs = send(fast), send(moto)
    assert ours == theirs
    return ours


def test_json_protocol_answers_match(apps):
    name = f"q-{uuid.uuid4().hex[:8]}"
    status, _, body = both(apps, lambda app: json_call(app, "CreateQueue", QueueName=name))
    assert status.startswith("200")
    url = json.loads(body)["QueueUrl"]
    both(apps, lambda app: json_call(app, "GetQueueUrl", QueueName=name))
    both(apps, lambda app: json_call(app, "SendMessage", QueueUrl=url, MessageBody="hello"))
    both(
        apps,
        lambda app: json_call(
            app, "SendMessageBatch", QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "a"}]
        ),
    )
    both(apps, lambda app: json_call(app, "GetQueueAttributes", QueueUrl=url, AttributeNames=["All"]))
    both(
        apps,
        lambda app: json_call(app, "ReceiveMessage", QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0),
    )
    # Errors: moto's own shapes, codes and x-amzn-query-error headers.
    for action, params in [
        ("GetQueueUrl", {"QueueName": "no-such-queue"}),
        ("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": "not-a-handle"}),
        ("SendMessage", {"QueueUrl": url, "MessageBody": "x", "DelaySeconds": 901}),
        (
            "ChangeMessageVisibility",
            {"QueueUrl": url, "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 5},
        ),
    ]:
        status, _, _ = both(apps, lambda app, action=action, params=params: json_call(app, action, **params))
        assert status.startswith("400"), (action, status)


def test_query_protocol_answers_match(apps):
    name = f"q-{uuid.uuid4().hex[:8]}"
    status, _, body = both(apps, lambda app: query_call(app, "/", Action="CreateQueue", QueueName=name))
    assert status.startswith("200") and "<QueueUrl>" in body
    path = f"/123456789012/{name}"
    both(apps, lambda app: query_call(app, path, Action="SendMessage", MessageBody="hello"))
    both(apps, lambda app: query_call(app, path, Action="ReceiveMessage", WaitTimeSeconds="0"))
    status, _, _ = both(
        apps,
        lambda app: query_call(app, "/123456789012/no-such-queue", Action="SendMessage", MessageBody="x"),
    )
    assert status.startswith("400")


def test_what_is_not_sqs_goes_through_moto_s_application(apps):
    """Another service's call, or a path SQS does not route, is moto's application's to answer."""
    fast, _ = apps
    sts = call(fast, b"Action=GetCallerIdentity&Version=2011-06-15", FORM, service="sts")
    assert sts[0].startswith("200") and "GetCallerIdentityResponse" in sts[2]
    assert fast._sqs_handler({"HTTP_AUTHORIZATION": AUTH.format(service="sts"), "PATH_INFO": "/"}) is None
    assert (
        fast._sqs_handler({"HTTP_AUTHORIZATION": AUTH.format(service="sqs"), "PATH_INFO": "/moto-api/"})
        is None
    )
    assert fast._sqs_handler({"PATH_INFO": "/"}) is None  # unsigned


def test_kept_alive_and_pipelined_requests_are_all_served():
    """The server's own socket reader: several requests on one connection, and two sent at once."""
    server = SqsServer("127.0.0.1", 0)
    server.start()
    try:
        host, port = server._server.bind_addr
        client = sqs_client(f"http://{host}:{port}")
        url = client.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        for index in range(3):
            client.send_message(QueueUrl=url, MessageBody=str(index))
        body = json.dumps({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]}).encode()
        request = (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {JSON}\r\n"
            f"X-Amz-Target: AmazonSQS.GetQueueAttributes\r\nAuthorization: {AUTH.format(service='sqs')}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(request * 2)
            answers = b""
            while answers.count(b'"ApproximateNumberOfMessages": "3"') < 2:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {answers!r}"
                answers += chunk
        assert answers.count(b"HTTP/1.1 200 OK") == 2
    finally:
        server.stop()
