"""The API over HTTP with the standard library: JSON in, JSON out, problems raised as ApiError."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from ipaddress import ip_address
from urllib.parse import quote, urlencode, urlsplit

from ingest_cli.errors import ApiError, Unreachable
from ingest_cli.settings import Settings

REQUEST_TIMEOUT_SECONDS = 30.0
USER_AGENT = "ingest-cli"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    document: dict


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    def __init__(self, settings: Settings, timeout: float = REQUEST_TIMEOUT_SECONDS):
        self.base_url = settings.base_url
        self.api_key = settings.api_key
        self.timeout = timeout
        self.loopback = _is_loopback(urlsplit(self.base_url).hostname or "")
        # A proxy from the environment cannot reach this machine's loopback: talk to it directly.
        handlers = [urllib.request.ProxyHandler({})] if self.loopback else []
        self._opener = urllib.request.build_opener(*handlers)

    # --- the API ----------------------------------------------------------------------------

    def submit(self, guidelines: str, idempotency_key: str | None = None) -> dict:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/jobs", {"guidelines": guidelines}, headers).document

    def job(self, event_id: str) -> Reply:
        return self.request("GET", f"/jobs/{_segment(event_id)}")

    def jobs(self, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> dict:
        query = {
            name: value for name, value in (("status", status), ("limit", limit), ("cursor", cursor)) if value
        }
        return self.request("GET", "/jobs" + (f"?{urlencode(query)}" if query else "")).document

    def cancel(self, event_id: str) -> dict:
        return self.request("POST", f"/jobs/{_segment(event_id)}/cancel").document

    # --- the wire ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> Reply:
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked in settings
        request.add_header("x-api-key", self.api_key)
        request.add_header("Accept", "application/json, application/problem+json")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return Reply(response.status, response.headers, _json_body(response.read(), response.status))
        except urllib.error.HTTPError as error:
            with error:
                raise _api_error(error.code, error.reason, error.read()) from None
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (OSError, http.client.HTTPException) as error:
            raise self._unreachable(error) from None

    def _unreachable(self, reason: object) -> Unreachable:
        if isinstance(reason, ConnectionRefusedError):
            why = "connection refused"
            if self.loopback:
                why += " — is `make dev` running?"
        elif isinstance(reason, socket.gaierror):
            why = "unknown host"
        elif isinstance(reason, TimeoutError):
            why = f"no answer within {self.timeout:g} s"
        elif isinstance(reason, http.client.RemoteDisconnected | ConnectionResetError):
            why = "the connection was closed without an answer"
        else:
            why = str(getattr(reason, "strerror", None) or reason)
        return Unreachable(f"cannot reach {self.base_url}: {why}")


def _segment(value: str) -> str:
    """A path segment from user input: `../x` or `a?b` must not change the route."""
    return quote(value.strip(), safe="")


def _json_body(raw: bytes, status: int) -> dict:
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        raise ApiError(f"the API answered {status} with a body that is not JSON", status) from None
    if not isinstance(document, dict):
        raise ApiError(f"the API answered {status} with unexpected JSON", status)
    return document


def _api_error(status: int, reason: str, raw: bytes) -> ApiError:
    try:
        problem = json.loads(raw) if raw else {}
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = problem.get("title") or reason or "error"
    detail = problem.get("detail") or problem.get("message")
    if detail is None and not problem and raw:
        detail = raw.decode("utf-8", "replace").strip()[:200] or None
    message = f"{status} {title}" + (f": {detail}" if detail else "")
    for issue in problem.get("errors") or []:
        if isinstance(issue, dict):
            message += f"\n  {issue.get('pointer') or '-'}: {issue.get('detail', '')}"
    if status in (401, 403):
        message += "\n  check the API key: --api-key, INGEST_API_KEY, or INGEST_API_KEY / API_KEYS in .env"
    return ApiError(message, status, problem)
