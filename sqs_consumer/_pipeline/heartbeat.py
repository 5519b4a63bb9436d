"""`Heartbeat`: one task that keeps in-flight messages invisible while they are handled."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .._sqs_rules import MAX_BATCH_ENTRIES
from .batch_call import EntryRetry, batch_call
from .deadlines import ShutdownDeadline
from .leases import Lease, Leases
from .sqs import Sqs

__all__ = ["Heartbeat", "derive_interval"]

log = logging.getLogger("sqs_consumer")

_MAX_SENDS = 8  # concurrent ChangeMessageVisibilityBatch calls per beat
# One round: a failed extension is retried by the next beat, and a settle of its lease waits
# for this call, so it must not sleep between rounds.
_RETRY = EntryRetry(call_attempts=3, entry_rounds=1)


def derive_interval(visibility: float) -> float:
    """The default beat: a third of the visibility timeout, so a lease is renewed with a
    full beat to spare even if one call is slow."""
    return max(0.2, visibility / 3)


class Heartbeat:
    """Extend the visibility of every lease that would expire within two beats.

    Each extension asks for `visibility` seconds from now, batched 10 per call, and never
    past `max_visibility` counted from the receive (SQS refuses more than 12 hours): once
    that budget is spent the lease is left to expire.

    Args:
        sqs: the SQS adapter.
        queue_url: the queue the messages came from.
        leases: the in-flight registry.
        visibility: seconds each extension asks for.
        interval: seconds between beats.
        max_visibility: total seconds of invisibility allowed from the receive.
        counters: where failed extensions are counted (visibility_errors).
        on_fatal: called with an SqsError that should stop the consumer.
        clock: the time source (seconds).
        deadline: bounds the shielded extension calls at shutdown (none: unbounded).
    """

    def __init__(
        self,
        sqs: Sqs,
        queue_url: str,
        leases: Leases,
        *,
        visibility: int,
        interval: float,
        max_visibility: float,
        counters: Any,
        on_fatal: Callable[[BaseException], None],
        clock: Callable[[], float] = anyio.current_time,
        deadline: ShutdownDeadline | None = None,
    ) -> None:
        self._deadline = deadline or ShutdownDeadline()
        self._sqs = sqs
        self._queue_url = queue_url
        self._leases = leases
        self._visibility = visibility
        self._interval = interval
        self._max_visibility = max_visibility
        self._counters = counters
        self._on_fatal = on_fatal
        self._clock = clock
        self._scope: anyio.CancelScope | None = None
        self._sends = anyio.Semaphore(_MAX_SENDS)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Beat every `interval` seconds until `stop()`."""
        with anyio.CancelScope() as self._scope:
            task_status.started()
            async with anyio.create_task_group() as tg:
                while True:
                    await anyio.sleep(self._interval)
                    due = self.due(self._clock())
                    # Marked before the first await: from now on a settle or release of
                    # these leases waits for their extension instead of racing it.
                    for lease, _ in due:
                        lease.extending = anyio.Event()
                    batches = _chunks(due, MAX_BATCH_ENTRIES)
                    for sent, batch in enumerate(batches):
                        try:
                            await self._sends.acquire()
                        except anyio.get_cancelled_exc_class():
                            _unmark(batches[sent:])  # stopped: these will not be extended
                            raise
                        tg.start_soon(self._extend, batch)

    def stop(self) -> None:
        """Stop beating (extensions in flight are abandoned: their leases are settled)."""
        if self._scope is not None:
            self._scope.cancel()

    def due(self, now: float) -> list[tuple[Lease, int]]:
        """Leases to extend now, each with the timeout to ask for (pure: no I/O)."""
        horizon = now + 2 * self._interval
        due = []
        for lease in self._leases:
            if lease.visible_at > horizon or lease.extending is not None:
                continue
            budget = self._max_visibility - (now - lease.received_at)
            timeout = min(self._visibility, math.floor(budget))
            # At the cap nothing is gained: let it lapse. Never below 1 s: 0 would show the
            # message to everyone at once, and SQS refuses a negative timeout.
            if timeout >= 1 and now + timeout > lease.visible_at:
                due.append((lease, timeout))
        return due

    async def _extend(self, batch: list[tuple[Lease, int]]) -> None:
        sent_at = self._clock()
        try:
            live = [(lease, t) for lease, t in batch if lease in self._leases]
            if not live:
                return
            # Shielded: an extension sent must be seen to its end, so the lease's waiters
            # know when it has landed (stop() during one then waits for it).
            with self._deadline.shielded() as scope:
                failed = await self._call(live)
            if scope.cancelled_caught:
                return  # cut short by the shutdown's deadline: the leases are settled now
            for i, (lease, timeout) in enumerate(live):
                if i not in failed:
                    lease.visible_at = sent_at + timeout
        finally:
            for lease, _ in batch:
                assert lease.extending is not None
                lease.extending.set()
                lease.extending = None
            self._sends.release()

    async def _call(self, batch: list[tuple[Lease, int]]) -> set[int]:
        """Send one ChangeMessageVisibilityBatch; the indexes of entries that failed."""

        def refused(index: int, entry: Mapping[str, Any] | None) -> None:
            self._counters.visibility_errors += 1
            if entry is not None:
                log.warning(
                    "heartbeat lost message %s: %s (another consumer may receive it)",
                    batch[index][0].message.message_id,
                    entry.get("Code"),
                )

        return await batch_call(
            self._sqs,
            "change_message_visibility_batch",
            [
                {"ReceiptHandle": lease.message.receipt_handle, "VisibilityTimeout": t}
                for lease, t in batch
            ],
            queue_url=self._queue_url,
            retry=_RETRY,
            on_fatal=self._on_fatal,
            what=lambda pending: f"heartbeat could not extend {len(pending)} messages",
            on_refused=refused,
        )


def _unmark(batches: list[list[tuple[Lease, int]]]) -> None:
    for batch in batches:
        for lease, _ in batch:
            if lease.extending is not None:
                lease.extending.set()
                lease.extending = None


def _chunks(items: list[tuple[Lease, int]], size: int) -> list[list[tuple[Lease, int]]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
