"""Batched ChangeMessageVisibilityBatch: retry delays, shutdown releases and extensions."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from .._sqs_rules import MAX_BATCH_ENTRIES, MAX_VISIBILITY
from .batch_call import BatchStage, EntryRetry, batch_call
from .batching import Batcher
from .deadlines import ShutdownDeadline
from .sqs import Sqs

__all__ = ["VisibilityChanger"]

log = logging.getLogger("sqs_consumer")

_RETRY = EntryRetry(call_attempts=8, entry_rounds=5)


def whole_seconds(timeout: float) -> int:
    """The VisibilityTimeout SQS accepts for `timeout`: rounded up, within 0..43200."""
    return max(0, min(MAX_VISIBILITY, math.ceil(timeout)))


class VisibilityChanger(BatchStage):
    """Set the visibility timeout of received messages, up to 10 per call.

    A failed change is not fatal for the message: without it the message simply comes
    back when its current visibility timeout runs out.

    Args:
        sqs: the SQS adapter.
        queue_url: the queue the messages came from.
        interval: seconds a change may wait for its batch to fill.
        counters: where errors are counted (attribute visibility_errors).
        on_fatal: called with an SqsError that should stop the consumer.
        deadline: bounds the shielded sends at shutdown (none: unbounded).
    """

    def __init__(
        self,
        sqs: Sqs,
        queue_url: str,
        *,
        interval: float,
        counters: Any,
        on_fatal: Callable[[BaseException], None],
        deadline: ShutdownDeadline | None = None,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._counters = counters
        self._on_fatal = on_fatal
        # (receipt handle, seconds, message id): the id names what was not sent at shutdown.
        self._batcher: Batcher[tuple[str, int, str]] = Batcher(
            self._change,
            size=MAX_BATCH_ENTRIES,
            interval=interval,
            shield=deadline.shielded if deadline is not None else None,
        )

    def change(self, receipt_handle: str, timeout: float, message_id: str = "?") -> None:
        """Queue a visibility change to `timeout` seconds from now (never blocks).

        SQS takes whole seconds: a fraction rounds up, so a delay never comes back early.
        """
        self._batcher.put_nowait((receipt_handle, whole_seconds(timeout), message_id))

    def unsent(self) -> list[str]:
        """Ids of messages whose visibility change was never sent (or was cut short)."""
        return [message_id for _, _, message_id in self._batcher.unsent()]

    async def _change(self, items: list[tuple[str, int, str]]) -> None:
        await batch_call(
            self._sqs,
            "change_message_visibility_batch",
            [{"ReceiptHandle": handle, "VisibilityTimeout": t} for handle, t, _ in items],
            queue_url=self._queue_url,
            retry=_RETRY,
            on_fatal=self._on_fatal,
            what=lambda pending: f"could not change visibility of {len(pending)} messages",
            on_refused=self._refused,
        )

    def _refused(self, index: int, entry: Mapping[str, Any] | None) -> None:
        self._counters.visibility_errors += 1
        if entry is not None:
            log.debug("visibility change refused: %s", entry.get("Code"))
