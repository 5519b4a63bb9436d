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

    The threads are long-lived and take calls from one shared queue: a thread that has just
    finished a call takes the next one waiting without being woken for it, and a new
    thread starts only when no idle thread is left. Results go back to the event loop in
    bursts: one wake-up of the loop hands over every call that finished since the last
    one, rather than a wake-up (a write to the loop's self-pipe) per call.

    Args:
        idle_timeout: seconds an idle thread waits for work before it exits.
    """

    def __init__(self, *, idle_timeout: float = 10.0) -> None:
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = 0  # threads waiting for a job that no queued job has claimed yet
        self._threads = 0
        # Finished calls per event loop, and whether a hand-over is already scheduled there.
        self._finished: dict[anyio.lowlevel.EventLoopToken, list[anyio.Event]] = {}

    @property
    def threads(self) -> int:
        """Threads alive now (running a call or idle)."""
        return self._threads

    async def run_sync(self, function: Callable[[], T], *, limiter: anyio.CapacityLimiter) -> T:
        """Run `function()` in a daemon thread; cancelling the caller abandons the thread."""
        outcome = _Outcome()
        done = anyio.Event()
        try:
            # A free token is taken without the two scheduler passes of `async with`.
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        try:
            with self._lock:
                if self._idle:
                    self._idle -= 1  # that thread takes this job
                    spawn = False
                else:
                    self._threads += 1
                    spawn = True
            if spawn:
                threading.Thread(target=self._loop, name="sqs-consumer worker", daemon=True).start()
            # The caller's contextvars (e.g. the current span) follow it into the thread.
            call = partial(contextvars.copy_context().run, function)
            self._jobs.put((call, outcome, done, anyio.lowlevel.current_token()))
            await done.wait()
        finally:
            limiter.release()
        if outcome.error is not None:
            raise outcome.error
        value: T = outcome.value
        return value

    def _loop(self) -> None:
        jobs = self._jobs
        while True:
            try:
                function, outcome, done, token = jobs.get(timeout=self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # unclaimed: this thread may go
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # claimed just as it timed out: the job is on its way
            try:
                outcome.value = function()
            except BaseException as exc:  # handed to the caller, who re-raises it
                outcome.error = exc
            # Idle before waking the caller, so its next call can reuse this thread.
            with self._lock:
                self._idle += 1
                finished = self._finished.get(token)
                if finished is None:
                    self._finished[token] = [done]
                else:
                    finished.append(done)
            if finished is None:  # the first since the last hand-over: schedule one
                call_soon_threadsafe(token, partial(self._hand_over, token))
            del function, outcome, done, token

    def _hand_over(self, token: anyio.lowlevel.EventLoopToken) -> None:
        """On the loop: wake every caller whose call has finished."""
        with self._lock:
            finished = self._finished.pop(token, ())
        for done in finished:
            done.set()
