"""The `Worker` protocol that concurrency strategies implement, and the values they share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio
import attrs
from anyio.abc import TaskStatus

__all__ = ["Job", "Worker", "WorkerStats"]

Job = Callable[[], Awaitable[None]]
"""One unit of work: an async callable that handles one message and never raises on purpose."""

Backlog = Callable[[], Job | None]
"""Jobs queued in front of a worker: called, it hands over the oldest one, or None."""

REUSE_STREAK = 16
"""Jobs a task runs back to back from the backlog before it lets the event loop turn once.

A job that never suspends (a no-op handler) would otherwise keep the loop to itself for as
long as the backlog lasts; sixteen such jobs are well under a millisecond."""


@runtime_checkable
class TakesBacklog(Protocol):
    """Protocol (ours, internal): a worker whose tasks take their next job from a backlog.

    A task that has finished a job and finds another queued runs it at once, in the slot it
    already holds, instead of ending and leaving the slot empty for the one or two event-loop
    turns it takes the queue's own task to notice the room and a new task to start.
    """

    def take_from(self, backlog: Backlog) -> None:
        """Take jobs from `backlog` as running ones end (it may return None at any time)."""
        ...


@attrs.frozen(slots=True)
class WorkerStats:
    """A snapshot of a worker strategy's own figures."""

    workers: int
    """Live workers (pool) or running tasks (semaphore)."""
    busy: int
    """Jobs running now."""
    idle_workers: int
    """Live workers waiting for a job (always 0 for the semaphore strategy)."""
    waiting: int
    """Jobs handed over but not started yet (the pool's waiting room)."""
    capacity: int
    """Jobs the worker could start right now."""


@runtime_checkable
class Worker(Protocol):
    """Protocol: a concurrency strategy that runs jobs.

    The consumer calls `serve()` in its task group (the worker's tasks live there),
    asks `capacity()` before each receive so it never holds more messages than can
    start now, hands jobs over with `submit()`, and ends with `aclose()`.
    """

    def capacity(self) -> int:
        """Jobs that could start right now (never blocks)."""
        ...

    async def wait_for_capacity(self) -> None:
        """Return once `capacity()` is above zero."""
        ...

    async def submit(self, job: Job) -> None:
        """Hand a job over; waits while there is no room (never drops a job)."""
        ...

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the worker's tasks until `aclose()` has finished; report started when ready."""
        ...

    async def aclose(self, timeout: float) -> None:
        """Stop taking jobs, give running ones `timeout` seconds to finish, cancel the rest."""
        ...

    def stats(self) -> WorkerStats:
        """A frozen snapshot of the worker's figures."""
        ...
