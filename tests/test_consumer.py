"""The Consumer end to end, on MemorySQS and on moto's SQS server over HTTP."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel
import pytest

from sqs_consumer import Consumer, ConsumerStateError, Message, QueueCheckError
from tests.conftest import QueueEnv
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio

STRATEGIES = ["semaphore", "pool"]


class Recorder:
    """Counts handler calls per body and the most handlers seen running at once."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def enter(self, message: Message) -> None:
        with self._lock:
            self.calls[message.body] = self.calls.get(message.body, 0) + 1
            self.running += 1
            self.peak = max(self.peak, self.running)

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    @property
    def handled(self) -> int:
        return sum(self.calls.values())


@pytest.mark.parametrize("worker", STRATEGIES)
@pytest.mark.parametrize("style", ["async", "sync"])
async def test_every_message_handled_exactly_once(queue: QueueEnv, worker: str, style: str) -> None:
    """A clean run handles each message once and deletes it, whatever strategy and style."""
    bodies = [f"m{i}" for i in range(120)]
    queue.send(bodies)
    seen = Recorder()

    async def handle_async(message: Message) -> None:
        seen.enter(message)
        await anyio.lowlevel.checkpoint()
        seen.leave()

    def handle_sync(message: Message) -> None:
        seen.enter(message)
        seen.leave()

    handler = handle_async if style == "async" else handle_sync
    # moto's server does not lock ReceiveMessage: two receives at once can both get one
    # message, which SQS never does while it is in flight. One receive loop there.
    pollers: int | str = 1 if queue.kind == "moto" else "auto"
    consumer = Consumer(handler, queue.options(worker=worker, concurrency=8, pollers=pollers))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == len(bodies))
    assert seen.calls == dict.fromkeys(bodies, 1)
    stats = consumer.stats()
    assert (stats.received, stats.succeeded, stats.deleted, stats.failed) == (120, 120, 120, 0)
    assert queue.counts() == (0, 0)


@pytest.mark.parametrize("worker", STRATEGIES)
@pytest.mark.parametrize("prefetch", [0, 3])
async def test_concurrency_limit_is_reached_and_never_exceeded(
    queue: QueueEnv, worker: str, prefetch: int
) -> None:
    """With more messages than slots, exactly `concurrency` handlers run at the peak, and
    the consumer holds exactly `prefetch` more, leased and waiting (SPEC §3)."""
    queue.send([f"m{i}" for i in range(30)])
    seen = Recorder()
    release = anyio.Event()

    async def handle(message: Message) -> None:
        seen.enter(message)
        await release.wait()
        seen.leave()

    consumer = Consumer(handle, queue.options(worker=worker, concurrency=5, prefetch=prefetch))
    async with running(consumer):
        try:
            await wait_for(lambda: seen.running == 5 and consumer.stats().in_flight == 5 + prefetch)
            # Given the slots are full, receives bring in the prefetch and no more.
            stats = consumer.stats()
            assert (stats.in_flight, stats.prefetched) == (5 + prefetch, prefetch)
            assert queue.counts()[1] == 5 + prefetch
        finally:
            release.set()
        await wait_for(lambda: consumer.stats().deleted == 30)
    assert seen.peak == 5


@pytest.mark.parametrize("worker", STRATEGIES)
async def test_slow_handlers_hold_no_more_than_concurrency(queue: QueueEnv, worker: str) -> None:
    """Strict mode (`prefetch=0`): concurrency 2 with slow handlers keeps at most 2 messages
    received and not settled."""
    queue.send([f"m{i}" for i in range(8)])
    seen = Recorder()
    held: list[int] = []
    consumer: Consumer

    def handle(message: Message) -> None:
        seen.enter(message)
        held.append(consumer.stats().in_flight)
        time.sleep(0.05)  # the behaviour under test: a slow sync handler
        seen.leave()

    consumer = Consumer(handle, queue.options(worker=worker, concurrency=2, prefetch=0))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 8)
    assert seen.peak <= 2
    assert max(held) <= 2
    assert consumer.stats().received == 8


