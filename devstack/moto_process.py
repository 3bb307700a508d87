"""moto's server (its public `ThreadedMotoServer`) in a process of its own, controlled over stdin.

moto spends far more CPU per request than the rest of the runner: in its own process it does not
compete with the API front and the pollers for one interpreter lock. Commands, one per line, each
answered `ok`: `stop` stops serving (an outage: moto's state, the queues and their messages, stays
in this process), `start` serves again on the same port; end of input exits.
"""

from __future__ import annotations

import gc
import logging
import sys

from moto.server import ThreadedMotoServer


def serve(host: str, port: int) -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return server


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # it logs every request otherwise
    server: ThreadedMotoServer | None = serve(host, port)
    print("ok", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stop" and server is not None:
            server.stop()
            # The stopped server's listening socket closes with it, so clients are refused during
            # the outage and the port is free for `start`.
            server = None
            gc.collect()
        elif command == "start" and server is None:
            server = serve(host, port)
        print("ok", flush=True)
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
