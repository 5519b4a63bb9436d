"""`sqs-consumer demo`: the consumer on the embedded in-memory queue, both strategies."""

from __future__ import annotations

import random
import time

import anyio
import attrs

from ..consumer import Consumer
from ..errors import Retry
from ..message import Message
from ..options import ConsumerOptions
from ..retry import ExponentialBackoff
from ..testing import MemorySQS

__all__ = ["run_demo"]

QUEUE_URL = "memory://demo"
FAIL_EVERY = 50  # one message in 50 fails its first delivery, to show retries


@attrs.define
class _Tally:
    total: int
    done: set[str] = attrs.field(factory=set)
    peak_running: int = 0
    running: int = 0
    finished: anyio.Event = attrs.field(factory=anyio.Event)


def _send(memory: MemorySQS, count: int) -> None:
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": f'{{"job": {n}}}'}
            for i, n in enumerate(range(start, min(start + 10, count)))
        ]
        memory.send_message_batch(QueueUrl=QUEUE_URL, Entries=entries)


async def _consume(memory: MemorySQS, worker: str, count: int, concurrency: int) -> list[str]:
    tally = _Tally(total=count)

    async def handle(message: Message) -> None:
        job = message.json()["job"]
        tally.running += 1
        tally.peak_running = max(tally.peak_running, tally.running)
        try:
            await anyio.sleep(random.uniform(0.001, 0.01))  # pretend to call a service
            if job % FAIL_EVERY == 0 and message.receive_count == 1:
                raise Retry(delay=1)
        finally:
            tally.running -= 1
        tally.done.add(message.message_id)
        if len(tally.done) == tally.total:
            tally.finished.set()

    options = ConsumerOptions(
        queue_url=QUEUE_URL,
        client=memory,
        worker=worker,  # type: ignore[arg-type]
        concurrency=concurrency,
        wait_time_seconds=1,
        retry=ExponentialBackoff(initial=1),
    )
    consumer = Consumer(handle, options)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        with anyio.fail_after(50):
            await tally.finished.wait()
        consumer.stop()
    elapsed = time.perf_counter() - started
    s = consumer.stats()
    return [
        worker,
        f"{count / elapsed:,.0f}",
        str(s.received),
        str(s.succeeded),
        str(s.failed),
        str(s.deleted),
        str(tally.peak_running),
        f"{elapsed:.2f}",
    ]


def run_demo(*, messages: int = 2000, concurrency: int = 50) -> int:
    """Send `messages` to memory://demo and consume them with each strategy; print a summary."""
    memory = MemorySQS.shared()
    memory.create_queue(QueueName="demo")
    header = ["strategy", "msgs/s", "received", "succeeded", "failed", "deleted", "peak", "secs"]
    rows = []
    for worker in ("semaphore", "pool"):
        _send(memory, messages)
        print(f"{worker}: {messages} messages sent to {QUEUE_URL}, consuming...", flush=True)
        rows.append(anyio.run(_consume, memory, worker, messages, concurrency))
        left = memory.counts(QUEUE_URL)
        print(f"{worker}: done, queue now holds {sum(left.values())} messages", flush=True)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print(
        f"\nEvery message was handled and deleted; 1 in {FAIL_EVERY} failed once and came back "
        f"via Retry(delay=1), so each run includes that 1 s wait. Concurrency limit: {concurrency}."
    )
    return 0
