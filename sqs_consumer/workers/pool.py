"""`ElasticPool`: long-lived workers that grow on demand and retire when idle."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import attrs
from anyio.abc import TaskGroup, TaskStatus

from .base import REUSE_STREAK, Backlog, Job, WorkerStats
from .waiting_room import WaitingRoom

__all__ = ["ElasticPool"]


@attrs.define(slots=True, eq=False)
class _Idler:
    """One idle worker: woken for work, or told to retire."""

    wake: anyio.Event
    since: float
    retire: bool = False
    for_work: bool = False
    """Woken by submit() for a job in the room (counted in `ElasticPool._waking`)."""


class ElasticPool:
    """A pool of long-lived workers, spawned only when none is idle (after alitto/pond).

    Submitted jobs go through the `WaitingRoom`; a worker takes from it, then from the
    consumer's queue of received jobs (see `TakesBacklog`), before going idle. Workers are woken one at a time: a submit wakes (or spawns) a worker only when
    none is already on its way, and a worker that takes a job while more wait wakes the
    next before running its own. Slow jobs still fan out to a worker each (one event-loop
    turn apart), while a burst of quick jobs is run by the few workers already awake
    instead of waking one worker per job for a job that takes microseconds. One janitor task ticks every
    `idle_timeout` and retires the longest-idle worker if it has idled that long: workers
    leave one at a time, never below `min_workers`. (One timer for the pool, rather than
    a timeout per idle period, keeps the per-job cost flat.)

    Args:
        max_workers: the most workers alive, hence jobs running, at once.
        min_workers: workers kept alive even when idle (started with the pool).
        idle_timeout: seconds a worker waits for work before it may retire.
        waiting_room_size: jobs that may wait for a worker; None means `max_workers`.
        clock: the time source (seconds), injectable for tests; read once per idle period,
            so it is a plain monotonic clock rather than the (costlier) event loop's.
        sleep: how the janitor waits `idle_timeout` between its rounds, in `clock` time.
            The default, `anyio.sleep`, waits real time, as `time.monotonic` counts it; a
            test that drives a fake `clock` passes the sleep that follows it, so workers
            retire when the test moves that clock, not after real time.

    Raises:
        ValueError: a bound is out of range.
    """

    def __init__(
        self,
        max_workers: int,
        *,
        min_workers: int = 0,
        idle_timeout: float = 10.0,
        waiting_room_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(
                f"ElasticPool max_workers must be an integer >= 1, got {max_workers!r}"
            )
        if not 0 <= min_workers <= max_workers:
            raise ValueError(
                f"ElasticPool min_workers must be between 0 and max_workers ({max_workers}), "
                f"got {min_workers!r}"
            )
        if not idle_timeout > 0:
            raise ValueError(f"ElasticPool idle_timeout must be > 0 seconds, got {idle_timeout!r}")
        self._max = max_workers
        self._min = min_workers
        self._idle_timeout = idle_timeout
        self._clock = clock
        self._sleep = sleep
        self._room: WaitingRoom[Job] = WaitingRoom(waiting_room_size or max_workers)
        self._live = 0
        self._busy = 0
        self._waking = 0  # workers woken or spawned for work that have not started yet
        self._idle: deque[_Idler] = deque()  # newest on the right, longest idle on the left
        self._janitor: anyio.CancelScope | None = None
        self._changed: anyio.Event | None = None  # set when a job ends or leaves the room
        self._tg: TaskGroup | None = None
        self._closing = anyio.Event()
        self._closed = False  # _closing.is_set(), read on every capacity() without a call
        self._backlog: Backlog | None = None
        self._drained: anyio.Event | None = None
        self._done = anyio.Event()

    def capacity(self) -> int:
        """Jobs that can start now: free worker slots not already claimed by waiting jobs."""
        if self._closed:
            return 0
        return max(0, min(self._max - self._busy - len(self._room), self._room.free()))

    def take_from(self, backlog: Backlog) -> None:
        """Have a worker whose room is empty take its next job from `backlog` before idling."""
        self._backlog = backlog

    async def wait_for_capacity(self) -> None:
        """Return once `capacity()` is above zero (never, once closing)."""
        while self.capacity() <= 0:
            if self._closing.is_set():
                await anyio.sleep_forever()
            await self._wait_changed()

    async def _wait_changed(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def submit(self, job: Job) -> None:
        """Put `job` in the waiting room (waiting while it is full) and get a worker on it."""
        if self._tg is None or self._closing.is_set():
            raise RuntimeError("ElasticPool.submit() called while not serving")
        while self._room.is_full():
            await self._wait_changed()
        self._room.push_nowait(job)
        if not self._waking:
            self._wake_one()

    def _wake_one(self) -> None:
        """Get one more worker on the room: an idle one, else a new one (below the cap)."""
        if self._idle:
            # Wake the most recently idle worker: the longest-idle ones keep ageing and retire.
            idler = self._idle.pop()
            idler.for_work = True
            self._waking += 1
            idler.wake.set()
        elif self._live < self._max:
            self._waking += 1
            self._spawn(for_work=True)

    def _spawn(self, *, for_work: bool) -> None:
        assert self._tg is not None
        self._live += 1
        self._tg.start_soon(self._work, for_work)

    async def _work(self, for_work: bool) -> None:
        if for_work:
            self._waking -= 1  # spawned for a job: it has started
        streak = 0
        try:
            while True:
                if self._room:
                    job = self._room.pop_nowait()
                    self._notify()  # a place in the room is free again
                    if self._room and not self._waking:
                        self._wake_one()  # more wait: the next worker, before this job runs
                    await self._run(job)
                elif self._closed:
                    return
                elif self._backlog is not None and (taken := self._backlog()) is not None:
                    await self._run(taken)
                    streak += 1
                    if streak == REUSE_STREAK:
                        streak = 0
                        await anyio.lowlevel.checkpoint()  # before taking: a job taken is run
                elif self._closing.is_set():
                    return
                elif not await self._wait_for_job() and not self._room:
                    # Told to retire: but a job may have arrived in the same turn, when this
                    # worker no longer counted as idle and no new one was spawned for it.
                    return
        finally:
            self._live -= 1
            if self._live == 0 and self._drained is not None:
                self._drained.set()

    async def _run(self, job: Job) -> None:
        self._busy += 1
        try:
            await job()
        finally:
            self._busy -= 1
            self._notify()

    async def _wait_for_job(self) -> bool:
        """Idle until woken for work (True), or until told to retire (False)."""
        idler = _Idler(anyio.Event(), self._clock())
        self._idle.append(idler)
        await idler.wake.wait()
        if idler.for_work:
            self._waking -= 1
        return not idler.retire

    async def _retire_idle(self, scope: anyio.CancelScope) -> None:
        with scope:
            while True:
                await self._sleep(self._idle_timeout)
                if self._live <= self._min or not self._idle:
                    continue
                oldest = self._idle[0]
                if self._clock() - oldest.since >= self._idle_timeout:
                    self._idle.popleft()
                    oldest.retire = True
                    oldest.wake.set()

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the workers (starting `min_workers` of them) until `aclose()` has finished."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for _ in range(self._min):
                    self._spawn(for_work=False)
                # The scope exists before the task starts: aclose() may come first.
                self._janitor = anyio.CancelScope()
                tg.start_soon(self._retire_idle, self._janitor)
                task_status.started()
                await self._closing.wait()
        finally:
            self._done.set()

    async def aclose(self, timeout: float) -> None:
        """Stop taking jobs; let workers finish what they hold within `timeout`, then cancel."""
        self._drained = anyio.Event()
        if self._live == 0:
            self._drained.set()
        self._closing.set()
        self._closed = True
        self._notify()
        if self._janitor is not None:
            self._janitor.cancel()
        for idler in self._idle:
            idler.wake.set()
        self._idle.clear()
        with anyio.move_on_after(timeout):
            await self._drained.wait()
        if self._tg is None:
            return
        if self._live:
            self._tg.cancel_scope.cancel()
        await self._done.wait()

    def stats(self) -> WorkerStats:
        """A snapshot of live, busy and idle workers and the waiting room."""
        return WorkerStats(
            workers=self._live,
            busy=self._busy,
            idle_workers=len(self._idle),
            waiting=len(self._room),
            capacity=self.capacity(),
        )

    def __repr__(self) -> str:
        return (
            f"<ElasticPool live={self._live}/{self._max} busy={self._busy} "
            f"idle={len(self._idle)} waiting={len(self._room)}>"
        )
