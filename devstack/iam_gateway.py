"""An IAM-enforcing proxy in front of an SQS endpoint the runner does not run itself (LocalStack's,
another stack's, `Stack(sqs_endpoint=...)`); the runner's own SQS server checks in its process.

Each request is asked of the roles (devstack/sqs_iam.py); a denied one is answered as SQS answers it,
an allowed one is forwarded unchanged (headers, body, signature) over a kept-alive connection. When the
upstream endpoint does not answer (an outage), the client's connection is closed without a response,
which botocore reports as a connection error, as it would for the endpoint itself.
"""

from __future__ import annotations

import http.client
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from devstack.sqs_iam import Denied, SqsPermissions, SqsRequest, credential_of, denial_response

log = logging.getLogger("devstack.iam")

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


class IamGateway:
    def __init__(self, upstream: str, permissions: SqsPermissions, host: str = "127.0.0.1", port: int = 0):
        split = urlsplit(upstream)
        self.upstream_host = split.hostname or "127.0.0.1"
        self.upstream_port = split.port or 80
        self.permissions = permissions
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
                headers = self.headers
                request = SqsRequest(
                    self.path,
                    credential_of(headers.get("Authorization", "")),
                    headers.get("X-Amz-Target", ""),
                    headers.get("Content-Type", ""),
                    body,
                )
                try:
                    gateway.permissions.authorize(request)
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
                status, headers, answer = denial_response(request, denied)
                self.send_response_only(status)
                for name, value in headers:
                    self.send_header(name, value)
                self._finish(answer)

            def _finish(self, answer: bytes) -> None:
                """Headers and body in one write."""
                self.send_header("Content-Length", str(len(answer)))
                self._headers_buffer.append(b"\r\n")
                self._headers_buffer.append(answer)
                self.flush_headers()

        return Handler
