"""moto's SQS in a process of its own, served over kept-alive connections, controlled over stdin.

moto spends far more CPU per request than the rest of the runner; in its own process it does not
compete with the API front and the pollers for one interpreter lock. Its own `ThreadedMotoServer`
is werkzeug's development server, which closes the connection after every response (a new TCP
connection and a new thread per SQS call), so moto's WSGI application is served by cheroot
instead: a thread pool and HTTP/1.1 keep-alive, as SQS itself offers. devstack.moto_patches takes
moto's O(queue depth) work off the hot path.

Commands, one per line: `stop` closes the listening socket and the open connections (an outage:
the queues and their messages stay in memory), `start` listens again on the same port; end of
input exits. Each command is answered `ok`.
"""

from __future__ import annotations

import sys
import threading

from cheroot import wsgi

from devstack import moto_patches

# Long polls hold a worker for up to 20 s: enough workers that the pollers never starve the senders.
WORKER_THREADS = 48
# Kept-alive connections idle longer than this are closed (clients reconnect transparently).
IDLE_CONNECTION_SECONDS = 60
# How long `stop` waits for requests in progress; a long poll past it is cut, as in an outage.
SHUTDOWN_SECONDS = 1


class SqsServer:
    def __init__(self, host: str, port: int):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.address = (host, port)
        # One application for the life of the process: moto's state lives in its backends.
        self.app = DomainDispatcherApplication(create_backend_app)
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


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    moto_patches.apply()  # SQS at a flat speed whatever the queue's depth
    server = SqsServer(host, port)
    server.start()
    print("ok", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stop" and server.running:
            server.stop()
        elif command == "start" and not server.running:
            server.start()
        print("ok", flush=True)
    if server.running:
        server.stop()


if __name__ == "__main__":
    main()
