"""A real SQS-protocol endpoint (moto's server, in its own process) with the template's queues.

Stopping and starting the endpoint (a simulated outage) keeps the queues and their messages, as an
SQS outage would. Queues are named with a per-stack suffix, so stacks sharing an
endpoint (invoke against a running `make dev`) never collide.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys

import boto3
from botocore.config import Config

from devstack.children import end_child
from devstack.template import REGION, BucketSpec, QueueSpec, queue_arn

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
    """A client with the runner's fake credentials; `config` is botocore's, over two retries in
    standard mode (which also retries the 500s moto answers now and then, as AWS's pollers do)."""
    return aws_client("sqs", endpoint, **config)


def aws_client(service: str, endpoint: str, **config):
    credentials = FAKE_CREDENTIALS
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
        config=Config(**({"retries": {"max_attempts": 2, "mode": "standard"}} | config)),
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
        buckets: dict[str, BucketSpec] | None = None,
    ):
        self.queues = queues
        self.buckets = buckets or {}
        self.host = host
        self.port = port or free_port(host)
        self.external_endpoint = endpoint
        self.queue_urls: dict[str, str] = dict(queue_urls or {})
        self._server: subprocess.Popen | None = None
        self.running = False

    @property
    def endpoint(self) -> str:
        return self.external_endpoint or f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self.external_endpoint:
            if not self.queue_urls:
                self.create_queues()
                self.create_buckets()
            return
        if self._server is None:
            self._server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "devstack.moto_process", self.host, str(self.port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,  # Ctrl-C reaches the runner, which stops it
            )
            self._answer()
        else:
            self._command("start")
        self.running = True
        self.create_queues()
        self.create_buckets()

    def _command(self, command: str) -> None:
        self._server.stdin.write(command + "\n")
        self._server.stdin.flush()
        self._answer()

    def _answer(self) -> None:
        if self._server.stdout.readline().strip() != "ok":
            raise RuntimeError(f"the moto server on port {self.port} did not answer (exited?)")

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

    def create_buckets(self) -> None:
        """Each bucket with its notifications to the template's queues: moto sends an upload's event
        (after an s3:TestEvent, as S3 does) to the queue."""
        client = aws_client("s3", self.endpoint)
        for bucket in self.buckets.values():
            client.create_bucket(Bucket=bucket.name)
            if bucket.queue_notifications:
                configurations = [
                    {
                        "QueueArn": n["Queue"],
                        "Events": [n["Event"]],
                        # CloudFormation's S3Key.Rules are the API's Key.FilterRules.
                        **(
                            {"Filter": {"Key": {"FilterRules": n["Filter"]["S3Key"]["Rules"]}}}
                            if "Filter" in n
                            else {}
                        ),
                    }
                    for n in bucket.queue_notifications
                ]
                client.put_bucket_notification_configuration(
                    Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": configurations}
                )

    def stop(self) -> None:
        """An outage: the endpoint stops answering; queues and messages are kept."""
        if self._server is not None and self.running:
            self._command("stop")
        self.running = False

    def close(self) -> None:
        if self._server is None:
            return
        end_child(self._server)
        self._server.stdout.close()
        self._server = None
        self.running = False


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
