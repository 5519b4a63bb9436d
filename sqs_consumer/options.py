"""`ConsumerOptions`: every setting of a Consumer, validated at construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import attrs

from ._checks import (
    QUEUE_URL_SCHEMES,
    SQS_CONSUMER_METHODS,
    generator_problem,
    missing_methods,
    positional_problem,
    queue_url_problem,
)
from ._pipeline.flow import PREFETCH_MULTIPLIER
from ._sqs_rules import MAX_BATCH_ENTRIES, MAX_WAIT
from .errors import OptionTypeError
from .retry import MAX_DELAY, ExponentialBackoff, RetryPolicy
from .workers import ElasticPool, SemaphoreWorker, Worker

__all__ = ["ConsumerOptions"]

MAX_CONCURRENCY = 100_000
MAX_POLLERS = 100
MAX_BATCH = MAX_BATCH_ENTRIES  # ReceiveMessage / DeleteMessageBatch take at most this many
URL_SCHEMES = QUEUE_URL_SCHEMES


def _fail(name: str, allowed: str, value: object) -> ValueError:
    return ValueError(f"ConsumerOptions.{name} must be {allowed}, got {value!r}")


def _wrong_type(name: str, allowed: str, value: object) -> OptionTypeError:
    return OptionTypeError(f"ConsumerOptions.{name} must be {allowed}, got {_short(value)}")


def _int_in(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(attribute.name, f"an integer between {low} and {high}", value)

    return check


def _seconds(
    low: float, high: float | None = None, *, optional: bool = False, low_open: bool = False
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """A finite number of seconds: inf and NaN are refused (every wait of the consumer has a
    deadline; where there may be none, `optional` makes None mean "no limit")."""

    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None and optional:
            return
        number = isinstance(value, int | float) and not isinstance(value, bool)
        finite = number and math.isfinite(value)
        too_low = finite and (value <= low if low_open else value < low)
        too_high = finite and high is not None and value > high
        if not finite or too_low or too_high:
            lower = f"> {low}" if low_open else f">= {low}"
            upper = f" and <= {high}" if high is not None else ""
            prefix = "None or " if optional else ""
            error = _fail(
                attribute.name, f"{prefix}a finite number of seconds {lower}{upper}", value
            )
            if optional and high is None and number and value == math.inf:
                error = ValueError(f"{error} (None is no limit)")
            raise error

    return check


def _optional_int(low: int, high: int) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    inner = _int_in(low, high)

    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        try:
            inner(instance, attribute, value)
        except ValueError:
            allowed = f"None or an integer between {low} and {high}"
            raise _fail(attribute.name, allowed, value) from None

    return check


def _queue_url(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name != "queue_url":
        return
    problem = queue_url_problem(value)
    if problem is not None:
        prefix = "None or " if attribute.name != "queue_url" else ""
        allowed = f"{prefix}a queue URL starting with " + ", ".join(URL_SCHEMES)
        error = ValueError if isinstance(value, str) else OptionTypeError
        raise error(f"ConsumerOptions.{attribute.name} must be {allowed}, got {value!r}: {problem}")


def _endpoint_url(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    allowed = "None or an http:// or https:// URL without whitespace"
    if not isinstance(value, str):
        raise _wrong_type(attribute.name, allowed, value)
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise _fail(attribute.name, allowed, value)


def _region_name(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    allowed = 'None or a region name such as "us-east-1"'
    if not isinstance(value, str):
        raise _wrong_type(attribute.name, allowed, value)
    if not value or any(char.isspace() for char in value):
        raise _fail(attribute.name, allowed, value)


def _client(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    missing = missing_methods(value, SQS_CONSUMER_METHODS)
    if missing:
        raise OptionTypeError(
            f'ConsumerOptions.client must be None or an SQS client such as boto3.client("sqs") '
            f"(an object with the methods {', '.join(SQS_CONSUMER_METHODS)}), got "
            f"{_short(value)}, which lacks {', '.join(missing)}"
        )


def _bool(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise _wrong_type(attribute.name, "a bool (True or False)", value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _worker(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value in ("semaphore", "pool") or isinstance(value, Worker):
        return
    raise _fail(attribute.name, '"semaphore", "pool" or a Worker instance', value)


def _pollers(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value == "auto" and isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_POLLERS:
        raise _fail(attribute.name, f'"auto" or an integer between 1 and {MAX_POLLERS}', value)


def _prefetch(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value == "auto" and isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(
            attribute.name,
            f'"auto" or an integer between 0 and {PREFETCH_MULTIPLIER} x concurrency',
            value,
        )


def _host(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise _wrong_type(attribute.name, 'an address to bind, such as "0.0.0.0"', value)
    if not value.strip() or value != value.strip():
        raise _fail(attribute.name, 'an address to bind, such as "127.0.0.1" or "0.0.0.0"', value)


def _retry(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, RetryPolicy):
        raise _wrong_type(
            attribute.name, "None or a RetryPolicy (an object with delay(count))", value
        )


def _middleware(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    allowed = "a sequence of middleware callables `async def mw(message, call_next)`"
    if not isinstance(value, tuple):  # _tuple made every list or tuple one
        raise _wrong_type(attribute.name, f"{allowed} (a list or tuple, possibly empty)", value)
    for index, item in enumerate(value):
        problem = None
        if not callable(item):
            problem = "it is not callable"
        else:
            problem = generator_problem(item) or positional_problem(item, 2)
        if problem is not None:
            raise OptionTypeError(
                f"ConsumerOptions.middleware must be {allowed}, but item {index} "
                f"({_short(item)}) is not one: {problem}"
            )


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


@attrs.frozen(kw_only=True)
class ConsumerOptions:
    """How a Consumer polls, runs handlers and settles messages (SPEC §2).

    Every field is validated when the options are built; a bad value raises ValueError
    naming the field, the value and what is allowed (a value of the wrong type raises
    `OptionTypeError`, which is both a ValueError and a TypeError).
    """

    queue_url: str = attrs.field(validator=_queue_url)
    client: Any = attrs.field(default=None, validator=_client)
    endpoint_url: str | None = attrs.field(default=None, validator=_endpoint_url)
    region_name: str | None = attrs.field(default=None, validator=_region_name)
    worker: Literal["semaphore", "pool"] | Worker = attrs.field(
        default="semaphore", validator=_worker
    )
    concurrency: int = attrs.field(default=10, validator=_int_in(1, MAX_CONCURRENCY))
    batch_size: int = attrs.field(default=MAX_BATCH, validator=_int_in(1, MAX_BATCH))
    wait_time_seconds: int = attrs.field(default=20, validator=_int_in(0, MAX_WAIT))
    pollers: Literal["auto"] | int = attrs.field(default="auto", validator=_pollers)
    prefetch: Literal["auto"] | int = attrs.field(default="auto", validator=_prefetch)
    visibility_timeout: int | None = attrs.field(
        default=None, validator=_optional_int(1, MAX_DELAY)
    )
    heartbeat_interval: float | None = attrs.field(
        default=None, validator=_seconds(0, MAX_DELAY, optional=True, low_open=True)
    )
    max_visibility: float = attrs.field(
        default=float(MAX_DELAY), validator=_seconds(0, MAX_DELAY, low_open=True)
    )
    handler_timeout: float | None = attrs.field(
        default=None, validator=_seconds(0, optional=True, low_open=True)
    )
    retry: RetryPolicy | None = attrs.field(factory=ExponentialBackoff, validator=_retry)
    max_receives: int | None = attrs.field(default=None, validator=_optional_int(1, 1000))
    dead_letter_queue_url: str | None = attrs.field(default=None, validator=_queue_url)
    delete_batch_size: int = attrs.field(default=MAX_BATCH, validator=_int_in(1, MAX_BATCH))
    delete_flush_interval: float = attrs.field(default=0.1, validator=_seconds(0, 60))
    shutdown_timeout: float = attrs.field(default=30.0, validator=_seconds(0))
    pool_min_workers: int = attrs.field(default=0, validator=_int_in(0, MAX_CONCURRENCY))
    pool_idle_timeout: float = attrs.field(default=10.0, validator=_seconds(0, low_open=True))
    waiting_room_size: int | None = attrs.field(
        default=None, validator=_optional_int(1, MAX_CONCURRENCY)
    )
    middleware: tuple[Callable[..., Any], ...] = attrs.field(
        default=(), converter=_tuple, validator=_middleware
    )
    stats_port: int | None = attrs.field(default=None, validator=_optional_int(0, 65535))
    stats_host: str = attrs.field(default="127.0.0.1", validator=_host)
    batch: bool = attrs.field(default=False, validator=_bool)
    unhealthy_after: float = attrs.field(default=30.0, validator=_seconds(0, low_open=True))

    def __attrs_post_init__(self) -> None:
        """Checks that involve more than one field."""
        if (
            isinstance(self.prefetch, int)
            and self.prefetch > PREFETCH_MULTIPLIER * self.concurrency
        ):
            raise ValueError(
                f'ConsumerOptions.prefetch must be "auto" or an integer between 0 and '
                f"{PREFETCH_MULTIPLIER} x concurrency ({PREFETCH_MULTIPLIER * self.concurrency}), "
                f"got {self.prefetch!r}"
            )
        if self.pool_min_workers > self.concurrency:
            raise ValueError(
                f"ConsumerOptions.pool_min_workers ({self.pool_min_workers}) must not exceed "
                f"concurrency ({self.concurrency})"
            )
        if (self.max_receives is None) != (self.dead_letter_queue_url is None):
            raise ValueError(
                "ConsumerOptions.max_receives and dead_letter_queue_url go together: set both "
                f"or neither (got max_receives={self.max_receives!r}, "
                f"dead_letter_queue_url={self.dead_letter_queue_url!r})"
            )
        if self.dead_letter_queue_url is not None and self.dead_letter_queue_url == self.queue_url:
            raise ValueError("ConsumerOptions.dead_letter_queue_url must differ from queue_url")
        dead_letters_by_client = self.dead_letter_queue_url is not None and self.client is not None
        if dead_letters_by_client and missing_methods(self.client, ["send_message"]):
            raise OptionTypeError(
                "ConsumerOptions.client must have a send_message method when "
                "dead_letter_queue_url is set (dead letters are sent with it), got "
                f"{_short(self.client)}"
            )
        if (
            self.heartbeat_interval is not None
            and self.visibility_timeout is not None
            and self.heartbeat_interval >= self.visibility_timeout
        ):
            raise ValueError(
                f"ConsumerOptions.heartbeat_interval ({self.heartbeat_interval}) must be shorter "
                f"than visibility_timeout ({self.visibility_timeout}), or the message reappears "
                "before it is extended"
            )

        if self.visibility_timeout is not None and self.visibility_timeout > self.max_visibility:
            raise ValueError(
                f"ConsumerOptions.visibility_timeout ({self.visibility_timeout}) must not exceed "
                f"max_visibility ({self.max_visibility:g}), the cap on a message's total "
                "visibility: each receive would already ask for more"
            )

    @property
    def is_memory(self) -> bool:
        """True when queue_url names a queue of the in-memory SQS."""
        return self.queue_url.startswith("memory://")

    def make_worker(self) -> Worker:
        """The Worker strategy these options ask for (a given Worker instance is used as is)."""
        if self.worker == "semaphore":
            return SemaphoreWorker(self.concurrency)
        if self.worker == "pool":
            return ElasticPool(
                self.concurrency,
                min_workers=self.pool_min_workers,
                idle_timeout=self.pool_idle_timeout,
                waiting_room_size=self.waiting_room_size or self.concurrency,
            )
        assert not isinstance(self.worker, str)
        return self.worker

    def max_pollers(self) -> int:
        """The most receive loops worth running: enough to fill `concurrency` and the largest
        prefetch in full batches (`"auto"` runs one while the queue is empty)."""
        if isinstance(self.pollers, int):
            return self.pollers
        ahead = PREFETCH_MULTIPLIER * self.concurrency if self.prefetch == "auto" else self.prefetch
        return max(1, min(64, -(-(self.concurrency + ahead) // self.batch_size)))
