"""Checks of what users hand the library, each answering with what is wrong (or None).

Shared by `ConsumerOptions`, `Consumer`, `@sqs_handler` and `Producer`, so that one mistake
reads the same wherever it is made. Every function returns a fragment for the caller's own
sentence ("... must be X, got Y: <fragment>") rather than raising, because only the caller
knows which field or argument it is checking.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

__all__ = [
    "QUEUE_URL_SCHEMES",
    "generator_problem",
    "missing_methods",
    "positional_problem",
    "queue_url_problem",
]

QUEUE_URL_SCHEMES = ("https://", "http://", "memory://")

SQS_CONSUMER_METHODS = (
    "get_queue_attributes",
    "receive_message",
    "delete_message_batch",
    "change_message_visibility_batch",
)
"""The client methods every Consumer calls (dead-lettering adds send_message)."""


def queue_url_problem(value: object) -> str | None:
    """What is wrong with `value` as a queue URL, or None when it is one."""
    if not isinstance(value, str):
        return f"it is {type(value).__name__}, not a string"
    if any(char.isspace() for char in value):
        return "it contains whitespace (a stray space or line break, e.g. from an env file?)"
    if not value.startswith(QUEUE_URL_SCHEMES):
        return "it does not start with " + ", ".join(QUEUE_URL_SCHEMES)
    if value.endswith("//") or value.split("://", 1)[1].strip("/") == "":
        return "it names no queue"
    return None


def missing_methods(client: object, names: Iterable[str]) -> list[str]:
    """The names in `names` that `client` lacks as callable attributes."""
    missing = []
    for name in names:
        try:
            method = getattr(client, name, None)
        except Exception:  # a proxy whose __getattr__ raises: it does not offer the method
            method = None
        if not callable(method):
            missing.append(name)
    return missing


def generator_problem(function: object) -> str | None:
    """Why `function` cannot be a handler because calling it only makes a generator."""
    # A callable object counts by its __call__; inspect unwraps bound methods and partials.
    targets = [function]
    if not inspect.isroutine(function) and not isinstance(function, type):
        targets.append(getattr(function, "__call__", None))  # noqa: B004 - the method itself
    for target in targets:
        if inspect.isasyncgenfunction(target):
            return "it is an async generator function"
        if inspect.isgeneratorfunction(target):
            return "it is a generator function"
    return None


def positional_problem(function: object, count: int) -> str | None:
    """Why `function` cannot be called with `count` positional arguments, or None.

    None too when its signature cannot be read (builtins, some C callables): the call
    itself will tell.
    """
    try:
        signature = inspect.signature(function)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*range(count))
    except TypeError as exc:
        return f"its signature is {signature} ({exc})"
    return None
