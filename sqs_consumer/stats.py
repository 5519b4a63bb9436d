"""Counters kept while a consumer runs, and the frozen `Stats` snapshot built from them."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from functools import partial

import attrs

from .workers import WorkerStats

__all__ = ["Counters", "Stats", "count_duplicate", "install"]


@attrs.define(slots=True)
class Counters:
    """Live tallies, updated on the event loop (plain ints: reads from other threads are safe)."""

    received: int = 0
    succeeded: int = 0
    failed: int = 0
    discarded: int = 0
    retried: int = 0
    timed_out: int = 0
    dead_lettered: int = 0
    released: int = 0
    deleted: int = 0
    delete_errors: int = 0
    visibility_errors: int = 0
    sqs_retries: int = 0
    receives: int = 0
    empty_receives: int = 0
    duplicates: int = 0


@attrs.frozen(slots=True, kw_only=True)
class Stats:
    """A snapshot of what a Consumer has done and is doing (see `Consumer.stats()`)."""

    received: int
    """Messages received from SQS."""
    succeeded: int
    """Handler calls that returned normally."""
    failed: int
    """Handler calls that raised (Retry included), timed out or were rejected."""
    discarded: int
    """Messages deleted because the handler raised Discard."""
    retried: int
    """Failed messages given a retry delay."""
    timed_out: int
    """Handler calls that went over handler_timeout."""
    dead_lettered: int
    """Messages moved to the dead-letter queue."""
    released: int
    """Received messages handed back unhandled (visibility 0), e.g. at shutdown."""
    deleted: int
    """Messages deleted from the queue."""
    duplicates: int
    """Messages acknowledged unhandled because their key had completed (`Idempotent`)."""
    delete_errors: int
    """Deletes refused for good (e.g. the receipt handle had expired)."""
    sqs_retries: int
    """SQS calls retried after a transient error (throttling, 5xx, connection)."""
    receives: int
    """ReceiveMessage calls made."""
    in_flight: int
    """Messages received and not yet settled (running or prefetched)."""
    prefetched: int
    """Messages received ahead of the free slots, waiting for one (leased, not started)."""
    deleting: int
    """Acknowledged messages whose delete SQS has not confirmed yet (they hold no slot)."""
    pollers: int
    """Receive loops running now."""
    workers: int
    """The worker strategy's live workers (or running tasks)."""
    busy: int
    """Handlers running now."""
    idle_workers: int
    """Live workers waiting for work."""
    waiting: int
    """Jobs waiting for a worker (the pool's waiting room)."""

    @classmethod
    def build(
        cls,
        counters: Counters,
        worker: WorkerStats,
        *,
        in_flight: int,
        pollers: int,
        prefetched: int = 0,
        deleting: int = 0,
    ) -> Stats:
        """Assemble a snapshot from the live counters and the worker's own figures."""
        return cls(
            received=counters.received,
            succeeded=counters.succeeded,
            failed=counters.failed,
            discarded=counters.discarded,
            retried=counters.retried,
            timed_out=counters.timed_out,
            dead_lettered=counters.dead_lettered,
            released=counters.released,
            deleted=counters.deleted,
            duplicates=counters.duplicates,
            delete_errors=counters.delete_errors,
            sqs_retries=counters.sqs_retries,
            receives=counters.receives,
            in_flight=in_flight,
            prefetched=prefetched,
            deleting=deleting,
            pollers=pollers,
            workers=worker.workers,
            busy=worker.busy,
            idle_workers=worker.idle_workers,
            waiting=worker.waiting,
        )

    def as_dict(self) -> dict[str, int]:
        """The snapshot as a plain dict (for JSON)."""
        return attrs.asdict(self)


# Middleware (Idempotent) counts into the running consumer's counters: the consumer installs
# them for its run, and every task it starts inherits them.
_current: ContextVar[Counters | None] = ContextVar("sqs_consumer_counters", default=None)


def install(counters: Counters) -> Callable[[], None]:
    """Make `counters` the current consumer's for this context; returns the undo."""
    token = _current.set(counters)
    return partial(_current.reset, token)


def count_duplicate() -> None:
    """Count one duplicate for the consumer running this task (nothing outside a consumer)."""
    counters = _current.get()
    if counters is not None:
        counters.duplicates += 1
