"""What became of one handled message: small frozen values passed from handling to settling,
and `outcome_of`, the one mapping from what a handler raised to its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import attrs

from ..errors import Discard, Retry

__all__ = ["Ack", "Fail", "OnInterrupt", "Outcome", "outcome_of"]


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

OnInterrupt = Callable[[BaseException], None]
"""Told of a BaseException (KeyboardInterrupt, SystemExit, ...) that user code raised."""


def outcome_of(error: BaseException, on_interrupt: OnInterrupt | None) -> Outcome:
    """The outcome of a handler (or batch handler, or middleware) that raised `error`.

    `Retry` fails with its delay, `Discard` deletes without counting a failure, any other
    Exception fails (the retry policy decides when it comes back). A BaseException goes to
    `on_interrupt` and the message back unhandled; a cancellation, or any BaseException
    when `on_interrupt` is None, is raised again.
    """
    if isinstance(error, Retry):
        return Fail(error, delay=error.delay)
    if isinstance(error, Discard):
        return DISCARDED
    if isinstance(error, Exception):
        return Fail(error)
    return _interrupted(error, on_interrupt)


def _interrupted(error: BaseException, on_interrupt: OnInterrupt | None) -> Fail:
    """A KeyboardInterrupt, SystemExit or other BaseException out of user code.

    Our own cancellations propagate (foreign ones were made failures by the handling). The
    rest must not escape the job's task: asyncio would re-raise a KeyboardInterrupt or
    SystemExit straight out of the event loop, skipping the drain, and an ExceptionGroup
    would hide it. So the consumer is told (it stops, and `start()` raises it unwrapped)
    and the message is handed back unhandled.
    """
    if on_interrupt is None or isinstance(
        error, asyncio.CancelledError | anyio.get_cancelled_exc_class()
    ):
        raise error
    on_interrupt(error)
    return Fail(error, interrupted=True)
