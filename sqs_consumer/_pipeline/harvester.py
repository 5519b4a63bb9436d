"""`Harvester`: deletes acknowledged messages with DeleteMessageBatch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..observability.telemetry import Telemetry
from .batch_call import BatchStage, EntryRetry, batch_call
from .batching import Batcher
from .deadlines import ShutdownDeadline
from .sqs import Sqs

__all__ = ["Harvester"]

log = logging.getLogger("sqs_consumer")

_RETRY = EntryRetry(call_attempts=8, entry_rounds=5)


class Harvester(BatchStage):
    """Delete acknowledged messages in batches of up to `size` (≤ 10).

    Transient per-entry failures are sent again (a few times); entries whose receipt
    handle has expired are counted as `delete_errors` — the message comes back and is
    handled again, which at-least-once allows.

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
        # (receipt handle, message id): the id names what could not be deleted at shutdown.
        self._batcher: Batcher[tuple[str, str]] = Batcher(
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
        self._batcher.put_nowait((receipt_handle, message_id))

    def unsent(self) -> list[str]:
        """Ids of acknowledged messages whose delete was never sent (or was cut short)."""
        return [message_id for _, message_id in self._batcher.unsent()]

    async def _delete(self, items: list[tuple[str, str]]) -> None:
        def what(pending: Sequence[int]) -> str:
            ids = ", ".join(items[i][1] for i in pending)
            return f"could not delete {len(pending)} messages ({ids})"

        await batch_call(
            self._sqs,
            "delete_message_batch",
            [{"ReceiptHandle": handle} for handle, _ in items],
            queue_url=self._queue_url,
            retry=_RETRY,
            on_fatal=self._on_fatal,
            what=what,
            on_refused=self._refused,
            on_taken=self._deleted,
        )

    def _deleted(self, count: int) -> None:
        self._counters.deleted += count
        self._telemetry.deleted(count)

    def _refused(self, index: int, entry: Mapping[str, Any] | None) -> None:
        self._counters.delete_errors += 1
        if entry is not None:
            log.warning("delete refused: %s %s", entry.get("Code"), entry.get("Message"))
