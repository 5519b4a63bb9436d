"""Batcher: size-or-interval batches that survive cancellation of their runner."""

from __future__ import annotations

import anyio
import pytest

from sqs_consumer._pipeline.batching import Batcher
from tests.helpers import wait_for

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
    with anyio.move_on_after(0.2):
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            for i in range(30):
                batcher.put_nowait(i)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
            gate.set()
    await batcher.drain_here()
    assert sorted(sent) == list(range(30))
    assert batcher.outstanding() == 0
