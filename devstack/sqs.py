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
HOST = "127.0.0.1"

# Credentials moto accepts; never real ones, so nothing can reach AWS by mistake.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def sqs_client(endpoint: str, service: str = "sqs", **config):
    """A client with the runner's fake credentials; `config` is botocore's, over two retries in
    standard mode (which also retries the 500s moto answers now and then, as AWS's pollers do)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(**({"retries": {"max_attempts": 2, "mode": "standard"}} | config)),
    )


class LocalSQS:
    """moto's server on a free port, or, given `endpoint`, an SQS endpoint that already runs: its
    `queue_urls` when given (a running stack's), else the queues are created there."""

    def __init__(
        self,
        queues: dict[str, QueueSpec],
        buckets: dict[str, BucketSpec] | None = None,
        endpoint: str | None = None,
        queue_urls: dict[str, str] | None = None,
    ):
        self.queues = queues
        self.buckets = buckets or {}
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            self.port = sock.getsockname()[1]
        self.endpoint = endpoint or f"http://{HOST}:{self.port}"
        self.external = endpoint is not None
        self.queue_urls: dict[str, str] = dict(queue_urls or {})
        self._server: subprocess.Popen | None = None
        self.running = False

    def start(self) -> None:
        if self.external and self.queue_urls:
            return
        if not self.external and self._server is None:
            self._server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "devstack.moto_process", HOST, str(self.port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,  # Ctrl-C reaches the runner, which stops it
            )
            self._answer()
        elif not self.external:
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
        for queue in sorted(self.queues.values(), key=lambda q: q.dead_letter_queue is not None):
            attributes = dict(queue.attributes)
            if queue.dead_letter_queue:
                target = queue_arn(self.queues[queue.dead_letter_queue].name)
                policy = {"deadLetterTargetArn": target, "maxReceiveCount": queue.max_receive_count}
                attributes["RedrivePolicy"] = json.dumps(policy)
            url = client.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
            self.queue_urls[queue.logical_id] = url

    def create_buckets(self) -> None:
        """Each bucket with its notifications to the template's queues: moto sends an upload's event
        (after an s3:TestEvent, as S3 does) to the queue."""
        client = sqs_client(self.endpoint, "s3")
        for bucket in self.buckets.values():
            client.create_bucket(Bucket=bucket.name)
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
            if configurations:
                client.put_bucket_notification_configuration(
                    Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": configurations}
                )

    def stop(self) -> None:
        """An outage: the endpoint stops answering; queues and messages are kept."""
        if self._server is not None and self.running:
            self._command("stop")
        self.running = False

    def close(self) -> None:
        if self._server is not None:
            end_child(self._server)
            self._server.stdout.close()
            self._server = None
        self.running = False


def redrive_all(client, queues: dict[str, QueueSpec], queue_urls: dict[str, str]) -> int:
    """Move every message of each dead-letter queue back to its source queue (the service's messages
    are their body alone)."""
    moved = 0
    for queue in queues.values():
        if not queue.dead_letter_queue:
            continue
        source, dead_letters = queue_urls[queue.logical_id], queue_urls[queue.dead_letter_queue]
        while messages := client.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                client.send_message(QueueUrl=source, MessageBody=message["Body"])
                client.delete_message(QueueUrl=dead_letters, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
    if moved:
        log.info("redrove %d message(s) from the dead-letter queues", moved)
    return moved
