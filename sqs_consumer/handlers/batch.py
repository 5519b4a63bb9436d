"""Batch handlers: what one returns (`BatchResult`) and how a return value is read.

A batch handler takes the messages of one receive (`list[Message]`) and returns `None` (all
succeeded), an iterable of the ids of the messages that failed (or of those `Message` objects),
or a `BatchResult`; raising
fails the whole batch. A handler object that sets the class attribute `__sqs_batch__ = True`
is run in batch mode even when `ConsumerOptions.batch` is False (`LambdaHandler` does this).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from .._sqs_rules import MAX_VISIBILITY
from ..message import Message

__all__ = ["BatchResult", "is_batch_handler", "normalize_batch_result"]

MAX_DELAY = MAX_VISIBILITY  # seconds: the most SQS lets a message stay invisible


def _id(item: object, where: str) -> str:
    # A failed Message stands for its id: returning the messages themselves is natural.
    if isinstance(item, Message):
        return item.message_id
    if not isinstance(item, str):
        raise TypeError(f"{where}: message ids are str (or the Message itself), got {item!r}")
    return item


def _ids(value: Iterable[str | Message]) -> frozenset[str]:
    if isinstance(value, str | bytes | Message):
        raise TypeError(
            f"BatchResult.failed must be an iterable of message ids (or Messages), got {value!r}"
        )
    return frozenset(_id(item, "BatchResult.failed") for item in value)


def _delays(value: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(value))


def _check_delays(
    instance: BatchResult, _: attrs.Attribute[Any], value: Mapping[str, float]
) -> None:
    for message_id, delay in value.items():
        if message_id not in instance.failed:
            raise ValueError(
                f"BatchResult.retry_delays: message {message_id!r} is not in failed; "
                "a delay applies only to a failed message"
            )
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise TypeError(
                f"BatchResult.retry_delays[{message_id!r}] must be seconds, got {delay!r}"
            )
        if not 0 <= delay <= MAX_DELAY:
            raise ValueError(
                f"BatchResult.retry_delays[{message_id!r}]={delay!r}: "
                f"a delay must be between 0 and {MAX_DELAY} seconds"
            )


@attrs.frozen(kw_only=True)
class BatchResult:
    """Which messages of a batch failed; every other message of the batch succeeded.

    Args:
        failed: the ids of the messages that failed (any iterable of str, or of the
            `Message` objects themselves).
        retry_delays: seconds until a failed message comes back, by message id; a failed
            message without an entry gets the consumer's retry policy.

    Raises:
        TypeError: `failed` is a single string or holds something other than str or
            Message, or a delay is not a number.
        ValueError: a delay is outside 0–43200 s or names a message that is not in `failed`.
    """

    failed: frozenset[str] = attrs.field(factory=frozenset, converter=_ids)
    retry_delays: Mapping[str, float] = attrs.field(
        factory=dict, converter=_delays, validator=_check_delays, hash=False
    )

    @classmethod
    def all_ok(cls) -> BatchResult:
        """Every message of the batch succeeded."""
        return cls(failed=frozenset())

    def __repr__(self) -> str:
        delays = f", retry_delays={dict(self.retry_delays)!r}" if self.retry_delays else ""
        return f"BatchResult(failed={sorted(self.failed)!r}{delays})"


def normalize_batch_result(result: object, messages: Sequence[Message]) -> BatchResult:
    """Read what a batch handler returned as a `BatchResult` for `messages`.

    Args:
        result: None (all succeeded), an iterable of failed message ids (or of the failed
            `Message` objects), or a BatchResult.
        messages: the batch the handler was given.

    Raises:
        ValueError: an id is not the id of a message in `messages` (the text names it).
        TypeError: `result` is none of the accepted types (a str, a mapping, a number, ...).
    """
    if result is None:
        return BatchResult.all_ok()
    if isinstance(result, BatchResult):
        outcome = result
    elif isinstance(result, Mapping):
        raise TypeError(
            f"a batch handler returned a mapping ({_short(result)}); return failed message ids "
            "or a BatchResult (wrap a Lambda-style handler in LambdaHandler)"
        )
    elif isinstance(result, Iterable) and not isinstance(result, str | bytes):
        outcome = BatchResult(failed=result)
    else:
        raise TypeError(
            "a batch handler must return None, an iterable of failed message ids (or "
            f"Messages) or a BatchResult, got {_short(result)}"
        )
    _check_known(outcome.failed, messages)
    return outcome


def _check_known(failed: frozenset[str], messages: Sequence[Message]) -> None:
    known = {message.message_id for message in messages}
    unknown = sorted(failed - known)
    if unknown:
        raise ValueError(
            f"a batch handler reported message {unknown[0]!r} as failed, but it is not in the "
            f"batch of {len(messages)} (unknown ids: {', '.join(map(repr, unknown))})"
        )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_batch_handler(handler: object) -> bool:
    """True when `handler` marks itself a batch handler with `__sqs_batch__ = True`."""
    return getattr(handler, "__sqs_batch__", False) is True
