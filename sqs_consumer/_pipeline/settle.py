"""Settle an outcome: acks to the harvester, failures to a retry delay or the DLQ."""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
from typing import Any

import attrs

from .._sqs_rules import MAX_VISIBILITY
from ..errors import Retry
from ..message import Message
from ..observability.telemetry import Telemetry
from ..retry import ExponentialBackoff, RetryPolicy
from ..stats import Counters
from .deadletter import DeadLetters
from .harvester import Harvester
from .outcome import Ack, Fail, Outcome
from .saferepr import safe_repr
from .visibility import VisibilityChanger, whole_seconds

__all__ = ["Settled", "Settler"]

log = logging.getLogger("sqs_consumer")

_DEFAULT_RETRY = ExponentialBackoff()


@attrs.frozen(slots=True)
class Settled:
    """What settling did to the message on the queue."""

    kept: bool
    """The message is still on the queue and comes back (False: deleted or dead-lettered)."""
    delay: int | None = None
    """Seconds until it is visible again; None: when its current visibility timeout ends."""


_GONE = Settled(kept=False)


class Settler:
    """Route each outcome to the stage that makes it true on the queue, and count it.

    Args:
        harvester: deletes acknowledged messages.
        visibility: applies retry delays.
        retry: the retry policy (None leaves failures to the queue's visibility timeout).
        dead_letters: where messages go after their last allowed receive (None: nowhere).
        counters: the consumer's tallies.
        telemetry: metrics (retried, dead-lettered).
    """

    def __init__(
        self,
        *,
        harvester: Harvester,
        visibility: VisibilityChanger,
        retry: RetryPolicy | None,
        dead_letters: DeadLetters | None,
        counters: Counters,
        telemetry: Telemetry,
    ) -> None:
        self._telemetry = telemetry
        self._harvester = harvester
        self._visibility = visibility
        self._retry = retry
        self._dead_letters = dead_letters
        self._counters = counters
        self._policy_failed = False  # a broken retry policy is logged in full once

    async def settle(self, message: Message, outcome: Outcome) -> Settled:
        """Make `outcome` happen for `message`; only a dead-letter send waits for SQS.

        Never raises for what user code did: a retry policy that raises or returns no
        usable delay gets the default backoff, an error that cannot be formatted is shown
        by a safe repr. Settling is what makes the message's fate true on the queue; if it
        raised, the message would be neither acked nor released.
        """
        if isinstance(outcome, Ack):
            return self.ack(message, outcome)
        self._counters.failed += 1
        if outcome.timed_out:
            self._counters.timed_out += 1
        if await self._dead_letter(message, outcome):
            return _GONE
        return Settled(kept=True, delay=self._retry_later(message, outcome))

    def ack(self, message: Message, outcome: Ack) -> Settled:
        """Settle a success (or a discard) at once: it only queues the delete."""
        if outcome.discarded:
            self._counters.discarded += 1
        else:
            self._counters.succeeded += 1
        self._harvester.ack(message.receipt_handle, message.message_id)
        return _GONE

    async def _dead_letter(self, message: Message, outcome: Fail) -> bool:
        """Send to the DLQ if this was the last allowed receive; True once it is there."""
        if self._dead_letters is None or not self._dead_letters.due(message):
            return False
        try:
            sent = await self._dead_letters.send(message, outcome.error)
        except Exception:  # not an SQS failure (those return False): still keep the message
            _log(
                logging.ERROR, "could not dead-letter message %s", message.message_id, exc_info=True
            )
            sent = False
        if not sent:
            return False  # not in the DLQ: keep it in the queue, it comes back
        self._counters.dead_lettered += 1
        self._telemetry.dead_lettered()
        self._harvester.ack(message.receipt_handle, message.message_id)
        return True

    def _retry_later(self, message: Message, outcome: Fail) -> int | None:
        delay = self._delay(message, outcome)
        # A deliberate Retry is routine; anything else is worth a warning.
        level = logging.INFO if isinstance(outcome.error, Retry) else logging.WARNING
        _log(
            level,
            "message %s failed on receive %d: %s%s",
            message.message_id,
            message.receive_count,
            safe_repr(outcome.error),
            "" if delay is None else f"; retry in {delay} s",
        )
        if delay is not None:
            self._counters.retried += 1
            self._telemetry.retried()
            self._visibility.change(message.receipt_handle, delay, message.message_id)
        return delay

    def _delay(self, message: Message, outcome: Fail) -> int | None:
        """Whole seconds until the retry (None: leave it to the visibility timeout)."""
        if outcome.delay is not None:
            seconds = _seconds(outcome.delay)
            if seconds is not None:
                return seconds
        if self._retry is None:
            return None
        count = message.receive_count
        try:
            value: Any = self._retry.delay(count)
        except Exception as exc:
            self._policy_broke(f"raised {safe_repr(exc)}", exc)
        else:
            seconds = _seconds(value)
            if seconds is not None:
                return seconds
            self._policy_broke(f"returned {safe_repr(value)}, not a number of seconds >= 0")
        return whole_seconds(_DEFAULT_RETRY.delay(count))

    def _policy_broke(self, what: str, exc: BaseException | None = None) -> None:
        # Logged in full once: a policy that is broken for one message usually is for all.
        first = not self._policy_failed
        self._policy_failed = True
        _log(
            logging.ERROR if first else logging.DEBUG,
            "retry policy %s.delay() %s; using the default backoff instead%s",
            getattr(type(self._retry), "__qualname__", "RetryPolicy"),
            what,
            " (repeats are logged at debug level)" if first else "",
            exc_info=exc if first else None,
        )


def _seconds(value: Any) -> int | None:
    """A delay as whole seconds within SQS's range, or None for a negative, NaN or non-number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        seconds = float(value)
    except Exception:  # a Real whose __float__ is broken
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return whole_seconds(min(seconds, float(MAX_VISIBILITY)))  # +inf: as long as SQS allows


def _log(
    level: int, message: str, *args: object, exc_info: BaseException | bool | None = None
) -> None:
    """Log without ever raising: a failing log handler or filter must not stop a settle."""
    # Nowhere is left to report a failure of the logging itself; the settle goes on.
    with contextlib.suppress(Exception):
        log.log(level, message, *args, exc_info=exc_info)
