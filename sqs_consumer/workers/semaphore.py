"""`SemaphoreWorker`: one task per job, at most `concurrency` at once."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from .base import REUSE_STREAK, Backlog, Job, WorkerStats

__all__ = ["SemaphoreWorker"]


def _asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None under another event loop (trio)."""
    if "asyncio" not in sys.modules:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SemaphoreWorker:
    """Start a fresh task for every job, gated by a counter of free slots.

    On asyncio a job's task is a plain `asyncio.Task` inside a cancel scope of ours, rather
    than an anyio task-group child: anyio's start_soon costs about 20 µs of CPU (a task
    handle, an event and a cancel scope per task), asyncio's about 3, and at tens of
    thousands of messages a second that is most of the strategy's cost. The structure is
    the same: `serve()` does not return before every job task has ended, `aclose()`
    cancels them through their scopes (so they see our cancellation, not a foreign one),
    and an exception escaping a job ends `serve()` with it, as a task group would.

    A task whose job ends takes the next one from the consumer's queue of received jobs,
    if there is one, and runs it in the same slot (see `TakesBacklog`).

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
        self._closed = False  # _closing.is_set(), read after every job without a call
        self._backlog: Backlog | None = None
        self._idle: anyio.Event | None = None  # set when the last job ends during aclose
        self._done = anyio.Event()  # set when serve() has returned: every job task has ended
        self._loop: asyncio.AbstractEventLoop | None = None  # asyncio: start plain tasks
        self._scopes: set[anyio.CancelScope] = set()  # those plain tasks' scopes
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ended: anyio.Event | None = None  # set when the last plain task ends
        self._failure: BaseException | None = None  # escaped a plain task: serve() raises it

    def capacity(self) -> int:
        """Free slots now."""
        return 0 if self._closed else self._limit - self._running

    def take_from(self, backlog: Backlog) -> None:
        """Run jobs from `backlog` in the slot of a job that ends, while it has some."""
        self._backlog = backlog

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
        if self._running >= self._limit:
            await self.wait_for_capacity()
        self._running += 1
        if self._loop is None:
            self._tg.start_soon(self._run, job)
            return
        task = self._loop.create_task(self._run_plain(job))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _run(self, job: Job) -> None:
        try:
            await job()
            if self._backlog is not None:
                await self._run_backlog(self._backlog)
        finally:
            self._running -= 1
            if self._freed is not None:
                self._freed.set()
                self._freed = None
            if self._running == 0 and self._idle is not None:
                self._idle.set()

    async def _run_backlog(self, backlog: Backlog) -> None:
        streak = 0
        while not self._closed and (job := backlog()) is not None:
            await job()
            streak += 1
            if streak == REUSE_STREAK:
                streak = 0
                await anyio.lowlevel.checkpoint()  # before taking: a job taken is a job run

    async def _run_plain(self, job: Job) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await self._run(job)
            except BaseException as exc:
                if not scope.cancel_called:  # a job raised: end serve() with it
                    self._fail(exc)
                raise
            finally:
                self._scopes.discard(scope)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._cancel_plain()
        self._closed = True
        self._closing.set()

    def _cancel_plain(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved (it is in _failure): no "never retrieved" warning
        if not self._tasks and self._ended is not None:
            self._ended.set()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the job tasks until `aclose()` has drained or cancelled them."""
        self._loop = _asyncio_loop()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                try:
                    task_status.started()
                    await self._closing.wait()
                finally:
                    # Cancelled from outside, or failed: the plain tasks go with us.
                    if not self._closing.is_set() or self._failure is not None:
                        self._cancel_plain()
                    with anyio.CancelScope(shield=True):
                        await self._wait_plain()
            if self._failure is not None:
                raise self._failure
        finally:
            self._done.set()

    async def _wait_plain(self) -> None:
        if self._tasks:
            self._ended = anyio.Event()
            await self._ended.wait()

    async def aclose(self, timeout: float) -> None:
        """Stop taking jobs; wait up to `timeout` seconds for running ones, then cancel them."""
        self._idle = anyio.Event()
        if self._running == 0:
            self._idle.set()
        self._closed = True
        self._closing.set()
        with anyio.move_on_after(timeout):
            await self._idle.wait()
        if self._tg is None:
            return
        if self._running:
            self._cancel_plain()
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
