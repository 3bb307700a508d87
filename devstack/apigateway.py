"""API Gateway (REST API, Lambda proxy integration) in front of the functions' pools.

Each request becomes the proxy event API Gateway would build, for the routes the template declares;
the function's result becomes the HTTP response. API keys, the 10 MB payload limit and the template's
gateway responses (RFC 9457 problem+json bodies here) are applied before any function runs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, MapAdapter, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.runtime import FunctionPool
from devstack.template import ACCOUNT_ID, ApiRoute, ApiSpec

log = logging.getLogger("devstack.api")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's hard limit
# Lambda's limit on a synchronous invocation's request (6 MiB), which the proxy event must fit.
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024

# Status and message API Gateway uses when the template does not customise a response type.
_DEFAULT_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "DEFAULT_5XX": (502, "Internal server error"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
}
# The identity fields API Gateway sends as null for a caller without IAM or Cognito credentials.
_NULL_IDENTITY = ("cognitoIdentityPoolId", "cognitoIdentityId", "cognitoAuthenticationType", "principalOrgId")
_NULL_IDENTITY += ("cognitoAuthenticationProvider", "userArn", "accountId", "caller", "accessKey", "user")
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}


@functools.lru_cache(maxsize=64)  # only keys the API accepted get here
def api_key_id(api_key: str) -> str:
    """A stable id for a key, shaped like API Gateway's (10 characters), that never reveals the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:10]


@dataclass(frozen=True, eq=False)  # hashed by identity: werkzeug's rules map to it
class Route:
    spec: ApiRoute
    api: ApiSpec
    pool: FunctionPool

    @functools.cached_property
    def resource_id(self) -> str:
        """API Gateway's id of the route's resource (6 characters), the same on every request."""
        return hashlib.sha256(self.spec.path.encode()).hexdigest()[:6]


def _router(routes: list[Route]) -> MapAdapter:
    """werkzeug's URL map of the routes, each under its API's stage (`/<stage>/<resource path>`) as
    API Gateway serves them; it prefers literal segments over variables as API Gateway does."""
    rules = []
    for route in routes:
        path = re.sub(r"{([^}]+)}", r"<\1>", f"/{route.api.stage}{route.spec.path}".rstrip("/"))
        rules.append(Rule(path, endpoint=route, methods=[route.spec.method]))
    return Map(rules, strict_slashes=False, merge_slashes=False).bind("api")


def _render_context(template: str, context: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name == "error.messageString":
            return json.dumps(context.get("error.message", ""))
        return context.get(name, "")

    return re.sub(r"\$\{context\.([A-Za-z.]+)\}|\$context\.([A-Za-z][A-Za-z.]*[A-Za-z])", replace, template)


def gateway_response(
    api: ApiSpec | None, response_type: str, context: dict[str, str]
) -> tuple[int, dict, bytes]:
    """A gateway response as the template customises it (falling back like API Gateway does)."""
    default_status, message = _DEFAULT_RESPONSES.get(response_type, (500, "Internal server error"))
    context = {"error.message": message, "error.responseType": response_type, **context}
    responses = api.gateway_responses if api else {}
    family = "DEFAULT_5XX" if default_status >= 500 else "DEFAULT_4XX"
    own = responses.get(response_type) or {}
    fallback = responses.get(family) or {}
    status = int(own.get("StatusCode") or fallback.get("StatusCode") or default_status)
    headers = {"Content-Type": "application/json"}
    for source in (fallback, own):
        for name, value in ((source.get("ResponseParameters") or {}).get("Headers") or {}).items():
            if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == "'":
                headers[name] = value[1:-1]
    templates = own.get("ResponseTemplates") or fallback.get("ResponseTemplates") or {}
    template = templates.get("application/json")
    body = json.dumps({"message": message}) if template is None else _render_context(template, context)
    return status, headers, body.encode()


def proxy_event(
    request: Request,
    route: Route,
    path: str,
    path_parameters: dict,
    query: str,
    request_id: str,
    api_key: str | None,
    started: float,
    local_port: int,
) -> dict:
    """The REST API Lambda proxy integration event (payload format 1.0) of `request`."""
    header_items = list(request.headers.items())
    present = {name.lower() for name, _ in header_items}
    # Headers API Gateway adds on its way to the integration.
    added = {
        "X-Amzn-Trace-Id": f"Root=1-{int(started):08x}-{os.urandom(12).hex()}",
        "X-Forwarded-For": request.remote_addr or "",
        "X-Forwarded-Port": str(local_port),
        "X-Forwarded-Proto": "http",
    }
    header_items += [(name, value) for name, value in added.items() if name.lower() not in present]
    query_pairs = parse_qsl(query, keep_blank_values=True)
    body = request.get_data()
    media_type = (request.mimetype or "").lower()
    encoded = bool(body) and any(fnmatch.fnmatch(media_type, t.lower()) for t in route.api.binary_media_types)
    # Without a binary media type API Gateway passes the payload as text.
    text = base64.b64encode(body).decode() if encoded else body.decode("utf-8", errors="replace")
    api_id = route.api.logical_id.lower()
    identity = dict.fromkeys(_NULL_IDENTITY)
    identity |= {
        "apiKey": api_key,
        "apiKeyId": api_key_id(api_key) if api_key else None,
        "userAgent": request.user_agent.string or None,
        "sourceIp": request.remote_addr or "",
    }
    return {
        "resource": route.spec.path,
        "path": path,
        "httpMethod": request.method,
        "headers": dict(header_items) or None,
        "multiValueHeaders": MultiDict(header_items).to_dict(flat=False) or None,
        "queryStringParameters": dict(query_pairs) or None,
        "multiValueQueryStringParameters": MultiDict(query_pairs).to_dict(flat=False) or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.resource_id,
            "resourcePath": route.spec.path,
            "httpMethod": request.method,
            "extendedRequestId": base64.b64encode(os.urandom(12)).decode(),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(started)),
            "path": f"/{route.api.stage}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": route.api.stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": int(started * 1000),
            "requestId": request_id,
            "identity": identity,
            "domainName": request.host,
            "apiId": api_id,
        },
        "body": text or None,
        "isBase64Encoded": encoded,
    }


