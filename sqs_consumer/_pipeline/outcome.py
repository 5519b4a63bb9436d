"""What became of one handled message: small frozen values passed from handling to settling."""

from __future__ import annotations

import anyio
import attrs

__all__ = ["Ack", "Fail", "Outcome"]


@attrs.frozen(slots=True)
class Ack:
    """Delete the message. `discarded` marks a `Discard` (not counted as success)."""

    discarded: bool = False


@attrs.frozen(slots=True)
class Fail:
    """The delivery failed.

    `delay` None means the retry policy decides; `error` is what the handler raised.
    """

    error: BaseException | None
    delay: float | None = None
    timed_out: bool = False
    straggler: anyio.Event | None = None
    """For a timed-out sync handler: set when its thread finally returns. The job keeps
    its worker slot until then, so abandoned threads never exceed the concurrency."""
    interrupted: bool = False
    """The handler raised a BaseException (KeyboardInterrupt, SystemExit, ...): the
    consumer is stopping, and the message goes back unhandled instead of being retried."""


Outcome = Ack | Fail

ACK = Ack()
DISCARDED = Ack(discarded=True)
