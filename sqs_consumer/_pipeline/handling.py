"""Turn one message into an `Outcome`: middleware chain, the handler, timeouts, signals."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any

import anyio

from ..errors import HandlerResultError
from ..handlers.batch import BatchResult, normalize_batch_result
from ..handlers.middleware import CallNext, Middleware
from ..message import Message
from .calls import (
    Tracker,
    describe_callable,
    foreign_cancellation,
    is_async_callable,
    is_foreign_cancellation,
    resolve,
    run_sync,
    tracking,
)
from .outcome import ACK, Fail, OnInterrupt, Outcome, outcome_of

__all__ = ["BatchHandling", "Handling", "OnInterrupt", "in_handler"]

_in_handler: ContextVar[bool] = ContextVar("sqs_consumer_in_handler", default=False)


def in_handler() -> bool:
    """True inside a handler call (its thread too): `stop()` from there never forces."""
    return _in_handler.get()


class _Link:
    """One middleware in the chain, checking that it really ran the rest of the chain."""

    __slots__ = ("_call_next", "_middleware")

    def __init__(self, middleware: Middleware, call_next: CallNext) -> None:
        self._middleware = middleware
        self._call_next = call_next

    async def __call__(self, message: Message) -> Any:
        calls: list[Any] = []

        def call_next(msg: Message) -> Awaitable[Any]:
            awaitable = self._call_next(msg)
            calls.append(awaitable)
            return awaitable

        result = await resolve(self._middleware(message, call_next), self._middleware)
        for awaitable in calls:
            # A middleware that skips call_next on purpose is a filter; one that calls it
            # without awaiting ran nothing, and its message must not be acknowledged.
            if inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED:
                awaitable.close()
                raise HandlerResultError(
                    f"middleware {describe_callable(self._middleware)} called "
                    "call_next(message) without awaiting it, so the handler never ran: "
                    "write `return await call_next(message)`"
                )
        return result


async def _guarded(chain: CallNext, handler: object, message: Message) -> Any:
    """Run the chain; a cancellation we did not cause becomes the message's failure."""
    try:
        return await chain(message)
    except BaseException as exc:
        if is_foreign_cancellation(exc):
            raise foreign_cancellation(exc, handler) from exc
        raise


class Handling:
    """Run the middleware chain and handler on one message and report the outcome.

    Async handlers run on the event loop; sync handlers run in the consumer's threads
    (`calls.run_sync`, sized by the consumer, so the worker strategy bounds them). A
    result is resolved before it counts (`calls.resolve`): awaitables are awaited,
    generators fail. Over `timeout`, an async handler is cancelled; a sync one cannot be,
    so its eventual result is ignored and the outcome carries a `straggler` event that the
    job waits for, keeping the worker slot until the thread has really finished.

    Args:
        handler: the user's function, `(message) -> None`, sync or async.
        middleware: applied outermost first.
        timeout: seconds before the handler counts as failed.
        on_interrupt: told of a KeyboardInterrupt, SystemExit or other BaseException the
            handler raised (the message is then handed back); None lets it propagate.
    """

    def __init__(
        self,
        handler: Callable[[Message], Any],
        *,
        middleware: Sequence[Middleware] = (),
        timeout: float | None = None,
        on_interrupt: OnInterrupt | None = None,
    ) -> None:
        self._timeout = timeout
        self._on_interrupt = on_interrupt
        self._handler = handler
        self._sync = not is_async_callable(handler)
        innermost: CallNext = self._call_sync if self._sync else self._call_async
        for mw in reversed(middleware):
            innermost = _Link(mw, innermost)
        self._chain = innermost

    async def _call_async(self, message: Message) -> Any:
        result = self._handler(message)
        if inspect.iscoroutine(result):  # the usual case: one await, then check what it gave
            result = await result
        return await resolve(result, self._handler)

    async def _call_sync(self, message: Message) -> Any:
        # A sync-looking callable may still return a coroutine (a lambda, a decorator
        # without functools.wraps): resolve() awaits it here, on the loop.
        return await resolve(await run_sync(self._handler, message), self._handler)

    async def __call__(self, message: Message) -> Outcome:
        """Handle one message; every exception becomes an outcome, cancellation propagates."""
        token = _in_handler.set(True)
        try:
            if self._timeout is None:
                # Inline rather than through _guarded(): one coroutine less per message.
                try:
                    await self._chain(message)
                except BaseException as exc:
                    if is_foreign_cancellation(exc):
                        raise foreign_cancellation(exc, self._handler) from exc
                    raise
                return ACK
            return await self._with_timeout(message, self._timeout)
        except BaseException as exc:
            return outcome_of(exc, self._on_interrupt)
        finally:
            _in_handler.reset(token)

    async def _with_timeout(self, message: Message, timeout: float) -> Outcome:
        tracker = Tracker()
        undo = tracking(tracker)
        try:
            with anyio.move_on_after(timeout) as scope:
                await _guarded(self._chain, self._handler, message)
        finally:
            undo()
        if not scope.cancelled_caught:
            return ACK
        error = TimeoutError(f"handler exceeded handler_timeout={timeout} s")
        return Fail(error, timed_out=True, straggler=tracker.abandon())


