"""`SemaphoreWorker`: one task per job, at most `concurrency` at once."""

from __future__ import annotations

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .base import Job, WorkerStats

__all__ = ["SemaphoreWorker"]


class SemaphoreWorker:
    """Start a fresh task for every job, gated by a counter of free slots.

    Args:
        concurrency: the most jobs running at once (≥ 1).

    Raises:
        ValueError: concurrency is below 1.
    """

    def __init__(self, concurrency: int) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(
                f"SemaphoreWorker concurrency must be an integer >= 1, got {concurrency!r}"
            )
        self._limit = concurrency
        self._running = 0
        self._freed: anyio.Event | None = None  # created by the first waiter, set on a free slot
        self._tg: TaskGroup | None = None
        self._closing = anyio.Event()
        self._idle: anyio.Event | None = None  # set when the last job ends during aclose
        self._done = anyio.Event()  # set when serve() has returned: every job task has ended

    def capacity(self) -> int:
        """Free slots now."""
        return 0 if self._closing.is_set() else self._limit - self._running

    async def wait_for_capacity(self) -> None:
        """Return once a slot is free (never, once closing)."""
        if self._closing.is_set():
            await anyio.sleep_forever()
        while self._running >= self._limit:
            if self._freed is None:
                self._freed = anyio.Event()
            await self._freed.wait()

    async def submit(self, job: Job) -> None:
        """Start `job` in its own task as soon as a slot is free."""
        if self._tg is None or self._closing.is_set():
            raise RuntimeError("SemaphoreWorker.submit() called while not serving")
        await self.wait_for_capacity()
        self._running += 1
        self._tg.start_soon(self._run, job)

    async def _run(self, job: Job) -> None:
        try:
            await job()
        finally:
            self._running -= 1
            if self._freed is not None:
                self._freed.set()
                self._freed = None
            if self._running == 0 and self._idle is not None:
                self._idle.set()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the job tasks until `aclose()` has drained or cancelled them."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await self._closing.wait()
        finally:
            self._done.set()

    async def aclose(self, timeout: float) -> None:
        """Stop taking jobs; wait up to `timeout` seconds for running ones, then cancel them."""
        self._idle = anyio.Event()
        if self._running == 0:
            self._idle.set()
        self._closing.set()
        with anyio.move_on_after(timeout):
            await self._idle.wait()
        if self._tg is None:
            return
        if self._running:
            self._tg.cancel_scope.cancel()
        await self._done.wait()

    def stats(self) -> WorkerStats:
        """A snapshot: every running job is a worker of its own."""
        return WorkerStats(
            workers=self._running,
            busy=self._running,
            idle_workers=0,
            waiting=0,
            capacity=self.capacity(),
        )

    def __repr__(self) -> str:
        return f"<SemaphoreWorker running={self._running}/{self._limit}>"
