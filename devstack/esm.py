"""The SQS event source mapping: pollers that invoke a function with batches, as Lambda does.

Up to MaximumConcurrency pollers each long-poll the queue for a batch of up to BatchSize, invoke
the function and delete the records that succeeded. Records that failed are left alone: they come
back after the visibility timeout, and the queue's redrive policy moves them to the dead-letter
queue after maxReceiveCount receives.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.runtime import FunctionPool
from devstack.sqs import sqs_client
from devstack.template import REGION, SqsSource

log = logging.getLogger("devstack.esm")

# Lambda long-polls with 20 s; a shorter wait lets the runner stop within a couple of seconds.
POLL_WAIT_SECONDS = 2
# Lambda's floor for the pollers of an SQS mapping without ScalingConfig is 5; locally fewer do.
DEFAULT_CONCURRENCY = 5
RETRY_PAUSE_SECONDS = 1.0


def lambda_sqs_record(message: dict, queue_arn: str) -> dict:
    """An SQS message as Lambda puts it in the event (camelCase keys). The service sends no message
    attributes, so none are carried over."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def succeeded_records(records: list[dict], result: Any, report_failures: bool) -> list[dict]:
    """Which records to delete after a successful invocation, following Lambda's rules for
    ReportBatchItemFailures: an empty or missing list means all succeeded; an invalid response
    (unknown or empty identifier, wrong shape) means the whole batch failed."""
    if not report_failures or result is None:
        return records
    if not isinstance(result, dict):
        return []
    failures = result.get("batchItemFailures")
    if failures is None:
        return records
    if not isinstance(failures, list):
        return []
    ids = {record["messageId"] for record in records}
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in ids:
            return []
        failed.add(identifier)
    return [record for record in records if record["messageId"] not in failed]


class EventSourceMapping:
    def __init__(
        self,
        source: SqsSource,
        queue_url: str,
        queue_arn: str,
        pool: FunctionPool,
        endpoint: str,
    ):
        self.source = source
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.pool = pool
        self.endpoint = endpoint
        self.concurrency = source.maximum_concurrency or DEFAULT_CONCURRENCY
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start polling; after `stop` this enables the mapping again (Lambda's Enabled: true)."""
        self._stop = threading.Event()
        self._threads = []
        for number in range(1, self.concurrency + 1):
            thread = threading.Thread(
                target=self._poll, name=f"esm-{self.source.queue}-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Stop polling; invocations under way finish, and their records that succeeded are deleted."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=POLL_WAIT_SECONDS + 3)

    def _poll(self) -> None:
        client = sqs_client(self.endpoint, read_timeout=POLL_WAIT_SECONDS + 5)
        while not self._stop.is_set():
            try:
                batch = self._gather(client)
            except (BotoCoreError, ClientError) as exc:
                # The endpoint is down or restarting, or moto failed the call (a receive racing a
                # delete can raise "Set changed size during iteration" inside moto): retry, as the
                # Lambda poller does.
                log.debug("polling %s failed: %s", self.source.queue, exc)
                self._stop.wait(RETRY_PAUSE_SECONDS)
                continue
            if batch and self._stop.is_set():
                self._release(client, batch)
            elif batch:
                self._deliver(client, batch)

    def _release(self, client, batch: list[dict]) -> None:
        """Make a batch received as the mapping stops visible again, not after the visibility timeout."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(batch)
        ]
        try:
            client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            log.debug("releasing %d messages failed: %s", len(batch), exc)  # back after the timeout

    def _gather(self, client) -> list[dict]:
        """One batch of up to BatchSize (the template's mappings have no batching window)."""
        response = client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, 10),
            WaitTimeSeconds=POLL_WAIT_SECONDS,
            MessageSystemAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _deliver(self, client, messages: list[dict]) -> None:
        records = [lambda_sqs_record(message, self.queue_arn) for message in messages]
        invocation = self.pool.invoke({"Records": records})
        if not invocation.ok:
            log.warning(
                "%s batch of %d failed (%s): the messages return after the visibility timeout",
                self.pool.spec.short_name,
                len(records),
                invocation.error_type,
            )
            return
        done = succeeded_records(records, invocation.payload, self.source.report_batch_item_failures)
        log.info(
            "%s batch of %d: %d succeeded, %d to retry (%.0f ms)",
            self.pool.spec.short_name,
            len(records),
            len(done),
            len(records) - len(done),
            invocation.duration_ms,
        )
        if not done:
            return
        entries = [{"Id": str(i), "ReceiptHandle": record["receiptHandle"]} for i, record in enumerate(done)]
        try:
            client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            # The messages come back and are processed again: handlers must be idempotent anyway.
            log.warning("deleting processed messages failed: %s", exc)