class BatchHandling:
    """Run a batch handler on the messages of one receive; one outcome per message.

    The handler returns None (all succeeded), the ids of the failed messages, or a
    `BatchResult`; raising (or an unknown id in the result) fails the whole batch, and
    `handler_timeout` applies to the whole call (a timed-out sync handler keeps its slot
    until its thread ends, as per-message ones do). Middleware does not apply to batches.

    Args:
        handler: `(messages) -> None | Iterable[str] | BatchResult`, sync or async.
        timeout: seconds before the whole batch counts as failed.
        on_interrupt: as for `Handling`.
    """

    def __init__(
        self,
        handler: Callable[[list[Message]], Any],
        *,
        timeout: float | None = None,
        on_interrupt: OnInterrupt | None = None,
    ) -> None:
        self._handler = handler
        self._timeout = timeout
        self._on_interrupt = on_interrupt
        self._async = is_async_callable(handler)

    async def _call(self, messages: list[Message]) -> Any:
        if self._async:
            return await resolve(self._handler(messages), self._handler)
        return await resolve(await run_sync(self._handler, messages), self._handler)

    async def __call__(self, messages: list[Message]) -> tuple[dict[str, Outcome], Any]:
        """Handle a batch: the outcome of each message id, and the straggler event of a
        timed-out sync call (or None). Every exception becomes outcomes; a cancellation of
        ours propagates."""
        tracker = Tracker()
        undo = tracking(tracker)
        token = _in_handler.set(True)
        try:
            with anyio.move_on_after(self._timeout) as scope:
                raw = await _guarded(self._call, self._handler, messages)  # type: ignore[arg-type]
                result = normalize_batch_result(raw, messages)
            if scope.cancelled_caught:
                error = TimeoutError(f"batch handler exceeded handler_timeout={self._timeout} s")
                fail = Fail(error, timed_out=True, straggler=tracker.abandon())
                return dict.fromkeys((m.message_id for m in messages), fail), fail.straggler
        except BaseException as exc:
            return _all(messages, outcome_of(exc, self._on_interrupt)), None
        finally:
            _in_handler.reset(token)
            undo()
        return {m.message_id: _item_outcome(m, result) for m in messages}, None


def _all(messages: list[Message], outcome: Outcome) -> dict[str, Outcome]:
    return dict.fromkeys((m.message_id for m in messages), outcome)


def _item_outcome(message: Message, result: BatchResult) -> Outcome:
    if message.message_id not in result.failed:
        return ACK
    error = RuntimeError(f"message {message.message_id} reported failed by the batch handler")
    return Fail(error, delay=result.retry_delays.get(message.message_id))
