"""moto's SQS server in a process of its own, controlled over stdin.

moto spends far more CPU per request than the rest of the runner; in its own process it does not
compete with the API front and the pollers for one interpreter lock. Commands, one per line:
`stop` closes the listening socket (an outage: the queues and their messages stay in memory),
`start` listens again on the same port; end of input exits. Each command is answered `ok`.
"""

from __future__ import annotations

import logging
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
    server: ThreadedMotoServer | None = None

    def start() -> ThreadedMotoServer:
        running = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        running.start()
        return running

    server = start()
    print("ok", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stop" and server is not None:
            server.stop()
            server = None
        elif command == "start" and server is None:
            server = start()
        print("ok", flush=True)
    if server is not None:
        server.stop()


if __name__ == "__main__":
    main()
