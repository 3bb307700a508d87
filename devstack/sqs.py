"""A real SQS-protocol endpoint (moto's server) with the template's queues.

moto keeps its state in this process, so stopping and starting the endpoint (a simulated outage)
keeps the queues and their messages, as an SQS outage would. Several stacks in one process (tests)
share that state; their queues do not collide because each stack names them with its own suffix.
"""

from __future__ import annotations

import json
import logging
import socket

import boto3
from botocore.config import Config

from devstack.template import REGION, QueueSpec, queue_arn

log = logging.getLogger("devstack.sqs")

# Credentials moto accepts; never real ones, so nothing can reach AWS by mistake.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def sqs_client(endpoint: str, **config):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, **config),
    )


class LocalSQS:
    """moto's server on host:port, or, given `endpoint`, an SQS endpoint that already runs: its
    `queue_urls` when given (a running stack's), else the queues are created there."""

    def __init__(
        self,
        queues: dict[str, QueueSpec],
        host: str = "127.0.0.1",
        port: int = 0,
        endpoint: str | None = None,
        queue_urls: dict[str, str] | None = None,
    ):
        self.queues = queues
        self.host = host
        self.port = port or free_port(host)
        self.external_endpoint = endpoint
        self.queue_urls: dict[str, str] = dict(queue_urls or {})
        self._server = None

    @property
    def endpoint(self) -> str:
        return self.external_endpoint or f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self.external_endpoint:
            if not self.queue_urls:
                self.create_queues()
            return
        from moto.server import ThreadedMotoServer  # slow import, only when a stack starts

        # moto logs every request through werkzeug even when not verbose.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.create_queues()

    def create_queues(self) -> None:
        client = sqs_client(self.endpoint)
        # Dead-letter queues first: a redrive policy must name an existing queue.
        ordered = sorted(self.queues.values(), key=lambda q: q.dead_letter_queue is not None)
        for queue in ordered:
            attributes = dict(queue.attributes)
            if queue.dead_letter_queue:
                dlq = self.queues[queue.dead_letter_queue]
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": queue_arn(dlq.name), "maxReceiveCount": queue.max_receive_count}
                )
            url = client.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
            self.queue_urls[queue.logical_id] = url
        log.debug("queues ready: %s", ", ".join(self.queue_urls))

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None


def redrive(client, dead_letter_url: str, source_url: str) -> int:
    """Move every message of a dead-letter queue back to its source queue (body and attributes)."""
    moved = 0
    while True:
        messages = client.receive_message(
            QueueUrl=dead_letter_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return moved
        for message in messages:
            send = {"QueueUrl": source_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                send["MessageAttributes"] = message["MessageAttributes"]
            client.send_message(**send)
            client.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1


def redrive_all(client, queues: dict[str, QueueSpec], queue_urls: dict[str, str]) -> int:
    moved = 0
    for queue in queues.values():
        if queue.dead_letter_queue:
            count = redrive(client, queue_urls[queue.dead_letter_queue], queue_urls[queue.logical_id])
            if count:
                log.info(
                    "redrove %d message(s) from %s to %s", count, queue.dead_letter_queue, queue.logical_id
                )
            moved += count
    return moved
