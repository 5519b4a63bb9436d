"""Blocking calls in daemon threads that a cancelled caller can abandon.

anyio's asyncio worker threads are not daemons, so a thread left behind by a cancelled
call (a 20 s long poll, a sync handler past shutdown_timeout) would keep the process alive
after the consumer has stopped. These threads are daemons: once the consumer is done, the
process can exit, and whatever such a thread still does is covered by at-least-once
(its message was released or comes back after its visibility timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["DaemonThreads", "call_soon_threadsafe"]

T = TypeVar("T")

_Job = tuple[Callable[[], Any], "_Outcome", anyio.Event, anyio.lowlevel.EventLoopToken]


def call_soon_threadsafe(token: anyio.lowlevel.EventLoopToken, function: Callable[[], Any]) -> None:
    """Schedule `function()` on the token's event loop from any thread, without waiting.

    Cheaper than `anyio.from_thread.run_sync`, which blocks the thread until the loop has
    run the call. Does nothing if the loop has ended.
    """
    native: Any = token.native_token
    with contextlib.suppress(Exception):  # loop closed / trio.RunFinishedError
        if isinstance(native, asyncio.AbstractEventLoop):
            native.call_soon_threadsafe(function)
        else:
            native.run_sync_soon(function)


class _Outcome:
    __slots__ = ("error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None


class DaemonThreads:
    """A pool of reusable daemon threads for blocking calls.

    Args:
        idle_timeout: seconds an idle thread waits for work before it exits.
    """

    def __init__(self, *, idle_timeout: float = 10.0) -> None:
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._idle: deque[_Worker] = deque()

    async def run_sync(self, function: Callable[[], T], *, limiter: anyio.CapacityLimiter) -> T:
        """Run `function()` in a daemon thread; cancelling the caller abandons the thread."""
        outcome = _Outcome()
        done = anyio.Event()
        async with limiter:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                worker = _Worker(self)
            # The caller's contextvars (e.g. the current span) follow it into the thread.
            call = partial(contextvars.copy_context().run, function)
            worker.jobs.put((call, outcome, done, anyio.lowlevel.current_token()))
            await done.wait()
        if outcome.error is not None:
            raise outcome.error
        value: T = outcome.value
        return value

    def _park(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def _retire(self, worker: _Worker) -> bool:
        """True if the worker may exit: nobody picked it for a job meanwhile."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False


class _Worker:
    def __init__(self, pool: DaemonThreads) -> None:
        self.pool = pool
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="sqs-consumer worker", daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                function, outcome, done, token = self.jobs.get(timeout=self.pool._idle_timeout)
            except queue.Empty:
                if self.pool._retire(self):
                    return
                continue  # picked for a job just as it timed out: the job is on its way
            try:
                outcome.value = function()
            except BaseException as exc:  # handed to the caller, who re-raises it
                outcome.error = exc
            # Park before waking the caller, so its next call can reuse this thread.
            self.pool._park(self)
            call_soon_threadsafe(token, done.set)
            del function, outcome, done, token
