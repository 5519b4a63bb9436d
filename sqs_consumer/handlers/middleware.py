"""Middleware: its two types (`Middleware`, `CallNext`) and the built-ins `log_failures()` and
`NonRetryable`. Users import them from `sqs_consumer.middleware`.

A middleware is `async def mw(message, call_next)`: it may run code before and after
`await call_next(message)`, skip it (short-circuit), change what it returned, or raise
`Retry` / `Discard`. `ConsumerOptions(middleware=[outer, inner])` applies them outermost
first; the engine's `_pipeline/handling.py` runs the chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import Discard, HandlerSignal, Retry
from ..message import Message

__all__ = ["CallNext", "Middleware", "NonRetryable", "log_failures"]

CallNext = Callable[[Message], Awaitable[Any]]
"""What a middleware calls to run the rest of the chain (and, at its end, the handler)."""

Middleware = Callable[[Message, CallNext], Awaitable[Any]]
"""`async def mw(message, call_next)`: may run code around `await call_next(message)`."""

_log = logging.getLogger("sqs_consumer.middleware")


def _describe(error: BaseException) -> str:
    """One line naming the error: `Retry(delay=5)`, `KeyError: 'order'`, `TimeoutError`."""
    if isinstance(error, HandlerSignal):
        return repr(error)
    text = str(error)
    name = type(error).__qualname__
    return f"{name}: {text}" if text else name


class _LogFailures:
    """The middleware `log_failures()` returns (a class, so that it has a useful repr)."""

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self._logger = logger
        self._level = level

    def __repr__(self) -> str:
        return (
            f"log_failures(logger={self._logger.name!r}, level={logging.getLevelName(self._level)})"
        )

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        started = time.perf_counter()
        try:
            return await call_next(message)
        except Exception as error:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._log(message, error, elapsed_ms)
            raise

    def _log(self, message: Message, error: Exception, elapsed_ms: float) -> None:
        if isinstance(error, Retry):
            level, what = min(self._level, logging.INFO), "asked for a retry"
        elif isinstance(error, Discard):
            level, what = min(self._level, logging.INFO), "was discarded"
        else:
            level, what = self._level, "failed"
        self._logger.log(
            level,
            "message %s %s on receive %d after %.1f ms: %s",
            message.message_id,
            what,
            message.receive_count,
            elapsed_ms,
            _describe(error),
        )


def log_failures(logger: logging.Logger | None = None, level: int = logging.WARNING) -> Middleware:
    """A middleware that logs one line for each failed message, then re-raises.

    The line names the message id, the receive count, the time the rest of the chain took
    (ms) and the error. `Retry` and `Discard` are routine, so they log at INFO (or at
    `level`, if that is lower); successes are not logged.

    Args:
        logger: where to log; None uses the `sqs_consumer.middleware` logger.
        level: the level of a failure line (a `logging` level number).

    Raises:
        TypeError: `level` is not an int.
    """
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"log_failures level must be a logging level number, got {level!r}")
    return _LogFailures(logger if logger is not None else _log, level)


class NonRetryable:
    """A middleware that discards a message whose handler raised one of `exception_types`.

    Retrying cannot fix some errors (a malformed body, a validation error): this turns them
    into `Discard`, so the message is deleted at once instead of being retried until it is
    dead-lettered. Each discard is logged at WARNING with the error. Other exceptions, and
    `Retry` / `Discard` themselves, pass through unchanged.

    Args:
        exception_types: the exception classes (and their subclasses) to discard on.
        logger: where to log; None uses the `sqs_consumer.middleware` logger.

    Raises:
        TypeError: no types were given, or one is not an Exception subclass, or is a
            `Retry` / `Discard` class.
    """

    def __init__(
        self, *exception_types: type[Exception], logger: logging.Logger | None = None
    ) -> None:
        if not exception_types:
            raise TypeError("NonRetryable needs at least one exception type")
        for kind in exception_types:
            if not isinstance(kind, type) or not issubclass(kind, Exception):
                raise TypeError(f"NonRetryable takes Exception subclasses, got {kind!r}")
            if issubclass(kind, HandlerSignal):
                raise TypeError(f"NonRetryable cannot take {kind.__name__}: it is not an error")
        self.exception_types: tuple[type[Exception], ...] = exception_types
        self._logger = logger if logger is not None else _log

    def __repr__(self) -> str:
        names = ", ".join(kind.__qualname__ for kind in self.exception_types)
        return f"NonRetryable({names})"

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        """Run the rest of the chain; turn the listed exceptions into `Discard`.

        Raises:
            Discard: the chain raised one of `exception_types` (chained as its cause).
        """
        try:
            return await call_next(message)
        except HandlerSignal:
            raise
        except self.exception_types as error:
            self._logger.warning(
                "message %s discarded as non-retryable on receive %d: %s",
                message.message_id,
                message.receive_count,
                _describe(error),
            )
            raise Discard() from error
