"""SqsRunner: backpressure and the number of receive loops."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from sqs_consumer import Consumer, Message
from sqs_consumer._pipeline.flow import Feed, Prefetch
from sqs_consumer._pipeline.leases import Lease, Leases
from sqs_consumer._pipeline.runner import SqsRunner
from sqs_consumer.observability.telemetry import Telemetry
from sqs_consumer.stats import Counters
from sqs_consumer.testing import MemorySQS, SQSCall
from sqs_consumer.workers import SemaphoreWorker
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for
from tests.pipeline.stages import adapter, make_queue

pytestmark = pytest.mark.anyio


def slow_queue(messages: int, latency: float = 0.02) -> QueueEnv:
    memory = MemorySQS(latency=latency)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    memory.latency = 0.0  # fill at full speed, then consume over a "network"
    env.send([f"m{i}" for i in range(messages)])
    memory.latency = latency
    return env


async def test_auto_pollers_grow_while_receives_come_back_full() -> None:
    """With capacity to spare and full receives, more receive loops start (up to the cap)."""
    env = slow_queue(1500)
    peak = 0

    async def handle(message: Message) -> None:
        nonlocal peak
        peak = max(peak, consumer.stats().pollers)

    consumer = Consumer(handle, env.options(concurrency=100))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1500, timeout=30)
    assert 1 < peak <= 50  # ceil((100 slots + 400 prefetch at most) / 10) loops at most


async def test_auto_pollers_shrink_to_one_when_the_queue_is_empty() -> None:
    """Once receives come back empty, the extra loops end and one keeps polling."""
    env = slow_queue(600, latency=0.01)
    grew = anyio.Event()

    async def handle(message: Message) -> None:
        if consumer.stats().pollers > 1:
            grew.set()

    consumer = Consumer(handle, env.options(concurrency=100, wait_time_seconds=0))
    async with running(consumer):
        await wait_for(grew.is_set, timeout=20)
        await wait_for(lambda: consumer.stats().deleted == 600, timeout=20)
        await wait_for(lambda: consumer.stats().pollers == 1, timeout=20)


async def test_pinned_pollers_run_exactly_that_many(queue: QueueEnv) -> None:
    """An int pins the number of receive loops, queue empty or not."""
    consumer = Consumer(lambda m: None, queue.options(pollers=3, concurrency=30))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().pollers == 3)
        await wait_for(lambda: consumer.stats().receives >= 3, timeout=10)
        assert consumer.stats().pollers == 3


async def test_receive_asks_only_for_free_capacity() -> None:
    """Strict mode: each ReceiveMessage asks for min(batch_size, free slots), never more;
    with a fixed prefetch, for the free slots plus what is missing of the prefetch."""
    asked: list[int] = []

    def record(call: SQSCall) -> None:
        if call.operation == "ReceiveMessage":
            asked.append(int(call.params["MaxNumberOfMessages"]))

    memory = MemorySQS(hook=record)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send([f"m{i}" for i in range(12)])
    gate = anyio.Event()

    async def handle(message: Message) -> None:
        await gate.wait()

    consumer = Consumer(handle, env.options(concurrency=3, batch_size=10, prefetch=0))
    async with running(consumer):
        try:
            await wait_for(lambda: consumer.stats().busy == 3)
            assert max(asked) == 3  # never the full batch of 10 for 3 free slots
        finally:
            gate.set()
        await wait_for(lambda: consumer.stats().deleted == 12)
    assert all(n <= 3 for n in asked)

    asked.clear()
    gate = anyio.Event()
    env.send([f"m{i}" for i in range(12)])
    consumer = Consumer(handle, env.options(concurrency=3, batch_size=10, prefetch=2))
    async with running(consumer):
        try:
            await wait_for(lambda: consumer.stats().busy == 3 and consumer.stats().prefetched == 2)
            assert asked == [5]  # 3 slots + 2 ahead
        finally:
            gate.set()
        await wait_for(lambda: consumer.stats().deleted == 12)
    assert all(n <= 5 for n in asked)


class HeldReceives:
    """A call hook: receives wait until `open` is set; counts those waiting and their waits."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.open = threading.Event()
        self.waiting = 0
        self.waits: list[int] = []

    def __call__(self, call: SQSCall) -> None:
        if call.operation != "ReceiveMessage":
            return
        with self.lock:
            self.waiting += 1
            self.waits.append(int(call.params.get("WaitTimeSeconds", 0)))
        self.open.wait(30)
        with self.lock:
            self.waiting -= 1


