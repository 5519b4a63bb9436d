"""Turn one message into an `Outcome`: middleware chain, the handler, timeouts, signals."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import anyio

from .errors import Discard, Retry
from .message import Message
from .outcome import ACK, DISCARDED, Fail, Outcome

__all__ = ["CallNext", "Handling", "Middleware", "is_async_callable"]

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


class Handling:
    """Run the middleware chain and handler on one message and report the outcome.

    Async handlers run on the event loop; sync handlers run in a worker thread through
    `threads` (sized by the consumer, so the worker strategy bounds them).

    Args:
        handler: the user's function, `(message) -> None`, sync or async.
        middleware: applied outermost first.
        timeout: seconds before the handler counts as failed (async ones are cancelled).
        threads: the CapacityLimiter sync handlers run through.
    """

    def __init__(
        self,
        handler: Callable[[Message], Any],
        *,
        middleware: Sequence[Middleware] = (),
        timeout: float | None = None,
        threads: anyio.CapacityLimiter,
    ) -> None:
        self._timeout = timeout
        innermost: CallNext
        if is_async_callable(handler):
            innermost = handler
        else:
            innermost = partial(self._in_thread, handler, threads)
        for mw in reversed(middleware):
            innermost = partial(_through, mw, innermost)
        self._chain = innermost

    @staticmethod
    async def _in_thread(
        handler: Callable[[Message], Any], threads: anyio.CapacityLimiter, message: Message
    ) -> Any:
        return await anyio.to_thread.run_sync(
            handler, message, limiter=threads, abandon_on_cancel=True
        )

    async def __call__(self, message: Message) -> Outcome:
        """Handle one message; every exception becomes an outcome, cancellation propagates."""
        try:
            if self._timeout is None:
                await self._chain(message)
                return ACK
            with anyio.move_on_after(self._timeout) as scope:
                await self._chain(message)
            if scope.cancelled_caught:
                error = TimeoutError(f"handler exceeded handler_timeout={self._timeout} s")
                return Fail(error, timed_out=True)
            return ACK
        except Retry as retry:
            return Fail(retry, delay=retry.delay)
        except Discard:
            return DISCARDED
        except Exception as exc:
            return Fail(exc)
