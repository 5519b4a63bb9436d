"""`@sqs_handler`: make a function a consumer while it stays the same function."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from .consumer import Consumer
from .options import ConsumerOptions

__all__ = ["SqsHandler", "sqs_handler"]

P = ParamSpec("P")
R = TypeVar("R")


class SqsHandler(Generic[P, R]):
    """The user's function, still callable with its own signature, plus its Consumer.

    Attributes:
        consumer: the Consumer built for this handler.
    """

    def __init__(self, function: Callable[P, R], options: ConsumerOptions) -> None:
        functools.update_wrapper(self, function)
        self.__wrapped__ = function
        self._function = function
        self.consumer = Consumer(function, options)  # type: ignore[arg-type]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the handler itself (unit tests call it directly)."""
        return self._function(*args, **kwargs)

    def start(self) -> None:
        """Run the consumer until stopped (same as `.consumer.start()`)."""
        self.consumer.start()

    def __repr__(self) -> str:
        return f"<sqs_handler {getattr(self._function, '__qualname__', self._function)!r}>"


def sqs_handler(**options: Any) -> Callable[[Callable[P, R]], SqsHandler[P, R]]:
    """Decorate a handler with the keywords of ConsumerOptions.

    The options are validated at decoration time; the decorated name stays a plain
    callable (`handle(msg)` works) and gains `.consumer` and `.start()`.

    Raises:
        ValueError: an option is out of range (the message names it).
        TypeError: an unknown keyword.
    """
    validated = ConsumerOptions(**options)

    def decorate(function: Callable[P, R]) -> SqsHandler[P, R]:
        return SqsHandler(function, validated)

    return decorate