async def test_a_consumer_started_on_a_backlog_asks_for_every_slot_in_its_first_round() -> None:
    """Auto pollers open with a receive per batch of slots, all sent before any returns: a
    backlog fills every slot in one round trip, not two (one long poll, the rest short)."""
    memory = MemorySQS()
    hook = HeldReceives()
    memory.hook = hook
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send([f"m{i}" for i in range(100)])
    handled: list[str] = []

    async def handle(message: Message) -> None:
        handled.append(message.body)

    consumer = Consumer(handle, env.options(concurrency=40, wait_time_seconds=5))
    try:
        async with running(consumer):
            await wait_for(lambda: hook.waiting == 4)  # 40 slots / 10 a receive
            assert sorted(hook.waits) == [0, 0, 0, 5]
            hook.open.set()
            await wait_for(lambda: len(handled) == 100)
    finally:
        hook.open.set()


async def test_the_opening_short_polls_end_on_an_empty_queue_leaving_one_long_poll() -> None:
    """On an idle queue the opening receives come back empty at once and their loops end:
    one long poll is left waiting (an idle consumer costs one request per wait time)."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    consumer = Consumer(lambda m: None, env.options(concurrency=40, wait_time_seconds=5))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().pollers == 1)
        stats = consumer.stats()
        assert (stats.receives, stats.received) == (3, 0)  # the long poll is still out


class HeldDeletes:
    """The harvester as the runner sees it, with the unconfirmed count set by the test."""

    def __init__(self) -> None:
        self.unconfirmed = 0
        self._confirmed: list[Callable[[], None]] = []
        self._sent = anyio.Event()

    def outstanding(self) -> int:
        return self.unconfirmed

    def flush_nowait(self) -> None:
        pass

    async def wait_deleted(self) -> None:
        await self._sent.wait()

    def on_confirmed(self, callback: Callable[[], None]) -> None:
        self._confirmed.append(callback)

    def adopt(self, message: object) -> bool:
        return False  # none of its deletes is of a message received again

    def confirm_all(self) -> None:
        """SQS confirms every delete: what a completed DeleteMessageBatch does."""
        self.unconfirmed = 0
        self._sent.set()
        self._sent = anyio.Event()
        for callback in self._confirmed:
            callback()


async def test_a_loop_waiting_for_room_wakes_when_deletes_are_confirmed() -> None:
    """Held messages settle while the unconfirmed deletes are at their bound (no room then),
    and the loop that waited for room must wake once SQS confirms the deletes; otherwise it
    waits with every slot free and nothing left to wake it (a consumer that stops)."""
    memory = MemorySQS()
    url = make_queue(memory)
    memory.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
    )
    leases = Leases()
    held: list[Lease] = []
    received = anyio.Event()

    async def dispatch(messages: list[Message], received_at: float) -> None:
        held.extend(leases.add(m, 30, received_at) for m in messages)
        received.set()

    deletes = HeldDeletes()
    worker = SemaphoreWorker(2)
    runner = SqsRunner(
        adapter(memory),
        worker,
        deletes,
        queue_url=url,
        dispatch=dispatch,
        leases=leases,
        limit=2,
        prefetch=Prefetch(2, concurrency=2, done=lambda: leases.finished, initial=2),
        feed=Feed(worker),
        unconfirmed_limit=100,
        per_job=1,
        fifo=False,
        release=lambda raw: None,
        hand_back=lambda raw: None,
        receive_options={"WaitTimeSeconds": 0},
        batch_size=10,
        max_pollers=1,
        auto=False,
        counters=Counters(),
        telemetry=Telemetry(queue_url=url, queue_name=url.rsplit("/", 1)[-1]),
        on_fatal=lambda exc: None,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        await received.wait()
        assert len(held) == 4  # the 2 slots and the prefetch of 2: the loop waits for room
        received = anyio.Event()
        deletes.unconfirmed = 100  # the bound: settling frees no room until SQS confirms
        for lease in held:
            leases.remove(lease)
        held.clear()
        deletes.confirm_all()
        with anyio.fail_after(5):
            await received.wait()
        assert len(held) == 4
        await runner.aclose()
