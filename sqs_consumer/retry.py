"""Retry policies: how long a failed message stays invisible before it comes back."""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

import attrs

from ._sqs_rules import MAX_VISIBILITY

__all__ = ["ExponentialBackoff", "RetryPolicy"]

MAX_DELAY = MAX_VISIBILITY  # SQS refuses a visibility timeout over 12 hours


@runtime_checkable
class RetryPolicy(Protocol):
    """Protocol: maps the receive count of a failed message to a delay in seconds."""

    def delay(self, receive_count: int) -> float:
        """Seconds until the message is visible again after its `receive_count`-th failure."""
        ...


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"ExponentialBackoff.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class ExponentialBackoff:
    """Delay `initial * multiplier ** (receive_count - 1)`, capped at `max_delay`, with jitter.

    Args:
        initial: delay in seconds after the first failure.
        multiplier: growth factor per further receive.
        max_delay: upper bound in seconds (at most 43200, the SQS limit).
        jitter: fraction of the delay taken off at random (0 = none, 1 = "full jitter"),
            so messages that failed together do not come back together.
    """

    initial: float = attrs.field(default=1.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    max_delay: float = attrs.field(
        default=900.0, validator=[_positive, attrs.validators.le(float(MAX_DELAY))]
    )
    jitter: float = attrs.field(
        default=0.2, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )

    def delay(self, receive_count: int) -> float:
        """Seconds of invisibility after the `receive_count`-th failed delivery."""
        exponent = max(0, receive_count - 1)
        try:
            base = min(self.max_delay, self.initial * self.multiplier**exponent)
        except OverflowError:
            base = self.max_delay
        if self.jitter:
            base -= random.uniform(0.0, base * self.jitter)
        return base
