"""Deadlines for the shielded steps: a network partition cannot hold a shutdown for minutes.

Some steps must not be cut short by an ordinary cancellation (a delete of finished work, a
settle, a visibility change in flight), so they run shielded. A shield alone would let a
hanging SQS client hold `start()` forever; every shielded step therefore runs under
`ShutdownDeadline.shielded()`, whose deadline is infinite while the consumer runs (each SQS
call attempt has its own cap, `CALL_TIMEOUT`) and becomes a fixed point in time once the
shutdown begins. Whatever could not be sent by then is abandoned: those messages come back
after their visibility timeout.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ["CALL_TIMEOUT", "FORCED_GRACE", "ShutdownDeadline", "flush_budget"]

CALL_TIMEOUT = 10.0
"""Seconds one SQS call attempt (other than a long poll) may take; then it counts as a
transient error (a connect or read timeout) and is retried. Such calls take milliseconds."""

FORCED_GRACE = 1.0
"""Seconds a forced shutdown (a second signal or stop()) still gives SQS calls: enough for
a healthy SQS to take the pending deletes and releases, not enough to wait on a partition."""


def flush_budget(shutdown_timeout: float) -> float:
    """Seconds the shutdown's SQS work may take after `shutdown_timeout`: the handlers' time
    again, between 1 and 5 s."""
    return min(5.0, max(1.0, shutdown_timeout))


class ShutdownDeadline:
    """One deadline shared by every shielded step of one consumer run."""

    def __init__(self) -> None:
        self._deadline = math.inf
        self._open: set[anyio.CancelScope] = set()
        self.abandoned: list[str] = []
        """Ids of messages whose settle a deadline cut short (they come back by themselves)."""

    def abandon(self, message_id: str) -> None:
        """Note a message whose shielded step the deadline cut short."""
        self.abandoned.append(message_id)

    @property
    def deadline(self) -> float:
        """The event loop time shielded steps end at (inf until a shutdown begins)."""
        return self._deadline

    def passed(self) -> bool:
        """True once the deadline has been reached."""
        return anyio.current_time() >= self._deadline

    def within(self, seconds: float) -> None:
        """Bring the deadline to at most `seconds` from now, for open steps too."""
        deadline = anyio.current_time() + seconds
        if deadline >= self._deadline:
            return
        self._deadline = deadline
        for scope in self._open:
            scope.deadline = min(scope.deadline, deadline)

    @contextmanager
    def shielded(self) -> Iterator[anyio.CancelScope]:
        """A scope shielded from outside cancellation but ending at the deadline.

        Check `scope.cancelled_caught` afterwards: True means the step was cut short.
        """
        scope = anyio.CancelScope(shield=True, deadline=self._deadline)
        self._open.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._open.discard(scope)
