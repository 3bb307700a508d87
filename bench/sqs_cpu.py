"""CPU per SQS call of the local SQS endpoint, and of the IAM proxy hop in front of it (micro benchmark).

    .venv/bin/python -m bench.sqs_cpu [N] [mode ...]

A boto3 client (one thread, kept-alive connection) sends N SendMessage with the submit function's
role credentials, then receives them ten at a time and deletes each with the process function's:
N + N/10 + N calls. The server's CPU comes from /proc/<pid>/stat before and after (all its threads),
the client's from time.process_time. Modes:
- `trusted`: the runner's own credentials straight to the server (no IAM work at all);
- `server`: role credentials straight to the server, which checks the roles itself (`make dev`);
- `gateway`: role credentials through the IAM gateway, run in a process of its own so its CPU (the
  hop the runner pays for an external endpoint) is measured apart.
Numbers are CPU time, not latency: on a shared machine they stay comparable across runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from devstack.iam import function_roles, role_credentials
from devstack.sqs import LocalSQS, sqs_client
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
TICKS = os.sysconf("SC_CLK_TCK")
GATEWAY = """
import json, sys
from devstack.iam import Role
from devstack.iam_gateway import IamGateway
from devstack.sqs import FAKE_CREDENTIALS
from devstack.sqs_iam import SqsPermissions
upstream, roles = sys.argv[1], json.loads(sys.argv[2])
roles = {function: Role(function, tuple(documents)) for function, documents in roles.items()}
permissions = SqsPermissions(roles, print, trusted_key_ids={FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]})
gateway = IamGateway(upstream, permissions).start()
print(gateway.endpoint, flush=True)
sys.stdin.read()
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def exchange(endpoint: str, queue_url: str, count: int, trusted: bool) -> int:
    """Send `count` messages, receive and delete them all; returns the number of calls made."""
    sender = sqs_client(endpoint, None if trusted else role_credentials("SubmitFunction"))
    receiver = sqs_client(endpoint, None if trusted else role_credentials("ProcessFunction"))
    calls = 0
    for index in range(count):
        sender.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"event_id": index}))
        calls += 1
    received = 0
    while received < count:
        messages = receiver.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        calls += 1
        for message in messages:
            receiver.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            calls += 1
        received += len(messages)
    return calls


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    modes = sys.argv[2:] or ["trusted", "server", "gateway"]
    template = load_template(TEMPLATE)
    sqs = LocalSQS(template.queues)
    sqs.start()
    queue_url = sqs.queue_urls["JobsQueue"]
    queue_names = {lid: url.rsplit("/", 1)[-1] for lid, url in sqs.queue_urls.items()}
    roles = function_roles(TEMPLATE, queue_names=queue_names)
    server_pid = sqs._server.pid
    try:
        for mode in modes:
            endpoint, gateway = sqs.endpoint, None
            if mode == "server":
                sqs.enforce(roles, print)
            elif mode == "gateway":
                sqs.enforce({}, print)
                documents = {function: list(role.documents) for function, role in roles.items()}
                gateway = subprocess.Popen(  # noqa: S603 - our own interpreter
                    [sys.executable, "-c", GATEWAY, sqs.endpoint, json.dumps(documents)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                endpoint = gateway.stdout.readline().strip()
            exchange(endpoint, queue_url, 50, mode == "trusted")  # warm: connections, caches
            server, client = cpu_seconds(server_pid), time.process_time()
            hop = cpu_seconds(gateway.pid) if gateway else 0.0
            started = time.perf_counter()
            calls = exchange(endpoint, queue_url, count, mode == "trusted")
            wall = time.perf_counter() - started
            server, client = cpu_seconds(server_pid) - server, time.process_time() - client
            line = (
                f"{mode:8} {calls} calls in {wall:5.1f} s: server {server / calls * 1000:.3f} ms/call, "
                f"client {client / calls * 1000:.3f} ms/call"
            )
            if gateway:
                line += f", gateway {(cpu_seconds(gateway.pid) - hop) / calls * 1000:.3f} ms/call"
                gateway.stdin.close()
                gateway.wait()
            print(line, flush=True)
    finally:
        sqs.close()


if __name__ == "__main__":
    main()
