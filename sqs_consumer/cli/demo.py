"""`sqs-consumer demo`: the consumer on the embedded in-memory queue, both strategies.

On a terminal (and with rich, the `cli` extra) a live view shows what the consumer is doing
while it runs; with `CI=true`, `--plain`, no terminal or no rich it prints plain lines.
"""

from __future__ import annotations

import os
import random
import sys
import time

import anyio
import attrs

from ..consumer import Consumer
from ..errors import Retry
from ..message import Message
from ..options import ConsumerOptions
from ..retry import ExponentialBackoff
from ..stats import Stats
from ..testing import MemorySQS
from .live import PlainView, View, rich_view

__all__ = ["run_demo"]

QUEUE_URL = "memory://demo"
FAIL_EVERY = 50  # one message in 50 fails its first delivery, to show retries
SAMPLE = 0.1  # seconds between two looks at stats() for the view
HEADER = ["strategy", "msgs/s", "received", "succeeded", "failed", "deleted", "peak", "secs"]


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


def figures(stats: Stats, done: int, total: int) -> dict[str, int]:
    """What the view shows, from one stats() snapshot (prefetched: 0 until stats() has it)."""
    return {
        "done": done,
        "total": total,
        "in_flight": stats.in_flight,
        "busy": stats.busy,
        "workers": stats.workers,
        "idle_workers": stats.idle_workers,
        "waiting": stats.waiting,
        "prefetched": int(stats.as_dict().get("prefetched", 0)),
        "pollers": stats.pollers,
        "received": stats.received,
        "succeeded": stats.succeeded,
        "failed": stats.failed,
        "deleted": stats.deleted,
    }


async def _consume(
    memory: MemorySQS, worker: str, count: int, concurrency: int, view: View
) -> list[str]:
    tally = _Tally(total=count)

    async def handle(message: Message) -> None:
        job = message.json()["job"]
        tally.running += 1
        tally.peak_running = max(tally.peak_running, tally.running)
        try:
            await anyio.sleep(random.uniform(0.02, 0.18))  # pretend to call a service
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
        pool_idle_timeout=1.0,  # so that the pool is seen shrinking as the queue empties
        retry=ExponentialBackoff(initial=1),
    )
    consumer = Consumer(handle, options)
    started = time.perf_counter()
    view.begin(worker, count)
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        with anyio.fail_after(50):
            while not tally.finished.is_set():
                view.update(
                    time.perf_counter() - started, figures(consumer.stats(), len(tally.done), count)
                )
                with anyio.move_on_after(SAMPLE):
                    await tally.finished.wait()
        consumer.stop()
    elapsed = time.perf_counter() - started
    s = consumer.stats()
    view.end(elapsed, figures(s, len(tally.done), count))
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


def _wants_plain(plain: bool) -> bool:
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return plain or ci or not sys.stdout.isatty()


def run_demo(*, messages: int = 2000, concurrency: int = 50, plain: bool = False) -> int:
    """Send `messages` to memory://demo and consume them with each strategy; print a summary."""
    view: View = (None if _wants_plain(plain) else rich_view()) or PlainView()
    memory = MemorySQS.shared()
    memory.create_queue(QueueName="demo")
    rows = []
    for worker in ("semaphore", "pool"):
        _send(memory, messages)
        view.note(f"{worker}: {messages} messages sent to {QUEUE_URL}, consuming...")
        rows.append(anyio.run(_consume, memory, worker, messages, concurrency, view))
        left = memory.counts(QUEUE_URL)
        view.note(f"{worker}: done, queue now holds {sum(left.values())} messages")
    view.summary(
        HEADER,
        rows,
        f"Every message was handled and deleted; 1 in {FAIL_EVERY} failed once and came back "
        f"via Retry(delay=1), so each run includes that 1 s wait. Concurrency limit: {concurrency}.",
    )
    return 0
