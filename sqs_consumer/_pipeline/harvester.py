"""`Harvester`: deletes acknowledged messages with DeleteMessageBatch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from ..observability.telemetry import Telemetry
from .batching import Batcher
from .deadlines import ShutdownDeadline
from .sqs import Sqs

__all__ = ["Harvester"]

log = logging.getLogger("sqs_consumer")

# Per-entry codes that retrying cannot fix: the receipt handle is no longer ours.
_GONE = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"})
_ENTRY_ATTEMPTS = 5


class Harvester:
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

    def ack(self, receipt_handle: str, message_id: str = "?") -> None:
        """Queue a message for deletion (never blocks)."""
        self._batcher.put_nowait((receipt_handle, message_id))

    def unsent(self) -> list[str]:
        """Ids of acknowledged messages whose delete was never sent (or was cut short)."""
        return [message_id for _, message_id in self._batcher.unsent()]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Delete batches until `aclose()`."""
        await self._batcher.run(task_status=task_status)

    async def drain_here(self) -> None:
        """Delete everything queued from the calling task (its own tasks are cancelled)."""
        await self._batcher.drain_here()

    async def aclose(self) -> None:
        """Delete everything queued, then stop."""
        await self._batcher.aclose()

    async def _delete(self, items: list[tuple[str, str]]) -> None:
        handles = [handle for handle, _ in items]
        for attempt in range(1, _ENTRY_ATTEMPTS + 1):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
            response = await self._sqs.call_or_report(
                "delete_message_batch",
                attempts=8,
                on_fatal=self._on_fatal,
                what=f"could not delete {len(handles)} messages ({_ids(items, handles)})",
                QueueUrl=self._queue_url,
                Entries=entries,
            )
            if response is None:
                self._counters.delete_errors += len(handles)
                return
            failed = response.get("Failed") or []
            self._counters.deleted += len(handles) - len(failed)
            self._telemetry.deleted(len(handles) - len(failed))
            retry: list[str] = []
            for entry in failed:
                if entry.get("Code") in _GONE or attempt == _ENTRY_ATTEMPTS:
                    self._counters.delete_errors += 1
                    log.warning("delete refused: %s %s", entry.get("Code"), entry.get("Message"))
                else:
                    retry.append(handles[int(entry["Id"])])
            if not retry:
                return
            handles = retry
            await anyio.sleep(0.05 * 2**attempt)


def _ids(items: list[tuple[str, str]], handles: list[str]) -> str:
    """The message ids of `handles` (they come back after their visibility timeout)."""
    wanted = set(handles)
    return ", ".join(message_id for handle, message_id in items if handle in wanted)
