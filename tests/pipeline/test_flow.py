"""Flow control (SPEC §3): acks hold no slot, their own bound, prefetch sized by Little's law."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer._pipeline.flow import Feed, Prefetch
from sqs_consumer.testing import MemorySQS, SQSCall
from sqs_consumer.workers import ElasticPool, SemaphoreWorker, Worker
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio


class SlowDeletes:
    """A call hook: deletes take `delete_latency` seconds, or wait for `deletes_open` when it
    is cleared."""

    def __init__(self, delete_latency: float = 0.0) -> None:
        self.delete_latency = delete_latency
        self.deletes_open = threading.Event()
        self.deletes_open.set()

    def __call__(self, call: SQSCall) -> None:
        if call.operation == "DeleteMessageBatch":
            self.deletes_open.wait(30)
            if self.delete_latency:
                threading.Event().wait(self.delete_latency)


def env_on(memory: MemorySQS, messages: int) -> QueueEnv:
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send([f"m{i}" for i in range(messages)])
    return env


async def test_an_ack_holds_no_slot_while_its_delete_is_in_flight() -> None:
    """Concurrency 1, strict: the next message starts while the last one's delete is still
    unconfirmed (before, a slot was held until SQS confirmed its delete)."""
    memory = MemorySQS(hook=SlowDeletes(delete_latency=0.3))
    env = env_on(memory, 6)
    deleting_at_start: list[int] = []
    consumer: Consumer

    async def handle(message: Message) -> None:
        deleting_at_start.append(consumer.stats().deleting)

    options = env.options(concurrency=1, prefetch=0, delete_flush_interval=0)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 6)
    assert max(deleting_at_start) >= 1, deleting_at_start


async def test_unconfirmed_deletes_have_their_own_bound() -> None:
    """While deletes do not get through, receiving pauses at the bound (100 acks for a small
    concurrency) instead of growing memory; once they do, every message is deleted."""
    slow = SlowDeletes()
    memory = MemorySQS(hook=slow)
    env = env_on(memory, 160)
    slow.deletes_open.clear()
    consumer = Consumer(lambda m: None, env.options(concurrency=2, prefetch=0))
    async with running(consumer):
        try:
            await wait_for(lambda: consumer.stats().deleting >= 100)
            # An observation window, not a synchronisation: nothing more may come in.
            await anyio.sleep(0.3)
            stats = consumer.stats()
            # The last receive before the bound may ask for up to 2 (the slots).
            assert stats.deleting <= 101 and stats.received <= 101, stats
        finally:
            slow.deletes_open.set()
        await wait_for(lambda: consumer.stats().deleted == 160)


async def test_prefetched_messages_are_leased_counted_and_released_at_stop() -> None:
    """A fixed prefetch holds that many extra, waiting for a slot; stop releases them."""
    memory = MemorySQS()
    env = env_on(memory, 20)
    release = anyio.Event()

    async def handle(message: Message) -> None:
        await release.wait()

    options = env.options(concurrency=2, prefetch=4, shutdown_timeout=0)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().prefetched == 4 and consumer.stats().busy == 2)
    stats = consumer.stats()
    assert stats.released == 6  # 4 prefetched, 2 cut short by shutdown_timeout=0
    assert env.counts() == (20, 0)  # visible again at once


async def test_auto_prefetch_gives_slow_handlers_almost_none() -> None:
    """Concurrency 2 with slow handlers: once measured, at most one or two held extra."""
    memory = MemorySQS()
    env = env_on(memory, 30)
    extra: list[int] = []
    consumer: Consumer

    async def handle(message: Message) -> None:
        if consumer.stats().succeeded >= 6:  # measured by now
            extra.append(consumer.stats().prefetched)
        await anyio.sleep(0.1)  # the behaviour under test: a slow handler

    consumer = Consumer(handle, env.options(concurrency=2))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 30, timeout=30)
    assert extra and max(extra) <= 2, extra


class CountsAsked:
    """A call hook tracking how many messages the receives in flight ask for at once (the
    pipe's size)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.asked = 0
        self.most_asked = 0

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "ReceiveMessage":
            return None
        with self.lock:
            self.asked += int(call.params["MaxNumberOfMessages"])
            self.most_asked = max(self.most_asked, self.asked)
        try:
            return call.proceed()
        finally:
            with self.lock:
                self.asked -= int(call.params["MaxNumberOfMessages"])


@pytest.mark.parametrize(("prefetch", "most"), [("auto", (6, 25)), (0, (1, 5))])
async def test_prefetch_fills_the_pipe_behind_a_slow_receive(
    prefetch: str | int, most: tuple[int, int]
) -> None:
    """Fast handlers behind a 50 ms receive: with "auto", receives in flight ask for more
    than the free slots (the rate x latency of Little's law), never past 5 + 4 x 5; strict
    mode asks only for the slots."""
    counter = CountsAsked()
    memory = MemorySQS(hook=counter)
    env = env_on(memory, 600)
    memory.latency = 0.05
    consumer = Consumer(lambda m: None, env.options(concurrency=5, prefetch=prefetch))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted >= 150, timeout=60)
    low, high = most
    assert low <= counter.most_asked <= high, counter.most_asked


