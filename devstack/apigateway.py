"""API Gateway (REST API, Lambda proxy integration) in front of the functions' pools.

Each request becomes the proxy event API Gateway would build, for the routes the template declares;
the function's result becomes the HTTP response. API keys, the 10 MB payload limit and the template's
gateway responses (RFC 9457 problem+json bodies here) are applied before any function runs.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
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
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from devstack.runtime import FunctionPool, Invocation
from devstack.template import ACCOUNT_ID, ApiRoute, ApiSpec

log = logging.getLogger("devstack.api")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's hard limit
INTEGRATION_TIMEOUT_SECONDS = 29  # API Gateway's default integration timeout
# Keep-alive connections idle longer than this are closed, so idle clients do not pin threads.
IDLE_CONNECTION_SECONDS = 60

# Status and message API Gateway uses when the template does not customise a response type.
_DEFAULT_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token"),
    "INVALID_API_KEY": (403, "Forbidden"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out"),
    "DEFAULT_5XX": (502, "Internal server error"),
    "BAD_REQUEST_BODY": (400, "Invalid request body"),
}
# http.client's limits on a header block, which http.server applies to requests.
_MAX_HEADER_LINE = 65536
_MAX_HEADERS = 100
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}


@functools.lru_cache(maxsize=64)  # only keys the API accepted get here
def api_key_id(api_key: str) -> str:
    """A stable id for a key, shaped like API Gateway's (10 characters), that never reveals the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Route:
    spec: ApiRoute
    api: ApiSpec
    pool: FunctionPool
    pattern: re.Pattern
    parameter_names: tuple[str, ...]

    @classmethod
    def build(cls, spec: ApiRoute, api: ApiSpec, pool: FunctionPool) -> Route:
        names = []
        parts = []
        for segment in spec.path.strip("/").split("/") if spec.path != "/" else []:
            match = re.fullmatch(r"\{([^}+]+)(\+?)\}", segment)
            if match:
                names.append(match.group(1))
                parts.append("(.+)" if match.group(2) else "([^/]+)")
            else:
                parts.append(re.escape(segment))
        pattern = re.compile("/" + "/".join(parts) + "/?" if parts else "/")
        return cls(spec, api, pool, pattern, tuple(names))

    @functools.cached_property
    def resource_id(self) -> str:
        """API Gateway's id of the route's resource (6 characters), the same on every request."""
        return hashlib.sha256(self.spec.path.encode()).hexdigest()[:6]

    @property
    def specificity(self) -> tuple:
        # API Gateway prefers literal segments over variables, and greedy variables last.
        segments = self.spec.path.strip("/").split("/")
        literals = sum(1 for s in segments if not s.startswith("{"))
        greedy = any(s.endswith("+}") for s in segments)
        return (greedy, -literals, -len(segments))


class Router:
    """Routes by stage, as API Gateway serves them: `/<stage>/<resource path>` and nothing else."""

    def __init__(self, routes: list[Route]):
        self.routes = sorted(routes, key=lambda r: r.specificity)
        self.stages = {route.api.stage for route in routes}

    def split_stage(self, path: str) -> tuple[str, str] | None:
        """(stage, path within the stage), or None when the path names no stage of these APIs."""
        stage, _, rest = path.removeprefix("/").partition("/")
        return (stage, f"/{rest}") if stage in self.stages else None

    def match(
        self, stage: str, path: str, method: str
    ) -> tuple[Route | None, dict[str, str] | None, list[str]]:
        """The route and its path parameters, or (None, None, allowed methods on that path)."""
        allowed = []
        for route in self.routes:
            found = route.pattern.fullmatch(path) if route.api.stage == stage else None
            if not found:
                continue
            if route.spec.method in (method, "ANY"):
                return route, dict(zip(route.parameter_names, found.groups(), strict=True)), []
            allowed.append(route.spec.method)
        return None, None, sorted(set(allowed))


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


def problem(status: int, title: str, detail: str, request_id: str) -> tuple[int, dict, bytes]:
    """A problem+json body of the same shape as the template's gateway responses."""
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    return status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode()


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


