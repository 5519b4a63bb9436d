"""`Router`: one per-message handler that dispatches on a message attribute.

::

    router = Router(attribute="type")

    @router.route("created")
    async def on_created(message: Message) -> None: ...

    @router.route("deleted")
    def on_deleted(message: Message) -> None: ...  # sync routes run in a worker thread

    Consumer(router, options)

A message whose type has no route goes to `default`; without a default it fails with
`UnroutedMessage`, so it is retried and, after `max_receives`, dead-lettered: never deleted
unhandled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from .._checks import generator_problem
from .._pipeline.calls import is_async_callable, resolve, run_sync
from ..message import Message

__all__ = ["Router", "UnroutedMessage"]

Handler = Callable[[Message], Any]
"""A per-message handler, `(message) -> None`, sync or async."""

H = TypeVar("H", bound=Handler)


class UnroutedMessage(ValueError):
    """A message has no route for its type (or no type) and the router has no default.

    Args:
        message_id: the id of the message.
        attribute: the message attribute the router reads.
        value: the attribute's string value, or None when the message does not have one.
    """

    def __init__(self, message_id: str, attribute: str, value: str | None) -> None:
        if value is None:
            reason = f"message attribute {attribute!r} is missing (or has no string value)"
        else:
            reason = f"no route for {attribute}={value!r}"
        super().__init__(f"message {message_id}: {reason} and the router has no default handler")
        self.message_id = message_id
        self.attribute = attribute
        self.value = value


class Router:
    """Dispatch each message to the handler registered for its type attribute.

    The type is the StringValue of the message attribute `attribute`. Routes may be sync
    (run in the consumer's threads, like sync handlers) or async (run on the loop).

    Args:
        attribute: the name of the message attribute holding the type.
        default: the handler for messages whose type has no route (or that have no type);
            None makes such messages fail with `UnroutedMessage`.

    Raises:
        TypeError: `attribute` is not a non-empty str, or `default` is not callable or is a
            generator function.
    """

    def __init__(self, attribute: str = "type", default: Handler | None = None) -> None:
        if not isinstance(attribute, str) or not attribute:
            raise TypeError(f"Router attribute must be a non-empty str, got {attribute!r}")
        if default is not None and not callable(default):
            raise TypeError(f"Router default must be a handler (message) -> None, got {default!r}")
        if default is not None:
            _check_route("Router default", default)
        self._attribute = attribute
        self._default = default
        self._routes: dict[str, Handler] = {}

    @property
    def attribute(self) -> str:
        """The name of the message attribute the router reads."""
        return self._attribute

    @property
    def default(self) -> Handler | None:
        """The handler for messages without a route, or None."""
        return self._default

    @property
    def routes(self) -> Mapping[str, Handler]:
        """A read-only view of the routes: type value -> handler."""
        return MappingProxyType(self._routes)

    def __repr__(self) -> str:
        return f"Router(attribute={self._attribute!r}, routes={sorted(self._routes)!r})"

    def route(self, value: str) -> Callable[[H], H]:
        """Register the decorated handler for messages whose type is `value`.

        The decorator returns the handler unchanged, so it stays unit-testable.

        Args:
            value: the type value (the attribute's StringValue) the handler takes.

        Raises:
            TypeError: `value` is not a str, or the decorated object is not callable or is a
                generator function.
            ValueError: `value` already has a route.
        """
        if not isinstance(value, str):
            raise TypeError(f"Router.route value must be a str, got {value!r}")

        def register(handler: H) -> H:
            if not callable(handler):
                raise TypeError(f"Router.route({value!r}) needs a callable, got {handler!r}")
            _check_route(f"Router.route({value!r})", handler)
            if value in self._routes:
                taken = getattr(self._routes[value], "__qualname__", self._routes[value])
                raise ValueError(f"Router: {self._attribute}={value!r} already routes to {taken}")
            self._routes[value] = handler
            return handler

        return register

    def type_of(self, message: Message) -> str | None:
        """The message's type: the StringValue of its `attribute`, or None if it has none."""
        attribute = message.message_attributes.get(self._attribute)
        if not isinstance(attribute, Mapping):
            return None
        value = attribute.get("StringValue")
        return value if isinstance(value, str) else None

    def handler_for(self, message: Message) -> Handler:
        """The handler `message` goes to.

        Raises:
            UnroutedMessage: no route matches and there is no default.
        """
        value = self.type_of(message)
        handler = self._routes.get(value) if value is not None else None
        if handler is None:
            handler = self._default
        if handler is None:
            raise UnroutedMessage(message.message_id, self._attribute, value)
        return handler

    async def __call__(self, message: Message) -> Any:
        """Handle `message` with its route (or the default) and return what that returned.

        Raises:
            UnroutedMessage: no route matches and there is no default.
        """
        handler = self.handler_for(message)
        if is_async_callable(handler):
            return await resolve(handler(message), handler)
        # In the consumer's threads, under its limit (anyio's outside a consumer).
        return await resolve(await run_sync(handler, message), handler)


def _check_route(what: str, handler: object) -> None:
    """Refuse at registration what `Consumer` refuses as a handler: a generator function
    (calling it only makes a generator, so its body would never run)."""
    problem = generator_problem(handler)
    if problem is not None:
        name = getattr(handler, "__qualname__", None) or repr(handler)
        raise TypeError(
            f"{what} handler {name} must be a plain function (def or async def), but "
            f"{problem}: its body would never run; drop the `yield`"
        )
