"""IAM for SQS calls: who makes one, which action on which queue, may they, and SQS's answer if not.

Neither moto (by default) nor LocalStack's SQS checks IAM, so a function whose role lacks a permission
would work here and fail on AWS. Each function gets fake credentials of its own role (devstack/iam.py);
a request's access key id comes from its SigV4 Authorization header, the action from
`X-Amz-Target: AmazonSQS.<Action>` (JSON protocol) or `Action=` (query protocol), the queue from
QueueUrl, and the role's translated policies decide. Signatures are not verified: the point is the
role's permissions, not the secret key.

Two transports use it: the SQS server process the runner runs checks in a WSGI middleware
(devstack/sqs_server.py); an SQS endpoint the runner does not run gets a proxy in front
(devstack/iam_gateway.py).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from devstack.iam import Role, iam_action, role_access_key_id
from devstack.template import ACCOUNT_ID, REGION

# SigV4: Credential=<access key id>/<date>/<region>/<service>/aws4_request
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]*/([^/]*)/([^/,\s]*)/")


class Denial(NamedTuple):
    function: str
    action: str
    resource: str


class Denied(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Credential(NamedTuple):
    """The credential scope of a SigV4 Authorization header."""

    access_key_id: str
    region: str
    service: str


def credential_of(authorization: str) -> Credential | None:
    match = _CREDENTIAL.search(authorization)
    return Credential(match.group(1), match.group(2), match.group(3).lower()) if match else None


def queue_arn_from_url(queue_url: str, region: str) -> str:
    """arn:aws:sqs:<region>:<account>:<name> of `http://host/<account>/<name>` (AWS, moto, LocalStack)."""
    parts = [part for part in urlsplit(queue_url).path.split("/") if part]
    if len(parts) < 2:
        raise Denied("InvalidAddress", f"The address {queue_url} is not valid for this endpoint.")
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


class SqsRequest:
    """What IAM needs of one SQS request: who, which action, on which queue. `path` includes the
    query string; `target` is the X-Amz-Target header."""

    def __init__(self, path: str, credential: Credential | None, target: str, content_type: str, body: bytes):
        self.access_key_id = credential.access_key_id if credential else None
        self.region = (credential.region if credential else "") or REGION
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
            if "x-www-form-urlencoded" in content_type:
                query.update(parse_qs(body.decode("utf-8", "replace")))
            params = {name: values[0] for name, values in query.items()}
            self.operation = params.get("Action", "")
            # The query protocol may also name the queue by the request path.
            if "QueueUrl" not in params and len([p for p in urlsplit(path).path.split("/") if p]) >= 2:
                params["QueueUrl"] = path
        self.action = iam_action("sqs", self.operation)
        self._queue_url = params.get("QueueUrl")
        self._queue_name = params.get("QueueName")

    @property
    def resource(self) -> str:
        """The queue's ARN (raises Denied for a QueueUrl SQS would not accept), or `*`."""
        if self._queue_url:
            return queue_arn_from_url(str(self._queue_url), self.region)
        if self._queue_name:
            return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{self._queue_name}"
        return "*"


class SqsPermissions:
    """The functions' roles, asked for each request signed with one of their access keys.

    `trusted_key_ids` None: a key of no role is not checked here (the runner's own, or a key another
    stack's gateway has checked before forwarding). A set: only those keys pass unchecked and every
    other key of no role is invalid, as for an endpoint that only the runner and its functions use."""

    def __init__(
        self,
        roles: dict[str, Role],
        on_denial: Callable[[Denial], None],
        trusted_key_ids: set[str] | None = None,
    ):
        self.roles = roles
        self.on_denial = on_denial
        self.trusted_key_ids = trusted_key_ids
        self._functions = {role_access_key_id(function): function for function in roles}

    def checks(self, key_id: str | None) -> bool:
        """Whether a request signed with `key_id` is checked at all (else it passes)."""
        if self.trusted_key_ids is None:
            return key_id in self._functions
        return key_id not in self.trusted_key_ids

    def authorize(self, request: SqsRequest) -> None:
        """Raise Denied unless the request's credentials may make it."""
        if not self.checks(request.access_key_id):
            return
        function = self._functions.get(request.access_key_id or "")
        if function is None:
            raise Denied("InvalidClientTokenId", "The security token included in the request is invalid.")
        resource = request.resource
        if self.roles[function].allows(request.action, resource):
            return
        self.on_denial(Denial(function, request.action, resource))
        account = resource.split(":")[4] if resource.startswith("arn:") else ACCOUNT_ID
        action = request.action.lower()  # SQS prints the action in lower case
        raise Denied(
            "AccessDenied",
            f"User: arn:aws:sts::{account}:assumed-role/{function}Role/{function} is not authorized to "
            f"perform: {action} on resource: {resource} because no identity-based policy "
            f"allows the {action} action",
        )


def denial_response(request: SqsRequest, denied: Denied) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (without Content-Length) and body of SQS's answer to a denied request."""
    request_id = str(uuid.uuid4())
    if request.json_protocol:
        status = 400
        content_type = "application/x-amz-json-1.0"
        exception = "AccessDeniedException" if denied.code == "AccessDenied" else denied.code
        if denied.code == "InvalidClientTokenId":
            exception = "UnrecognizedClientException"
        body = json.dumps({"__type": f"com.amazon.coral.service#{exception}", "message": denied.message})
    else:
        status = 403
        content_type = "text/xml"
        body = (
            '<?xml version="1.0"?><ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">'
            f"<Error><Type>Sender</Type><Code>{denied.code}</Code><Message>{denied.message}"
            f"</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    headers = [
        ("Content-Type", content_type),
        ("x-amzn-RequestId", request_id),
        # The JSON protocol names the query protocol's error code here; botocore reports it.
        ("x-amzn-query-error", f"{denied.code};Sender"),
    ]
    return status, headers, body.encode()
