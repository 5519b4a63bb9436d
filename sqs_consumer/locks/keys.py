"""Where a lock or idempotency key comes from: the message id, an attribute, a JSON field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..message import Message

__all__ = ["MissingKeyError", "KeySpec", "key_function"]

KeySpec = Callable[[Message], str] | str | None
"""None (the message id), `"message_id"`, `"attr:NAME"`, `"json:FIELD"` (dots reach into
nested objects), a bare attribute name, or a callable `(message) -> str`."""


class MissingKeyError(ValueError):
    """The message has no usable key: the attribute or field is missing, or not a string."""


def key_function(spec: KeySpec, *, what: str) -> Callable[[Message], str]:
    """Turn a key spec into `(message) -> key`.

    Args:
        spec: see `KeySpec`.
        what: who asks, for error messages (e.g. "KeyLock key").

    Raises:
        TypeError: `spec` is neither None, a string nor a callable.
        ValueError: a string spec names nothing (`"attr:"`, `""`).
    """
    if spec is None or spec in ("message_id", "message-id", "id"):
        return _message_id
    if callable(spec):
        return _Checked(spec, what)
    if not isinstance(spec, str):
        raise TypeError(
            f"{what} must be None, 'attr:NAME', 'json:FIELD' or a callable, got {spec!r}"
        )
    kind, sep, name = spec.partition(":")
    if not sep:
        kind, name = "attr", spec
    name = name.strip()
    if kind not in ("attr", "json") or not name:
        raise ValueError(f"{what} must be 'message_id', 'attr:NAME' or 'json:FIELD', got {spec!r}")
    if kind == "attr":
        return _Attribute(name, what)
    return _JsonField(name, what)


def _message_id(message: Message) -> str:
    return message.message_id


def _usable(value: Any) -> bool:
    return isinstance(value, str) and value != ""


class _Checked:
    __slots__ = ("_function", "_what")

    def __init__(self, function: Callable[[Message], Any], what: str) -> None:
        self._function = function
        self._what = what

    def __repr__(self) -> str:
        return repr(self._function)

    def __call__(self, message: Message) -> str:
        value = self._function(message)
        if not _usable(value):
            raise MissingKeyError(
                f"message {message.message_id}: {self._what} {self._function!r} returned "
                f"{value!r}, not a non-empty string"
            )
        return str(value)


class _Attribute:
    __slots__ = ("_name", "_what")

    def __init__(self, name: str, what: str) -> None:
        self._name = name
        self._what = what

    def __repr__(self) -> str:
        return f"'attr:{self._name}'"

    def __call__(self, message: Message) -> str:
        attribute = message.message_attributes.get(self._name)
        value = attribute.get("StringValue") if isinstance(attribute, dict) else None
        if not _usable(value):
            raise MissingKeyError(
                f"message {message.message_id}: {self._what} needs the message attribute "
                f"{self._name!r} (a String or Number), which it "
                + ("does not have" if attribute is None else "has without a string value")
            )
        return str(value)


class _JsonField:
    __slots__ = ("_path", "_what")

    def __init__(self, name: str, what: str) -> None:
        self._path = name.split(".")
        self._what = what

    def __repr__(self) -> str:
        return f"'json:{'.'.join(self._path)}'"

    def __call__(self, message: Message) -> str:
        value: Any = message.json()
        for part in self._path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not _usable(value):
            field = ".".join(self._path)
            raise MissingKeyError(
                f"message {message.message_id}: {self._what} needs the JSON body field "
                f"{field!r} as a string or number, got {value!r}"
            )
        return str(value)