async def test_pool_grows_under_load_and_shrinks_when_idle(queue: QueueEnv) -> None:
    """The pool spawns workers up to the limit under load and retires them down to the minimum."""
    queue.send([f"m{i}" for i in range(12)])
    release = anyio.Event()
    started = Recorder()

    async def handle(message: Message) -> None:
        started.enter(message)
        await release.wait()
        started.leave()

    options = queue.options(worker="pool", concurrency=6, pool_min_workers=1, pool_idle_timeout=0.1)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: started.running == 6)
        assert consumer.stats().workers == 6
        release.set()
        await wait_for(lambda: consumer.stats().deleted == 12)
        await wait_for(lambda: consumer.stats().workers == 1, timeout=10)
        assert consumer.stats().idle_workers == 1


async def test_failure_comes_back_and_is_handled_again(queue: QueueEnv) -> None:
    """A raising handler fails the message; the retry policy brings it back for a second try."""
    from sqs_consumer import ExponentialBackoff

    queue.send(["flaky"])
    attempts: list[int] = []

    async def handle(message: Message) -> None:
        attempts.append(message.receive_count)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")

    retry = ExponentialBackoff(initial=0.1, jitter=0)
    consumer = Consumer(handle, queue.options(retry=retry))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    assert attempts == [1, 2]
    assert (consumer.stats().failed, consumer.stats().retried) == (1, 1)


async def test_missing_queue_fails_run_at_once(queue: QueueEnv) -> None:
    """A queue that does not exist raises QueueCheckError from run() within seconds."""
    options = queue.options(queue_url=queue.url + "-missing")
    consumer = Consumer(lambda m: None, options)
    started = time.monotonic()
    with pytest.raises(QueueCheckError, match="-missing"):
        await consumer.run()
    assert time.monotonic() - started < 5
    with pytest.raises(ConsumerStateError, match="stopped"):
        await consumer.run()


async def test_stop_returns_promptly_during_a_long_poll(queue: QueueEnv) -> None:
    """stop() ends a run blocked in a 20 s long poll on an empty queue within a second."""
    consumer = Consumer(lambda m: None, queue.options(wait_time_seconds=20))
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await wait_for(lambda: consumer.stats().pollers == 1)
        stopped_at = time.monotonic()
        consumer.stop()
        consumer.stop()  # idempotent
    assert time.monotonic() - stopped_at < 1.0


def test_start_blocks_until_stopped_from_another_thread(queue: QueueEnv) -> None:
    """start() runs its own loop; stop() from another thread ends it after the drain."""
    queue.send(["a", "b", "c"])
    done = threading.Event()
    seen: list[str] = []

    def handle(message: Message) -> None:
        seen.append(message.body)
        if len(seen) == 3:
            done.set()

    consumer = Consumer(handle, queue.options())

    def stop_when_done() -> None:
        done.wait(10)
        consumer.stop()

    stopper = threading.Thread(target=stop_when_done)
    stopper.start()
    consumer.start()
    stopper.join()
    assert sorted(seen) == ["a", "b", "c"]
    assert consumer.stats().deleted == 3


async def test_stats_snapshot_is_frozen(queue: QueueEnv) -> None:
    """stats() returns a value that does not change as the consumer goes on."""
    consumer = Consumer(lambda m: None, queue.options())
    before = consumer.stats()
    queue.send(["x"])
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    assert before.received == 0
    with pytest.raises(AttributeError):
        before.received = 5  # type: ignore[misc]


def test_handler_must_be_callable(queue: QueueEnv) -> None:
    """A non-callable handler is refused at construction."""
    with pytest.raises(TypeError, match="callable"):
        Consumer("not a function", queue.options())  # type: ignore[arg-type]


def test_start_raises_the_plain_error_on_the_main_thread(queue: QueueEnv) -> None:
    """start() (signal handling on) raises QueueCheckError itself, not an ExceptionGroup."""
    consumer = Consumer(lambda m: None, queue.options(queue_url=queue.url + "-missing"))
    with pytest.raises(QueueCheckError):
        consumer.start()


async def test_cancelling_run_still_deletes_finished_work(queue: QueueEnv) -> None:
    """Cancelling the task that runs the consumer still sends the pending deletes."""
    queue.send(["a", "b", "c"])
    consumer = Consumer(lambda m: None, queue.options(delete_flush_interval=30))
    with anyio.move_on_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer.run)
            await wait_for(lambda: consumer.stats().succeeded == 3)
            assert consumer.stats().deleted == 0  # acks wait for their batch to fill
            tg.cancel_scope.cancel()
    assert consumer.stats().deleted == 3
    assert queue.counts() == (0, 0)
