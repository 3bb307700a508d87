"""moto's SQS without its O(queue depth) work on the hot path (applied in devstack.sqs_server only).

moto 5.2 keeps a queue's messages in one list and answers from it by scanning, in Python:
- every SendMessage reads `Queue.attributes` (for ContentBasedDeduplication), which counts the
  visible, in-flight and delayed messages, three passes over the whole list;
- every received message checks its retention period through `get_queue_attributes`: three more
  `Queue.attributes` (nine passes) per message;
- `Queue.messages` builds the list of every visible message on each receive, to take ten;
- DeleteMessage and ChangeMessageVisibility look for the receipt handle message by message.
At 5,000 queued messages a send took 37 ms and a receive of ten 1.7 s (docs/local-runner.md).

The changes keep moto's semantics and do the same work in O(1) or O(messages in flight):
- `Queue.attributes` is a read-only mapping that computes an attribute when it is read, so the
  three counts cost a pass only when a caller (GetQueueAttributes) asks for them, and the pass
  reads the clock once, not once per message;
- `Queue.messages` is a lazy view: receiving iterates only until it has its batch (past the
  in-flight messages at the head), and `bool()` (long polling) stops at the first visible one;
- receipt handles are indexed when a message is received, so a delete or a visibility change finds
  its message at once (and removes it with one C-level list operation).

Two fixes are not about speed alone: moto's `BaseModel` keeps every instance in a class-wide list
for its dashboard, so every message ever sent stayed in memory and in every full garbage collection
(messages are no longer listed); and a receive iterated the queue's set of in-flight messages while
a delete or a visibility change in another thread changed it (receives now hold the queue's lock,
as those changes do).

Two more costs are per request, not per message: moto's server finds the service of each request
by listing its own package directory (a stat per service) and matching every service's URL
patterns, under one lock; and each call lists its response class's methods with
`inspect.getmembers` to find the action's. Both answers depend only on their input (the host
name, the class), so they are remembered.

Written against moto 5.2.5 (`tests/test_moto_patches.py` checks the semantics and that the time per
call stays flat with depth); `apply()` refuses other versions rather than patch code it has not seen.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

PATCHED_VERSION = "5.2.5"
_COUNT_ATTRIBUTES = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    }
)
_applied = False
_apply_lock = threading.Lock()


class QueueAttributes(Mapping):
    """What moto's `Queue.attributes` returns, each value computed when it is read."""

    def __init__(self, queue: Any):
        self._queue = queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "Policy":
            return queue.policy
        if name == "RedrivePolicy":
            return json.dumps(queue.redrive_policy) if queue.redrive_policy else queue.redrive_policy
        if name in _COUNT_ATTRIBUTES:
            return _count(queue, name)
        value = getattr(queue, _underscored(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __contains__(self, name: object) -> bool:
        return name in self._names  # Mapping's own would compute the value to find out

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _count(queue: Any, name: str) -> int:
    """moto's count of `name`, with one clock reading for the pass instead of two per message:
    moto's `Message.visible` and `.delayed` each read it through datetime, ~600 ms of one CPU for
    the three counts at 5,000 messages."""
    from moto.core.utils import unix_time_millis

    if name == "ApproximateNumberOfMessages":
        return len(VisibleMessages(queue._messages))
    now = unix_time_millis()
    messages = queue._messages[:]  # a snapshot, as moto's list comprehensions were
    if name == "ApproximateNumberOfMessagesNotVisible":
        return sum(1 for m in messages if not now > m.visible_at)
    return sum(1 for m in messages if now < m.delayed_until)


_UNDERSCORED: dict[str, str] = {}


def _underscored(name: str) -> str:
    """moto's camelcase_to_underscores (a loop over characters), remembered per attribute name."""
    if name not in _UNDERSCORED:
        from moto.core.utils import camelcase_to_underscores

        _UNDERSCORED[name] = camelcase_to_underscores(name)
    return _UNDERSCORED[name]


class VisibleMessages:
    """`Queue.messages`: the visible, undelayed messages in queue order, found as they are read."""

    def __init__(self, messages: list):
        self._messages = messages[:]  # a snapshot, as moto's list was: deletes may run meanwhile

    def __iter__(self) -> Iterator:
        # moto's `visible` and `delayed` (now > visible_at, now < delayed_until), with one clock
        # reading for the pass: each of theirs reads it through datetime.
        from moto.core.utils import unix_time_millis

        now = unix_time_millis()
        return (m for m in self._messages if now > m.visible_at and not now < m.delayed_until)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __getitem__(self, index):
        return list(self)[index]


# Receipt handle -> the message it was issued for (old handles stay valid in moto, so they stay here).
_by_receipt_handle: dict[str, Any] = {}


def apply() -> None:
    """Patch moto's SQS models in this process; idempotent."""
    global _applied
    with _apply_lock:
        if _applied:
            return
        from importlib.metadata import version

        found = version("moto")
        if found != PATCHED_VERSION:
            raise RuntimeError(
                f"devstack.moto_patches was written for moto {PATCHED_VERSION}, found {found}: "
                "check moto/sqs/models.py against it and update the patch and its test"
            )
        _patch()
        _applied = True


def _new_untracked(cls, *args: Any, **kwargs: Any) -> Any:
    return object.__new__(cls)


def _patch() -> None:
    _patch_dispatch()
    _patch_action_lookup()
    _patch_sqs()


def _patch_dispatch() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    find_backend = DomainDispatcherApplication.get_backend_for_host
    backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in backends:
            backends[host] = find_backend(self, host)
        return backends[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


def _patch_action_lookup() -> None:
    from moto.core import responses

    responses.method_names_from_class = functools.cache(responses.method_names_from_class)


def _patch_sqs() -> None:
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs import models
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid

    Message, Queue, SQSBackend = models.Message, models.Queue, models.SQSBackend

    mark_received = Message.mark_received

    def indexed_mark_received(self, visibility_timeout: int | None = None) -> None:
        mark_received(self, visibility_timeout)
        _by_receipt_handle[self.receipt_handle] = self

    def message_in(queue, receipt_handle: str):
        message = _by_receipt_handle.get(receipt_handle)
        # `in` on a list compares by identity in C: no Python call per message.
        return message if message is not None and message in queue._messages else None

    def delete_message(self, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: SQS accepts a second delete
        with self._messages_lock:
            message = message_in(self, receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid()
            self._messages.remove(message)
            self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)
        for handle in message.all_receipt_handles:
            _by_receipt_handle.pop(handle, None)

    def change_message_visibility(
        self, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        # moto 5.2.5's own body, with the lookup by index instead of a scan.
        queue = self.get_queue(queue_name)
        message = message_in(queue, receipt_handle)
        if message is None:
            raise ReceiptHandleIsInvalid
        given_visibility_timeout = unix_time_millis() + int(visibility_timeout) * 1000
        if given_visibility_timeout - message.sent_timestamp > 43200 * 1000:
            raise InvalidParameterValue(
                f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
            )
        message.change_visibility(visibility_timeout)
        if message.visible:
            with queue._messages_lock:
                queue.pending_messages.discard(message)

    receive_message = SQSBackend.receive_message

    def locked_receive_message(self, queue_name: str, *args: Any, **kwargs: Any) -> list:
        # moto iterates the queue's set of in-flight messages while other threads' deletes and
        # visibility changes change it ("Set changed size during iteration": a 500 to the receive).
        # Changes to the set hold the queue's lock, so the receive does too; the lock is a
        # Condition on an RLock, which the long poll's wait releases.
        with self.get_queue(queue_name)._messages_lock:
            return receive_message(self, queue_name, *args, **kwargs)

    def is_message_valid_based_on_retention_period(self, queue_name: str, message) -> bool:
        # The same value get_queue_attributes(["MessageRetentionPeriod"]) returns, read directly.
        retention_period = self.get_queue(queue_name).message_retention_period
        return retention_period + message.sent_timestamp / 1000 > unix_time()

    Message.mark_received = indexed_mark_received
    # moto's dashboard lists every model instance, so its BaseModel keeps each one in a class-wide
    # list that nothing empties. This server serves no dashboard, and messages come by the
    # thousand: kept, every message ever sent stays in memory and each full garbage collection walks
    # them all (a pause that grows with the messages sent since the start, 45 ms after ~2,000).
    Message.__new__ = staticmethod(_new_untracked)
    Queue.attributes = property(QueueAttributes)
    Queue.messages = property(lambda self: VisibleMessages(self._messages))
    Queue.delete_message = delete_message
    SQSBackend.change_message_visibility = change_message_visibility
    SQSBackend.receive_message = locked_receive_message
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
