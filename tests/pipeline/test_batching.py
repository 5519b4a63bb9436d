"""Batcher: size-or-interval batches that survive cancellation of their runner."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from sqs_consumer._pipeline.batching import Batcher
from tests.helpers import FakeClock, wait_for

pytestmark = pytest.mark.anyio


async def test_full_batches_go_out_at_once_and_the_rest_after_the_interval() -> None:
    """Ten items make a batch immediately; a lone item waits for the interval."""
    sent: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        sent.append(batch)

    batcher: Batcher[int] = Batcher(send, size=10, interval=0.2)
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        for i in range(11):
            batcher.put_nowait(i)
        await wait_for(lambda: len(sent) == 1, timeout=1)
        assert sent[0] == list(range(10))
        await wait_for(lambda: len(sent) == 2, timeout=2)
        assert sent[1] == [10]
        await batcher.aclose()


async def test_cancelling_run_loses_nothing_that_drain_here_can_send() -> None:
    """Items taken for a send finish it; items still queued go out through drain_here()."""
    sent: list[int] = []
    gate = anyio.Event()

    async def send(batch: list[int]) -> None:
        await gate.wait()
        sent.extend(batch)

    batcher: Batcher[int] = Batcher(send, size=10, interval=0.01, max_sends=1)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            for i in range(30):
                batcher.put_nowait(i)
            # One batch taken and in its (gated) send, the other two still queued.
            await wait_for(lambda: batcher.outstanding() == 30 and len(batcher) == 20)
            tg.cancel_scope.cancel()
            gate.set()
    await batcher.drain_here()
    assert sorted(sent) == list(range(30))
    assert batcher.outstanding() == 0


async def test_the_interval_runs_on_the_injected_clock() -> None:
    """With a fake clock and its sleep, a lone item goes out when the test moves the clock
    past the interval (a minute here), not before and not after real time."""
    clock = FakeClock()
    sent: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        sent.append(batch)

    batcher: Batcher[int] = Batcher(send, size=10, interval=60, clock=clock, sleep=clock.sleep)
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        clock.advance(100)  # idle time before the first item does not count
        batcher.put_nowait(1)
        await wait_for(lambda: clock.next_wake() == 160)  # parked on the clock's interval
        clock.advance(59)
        await anyio.lowlevel.checkpoint()  # a turn for the batcher, were anything due
        assert sent == [] and clock.next_wake() == 160
        clock.advance(1)
        await wait_for(lambda: sent == [[1]], timeout=2)
        await batcher.aclose()


async def test_a_full_batch_does_not_wait_for_the_injected_clock() -> None:
    """A batch that fills goes out at once, and its interval's sleep is called off."""
    clock = FakeClock()
    sent: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        sent.append(batch)

    batcher: Batcher[int] = Batcher(send, size=3, interval=60, clock=clock, sleep=clock.sleep)
    async with anyio.create_task_group() as tg:
        await tg.start(batcher.run)
        batcher.put_nowait(1)
        await wait_for(lambda: clock.next_wake() == 60)
        batcher.put_nowait(2)
        batcher.put_nowait(3)
        await wait_for(lambda: sent == [[1, 2, 3]], timeout=2)
        await wait_for(lambda: clock.next_wake() is None, timeout=2)  # no stray sleep left
        await batcher.aclose()
