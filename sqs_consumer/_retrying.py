"""The one retry engine for AWS calls: the consumer's SQS adapter, the producer, DynamoDB locks.

A call is retried while `errors.classify` calls its error transient, up to `attempts` tries,
with full-jitter exponential backoff (`Backoff`) in between. The logic is written once, as a
generator (a "plan", `retried`) that yields what it needs done: a callable to call (its result
comes back, or its exception is thrown in) or a float, seconds to sleep. Drivers run plans:

- `drive`: blocking calls and `time.sleep` (the blocking `Producer`);
- `drive_async`: sleeps on the event loop, each call through `run` (default: a worker
  thread; the SQS adapter passes its own threads, call timeout and metrics).

The producer's larger plans (check, then send batch after batch) `yield from` `retried` for
each call, so blocking and async sending share one logic too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
import attrs

from .errors import ErrorKind, classify

__all__ = ["Backoff", "Plan", "drive", "drive_async", "gave_up", "retried"]

T = TypeVar("T")
Plan = Generator[Callable[[], Any] | float, Any, T]
"""Yields a callable to call (the driver sends back its result or throws its exception in)
or a float, seconds to sleep; returns the plan's result."""


@attrs.frozen(kw_only=True)
class Backoff:
    """Jittered exponential backoff between retries of a transient failure.

    `floor` is the share of each step always waited: 0 is full jitter; above 0 a run of
    retries is sure to span at least that share of the steps' sum (a throttle that lasts a
    second or so is outlived, not given up on).
    """

    base: float = 0.05
    cap: float = 10.0
    floor: float = 0.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based): at random, between
        `floor` and all of `base * 2 ** attempt` (at most `cap`), so callers that failed
        together spread out."""
        step = min(self.cap, self.base * 2 ** min(attempt, 30))
        return random.uniform(self.floor * step, step)


def retried(
    call: Callable[[], T],
    *,
    attempts: int | None,
    backoff: Backoff,
    on_retry: Callable[[Exception, int], None] | None = None,
    fatal: Callable[[Exception], bool] | None = None,
) -> Plan[T]:
    """A plan: `call`, tried again after a backoff while it fails transiently.

    Args:
        call: the call, without arguments.
        attempts: give up after this many tries (None: retry transient errors forever).
        backoff: the delays between tries.
        on_retry: told of each transient failure that will be retried, with its number.
        fatal: which errors end the plan at once; by default those `errors.classify` calls
            fatal (a best-effort call may retry every error instead: `lambda exc: False`).

    Raises:
        Exception: the call's error, once it is fatal or `attempts` ran out (`gave_up` says which).
    """
    attempt = 0
    while True:
        try:
            return cast(T, (yield call))
        except Exception as exc:
            attempt += 1
            final = classify(exc) is ErrorKind.FATAL if fatal is None else fatal(exc)
            if final or (attempts is not None and attempt >= attempts):
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            yield backoff.delay(attempt)


def gave_up(error: BaseException, attempts: int | None) -> str:
    """Why `retried` raised `error`, for the message of the caller's own error."""
    if classify(error) is ErrorKind.FATAL:
        return "failed"
    return f"still failing after {attempts} attempts"


def drive(plan: Plan[T]) -> T:
    """Run a plan with blocking calls and sleeps."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            step = plan.send(reply) if error is None else plan.throw(error)
            reply, error = None, None
            if isinstance(step, float):
                time.sleep(step)
                continue
            try:
                reply = step()
            except Exception as exc:
                error = exc
    except StopIteration as stop:
        return cast(T, stop.value)
    finally:
        plan.close()


async def drive_async(
    plan: Plan[T],
    run: Callable[[Callable[[], Any]], Awaitable[Any]] = anyio.to_thread.run_sync,
) -> T:
    """Run a plan in an event loop: each call through `run`, sleeps on the loop."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            step = plan.send(reply) if error is None else plan.throw(error)
            reply, error = None, None
            if isinstance(step, float):
                await anyio.sleep(step)
                continue
            try:
                reply = await run(step)
            except Exception as exc:
                error = exc
    except StopIteration as stop:
        return cast(T, stop.value)
    finally:
        plan.close()
