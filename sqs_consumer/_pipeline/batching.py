"""One size-or-interval batcher, shared by the harvester (deletes) and visibility changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskStatus

__all__ = ["Batcher"]

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collect items and hand them to `send` in lists of at most `size`.

    A list goes out as soon as it is full, or `interval` seconds after its first item
    arrived. Up to `max_sends` lists are in flight at once, so a slow network does not
    cap throughput at one batch per round trip.

    Args:
        send: called with each batch; must handle its own errors (it runs in our task group).
        size: the most items per batch.
        interval: seconds an item may wait for the batch to fill.
        max_sends: concurrent `send` calls.
        clock: the time source (seconds) the interval is measured on.
        sleep: waits that many seconds of `clock` time. None (the default) waits on the
            event loop's clock, which is right for any real-time `clock`; a test that
            drives a fake `clock` passes the sleep that follows it, so an interval passes
            when the test moves that clock, not after real time.
        shield: the scope each send runs in: shielded from cancellation, so items that
            left the queue reach SQS, but ending at the shutdown's deadline (a hanging
            client must not hold the shutdown). What it cuts short is kept in `unsent()`.
    """

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        *,
        size: int,
        interval: float,
        max_sends: int = 8,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        shield: Callable[[], AbstractContextManager[anyio.CancelScope]] | None = None,
    ) -> None:
        self._send = send
        self._shield = shield or partial(anyio.CancelScope, shield=True)
        self._abandoned: list[T] = []  # sends cut short by the deadline
        self._sending: dict[int, list[T]] = {}  # batches in a send now, by id()
        self._size = size
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._sends = anyio.Semaphore(max_sends)
        self._pending: list[T] = []
        self._oldest = 0.0  # clock time the oldest pending item arrived
        self._wake: anyio.Event | None = None
        self._wake_when_full_only = False
        self._closing = False
        self._urgent = False  # send what is pending now, full or not
        self._outstanding = 0  # items queued or being sent
        self._sent: anyio.Event | None = None  # set when a send completes
        self._done: anyio.Event | None = None
        self.on_sent: Callable[[], None] | None = None
        """Called after each send completes (`outstanding()` has dropped by its items)."""

    def __len__(self) -> int:
        return len(self._pending)

    def unsent(self) -> list[T]:
        """Items not through `send`: queued, in a send not finished, or in one cut short."""
        sending = [item for batch in self._sending.values() for item in batch]
        return [*self._abandoned, *sending, *self._pending]

    def outstanding(self) -> int:
        """Items put and not yet through `send` (queued or in a send in flight)."""
        return self._outstanding

    def flush_nowait(self) -> None:
        """Send what is pending now instead of waiting for a full batch or the interval."""
        if self._pending:
            self._urgent = True
            if self._wake is not None:
                self._wake.set()

    async def wait_sent(self) -> None:
        """Return when the next send completes."""
        if self._sent is None:
            self._sent = anyio.Event()
        await self._sent.wait()

    def put_nowait(self, item: T) -> None:
        """Queue an item for the next batch (never blocks)."""
        if not self._pending:
            self._oldest = self._clock()
        self._pending.append(item)
        self._outstanding += 1
        if self._wake is not None and (
            not self._wake_when_full_only or len(self._pending) >= self._size or self._urgent
        ):
            self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send batches until `aclose()` is called and everything queued has been sent."""
        self._done = anyio.Event()
        try:
            async with anyio.create_task_group() as tg:
                task_status.started()
                while await self._next_batch_due():
                    # A slot first, then take the items: a cancellation while waiting for
                    # the slot must leave them in _pending for drain_here().
                    await self._sends.acquire()
                    batch = self._pending[: self._size]
                    del self._pending[: self._size]
                    if self._pending:
                        self._oldest = self._clock()
                    tg.start_soon(self._send_one, batch)
        finally:
            self._done.set()

    async def _next_batch_due(self) -> bool:
        """Wait until a batch should go out (True) or the batcher is closed and empty (False)."""
        while True:
            if self._pending and (
                self._closing or self._urgent or len(self._pending) >= self._size
            ):
                return True
            self._urgent = False
            if not self._pending:
                if self._closing:
                    return False
                await self._wait(full_only=False, timeout=None)
                continue
            remaining = self._oldest + self._interval - self._clock()
            if remaining <= 0:
                return True
            await self._wait(full_only=True, timeout=remaining)

    async def _wait(self, *, full_only: bool, timeout: float | None) -> None:
        wake = self._wake = anyio.Event()
        self._wake_when_full_only = full_only
        try:
            if timeout is None or self._sleep is None:
                # The default: a deadline on the loop's clock costs no task per batch.
                with anyio.move_on_after(timeout):
                    await wake.wait()
            else:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._alarm, wake, timeout)
                    await wake.wait()
                    tg.cancel_scope.cancel()
        finally:
            self._wake = None

    async def _alarm(self, wake: anyio.Event, timeout: float) -> None:
        assert self._sleep is not None
        await self._sleep(timeout)
        wake.set()

    async def _send_one(self, batch: list[T]) -> None:
        self._sending[id(batch)] = batch
        try:
            # Shielded: once items leave _pending they must reach SQS, even if run() is
            # being cancelled; but only until the shutdown's deadline.
            with self._shield() as scope:
                await self._send(batch)
            if scope.cancelled_caught:
                self._abandoned.extend(batch)
        finally:
            del self._sending[id(batch)]
            self._sends.release()
            self._outstanding -= len(batch)
            if self._sent is not None:
                self._sent.set()
                self._sent = None
            if self.on_sent is not None:
                self.on_sent()

    async def drain_here(self) -> None:
        """Send everything queued from the calling task (when `run()` has been cancelled)."""
        while self._pending:
            batch = self._pending[: self._size]
            del self._pending[: self._size]
            with self._shield() as scope:
                await self._send(batch)
            self._outstanding -= len(batch)
            if scope.cancelled_caught:
                self._abandoned.extend(batch)
                self._abandoned.extend(self._pending)  # the deadline has passed for all
                self._outstanding -= len(self._pending)
                self._pending.clear()
                return

    async def aclose(self) -> None:
        """Send everything still queued, wait for every send, and stop `run()`."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._done is not None:
            await self._done.wait()
