"""Calling user code: one policy for sync code, what a call's result means, whose cancellation.

Every handler-shaped callable (per-message and batch handlers, `Router` routes, `LambdaHandler`
functions, middleware) goes through here, so the three rules hold everywhere:

- **Sync code runs in the consumer's own daemon threads, under one limit** (`run_sync`).
  The consumer installs its `SyncCalls` for the whole run; outside a consumer (a unit test
  calling a `Router` directly) anyio's worker threads are used instead. A call that outlives
  its caller (handler_timeout) keeps its worker slot until the thread ends (`_Thread`), so
  abandoned threads never exceed the concurrency.
- **A call succeeds only when its work ran** (`resolve`): an awaitable result is awaited
  (a sync wrapper around an async function, a lambda returning a coroutine); a generator, an
  async generator or a `concurrent.futures.Future` is a failure that says how to fix it.
- **Only the consumer's own cancel scopes cancel it** (`is_foreign_cancellation`): a
  `CancelledError` that escapes a handler while no scope of ours is cancelled (it awaited a
  task someone else cancelled, or a sync handler raised it) is that message's failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import math
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from ..errors import HandlerCancelled, HandlerResultError
from .threads import DaemonThreads, call_soon_threadsafe

__all__ = [
    "SyncCalls",
    "Tracker",
    "describe_callable",
    "foreign_cancellation",
    "is_async_callable",
    "is_foreign_cancellation",
    "resolve",
    "run_sync",
    "tracking",
]

T = TypeVar("T")

_AWAIT_DEPTH = 8  # an awaitable resolving to an awaitable ... (async def returning a coroutine)


@attrs.frozen
class SyncCalls:
    """The threads and the limit every sync call of one consumer runs under."""

    threads: DaemonThreads
    limiter: anyio.CapacityLimiter


_sync_calls: ContextVar[SyncCalls | None] = ContextVar("sqs_consumer_sync_calls", default=None)


def install(calls: SyncCalls) -> Callable[[], None]:
    """Make `calls` the policy for the current context (tasks started from it inherit it);
    returns the function that undoes it."""
    token = _sync_calls.set(calls)
    return partial(_sync_calls.reset, token)


class Tracker:
    """Tracks a sync call's thread so a timed-out caller can wait for it to really end."""

    __slots__ = ("_abandoned", "_lock", "_token", "finished", "running")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self.running = 0
        self.finished: anyio.Event | None = None

    def call(self, function: Callable[[], T]) -> T | None:
        with self._lock:
            if self._abandoned:
                return None  # timed out before a thread was free: the message already failed
            self.running += 1
        try:
            return function()
        finally:
            with self._lock:
                self.running -= 1
                notify = self._abandoned and self.running == 0
            if notify and self.finished is not None:
                assert self._token is not None
                call_soon_threadsafe(self._token, self.finished.set)

    def abandon(self) -> anyio.Event | None:
        """Called on the loop after a timeout: an event set when the thread ends, or None."""
        with self._lock:
            self._abandoned = True
            if not self.running:
                return None
            self.finished = anyio.Event()
            self._token = anyio.lowlevel.current_token()
            return self.finished


_tracker: ContextVar[Tracker | None] = ContextVar("sqs_consumer_tracker", default=None)


def tracking(tracker: Tracker) -> Callable[[], None]:
    """Route the sync calls of the current task through `tracker`; returns the undo."""
    token = _tracker.set(tracker)
    return partial(_tracker.reset, token)


async def run_sync(function: Callable[..., T], *args: Any) -> T:
    """Run sync user code in the consumer's threads (anyio's outside a consumer).

    Cancelling the caller abandons the thread (handler_timeout, shutdown): it runs on as a
    daemon, and a tracker set by the caller learns when it ends.
    """
    call: Callable[[], Any] = partial(function, *args)
    tracker = _tracker.get()
    if tracker is not None:
        call = partial(tracker.call, call)
    calls = _sync_calls.get()
    if calls is None:
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    return await calls.threads.run_sync(call, limiter=calls.limiter)


def is_async_callable(function: object) -> bool:
    """True for `async def` functions, partials of them and objects with an async __call__."""
    target = inspect.unwrap(function)  # type: ignore[arg-type]
    while isinstance(target, partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - we need the method, not callable()
    return inspect.iscoroutinefunction(call)


def describe_callable(function: object) -> str:
    """A short name for user code in error messages."""
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    if isinstance(name, str):
        return name
    return type(function).__qualname__


async def resolve(result: Any, function: object) -> Any:
    """What a call really returned, once its work has run.

    Raises:
        HandlerResultError: the result means the work never ran (or has not finished).
    """
    if result is None:  # what almost every handler returns: nothing to check
        return None
    for _ in range(_AWAIT_DEPTH):
        if inspect.isgenerator(result) or inspect.isasyncgen(result):
            _close(result)
            kind = "an async generator" if inspect.isasyncgen(result) else "a generator"
            raise HandlerResultError(
                f"{describe_callable(function)} returned {kind}, so its body never ran: a "
                "handler must do its work when called (use a plain `def` or `async def` "
                "without `yield`)"
            )
        if isinstance(result, concurrent.futures.Future):
            raise HandlerResultError(
                f"{describe_callable(function)} returned a concurrent.futures.Future, so its "
                "work may not have finished: wait for it in the handler (future.result()) "
                "and return None"
            )
        if not inspect.isawaitable(result):
            return result
        result = await result
    raise HandlerResultError(
        f"{describe_callable(function)} returned awaitables nested more than {_AWAIT_DEPTH} "
        "deep; return None once the work is done"
    )


def _close(generator: Any) -> None:
    close = getattr(generator, "close", None)
    if close is None:
        return
    closing = close()
    if inspect.iscoroutine(closing):  # an async generator's aclose(): never started, so
        closing.close()  # there is nothing to run; close the coroutine to silence the warning


def is_foreign_cancellation(error: BaseException) -> bool:
    """True for a cancellation exception raised while no cancel scope of ours is cancelled.

    Ours are the scopes around the running task (handler_timeout, the worker's drain, a
    forced stop): while one of them is cancelled the effective deadline is -inf. Anything
    else (an `asyncio.CancelledError` from awaiting a task someone else cancelled, one
    raised by a sync handler, a native `task.cancel()` on our task) belongs to the handler.
    """
    if not isinstance(error, asyncio.CancelledError | anyio.get_cancelled_exc_class()):
        return False
    return anyio.current_effective_deadline() != -math.inf


def foreign_cancellation(error: BaseException, function: object) -> HandlerCancelled:
    """The failure that replaces a foreign cancellation (undoing a native cancel request,
    so the task is not cancelled again at its next await)."""
    if "asyncio" in sys.modules:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # not on an asyncio loop (trio)
            task = None
        if task is not None:
            while task.cancelling():
                task.uncancel()
    failure = HandlerCancelled(
        f"{describe_callable(function)} raised {type(error).__name__} that no stop or timeout "
        "of the consumer caused (it awaited a task someone else cancelled?); the message "
        "fails and is retried"
    )
    failure.__cause__ = error
    return failure
