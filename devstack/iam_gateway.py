"""An IAM-enforcing gateway in front of the local SQS endpoint, whichever implementation it is.

Neither moto (by default) nor LocalStack's SQS checks IAM, so a function whose role lacks a permission
would work here and fail on AWS. Each function gets fake credentials of its own role (devstack/iam.py);
this gateway reads the access key id from the request's SigV4 Authorization header, the action from
`X-Amz-Target: AmazonSQS.<Action>` (JSON protocol) or `Action=` (query protocol), the queue from
QueueUrl, and asks the role's translated policies. A denied request is answered as SQS answers it;
an allowed one is forwarded unchanged (headers, body, signature) over a kept-alive connection.
Signatures are not verified: the point is the role's permissions, not the secret key.

The runner's own credentials (tests, redrive) pass unchecked. When the upstream endpoint does not
answer (a simulated outage), the client's connection is closed without a response, which botocore
reports as a connection error, as it would for the endpoint itself.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from devstack.iam import Role, iam_action
from devstack.template import ACCOUNT_ID, REGION

log = logging.getLogger("devstack.iam")

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
# Long polls wait up to 20 s upstream; the gateway must outwait them.
UPSTREAM_TIMEOUT_SECONDS = 60


class Denied(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def queue_arn_from_url(queue_url: str, region: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> of `http://host/<account>/<name>` (AWS, moto, LocalStack)."""
    parts = [part for part in urlsplit(queue_url).path.split("/") if part]
    if len(parts) < 2:
        raise Denied("InvalidAddress", f"The address {queue_url} is not valid for this endpoint.")
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


class SqsRequest:
    """What IAM needs of one SQS request: who, which action, on which queue."""

    def __init__(self, method: str, path: str, headers, body: bytes):
        authorization = headers.get("Authorization", "")
        match = _CREDENTIAL.search(authorization)
        self.access_key_id = match.group(1) if match else None
        self.region = (match.group(2) if match else "") or REGION
        target = headers.get("X-Amz-Target", "")
        self.json_protocol = bool(target)
        params: dict[str, str] = {}
        if self.json_protocol:
            self.operation = target.rpartition(".")[2]
            try:
                loaded = json.loads(body or b"{}")
            except ValueError:
                loaded = {}
            params = loaded if isinstance(loaded, dict) else {}
        else:
            query = parse_qs(urlsplit(path).query)
            if "x-www-form-urlencoded" in headers.get("Content-Type", ""):
                query.update(parse_qs(body.decode("utf-8", "replace")))
            params = {name: values[0] for name, values in query.items()}
            self.operation = params.get("Action", "")
            # The query protocol may also name the queue by the request path.
            if "QueueUrl" not in params and len([p for p in urlsplit(path).path.split("/") if p]) >= 2:
                params["QueueUrl"] = path
        self.action = iam_action("sqs", self.operation)
        if params.get("QueueUrl"):
            self.resource = queue_arn_from_url(str(params["QueueUrl"]), self.region)
        elif params.get("QueueName"):
            self.resource = f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{params['QueueName']}"
        else:
            self.resource = "*"


