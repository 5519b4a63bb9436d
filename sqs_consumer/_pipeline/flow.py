"""Flow control: how many messages to hold ahead of the free slots, and handing them over.

Two small parts the runner uses (SPEC §3):

- `Prefetch` sizes the buffer of messages asked for or received ahead of the free slots by
  Little's law: messages in the pipe = handling rate x receive latency, both measured as the
  consumer runs. A slot that frees then finds its next message waiting instead of waiting a
  receive round trip, and slow handlers get almost none (their rate is low).
- `Feed` hands jobs to the worker without making the receive loop wait for a slot: jobs
  queue in order and one task submits them as the worker takes them. Only that task waits
  on the worker, so a slot freeing wakes one task, not every receive that is waiting.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

import anyio
from anyio.abc import TaskStatus

from ..workers import Job, Worker
from ..workers.base import TakesBacklog

__all__ = ["Feed", "Prefetch"]

PREFETCH_MULTIPLIER = 4
"""`prefetch="auto"` never holds more than this many times `concurrency` ahead (Celery's
default prefetch multiplier, made safe here by the heartbeat)."""

_SAMPLE_EVERY = 0.05  # seconds between rate samples
_RATE_WEIGHT = 0.5  # weight of a new sample in the rate's moving average
_LATENCY_RISE = 0.05  # how fast the round-trip floor follows slower receives
_HEADROOM = 1.5  # hold this much over rate x latency: both vary from one receive to the next


class Prefetch:
    """Messages to hold ahead of the free slots: fixed, or measured (`"auto"`).

    Little's law sizes the pipe: messages asked for or waiting = handling rate x receive
    round trip, with some headroom. The rate is finished messages per second (from
    `done()`), sampled every 0.1 s. A consumer starved by a slow receive handles more as its
    prefetch grows, so the measured rate, and the prefetch, grow together until the slots
    are fed (or the cap is reached); slow handlers keep their rate, and their prefetch, low.

    The rate that matters is the one the slots could sustain, not the one a starved start
    lets them reach: while slots sit idle waiting for messages, the measured rate is held
    down by the very shortage the prefetch is to cure, and it would take many round trips
    for the two to grow together. So the measured rate is scaled by the slots over the
    handlers running on average (Little's law again: running = rate x handling time, hence
    rate at full slots = slots / handling time). With every slot busy the scale is 1: slow
    handlers keep their low rate, and their prefetch; fast handlers behind a slow receive
    get theirs after one sample.

    The round trip is the floor of what receives take, not their average: once the server
    is the bottleneck, every request held in flight lengthens the round trip, and sizing by
    that would only queue more requests at the server. So a faster receive lowers the
    estimate at once and a slower one raises it only slowly. Only receives that came back
    full count (one that got fewer messages than it asked for may have waited on an empty
    queue for new ones to arrive).

    Args:
        setting: `"auto"`, or a fixed number of messages (0: strict, only free slots).
        concurrency: the slots (the cap is `PREFETCH_MULTIPLIER` times it).
        done: the running count of messages finished (settled or released).
        running: the messages whose handler is running now (None: the slots are taken to
            be busy, so the measured rate is used as it is).
        initial: the prefetch before anything has been measured.
        clock: the time source (seconds).
    """

    def __init__(
        self,
        setting: Literal["auto"] | int,
        *,
        concurrency: int,
        done: Callable[[], int],
        initial: int,
        running: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fixed = None if setting == "auto" else int(setting)
        self._slots = concurrency
        self._running = running
        self._busy: float | None = None  # handlers running, on average
        self._cap = PREFETCH_MULTIPLIER * concurrency
        self._done = done
        self._clock = clock
        self._initial = min(initial, self._cap)
        self._rate: float | None = None  # messages finished per second
        self._latency: float | None = None  # seconds per receive round trip
        self._sampled_at = clock()
        self._sampled_done = done()
        self._target = self._fixed if self._fixed is not None else self._initial

    @property
    def strict(self) -> bool:
        """True when only free slots are received for (`prefetch=0`)."""
        return self._fixed == 0

    @property
    def latency(self) -> float | None:
        """The receive round trip's floor (seconds), None before a measure."""
        return self._latency

    def received(self, seconds: float, *, asked: int, got: int) -> None:
        """A receive that asked for `asked` messages returned `got` after `seconds`."""
        if self._fixed is not None or got <= 0:
            return
        if self._latency is None or seconds < self._latency:
            self._latency = seconds
        elif got >= asked:
            self._latency += _LATENCY_RISE * (seconds - self._latency)

    def target(self) -> int:
        """Messages to hold now beyond the free slots (asked for, received or waiting)."""
        if self._fixed is not None:
            return self._fixed
        now = self._clock()
        elapsed = now - self._sampled_at
        if elapsed >= _SAMPLE_EVERY:
            done = self._done()
            if done < self._slots:
                # Not a round of the slots finished yet: they all started at once, so what
                # finishes in these first samples says little about the rate; hold the
                # initial target until it does.
                self._sampled_at, self._sampled_done = now, done
                return self._target
            self._rate = _average(self._rate, (done - self._sampled_done) / elapsed)
            self._sampled_at, self._sampled_done = now, done
            if self._latency is not None:
                wanted = self._sustainable_rate() * self._latency * _HEADROOM
                self._target = max(
                    1, min(self._cap, math.ceil(wanted) if wanted < self._cap else self._cap)
                )
        return self._target

    def _sustainable_rate(self) -> float:
        """The measured rate, scaled up to what every slot busy would handle."""
        assert self._rate is not None
        if self._running is None:
            return self._rate
        self._busy = _average(self._busy, float(self._running()))
        if self._busy >= self._slots:
            return self._rate
        return self._rate * self._slots / max(self._busy, 1.0)


