"""moto's SQS in a process of its own, served over kept-alive connections, controlled over stdin.

moto spends far more CPU per request than the rest of the runner; in its own process it does not
compete with the API front and the pollers for one interpreter lock. Its own `ThreadedMotoServer`
is werkzeug's development server, which closes the connection after every response (a new TCP
connection and a new thread per SQS call), so moto's WSGI application is served by cheroot
instead: a thread pool and HTTP/1.1 keep-alive, as SQS itself offers. devstack.moto_patches takes
moto's O(queue depth) work off the hot path.

IAM is checked here, in front of moto's application (devstack/sqs_iam.py), not in a proxy hop of
the runner's: a request signed with a role's access key is asked of the role; every other key (the
runner's own, or one a gateway in front has checked) passes.

Commands, one per line: `stop` closes the listening socket and the open connections (an outage:
the queues and their messages stay in memory), `start` listens again on the same port,
`roles <JSON: function -> policy documents>` enforces those roles from now on; end of input exits.
Each command is answered `ok`. A denied call is reported on stdout as `denied <JSON [function,
action, resource]>` when it happens, for the runner to log and record.
"""

from __future__ import annotations

import gc
import io
import json
import re
import socket
import sys
import threading
from http import HTTPStatus

from botocore.exceptions import ClientError
from cheroot import wsgi
from cheroot.makefile import StreamWriter
from cheroot.server import HTTPConnection
from flask import Response

from devstack import moto_patches
from devstack.iam import Role
from devstack.sqs_iam import (
    Denial,
    Denied,
    SqsPermissions,
    SqsRequest,
    credential_of,
    denial_response,
)

# Long polls hold a worker for up to 20 s: enough workers that the pollers never starve the senders.
WORKER_THREADS = 48
# Kept-alive connections idle longer than this are closed (clients reconnect transparently).
IDLE_CONNECTION_SECONDS = 60
# How long `stop` waits for requests in progress; a long poll past it is cut, as in an outage.
SHUTDOWN_SECONDS = 1


class _CountingSocketIO(socket.SocketIO):
    def __init__(self, sock: socket.socket):
        super().__init__(sock, "rb")
        self.received = 0

    def readinto(self, buffer) -> int | None:
        count = super().readinto(buffer)
        self.received += count or 0
        return count


class SocketReader(io.BufferedReader):
    """What cheroot reads requests with (its StreamReader's interface), on the C buffered reader:
    cheroot's own is built on the pure-Python `_pyio` one, whose readline (once per header line)
    cost about a tenth of this process's CPU."""

    def __init__(self, sock: socket.socket, bufsize: int):
        super().__init__(_CountingSocketIO(sock), bufsize)
        self.bytes_read = 0  # cheroot's statistics count what read() returns
        self._consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        self._consumed += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self._consumed += len(line)
        return line

    def has_data(self) -> bool:
        """Whether the next request is already buffered (cheroot serves it without waiting);
        never reads from the socket."""
        return self.raw.received > self._consumed


class Connection(HTTPConnection):
    def __init__(self, http_server, sock, makefile=None):
        super().__init__(http_server, sock, _socket_file)


def _socket_file(sock: socket.socket, mode: str, bufsize: int):
    return SocketReader(sock, bufsize) if "r" in mode else StreamWriter(sock, mode, bufsize)


class RoleEnforcement:
    """WSGI middleware: a denied request gets SQS's denial, any other goes on to moto unchanged."""

    def __init__(self, app):
        self.app = app
        self.permissions: SqsPermissions | None = None  # None: nothing is checked (DEVSTACK_IAM=off)

    def __call__(self, environ, start_response):
        permissions = self.permissions
        credential = credential_of(environ.get("HTTP_AUTHORIZATION", ""))
        if permissions is not None and permissions.checks(credential and credential.access_key_id):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
            query = environ.get("QUERY_STRING")
            request = SqsRequest(
                environ.get("PATH_INFO", "/") + (f"?{query}" if query else ""),
                credential,
                environ.get("HTTP_X_AMZ_TARGET", ""),
                environ.get("CONTENT_TYPE", ""),
                body,
            )
            try:
                permissions.authorize(request)
            except Denied as denied:
                status, headers, answer = denial_response(request, denied)
                headers.append(("Content-Length", str(len(answer))))
                start_response(f"{status} {HTTPStatus(status).phrase}", headers)
                return [answer]
        return self.app(environ, start_response)


