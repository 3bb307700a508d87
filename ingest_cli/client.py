"""The API over HTTP with the standard library: JSON in, JSON out, problems raised as ApiError."""

from __future__ import annotations

import http.client
import json
import re
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from ipaddress import ip_address
from urllib.parse import quote, urlencode, urlsplit

from ingest_cli.errors import ApiError, Unreachable
from ingest_cli.settings import Settings

REQUEST_TIMEOUT_SECONDS = 30.0
UPLOAD_CHUNK_BYTES = 256 * 1024
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

    def submit_document(
        self, data: bytes, media_type: str, filename: str | None, idempotency_key: str | None = None
    ) -> dict:
        """The file itself as the body (small files: the API's inline limit)."""
        headers = {"Content-Type": media_type}
        if filename:
            headers["Content-Disposition"] = f'attachment; filename="{_quoted(filename)}"'
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.request("POST", "/jobs", raw=data, headers=headers).document

    def request_upload(
        self, media_type: str, size_bytes: int, filename: str | None, idempotency_key: str | None = None
    ) -> dict:
        upload = {"media_type": media_type, "size_bytes": size_bytes}
        if filename:
            upload["filename"] = filename
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/jobs", {"upload": upload}, headers).document

    def upload(self, form: dict, data: bytes, on_progress: Callable[[int, int], None]) -> None:
        """POST the file to the presigned form (multipart, the file last, as S3 wants it), reporting
        bytes sent. Not through the API: straight to the bucket."""
        boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in form["fields"].items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="document"\r\n'
            f"Content-Type: {form['fields'].get('Content-Type', 'application/octet-stream')}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        body = head + data + tail
        parts = urlsplit(form["url"])
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_type(parts.hostname, parts.port, timeout=self.timeout)
        try:
            connection.putrequest("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
            connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            connection.putheader("Content-Length", str(len(body)))
            connection.putheader("User-Agent", USER_AGENT)
            connection.endheaders()
            for start in range(0, len(body), UPLOAD_CHUNK_BYTES):
                connection.send(body[start : start + UPLOAD_CHUNK_BYTES])
                on_progress(min(start + UPLOAD_CHUNK_BYTES, len(body)), len(body))
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise Unreachable(f"cannot upload to {parts.hostname}: {error}") from None
        finally:
            connection.close()
        if response.status >= 300:
            raise ApiError(f"the upload was refused ({response.status}): {_s3_error(raw)}", response.status)

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

    def request(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        headers: dict | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        url = self.base_url + path
        data = raw if raw is not None else None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked in settings
        request.add_header("x-api-key", self.api_key)
        request.add_header("Accept", "application/json, application/problem+json")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None and raw is None:
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


def _s3_error(raw: bytes) -> str:
    """S3's XML error as `Code: Message` (e.g. the file no longer matching the form's size range),
    else the start of the body."""
    text = raw.decode("utf-8", "replace")
    code, message = (re.search(rf"<{tag}>([^<]*)</{tag}>", text) for tag in ("Code", "Message"))
    if code:
        return code.group(1) + (f": {message.group(1)}" if message else "")
    return text.strip()[:300]


def _quoted(filename: str) -> str:
    return filename.replace("\\", "_").replace('"', "_")


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
