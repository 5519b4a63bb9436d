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
