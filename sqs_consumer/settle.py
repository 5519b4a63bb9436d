"""Settle an outcome: acks to the harvester, failures to the retry policy's visibility delay."""

from __future__ import annotations

import logging

from .harvester import Harvester
from .message import Message
from .outcome import Ack, Fail, Outcome
from .retry import RetryPolicy
from .stats import Counters
from .visibility import VisibilityChanger

__all__ = ["Settler"]

log = logging.getLogger("sqs_consumer")


class Settler:
    """Route each outcome to the stage that makes it true on the queue, and count it.

    Args:
        harvester: deletes acknowledged messages.
        visibility: applies retry delays.
        retry: the retry policy (None leaves failures to the queue's visibility timeout).
        counters: the consumer's tallies.
    """

    def __init__(
        self,
        *,
        harvester: Harvester,
        visibility: VisibilityChanger,
        retry: RetryPolicy | None,
        counters: Counters,
    ) -> None:
        self._harvester = harvester
        self._visibility = visibility
        self._retry = retry
        self._counters = counters

    def settle(self, message: Message, outcome: Outcome) -> None:
        """Make `outcome` happen for `message` (never blocks)."""
        if isinstance(outcome, Ack):
            if outcome.discarded:
                self._counters.discarded += 1
            else:
                self._counters.succeeded += 1
            self._harvester.ack(message.receipt_handle)
            return
        self._fail(message, outcome)

    def _fail(self, message: Message, outcome: Fail) -> None:
        self._counters.failed += 1
        if outcome.timed_out:
            self._counters.timed_out += 1
        delay = outcome.delay
        if delay is None and self._retry is not None:
            delay = self._retry.delay(message.receive_count)
        log.warning(
            "message %s failed on receive %d: %r%s",
            message.message_id,
            message.receive_count,
            outcome.error,
            "" if delay is None else f"; retry in {delay:.1f} s",
        )
        if delay is not None:
            self._counters.retried += 1
            self._visibility.change(message.receipt_handle, delay)
