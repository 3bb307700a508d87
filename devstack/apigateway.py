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
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, MapAdapter, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
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
        methods = None if route.spec.method == "ANY" else [route.spec.method]
        rules.append(Rule(path, endpoint=route, methods=methods))
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


@functools.lru_cache(maxsize=4)  # requests in the same second share it
def _request_time(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _is_binary(content_type: str | None, binary_media_types: list[str]) -> bool:
    if not content_type or not binary_media_types:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in binary_media_types)


def proxy_event(
    *,
    route: Route,
    method: str,
    path: str,
    path_parameters: dict[str, str],
    query: str,
    header_items: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    local_port: int,
    request_id: str,
    api_key: str | None,
    started: float,
) -> dict:
    """The REST API Lambda proxy integration event (payload format 1.0)."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    present = {name.lower() for name, _ in header_items}
    # Headers API Gateway adds on its way to the integration.
    added = [
        ("X-Amzn-Trace-Id", f"Root=1-{int(started):08x}-{os.urandom(12).hex()}"),
        ("X-Forwarded-For", source_ip),
        ("X-Forwarded-Port", str(local_port)),
        ("X-Forwarded-Proto", "http"),
    ]
    header_items = header_items + [(name, value) for name, value in added if name.lower() not in present]
    for name, value in header_items:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query_pairs = parse_qsl(query, keep_blank_values=True)
    query_params: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query_pairs:
        query_params[name] = value
        multi_query.setdefault(name, []).append(value)
    if not body:
        event_body, encoded = None, False
    elif _is_binary(headers.get("Content-Type") or headers.get("content-type"), route.api.binary_media_types):
        event_body, encoded = base64.b64encode(body).decode(), True
    else:
        # Without a binary media type API Gateway passes the payload as text.
        event_body, encoded = body.decode("utf-8", errors="replace"), False
    stage = route.api.stage
    api_id = route.api.logical_id.lower()
    user_agent = headers.get("User-Agent") or headers.get("user-agent")
    return {
        "resource": route.spec.path,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query_params or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.resource_id,
            "resourcePath": route.spec.path,
            "httpMethod": method,
            "extendedRequestId": base64.b64encode(os.urandom(12)).decode(),
            "requestTime": _request_time(int(started)),
            "path": f"/{stage}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": int(started * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "cognitoIdentityId": None,
                "apiKey": api_key,
                "principalOrgId": None,
                "cognitoAuthenticationType": None,
                "userArn": None,
                "apiKeyId": api_key_id(api_key) if api_key else None,
                "userAgent": user_agent,
                "accountId": None,
                "caller": None,
                "sourceIp": source_ip,
                "accessKey": None,
                "cognitoAuthenticationProvider": None,
                "user": None,
            },
            "domainName": headers.get("Host") or headers.get("host") or "",
            "apiId": api_id,
        },
        "body": event_body,
        "isBase64Encoded": encoded,
    }


class MalformedResponse(ValueError):
    pass


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """The HTTP response for a proxy integration result; MalformedResponse where API Gateway answers 502."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise MalformedResponse("the result is not an object with a statusCode")
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError) as exc:
        raise MalformedResponse("statusCode is not an integer") from exc
    if not 100 <= status <= 599:
        raise MalformedResponse("statusCode is out of range")
    headers: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise MalformedResponse("headers must be objects")
    seen = set()
    for name, values in multi.items():
        seen.add(name.lower())
        for value in values if isinstance(values, list) else [values]:
            headers.append((name, str(value)))
    for name, value in single.items():
        if name.lower() not in seen:
            headers.append((name, str(value)))
    headers = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP]
    if not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/json"))
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body)
        except (binascii.Error, TypeError) as exc:
            raise MalformedResponse("body is not valid base64") from exc
    else:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
    return status, headers, payload


class _Handler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        """Our own access line is logged per request instead."""


class ApiGateway:
    def __init__(self, routes: list[Route], api_keys: list[str], host: str = "127.0.0.1", port: int = 3000):
        self.router = _router(routes)
        self.stages = {route.api.stage for route in routes}
        self.api_keys = set(api_keys)
        self.default_api = routes[0].api if routes else None
        self._server = make_server(host, port, self.application, threaded=True, request_handler=_Handler)

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
            if route.spec.method not in (request.method, "ANY"):  # werkzeug lets HEAD reach GET
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
            body = request.get_data()
        except RequestEntityTooLarge:
            return gateway_response(route.api, "REQUEST_TOO_LARGE", context)
        except (HTTPException, OSError, ValueError):
            # A body werkzeug cannot read (a chunk size it does not parse, a client gone): a 400 as
            # API Gateway answers an unreadable body, never a 5xx.
            return gateway_response(
                route.api, "BAD_REQUEST_BODY", context | {"error.message": "Invalid request body"}
            )

        event = proxy_event(
            route=route,
            method=request.method,
            path=path,
            path_parameters=path_parameters,
            query=query,
            header_items=list(request.headers.items()),
            body=body,
            source_ip=request.remote_addr or "",
            local_port=self.port,
            request_id=request_id,
            api_key=api_key,
            started=started,
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
