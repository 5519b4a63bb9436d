"""Settle an outcome: acks to the harvester, failures to a retry delay or the DLQ."""

from __future__ import annotations

import logging

from .deadletter import DeadLetters
from .errors import Retry
from .harvester import Harvester
from .message import Message
from .outcome import Ack, Fail, Outcome
from .retry import RetryPolicy
from .stats import Counters
from .telemetry import Telemetry
from .visibility import VisibilityChanger, whole_seconds

__all__ = ["Settler"]

log = logging.getLogger("sqs_consumer")


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

    async def settle(self, message: Message, outcome: Outcome) -> None:
        """Make `outcome` happen for `message`; only a dead-letter send waits for SQS."""
        if isinstance(outcome, Ack):
            if outcome.discarded:
                self._counters.discarded += 1
            else:
                self._counters.succeeded += 1
            self._harvester.ack(message.receipt_handle)
            return
        self._counters.failed += 1
        if outcome.timed_out:
            self._counters.timed_out += 1
        if await self._dead_letter(message, outcome):
            return
        self._retry_later(message, outcome)

    async def _dead_letter(self, message: Message, outcome: Fail) -> bool:
        """Send to the DLQ if this was the last allowed receive; True once it is there."""
        if self._dead_letters is None or not self._dead_letters.due(message):
            return False
        if not await self._dead_letters.send(message, outcome.error):
            return False  # not in the DLQ: keep it in the queue, it comes back
        self._counters.dead_lettered += 1
        self._telemetry.dead_lettered()
        self._harvester.ack(message.receipt_handle)
        return True

    def _retry_later(self, message: Message, outcome: Fail) -> None:
        delay: int | None = None
        if outcome.delay is not None:
            delay = whole_seconds(outcome.delay)
        elif self._retry is not None:
            delay = whole_seconds(self._retry.delay(message.receive_count))
        # A deliberate Retry is routine; anything else is worth a warning.
        level = logging.INFO if isinstance(outcome.error, Retry) else logging.WARNING
        log.log(
            level,
            "message %s failed on receive %d: %r%s",
            message.message_id,
            message.receive_count,
            outcome.error,
            "" if delay is None else f"; retry in {delay} s",
        )
        if delay is not None:
            self._counters.retried += 1
            self._telemetry.retried()
            self._visibility.change(message.receipt_handle, delay)