class SqsApplication:
    """moto's WSGI application, with SQS calls handed straight to moto's SQS handler.

    moto's server passes every request through DomainDispatcherApplication (which service?) and a
    Flask application per service (routing, request context, CORS, finalizing) before it calls the
    handler that the service's urls.py names for the path: about 0.2 ms of CPU per SQS call, a third
    of moto's. A request signed for SQS on one of SQS's paths goes to that handler directly, called
    and answered as moto's Flask view does (moto.core.utils.convert_to_flask_response), without the
    CORS header Flask adds (SQS sends none); anything else (other services, unsigned requests,
    /moto-api, other paths) goes through moto's application as before."""

    def __init__(self):
        from moto.moto_server.werkzeug_app import (
            BackendRequest,
            DomainDispatcherApplication,
            create_backend_app,
        )
        from moto.sqs.urls import url_paths

        self.moto = DomainDispatcherApplication(create_backend_app)
        self.request_class = BackendRequest  # what moto's Flask app builds its requests as
        # moto's own SQS routes ("{0}/$", "{0}/<account>/<queue>"), as its server formats them.
        self.routes = [
            (re.compile(path.format("").removesuffix("$")), handler) for path, handler in url_paths.items()
        ]

    def __call__(self, environ, start_response):
        handler = self._sqs_handler(environ)
        if handler is None:
            return self.moto(environ, start_response)
        request = self.request_class(environ)
        try:
            result = handler(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        return Response(response=content, status=status, headers=headers)(environ, start_response)

    def _sqs_handler(self, environ):
        credential = credential_of(environ.get("HTTP_AUTHORIZATION", ""))
        if credential is None or credential.service != "sqs":
            return None
        path = environ.get("PATH_INFO", "")
        return next((handler for route, handler in self.routes if route.fullmatch(path)), None)


class SqsServer:
    def __init__(self, host: str, port: int):
        self.address = (host, port)
        # One application for the life of the process: moto's state lives in its backends.
        self.app = RoleEnforcement(SqsApplication())
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        server = wsgi.Server(
            self.address,
            self.app,
            numthreads=WORKER_THREADS,
            request_queue_size=256,
            timeout=IDLE_CONNECTION_SECONDS,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        server.ConnectionClass = Connection
        server.prepare()  # bound and listening before we answer `ok`
        self._thread = threading.Thread(target=server.serve, name="sqs", daemon=True)
        self._thread.start()
        self._server = server

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=5)
        self._server = None


_stdout_lock = threading.Lock()  # answers and denial reports come from different threads


def say(line: str) -> None:
    with _stdout_lock:
        print(line, flush=True)


def report(denial: Denial) -> None:
    say(f"denied {json.dumps(denial)}")


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    moto_patches.apply()  # SQS at a flat speed whatever the queue's depth
    server = SqsServer(host, port)
    # moto, botocore's models and the servers stay for the life of the process: frozen, full
    # garbage collections no longer walk them (~48k objects, a 15 ms pause of every thread).
    gc.collect()
    gc.freeze()
    server.start()
    say("ok")
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "stop" and server.running:
            server.stop()
        elif command == "start" and not server.running:
            server.start()
        elif command == "roles":
            roles = {
                function: Role(function, tuple(documents))
                for function, documents in json.loads(argument).items()
            }
            server.app.permissions = SqsPermissions(roles, report)
        say("ok")
    if server.running:
        server.stop()


if __name__ == "__main__":
    main()