def _average(old: float | None, sample: float) -> float:
    return sample if old is None else old + _RATE_WEIGHT * (sample - old)


class Feed:
    """Queue jobs for the worker in order; one task submits them as it has room.

    `submit()` never waits, so the receive loop goes straight back to receiving; the runner
    bounds what it holds, so the queue is bounded too. A worker that takes a backlog (ours
    do) also takes queued jobs itself, when one of its jobs ends. Jobs still queued when
    the feed stops never start: their messages are still leased and released by the
    shutdown.

    Args:
        worker: the strategy that runs the jobs.
    """

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._jobs: deque[Job] = deque()
        self._arrived: anyio.Event | None = None  # set when a job is queued (the task waits)
        self._open = False  # while run() runs: jobs may start
        if isinstance(worker, TakesBacklog):
            worker.take_from(self._take)

    def __len__(self) -> int:
        return len(self._jobs)

    async def submit(self, job: Job) -> None:
        """Queue `job` (never waits: the worker protocol's submit, for the dispatchers)."""
        self._jobs.append(job)
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    def submit_nowait(self, jobs: list[Job]) -> None:
        """Queue `jobs`, in order (what `submit()` does, for many, without a coroutine each)."""
        self._jobs.extend(jobs)
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    def close(self) -> None:
        """Start no more jobs, from now on (the runner stops: what is queued is released)."""
        self._open = False

    def _take(self) -> Job | None:
        """The oldest queued job, for a worker's task that has just finished one."""
        if self._open and self._jobs:
            return self._jobs.popleft()
        return None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Submit queued jobs to the worker, oldest first, until cancelled."""
        jobs = self._jobs
        worker = self._worker
        self._open = True
        try:
            task_status.started()
            while self._open:
                if not jobs:
                    self._arrived = anyio.Event()
                    await self._arrived.wait()
                elif worker.capacity() <= 0:
                    # Holding no job while it waits: the worker's own tasks may take the
                    # queued ones meanwhile, and a cancellation here leaves them queued.
                    await worker.wait_for_capacity()
                else:
                    await worker.submit(jobs.popleft())  # with room, submit does not wait
        finally:
            self.close()
