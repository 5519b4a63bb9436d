"""Turn one message into an `Outcome`: middleware chain, the handler, timeouts, signals."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel

from .batch import BatchResult, normalize_batch_result
from .errors import Discard, Retry
from .message import Message
from .outcome import ACK, DISCARDED, Fail, Outcome
from .threads import DaemonThreads, call_soon_threadsafe

__all__ = ["BatchHandling", "CallNext", "Handling", "Middleware", "is_async_callable"]

CallNext = Callable[[Message], Awaitable[Any]]
"""What a middleware calls to run the rest of the chain."""

Middleware = Callable[[Message, CallNext], Awaitable[Any]]
"""`async def mw(message, call_next)`: may run code around `await call_next(message)`."""


def is_async_callable(function: object) -> bool:
    """True for `async def` functions, partials of them and objects with an async __call__."""
    target = inspect.unwrap(function)  # type: ignore[arg-type]
    while isinstance(target, partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - we need the method, not callable()
    return inspect.iscoroutinefunction(call)


async def _through(middleware: Middleware, call_next: CallNext, message: Message) -> Any:
    return await middleware(message, call_next)


class _Thread:
    """Tracks a sync handler's thread so a timed-out call can wait for it to really end."""

    __slots__ = ("_abandoned", "_lock", "_token", "finished", "running")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self.running = False
        self.finished: anyio.Event | None = None

    def call(self, handler: Callable[[Any], Any], message: Any) -> Any:
        with self._lock:
            if self._abandoned:
                return None  # timed out before a thread was free: the message already failed
            self.running = True
        try:
            return handler(message)
        finally:
            with self._lock:
                self.running = False
                notify = self._abandoned
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


_current_thread: ContextVar[_Thread | None] = ContextVar("sqs_consumer_thread", default=None)


class Handling:
    """Run the middleware chain and handler on one message and report the outcome.

    Async handlers run on the event loop; sync handlers run in a worker thread through
    `threads` (sized by the consumer, so the worker strategy bounds them). Over
    `timeout`, an async handler is cancelled; a sync one cannot be, so its eventual
    result is ignored and the outcome carries a `straggler` event that the job waits
    for, keeping the worker slot until the thread has really finished.

    Args:
        handler: the user's function, `(message) -> None`, sync or async.
        middleware: applied outermost first.
        timeout: seconds before the handler counts as failed.
        threads: the daemon threads sync handlers run in.
        limiter: bounds the sync handlers running at once.
    """

    def __init__(
        self,
        handler: Callable[[Message], Any],
        *,
        middleware: Sequence[Middleware] = (),
        timeout: float | None = None,
        threads: DaemonThreads,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self._timeout = timeout
        self._sync = not is_async_callable(handler)
        innermost: CallNext
        if self._sync:
            innermost = partial(self._in_thread, handler, threads, limiter)
        else:
            innermost = handler
        for mw in reversed(middleware):
            innermost = partial(_through, mw, innermost)
        self._chain = innermost

    @staticmethod
    async def _in_thread(
        handler: Callable[[Message], Any],
        threads: DaemonThreads,
        limiter: anyio.CapacityLimiter,
        message: Message,
    ) -> Any:
        tracker = _current_thread.get()
        if tracker is None:
            return await threads.run_sync(partial(handler, message), limiter=limiter)
        return await threads.run_sync(partial(tracker.call, handler, message), limiter=limiter)

    async def __call__(self, message: Message) -> Outcome:
        """Handle one message; every exception becomes an outcome, cancellation propagates."""
        try:
            if self._timeout is None:
                await self._chain(message)
                return ACK
            return await self._with_timeout(message, self._timeout)
        except Retry as retry:
            return Fail(retry, delay=retry.delay)
        except Discard:
            return DISCARDED
        except Exception as exc:
            return Fail(exc)

    async def _with_timeout(self, message: Message, timeout: float) -> Outcome:
        tracker = _Thread() if self._sync else None
        token = _current_thread.set(tracker)
        try:
            with anyio.move_on_after(timeout) as scope:
                await self._chain(message)
        finally:
            _current_thread.reset(token)
        if not scope.cancelled_caught:
            return ACK
        error = TimeoutError(f"handler exceeded handler_timeout={timeout} s")
        straggler = tracker.abandon() if tracker is not None else None
        return Fail(error, timed_out=True, straggler=straggler)


class BatchHandling:
    """Run a batch handler on the messages of one receive; one outcome per message.

    The handler returns None (all succeeded), the ids of the failed messages, or a
    `BatchResult`; raising (or an unknown id in the result) fails the whole batch, and
    `handler_timeout` applies to the whole call. Middleware does not apply to batches.

    Args:
        handler: `(messages) -> None | Iterable[str] | BatchResult`, sync or async.
        timeout: seconds before the whole batch counts as failed.
        threads: the daemon threads a sync handler runs in.
        limiter: bounds the sync handlers running at once.
    """

    def __init__(
        self,
        handler: Callable[[list[Message]], Any],
        *,
        timeout: float | None = None,
        threads: DaemonThreads,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self._handler = handler
        self._timeout = timeout
        self._async = is_async_callable(handler)
        self._threads = threads
        self._limiter = limiter

    async def _call(self, messages: list[Message]) -> Any:
        if self._async:
            return await self._handler(messages)
        call = partial(self._handler, messages)
        return await self._threads.run_sync(call, limiter=self._limiter)

    async def __call__(self, messages: list[Message]) -> dict[str, Outcome]:
        """Handle a batch; every exception becomes outcomes, cancellation propagates."""
        try:
            with anyio.move_on_after(self._timeout) as scope:
                result = normalize_batch_result(await self._call(messages), messages)
            if scope.cancelled_caught:
                error = TimeoutError(f"batch handler exceeded handler_timeout={self._timeout} s")
                return dict.fromkeys((m.message_id for m in messages), Fail(error, timed_out=True))
        except Retry as retry:
            return dict.fromkeys((m.message_id for m in messages), Fail(retry, delay=retry.delay))
        except Discard:
            return dict.fromkeys((m.message_id for m in messages), DISCARDED)
        except Exception as exc:
            return dict.fromkeys((m.message_id for m in messages), Fail(exc))
        return {m.message_id: _item_outcome(m, result) for m in messages}


def _item_outcome(message: Message, result: BatchResult) -> Outcome:
    if message.message_id not in result.failed:
        return ACK
    error = RuntimeError(f"message {message.message_id} reported failed by the batch handler")
    return Fail(error, delay=result.retry_delays.get(message.message_id))
