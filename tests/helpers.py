"""Async helpers for driving a Consumer in tests: no sleeps, only waits with deadlines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

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