def _first_values(items: list[tuple[str, str]]) -> dict[str, str]:
    """Header lookup by lower-cased name; the first of repeated ones, as email.message's get()."""
    found: dict[str, str] = {}
    for name, value in items:
        found.setdefault(name.lower(), value)
    return found


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway offers
    disable_nagle_algorithm = True  # small responses must not wait for delayed ACKs
    timeout = IDLE_CONNECTION_SECONDS
    server_version = "devstack"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Our own access line is logged per request instead."""

    def parse_request(self) -> bool:
        """http.server's parse_request without email.parser, which cost a third of this front's CPU.

        Sets `header_items` (names cased as the client sent them, in order, repeats kept) and
        `headers` (lower-cased names, the first value of each). Request lines out of the ordinary
        (HTTP/0.9, bad versions) get http.server's own checks and answers.
        """
        words = self.raw_requestline.split()
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            if not super().parse_request():
                return False
            self.header_items = list(self.headers.items())
            self.headers = _first_values(self.header_items)
            return True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        self.command, self.path, self.request_version = (word.decode("iso-8859-1") for word in words)
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")  # as http.server does (gh-87389)
        items = []
        while True:
            line = self.rfile.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(items) == _MAX_HEADERS:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
                return False
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or not _FIELD_NAME.fullmatch(name):
                # A line without a field name, or folded onto the previous one (obs-fold): RFC 9112
                # lets a server reject it, and it must not pass as a header nor end the block.
                self.send_error(HTTPStatus.BAD_REQUEST, "Bad header line")
                return False
            items.append((name, value.strip(" \t\r\n")))
        self.header_items = items
        self.headers = _first_values(items)
        connection = self.headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if self.headers.get("expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:
        self.server.gateway.handle(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the listen backlog: 50 clients connecting at once never wait for a retry
    daemon_threads = True
    allow_reuse_address = True


class ApiGateway:
    def __init__(self, routes: list[Route], api_keys: list[str], host: str = "127.0.0.1", port: int = 3000):
        self.router = Router(routes)
        self.api_keys = set(api_keys)
        self.default_api = routes[0].api if routes else None
        self._server = _Server((host, port), _Handler)
        self._server.gateway = self
        self._thread: threading.Thread | None = None
        self._slow_calls = concurrent.futures.ThreadPoolExecutor(
            max_workers=64, thread_name_prefix="integration"
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_path(self) -> str:
        """Where the (first) API is served, as API Gateway serves it: under its stage."""
        return f"/{self.default_api.stage}" if self.default_api else ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._slow_calls.shutdown(wait=False, cancel_futures=True)

    # --- one request -------------------------------------------------------------------------

    def handle(self, request: _Handler) -> None:
        started = time.time()
        request_id = str(uuid.uuid4())
        method = request.command
        raw_path, _, query = request.path.partition("?")
        staged = self.router.split_stage(raw_path)
        stage, path = staged or (None, raw_path)
        route, path_parameters, allowed = (
            self.router.match(stage, path, method) if staged else (None, None, [])
        )
        context = {
            "requestId": request_id,
            "extendedRequestId": request_id,
            "path": raw_path,
            "httpMethod": method,
            "identity.sourceIp": request.client_address[0],
        }
        label = route.pool.spec.short_name if route else "-"
        try:
            if staged:
                status, headers, payload = self._respond(
                    request, route, path_parameters, allowed, path, query, request_id, started, context
                )
            else:
                status, headers, payload = self._outside_every_stage(request)
        except (ConnectionError, TimeoutError):
            request.close_connection = True
            return
        self._send(request, status, headers, payload, request_id)
        log.info("%s %s %s %d %.1f ms", method, request.path, label, status, (time.time() - started) * 1000)

    def _outside_every_stage(self, request: _Handler) -> tuple[int, dict, bytes]:
        """A URL without a stage reaches no API, so no gateway response applies: API Gateway's own 403."""
        length_header = request.headers.get("content-length") or "0"
        chunked = "chunked" in (request.headers.get("transfer-encoding") or "").lower()
        if not length_header.isdigit() or int(length_header) > MAX_PAYLOAD_BYTES:
            request.close_connection = True
        else:
            self._drain(request, int(length_header), chunked)
        return 403, {"Content-Type": "application/json"}, json.dumps({"message": "Forbidden"}).encode()

    def _respond(self, request, route, path_parameters, allowed, path, query, request_id, started, context):
        api = route.api if route else self.default_api
        if route is not None:
            context |= {"resourcePath": route.spec.path, "stage": route.api.stage}

        length_header = request.headers.get("content-length")
        chunked = "chunked" in (request.headers.get("transfer-encoding") or "").lower()
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            request.close_connection = True
            return gateway_response(
                api, "BAD_REQUEST_BODY", context | {"error.message": "Invalid Content-Length"}
            )
        if length > MAX_PAYLOAD_BYTES:
            request.close_connection = True  # the body is not read
            return gateway_response(api, "REQUEST_TOO_LARGE", context)

        if route is None:
            self._drain(request, length, chunked)
            if allowed:
                # API Gateway answers MISSING_AUTHENTICATION_TOKEN here too; we say what is allowed.
                status, headers, body = problem(
                    405, "Method Not Allowed", f"{request.command} is not allowed on {path}.", request_id
                )
                return status, headers | {"Allow": ", ".join(allowed)}, body
            return gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", context)

        api_key = request.headers.get("x-api-key")
        if route.spec.api_key_required:
            if not api_key or api_key not in self.api_keys:
                self._drain(request, length, chunked)
                return gateway_response(route.api, "INVALID_API_KEY", context)
        else:
            api_key = None  # API Gateway only identifies keys on methods that require one

        body = self._read_body(request, length, chunked)
        if body is None:
            request.close_connection = True
            return gateway_response(route.api, "REQUEST_TOO_LARGE", context)

        event = proxy_event(
            route=route,
            method=request.command,
            path=path,
            path_parameters=path_parameters,
            query=query,
            header_items=request.header_items,
            body=body,
            source_ip=request.client_address[0],
            local_port=self.port,
            request_id=request_id,
            api_key=api_key,
            started=started,
        )
        invocation = self._invoke(route.pool, event)
        if invocation is None:
            return gateway_response(route.api, "INTEGRATION_TIMEOUT", context)
        if not invocation.ok:
            return gateway_response(route.api, "DEFAULT_5XX", context)
        try:
            status, headers, payload = http_response(invocation.payload)
        except MalformedResponse as exc:
            log.warning("malformed Lambda proxy response from %s: %s", route.pool.spec.short_name, exc)
            return gateway_response(route.api, "DEFAULT_5XX", context)
        return status, headers, payload

    def _invoke(self, pool: FunctionPool, event: dict) -> Invocation | None:
        if pool.spec.timeout <= INTEGRATION_TIMEOUT_SECONDS:
            return pool.invoke(event)
        # The function may run longer than API Gateway waits: answer 504 and let it finish.
        future = self._slow_calls.submit(pool.invoke, event)
        try:
            return future.result(timeout=INTEGRATION_TIMEOUT_SECONDS)
        except concurrent.futures.TimeoutError:
            return None

    @staticmethod
    def _read_body(request: _Handler, length: int, chunked: bool) -> bytes | None:
        if not chunked:
            return request.rfile.read(length) if length else b""
        parts, total = [], 0
        while True:
            size_line = request.rfile.readline(1024)
            if not size_line:
                raise ConnectionError("client went away")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while request.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_PAYLOAD_BYTES:
                return None
            parts.append(request.rfile.read(size))
            request.rfile.readline(16)

    def _drain(self, request: _Handler, length: int, chunked: bool) -> None:
        """Read and drop a body we refuse, so the connection can carry the next request."""
        if chunked:
            if self._read_body(request, 0, True) is None:
                request.close_connection = True
        elif length:
            request.rfile.read(length)

    @staticmethod
    def _send(request: _Handler, status: int, headers, payload: bytes, request_id: str) -> None:
        items = headers.items() if isinstance(headers, dict) else headers
        request.send_response(status)
        for name, value in items:
            request.send_header(name, value)
        request.send_header("x-amzn-RequestId", request_id)
        request.send_header("Content-Length", str(len(payload)))
        if request.close_connection:
            request.send_header("Connection", "close")
        request.end_headers()
        if request.command != "HEAD" and payload:
            request.wfile.write(payload)
