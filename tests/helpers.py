"""Async helpers for driving a Consumer in tests: no sleeps, only waits with deadlines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel

from sqs_consumer import Consumer


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds, checking every few milliseconds; fail after `timeout`."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.005)


@asynccontextmanager
async def running(consumer: Consumer, stop_within: float = 10.0) -> AsyncIterator[Consumer]:
    """Run the consumer in the background for the block, then stop it and wait for the drain."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        try:
            yield consumer
        finally:
            consumer.stop()
            with anyio.fail_after(stop_within):
                while consumer.state.value != "stopped":
                    await anyio.sleep(0.005)


class FakeClock:
    """Time that moves only when the test calls `advance()`: a `clock` and its `sleep`.

    Pass ``clock=fake, sleep=fake.sleep`` to a stage that takes both (the Batcher, the
    ElasticPool): its waits then end when the test moves the clock, never on real time.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has been advanced by `seconds` (at once for <= 0)."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        entry = (self.now + seconds, anyio.Event())
        self._sleepers.append(entry)
        try:
            await entry[1].wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake every sleep that is due."""
        self.now += seconds
        for entry in [e for e in self._sleepers if e[0] <= self.now]:
            self._sleepers.remove(entry)
            entry[1].set()

    def next_wake(self) -> float | None:
        """The clock time the earliest sleep ends at (None: nothing sleeps), so a test can
        wait until a stage has parked on the clock before moving it."""
        return min((due for due, _ in self._sleepers), default=None)