class IamGateway:
    def __init__(
        self,
        upstream: str,
        roles: dict[str, Role],
        access_key_ids: dict[str, str],
        trusted_key_ids: set[str],
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        """`access_key_ids` maps each role's access key id to its function's logical id; requests
        signed with a `trusted_key_ids` key (the runner's own) are not checked."""
        split = urlsplit(upstream)
        self.upstream_host = split.hostname or "127.0.0.1"
        self.upstream_port = split.port or 80
        self.roles = roles
        self.access_key_ids = dict(access_key_ids)
        self.trusted_key_ids = set(trusted_key_ids)
        self.denials: list[tuple[str, str, str]] = []  # (function, action, resource), newest last
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> IamGateway:
        self._thread = threading.Thread(target=self._server.serve_forever, name="iam-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def authorize(self, request: SqsRequest) -> None:
        """Raise Denied unless the request's credentials may make it."""
        if request.access_key_id in self.trusted_key_ids:
            return
        function = self.access_key_ids.get(request.access_key_id or "")
        if function is None:
            raise Denied("InvalidClientTokenId", "The security token included in the request is invalid.")
        if self.roles[function].allows(request.action, request.resource):
            return
        self.denials.append((function, request.action, request.resource))
        account = request.resource.split(":")[4] if request.resource.startswith("arn:") else ACCOUNT_ID
        action = request.action.lower()  # SQS prints the action in lower case
        log.warning("IAM: %s may not %s on %s", function, request.action, request.resource)
        raise Denied(
            "AccessDenied",
            f"User: arn:aws:sts::{account}:assumed-role/{function}Role/{function} is not authorized to "
            f"perform: {action} on resource: {request.resource} because no identity-based policy "
            f"allows the {action} action",
        )

    def _handler_class(self):
        gateway = self
        local = threading.local()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pool expects
            disable_nagle_algorithm = True  # small answers: Nagle plus delayed ACKs would cost 40 ms

            def log_message(self, format: str, *args) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def do_POST(self) -> None:
                self._handle()

            do_GET = do_POST

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = SqsRequest(self.command, self.path, self.headers, body)
                try:
                    gateway.authorize(request)
                except Denied as denied:
                    self._deny(request, denied)
                    return
                try:
                    status, headers, answer = self._forward(body)
                except OSError as error:
                    # Upstream down: the client sees the connection close, as with the endpoint itself.
                    log.debug("upstream SQS endpoint unreachable: %s", error)
                    self.close_connection = True
                    return
                self.send_response_only(status)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self._finish(answer)

            def _forward(self, body: bytes):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                for attempt in (1, 2):
                    connection = getattr(local, "connection", None)
                    reused = connection is not None
                    if connection is None:
                        connection = http.client.HTTPConnection(
                            gateway.upstream_host, gateway.upstream_port, timeout=UPSTREAM_TIMEOUT_SECONDS
                        )
                        local.connection = connection
                    try:
                        connection.request(self.command, self.path, body=body, headers=headers)
                        response = connection.getresponse()
                        answer = response.read()
                    except (OSError, http.client.HTTPException) as error:
                        connection.close()
                        local.connection = None
                        # A kept-alive connection the upstream has since closed: one fresh try.
                        if reused and attempt == 1 and not isinstance(error, ConnectionRefusedError):
                            continue
                        raise OSError(str(error)) from error
                    if response.will_close:
                        connection.close()
                        local.connection = None
                    return response.status, response.getheaders(), answer
                raise OSError("unreachable")

            def _deny(self, request: SqsRequest, denied: Denied) -> None:
                request_id = str(uuid.uuid4())
                if request.json_protocol:
                    status = 400
                    content_type = "application/x-amz-json-1.0"
                    exception = "AccessDeniedException" if denied.code == "AccessDenied" else denied.code
                    if denied.code == "InvalidClientTokenId":
                        exception = "UnrecognizedClientException"
                    answer = json.dumps(
                        {"__type": f"com.amazon.coral.service#{exception}", "message": denied.message}
                    ).encode()
                else:
                    status = 403
                    content_type = "text/xml"
                    answer = (
                        '<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
                        f"<Error><Type>Sender</Type><Code>{denied.code}</Code><Message>{denied.message}"
                        f"</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                    ).encode()
                self.send_response_only(status)
                self.send_header("Content-Type", content_type)
                self.send_header("x-amzn-RequestId", request_id)
                # The JSON protocol names the query protocol's error code here; botocore reports it.
                self.send_header("x-amzn-query-error", f"{denied.code};Sender")
                self._finish(answer)

            def _finish(self, answer: bytes) -> None:
                """Headers and body in one write."""
                self.send_header("Content-Length", str(len(answer)))
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(answer)
                self.flush_headers()

        return Handler
