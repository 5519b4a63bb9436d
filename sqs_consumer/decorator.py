"""`@sqs_handler`: make a function a consumer while it stays the same function."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._checks import positional_problem
from .consumer import Consumer
from .options import ConsumerOptions

__all__ = ["QUEUE_URL_VARIABLE", "SqsHandler", "sqs_handler"]

P = ParamSpec("P")
R = TypeVar("R")

QUEUE_URL_VARIABLE = "SQS_CONSUMER_QUEUE_URL"
"""Where `@sqs_handler` takes the queue URL from when it is not given `queue_url=`."""


class SqsHandler(Generic[P, R]):
    """The user's function, still callable with its own signature, plus its Consumer.

    On a method (a `def` in a class body that takes `self` and the message) it is a
    descriptor, like the function itself: `obj.handle` is a bound `SqsHandler` whose
    consumer calls `obj.handle(message)`. Each instance gets its own bound handler, made
    on first access and kept in the instance's `__dict__`, so `obj.handle.start()` and
    `obj.handle.consumer.stop()` talk to the same consumer.

    Attributes:
        consumer: the Consumer built for this handler (for a method, only through an
            instance: `Service().handle.consumer`).
    """

    def __init__(self, function: Callable[P, R], options: ConsumerOptions) -> None:
        if isinstance(function, classmethod):
            raise TypeError(
                "@sqs_handler cannot wrap a classmethod: decorate a plain function, a method "
                "or a staticmethod"
            )
        functools.update_wrapper(self, function)
        self.__wrapped__ = function
        self._function = function
        self._options = options
        self._lock = threading.Lock()
        self._name: str = getattr(function, "__name__", "handler")
        self._qualname: str = getattr(function, "__qualname__", self._name)
        # A method takes `self` first: its consumer needs an instance, so it is built per
        # instance by __get__. Anything else gets its consumer now, so that a handler
        # Consumer refuses fails where the decorator is applied.
        self._method = _defined_in_class(function) and positional_problem(function, 2) is None
        self._consumer: Consumer | None = None
        if not self._method:
            self._consumer = Consumer(function, options)  # type: ignore[arg-type]

    @property
    def consumer(self) -> Consumer:
        """The Consumer of this handler."""
        if self._consumer is None:
            raise TypeError(
                f"{self._qualname} is a method, so its consumer belongs to an instance: "
                f"use instance.{self._name}.consumer (or instance.{self._name}.start())"
            )
        return self._consumer

    @property
    def options(self) -> ConsumerOptions:
        """The validated options the consumer is built with."""
        return self._options

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, instance: object, owner: type | None = None) -> SqsHandler[..., R]:
        """On an instance, a method's handler binds to it (plain functions stay as they are)."""
        if instance is None or not self._method:
            return self
        with self._lock:  # one bound handler, so one consumer, per instance
            try:
                namespace = vars(instance)
            except TypeError:
                raise TypeError(
                    f"@sqs_handler on {self._qualname} needs instances with a __dict__ "
                    "(it keeps each instance's consumer there); drop __slots__ or add "
                    '"__dict__" to them'
                ) from None
            bound = namespace.get(self._name)
            if not isinstance(bound, SqsHandler):
                method = self._function.__get__(instance, owner)
                bound = SqsHandler(method, self._options)
                namespace[self._name] = bound
            return bound

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the handler itself (unit tests call it directly)."""
        return self._function(*args, **kwargs)

    def start(self) -> None:
        """Run the consumer until stopped (same as `.consumer.start()`)."""
        self.consumer.start()

    def __repr__(self) -> str:
        return f"<sqs_handler {getattr(self._function, '__qualname__', self._function)!r}>"


@overload
def sqs_handler(function: Callable[P, R], /, **options: Any) -> SqsHandler[P, R]: ...


@overload
def sqs_handler(**options: Any) -> Callable[[Callable[P, R]], SqsHandler[P, R]]: ...


def sqs_handler(
    function: Callable[P, R] | None = None, /, **options: Any
) -> SqsHandler[P, R] | Callable[[Callable[P, R]], SqsHandler[P, R]]:
    """Decorate a handler with the keywords of ConsumerOptions.

    Use it as `@sqs_handler(queue_url=URL, concurrency=20)`, or bare as `@sqs_handler`.
    Without `queue_url=` (bare, or with other keywords only) the queue URL comes from the
    environment variable `SQS_CONSUMER_QUEUE_URL`, read when the decorator is applied; if
    that is not set either, it raises TypeError. No other option is read from the
    environment.

    The options are validated at decoration time, and so is the handler (a generator
    function, or one that cannot take the message, is refused); the decorated name stays
    a plain callable (`handle(msg)` works) and gains `.consumer` and `.start()`. On a
    method, `obj.handle` binds like a method does, and each instance has its own consumer
    (`obj.handle.start()`).

    Raises:
        ValueError: an option is out of range (the message names it).
        TypeError: an unknown keyword, no queue URL, a positional argument that is not a
            function (`@sqs_handler("https://...")`), or a handler Consumer refuses.
    """
    if function is not None and not callable(function):
        raise TypeError(
            f"@sqs_handler takes keyword options only, got {function!r} as a positional "
            "argument: write @sqs_handler(queue_url=URL, ...)"
        )
    validated = _options(options)

    def decorate(handler: Callable[P, R]) -> SqsHandler[P, R]:
        return SqsHandler(handler, validated)

    return decorate if function is None else decorate(function)


def _options(options: dict[str, Any]) -> ConsumerOptions:
    if "queue_url" in options:
        return ConsumerOptions(**options)
    url = os.environ.get(QUEUE_URL_VARIABLE)
    if not url:
        raise TypeError(
            "@sqs_handler needs queue_url=..., e.g. @sqs_handler(queue_url=URL) "
            f"(or set the environment variable {QUEUE_URL_VARIABLE})"
        )
    try:
        return ConsumerOptions(queue_url=url, **options)
    except ValueError as exc:
        if str(exc).startswith("ConsumerOptions.queue_url"):
            raise ValueError(f"{exc} (queue_url came from {QUEUE_URL_VARIABLE})") from None
        raise


def _defined_in_class(function: object) -> bool:
    """True for a function written in a class body (`Service.handle`, not `f.<locals>.h`)."""
    parts = str(getattr(function, "__qualname__", "")).split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"