def test_prefetch_option_is_checked() -> None:
    """ "auto", or an int from 0 to 4 x concurrency; anything else names the field."""
    url = "memory://q"
    assert ConsumerOptions(queue_url=url, prefetch=0).prefetch == 0
    assert ConsumerOptions(queue_url=url, concurrency=3, prefetch=12).prefetch == 12
    for bad in (-1, "lots", 1.5, True):
        with pytest.raises(ValueError, match="prefetch"):
            ConsumerOptions(queue_url=url, prefetch=bad)
    with pytest.raises(ValueError, match=r"prefetch .*4 x concurrency \(12\)"):
        ConsumerOptions(queue_url=url, concurrency=3, prefetch=13)


def test_stats_host_option_is_checked() -> None:
    for bad in ("", " 127.0.0.1", 1):
        with pytest.raises(ValueError, match="stats_host"):
            ConsumerOptions(queue_url="memory://q", stats_host=bad)


async def test_the_stats_server_binds_stats_host() -> None:
    """`stats_host` is the address the server listens on (another loopback address here)."""
    memory = MemorySQS()
    env = env_on(memory, 0)
    consumer = Consumer(lambda m: None, env.options(stats_port=0, stats_host="127.0.0.2"))
    async with running(consumer):
        await wait_for(lambda: consumer.stats_port is not None)
        assert consumer.stats_port is not None
        stream = await anyio.connect_tcp("127.0.0.2", consumer.stats_port)
        async with stream:
            await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive()).startswith(b"HTTP/1.1 200")
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", consumer.stats_port)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_prefetch_is_rate_times_latency_with_headroom_and_capped() -> None:
    """Little's law: held ahead = handling rate x receive round trip (x 1.5), 1 to 4 x C."""
    clock, done = Clock(), [0]
    prefetch = Prefetch("auto", concurrency=50, done=lambda: done[0], initial=10, clock=clock)
    assert prefetch.target() == 10  # nothing measured yet
    prefetch.received(0.1, asked=10, got=10)  # a full receive: 100 ms round trip
    for _ in range(30):  # 1,000 messages per second
        clock.now += 0.1
        done[0] += 100
        prefetch.target()
    assert prefetch.target() == 150  # 1000/s x 0.1 s x 1.5
    for _ in range(30):  # 10,000 per second: capped at 4 x 50
        clock.now += 0.1
        done[0] += 1000
        prefetch.target()
    assert prefetch.target() == 200
    for _ in range(40):  # 1 per second: floor of one
        clock.now += 1.0
        done[0] += 1
        prefetch.target()
    assert prefetch.target() == 1


