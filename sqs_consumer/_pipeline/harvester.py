"""`Harvester`: deletes acknowledged messages with DeleteMessageBatch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..message import Message
from ..observability.telemetry import Telemetry
from .batch_call import BatchStage, EntryRetry, batch_call
from .batching import Batcher
from .deadlines import ShutdownDeadline
from .sqs import Sqs

__all__ = ["Harvester"]

log = logging.getLogger("sqs_consumer")

_RETRY = EntryRetry(call_attempts=8, entry_rounds=5)


class _Ack:
    """One acknowledged message until SQS confirms its delete; its handle may be replaced."""

    __slots__ = ("message_id", "receipt_handle")

    def __init__(self, receipt_handle: str, message_id: str) -> None:
        self.receipt_handle = receipt_handle
        self.message_id = message_id


class Harvester(BatchStage):
    """Delete acknowledged messages in batches of up to `size` (≤ 10).

    Transient per-entry failures are sent again (a few times); entries whose receipt
    handle has expired are counted as `delete_errors` — the message comes back and is
    handled again, which at-least-once allows.

    An acknowledged message is still in flight to SQS until its delete is confirmed, and
    SQS may deliver it again meanwhile (its visibility ran out, e.g. past max_visibility).
    `adopt()` takes such a delivery: its handler already succeeded, so it is not handled
    again; its delete is sent with the newest receipt handle, the only one SQS deletes by
    (an older one fails, or on AWS succeeds without deleting), once more if a delete with
    the old handle was already on its way.

    Args:
        sqs: the SQS adapter.
        queue_url: the queue the messages came from.
        size: entries per DeleteMessageBatch.
        interval: seconds an ack may wait for its batch to fill.
        sends: DeleteMessageBatch calls in flight at once (deletes per second are about
            `sends x size / round trip`).
        counters: where deletes and errors are counted (attributes deleted, delete_errors).
        telemetry: metrics (messages deleted).
        on_fatal: called with an SqsError that should stop the consumer.
        deadline: bounds the shielded sends at shutdown (none: unbounded).
    """

    def __init__(
        self,
        sqs: Sqs,
        queue_url: str,
        *,
        size: int,
        interval: float,
        sends: int = 8,
        counters: Any,
        telemetry: Telemetry,
        on_fatal: Callable[[BaseException], None],
        deadline: ShutdownDeadline | None = None,
    ) -> None:
        self._sqs = sqs
        self._telemetry = telemetry
        self._queue_url = queue_url
        self._counters = counters
        self._on_fatal = on_fatal
        self._unconfirmed: dict[str, _Ack] = {}  # by message id: acks not yet confirmed
        self._batcher: Batcher[_Ack] = Batcher(
            self._delete,
            size=size,
            interval=interval,
            max_sends=sends,
            shield=deadline.shielded if deadline is not None else None,
        )

    def __len__(self) -> int:
        return len(self._batcher)

    def outstanding(self) -> int:
        """Acks not yet confirmed by SQS: to SQS these messages are still in flight."""
        return self._batcher.outstanding()

    def flush_nowait(self) -> None:
        """Delete what is queued now rather than waiting for a full batch."""
        self._batcher.flush_nowait()

    async def wait_deleted(self) -> None:
        """Return when the next DeleteMessageBatch call completes."""
        await self._batcher.wait_sent()

    def on_confirmed(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every DeleteMessageBatch call completes."""
        self._batcher.on_sent = callback

    def ack(self, receipt_handle: str, message_id: str = "?") -> None:
        """Queue a message for deletion (never blocks)."""
        ack = _Ack(receipt_handle, message_id)
        self._unconfirmed[message_id] = ack
        self._batcher.put_nowait(ack)

    def adopt(self, message: Message) -> bool:
        """True if `message` is acknowledged and its delete not confirmed yet: a second
        delivery of it, whose newest receipt handle the delete now uses."""
        ack = self._unconfirmed.get(message.message_id)
        if ack is None:
            return False
        ack.receipt_handle = message.receipt_handle
        return True

    def unsent(self) -> list[str]:
        """Ids of acknowledged messages whose delete was never sent (or was cut short)."""
        return [ack.message_id for ack in self._batcher.unsent()]

    async def _delete(self, items: list[_Ack]) -> None:
        handles = [ack.receipt_handle for ack in items]  # what this call sends
        taken = 0

        def what(pending: Sequence[int]) -> str:
            ids = ", ".join(items[i].message_id for i in pending)
            return f"could not delete {len(pending)} messages ({ids})"

        def count(deleted: int) -> None:
            nonlocal taken
            taken += deleted

        def refused(index: int, entry: Mapping[str, Any] | None) -> None:
            if items[index].receipt_handle == handles[index]:  # else: sent again below
                self._refused(index, entry)

        refused_for_good = await batch_call(
            self._sqs,
            "delete_message_batch",
            [{"ReceiptHandle": handle} for handle in handles],
            queue_url=self._queue_url,
            retry=_RETRY,
            on_fatal=self._on_fatal,
            what=what,
            on_refused=refused,
            on_taken=count,
        )
        again = []
        for index, ack in enumerate(items):
            if ack.receipt_handle != handles[index]:  # delivered again during the call
                again.append(ack)
                if index not in refused_for_good:
                    taken -= 1  # an old handle deletes nothing
            elif self._unconfirmed.get(ack.message_id) is ack:
                del self._unconfirmed[ack.message_id]
        if taken:
            self._deleted(taken)
        for ack in again:
            self._batcher.put_nowait(ack)

    def _deleted(self, count: int) -> None:
        self._counters.deleted += count
        self._telemetry.deleted(count)

    def _refused(self, index: int, entry: Mapping[str, Any] | None) -> None:
        self._counters.delete_errors += 1
        if entry is not None:
            log.warning("delete refused: %s %s", entry.get("Code"), entry.get("Message"))