class MalformedResponse(ValueError):
    pass


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """The HTTP response for a proxy integration result; MalformedResponse where API Gateway answers 502."""
    status = str(result.get("statusCode") if isinstance(result, dict) else None)
    if not status.isdigit() or not 100 <= int(status) <= 599:
        raise MalformedResponse("the result is not an object with an integer statusCode")
    multi, single = result.get("multiValueHeaders") or {}, result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise MalformedResponse("headers must be objects")
    headers = [(name, str(value)) for name, values in multi.items() for value in values]
    headers += [(name, str(value)) for name, value in single.items() if name not in multi]
    headers = [(name, value) for name, value in headers if name.lower() not in _HOP_BY_HOP]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    body = result.get("body")
    try:
        if result.get("isBase64Encoded"):
            return int(status), headers, base64.b64decode(body or "", validate=True)
    except (binascii.Error, TypeError) as exc:
        raise MalformedResponse("body is not valid base64") from exc
    return (
        int(status),
        headers,
        (body if isinstance(body, str) else json.dumps(body) if body else "").encode(),
    )


class ApiGateway:
    def __init__(self, routes: list[Route], api_keys: list[str], host: str = "127.0.0.1", port: int = 3000):
        self.router = _router(routes)
        self.stages = {route.api.stage for route in routes}
        self.api_keys = set(api_keys)
        self.default_api = routes[0].api if routes else None
        self._server = make_server(host, port, self.application, threaded=True)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_path(self) -> str:
        """Where the (first) API is served, as API Gateway serves it: under its stage."""
        return f"/{self.default_api.stage}" if self.default_api else ""

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="api", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- one request -------------------------------------------------------------------------

    def application(self, environ: dict, start_response) -> Any:
        request = Request(environ)
        request.max_content_length = MAX_PAYLOAD_BYTES
        started = time.time()
        request_id = str(uuid.uuid4())
        # The path as the client sent it: API Gateway passes it undecoded.
        raw_path, _, query = environ.get("REQUEST_URI", request.full_path).partition("?")
        stage, _, rest = raw_path.removeprefix("/").partition("/")
        route, path_parameters = None, {}
        with contextlib.suppress(HTTPException):
            route, path_parameters = self.router.match(raw_path, request.method)
            if route.spec.method != request.method:  # werkzeug lets HEAD reach GET
                route = None
        context = {
            "requestId": request_id,
            "extendedRequestId": request_id,
            "path": raw_path,
            "httpMethod": request.method,
            "identity.sourceIp": request.remote_addr or "",
        }
        if stage in self.stages:
            status, headers, payload = self._respond(
                request, route, path_parameters, f"/{rest}", query, request_id, started, context
            )
        else:
            # A URL without a stage reaches no API, so no gateway response applies: API Gateway's own 403.
            status, headers, payload = 403, {"Content-Type": "application/json"}, b'{"message": "Forbidden"}'
        response = Response(payload, status=status, headers=headers)
        response.headers["x-amzn-RequestId"] = request_id
        label = route.pool.spec.short_name if route else "-"
        elapsed = (time.time() - started) * 1000
        log.info("%s %s %s %d %.1f ms", request.method, environ.get("REQUEST_URI"), label, status, elapsed)
        return response(environ, start_response)

    def _respond(self, request: Request, route, path_parameters, path, query, request_id, started, context):
        api = route.api if route else self.default_api
        if request.content_length is not None and request.content_length > MAX_PAYLOAD_BYTES:
            return gateway_response(api, "REQUEST_TOO_LARGE", context)
        if route is None:
            # An undeclared method is answered as an unknown path, as API Gateway does.
            return gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", context)
        context |= {"resourcePath": route.spec.path, "stage": route.api.stage}

        api_key = request.headers.get("x-api-key")
        if route.spec.api_key_required:
            if not api_key or api_key not in self.api_keys:
                return gateway_response(route.api, "INVALID_API_KEY", context)
        else:
            api_key = None  # API Gateway only identifies keys on methods that require one
        try:
            request.get_data()  # read here, where an unreadable body has its gateway response
        except RequestEntityTooLarge:
            return gateway_response(route.api, "REQUEST_TOO_LARGE", context)
        except (HTTPException, OSError, ValueError):
            # A body werkzeug cannot read (a chunk size it does not parse, a client gone): a 400 as
            # API Gateway answers an unreadable body, never a 5xx.
            return gateway_response(
                route.api, "BAD_REQUEST_BODY", context | {"error.message": "Invalid request body"}
            )
        event = proxy_event(
            request, route, path, path_parameters, query, request_id, api_key, started, self.port
        )
        if len(event["body"] or "") > MAX_INVOKE_PAYLOAD_BYTES:
            # Lambda refuses the invocation (RequestEntityTooLargeException), which API Gateway answers 413.
            return gateway_response(route.api, "REQUEST_TOO_LARGE", context)
        # The template's API functions time out within API Gateway's 29 s: no INTEGRATION_TIMEOUT here.
        invocation = route.pool.invoke(event)
        if not invocation.ok:
            return gateway_response(route.api, "DEFAULT_5XX", context)
        try:
            return http_response(invocation.payload)
        except MalformedResponse as exc:
            log.warning("malformed Lambda proxy response from %s: %s", route.pool.spec.short_name, exc)
            return gateway_response(route.api, "DEFAULT_5XX", context)