def test_the_round_trip_is_the_floor_of_what_receives_take() -> None:
    """A faster receive lowers the estimate at once; slower full ones raise it slowly (a busy
    server queues requests: sizing by that would only queue more); a partial receive may
    have waited for messages to arrive and never raises it."""
    prefetch = Prefetch("auto", concurrency=10, done=lambda: 0, initial=10, clock=Clock())
    prefetch.received(0.1, asked=10, got=10)
    prefetch.received(0.02, asked=10, got=10)
    assert prefetch.latency == pytest.approx(0.02)
    prefetch.received(1.0, asked=10, got=10)
    assert prefetch.latency == pytest.approx(0.02 + 0.05 * 0.98)
    before = prefetch.latency
    prefetch.received(5.0, asked=10, got=3)
    assert prefetch.latency == before


def test_fixed_and_strict_prefetch_do_not_measure() -> None:
    clock = Clock()
    fixed = Prefetch(7, concurrency=5, done=lambda: 0, initial=10, clock=clock)
    strict = Prefetch(0, concurrency=5, done=lambda: 0, initial=10, clock=clock)
    fixed.received(0.1, asked=10, got=10)
    clock.now += 10
    assert (fixed.target(), fixed.strict, fixed.latency) == (7, False, None)
    assert (strict.target(), strict.strict) == (0, True)


def test_a_message_delivered_again_while_held_is_adopted_not_handled_twice() -> None:
    """The held lease takes the newest receipt handle (the one SQS honours); no second lease."""
    from sqs_consumer._pipeline.leases import Leases

    def message(handle: str) -> Message:
        raw = {"MessageId": "m-1", "ReceiptHandle": handle, "Body": "x", "Attributes": {}}
        return Message.from_sqs(raw, queue_url="memory://q")

    leases = Leases(clock=lambda: 0.0)
    lease = leases.add(message("first"), 30, 0.0)
    assert not leases.adopt(attrs.evolve(message("other"), message_id="m-2"), 0.0)
    assert leases.adopt(message("second"), 0.0)
    assert len(leases) == 1 and lease.message.receipt_handle == "second"
    assert leases.remove(lease) and len(leases) == 0
    assert not leases.adopt(message("third"), 0.0)  # settled: a later delivery is a new one


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
async def test_a_closed_feed_starts_no_queued_job_not_even_through_the_workers_tasks(
    kind: str,
) -> None:
    """The runner closes the feed when it stops: from then on no queued job starts, neither
    by the feed's task nor by a worker task whose job ends (those messages are released)."""
    worker: Worker = SemaphoreWorker(1) if kind == "semaphore" else ElasticPool(1)
    feed = Feed(worker)
    release = anyio.Event()
    ran: list[int] = []

    async def first() -> None:
        ran.append(0)
        await release.wait()

    def queued(i: int) -> Any:
        async def job() -> None:
            ran.append(i)

        return job

    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        await tg.start(feed.run)
        await feed.submit(first)
        await wait_for(lambda: ran == [0])
        for i in (1, 2, 3):
            await feed.submit(queued(i))
        feed.close()
        release.set()
        await worker.aclose(5.0)
        tg.cancel_scope.cancel()
    assert ran == [0]
    assert len(feed) == 3


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
async def test_every_queued_job_runs_once_with_the_workers_tasks_taking_them(kind: str) -> None:
    """Jobs queued behind a full worker all run, once each: the feed's task and the worker's
    own tasks take from one queue, and neither takes a job the other has."""
    worker: Worker = SemaphoreWorker(2) if kind == "semaphore" else ElasticPool(2)
    feed = Feed(worker)
    ran: list[int] = []

    def job(i: int) -> Any:
        async def run() -> None:
            if i % 3 == 0:
                await anyio.lowlevel.checkpoint()
            ran.append(i)

        return run

    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        await tg.start(feed.run)
        for i in range(300):
            await feed.submit(job(i))
        await wait_for(lambda: len(ran) == 300)
        await worker.aclose(5.0)
        tg.cancel_scope.cancel()
    assert sorted(ran) == list(range(300))
    assert len(feed) == 0
