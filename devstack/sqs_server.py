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

import io
import json
import sys
import threading
from http import HTTPStatus

from cheroot import wsgi

from devstack import moto_patches
from devstack.iam import Role
from devstack.sqs_iam import Denial, Denied, SqsPermissions, SqsRequest, access_key_id, denial_response

# Long polls hold a worker for up to 20 s: enough workers that the pollers never starve the senders.
WORKER_THREADS = 48
# Kept-alive connections idle longer than this are closed (clients reconnect transparently).
IDLE_CONNECTION_SECONDS = 60
# How long `stop` waits for requests in progress; a long poll past it is cut, as in an outage.
SHUTDOWN_SECONDS = 1


class RoleEnforcement:
    """WSGI middleware: a denied request gets SQS's denial, any other goes on to moto unchanged."""

    def __init__(self, app):
        self.app = app
        self.permissions: SqsPermissions | None = None  # None: nothing is checked (DEVSTACK_IAM=off)

    def __call__(self, environ, start_response):
        permissions = self.permissions
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if permissions is not None and permissions.checks(access_key_id(authorization)):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)  # moto reads the body again
            query = environ.get("QUERY_STRING")
            request = SqsRequest(
                environ.get("PATH_INFO", "/") + (f"?{query}" if query else ""),
                authorization,
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


class SqsServer:
    def __init__(self, host: str, port: int):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.address = (host, port)
        # One application for the life of the process: moto's state lives in its backends.
        self.app = RoleEnforcement(DomainDispatcherApplication(create_backend_app))
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
