"""Delivery semantics end to end: retries, Discard, timeouts, heartbeat, dead letters, faults."""

from __future__ import annotations

import json
import random
import threading
import time

import anyio
import pytest

from sqs_consumer import Consumer, Discard, ExponentialBackoff, Message, Retry
from sqs_consumer.testing import MemorySQS
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio

FAST_RETRY = ExponentialBackoff(initial=0.1, jitter=0)


async def test_retry_delay_overrides_the_visibility_timeout(queue: QueueEnv) -> None:
    """Retry(delay=3) brings the message back after about 3 s, not the queue's 30 s."""
    queue.send(["later"])
    seen: list[float] = []

    async def handle(message: Message) -> None:
        seen.append(time.monotonic())
        if len(seen) == 1:
            raise Retry(delay=3)

    consumer = Consumer(handle, queue.options())
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=15)
    assert len(seen) == 2
    assert 2.5 <= seen[1] - seen[0] <= 6
    assert consumer.stats().failed == 1 and consumer.stats().retried == 1


async def test_discard_deletes_without_counting_a_failure(queue: QueueEnv) -> None:
    """Discard removes the message from the queue and is not a failure."""
    queue.send(["poison"])

    async def handle(message: Message) -> None:
        raise Discard()

    consumer = Consumer(handle, queue.options())
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    stats = consumer.stats()
    assert (stats.discarded, stats.failed, stats.succeeded) == (1, 0, 0)
    assert queue.counts() == (0, 0)


async def test_retry_none_leaves_the_message_to_its_visibility_timeout(queue: QueueEnv) -> None:
    """With retry=None a failure changes nothing: the message reappears when its lease lapses."""
    queue.send(["once"])
    seen: list[float] = []

    async def handle(message: Message) -> None:
        seen.append(time.monotonic())
        if len(seen) == 1:
            raise RuntimeError("boom")

    consumer = Consumer(handle, queue.options(retry=None, visibility_timeout=2))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=15)
    assert 1.5 <= seen[1] - seen[0] <= 5
    assert consumer.stats().retried == 0


async def test_long_handler_outlives_a_short_visibility_timeout(queue: QueueEnv) -> None:
    """A 6 s handler with a 2 s visibility timeout is kept invisible and handled exactly once."""
    queue.send(["slow"])
    calls: list[str] = []

    async def handle(message: Message) -> None:
        calls.append(message.message_id)
        await anyio.sleep(6)  # the behaviour under test: a handler three leases long

    consumer = Consumer(handle, queue.options(visibility_timeout=2, concurrency=2))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=20)
    assert len(calls) == 1
    assert consumer.stats().received == 1


async def test_timed_out_async_handler_fails_and_is_not_deleted(queue: QueueEnv) -> None:
    """An async handler over handler_timeout is cancelled; its message fails and stays."""
    queue.send(["stuck"])
    cancelled = anyio.Event()

    async def handle(message: Message) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    consumer = Consumer(handle, queue.options(handler_timeout=0.3, retry=Retry_never()))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().timed_out == 1)
        assert cancelled.is_set()
    stats = consumer.stats()
    assert (stats.failed, stats.deleted, stats.succeeded) == (1, 0, 0)
    assert sum(queue.counts()) == 1  # still in the queue


def Retry_never() -> ExponentialBackoff:
    """A retry policy whose delay outlasts the test: a failed message stays away."""
    return ExponentialBackoff(initial=600, jitter=0)


async def test_timed_out_sync_handler_is_never_acked_late_and_keeps_its_slot() -> None:
    """A sync handler past the timeout fails; its late return is ignored and its slot held."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    memory.send_message(QueueUrl=url, MessageBody="a")
    memory.send_message(QueueUrl=url, MessageBody="b")
    release = threading.Event()
    started: list[str] = []

    def handle(message: Message) -> None:
        started.append(message.body)
        release.wait(10)

    options = dict(client=memory, concurrency=1, handler_timeout=0.2, retry=Retry_never())
    consumer = Consumer(handle, QueueEnv("memory", memory, url, {}).options(**options))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().timed_out == 1)
        # The thread still runs: the only slot stays taken, so "b" has not started.
        with anyio.move_on_after(0.3):
            await wait_for(lambda: len(started) > 1, timeout=1)
        assert len(started) == 1
        release.set()
        await wait_for(lambda: consumer.stats().deleted == 1)  # "b" ran once "a" let go
    stats = consumer.stats()
    assert started == ["a", "b"]
    assert (stats.timed_out, stats.succeeded, stats.failed) == (1, 1, 1)  # "a" never acked


async def test_message_failing_max_receives_times_goes_to_the_dead_letter_queue(
    queue: QueueEnv,
) -> None:
    """With max_receives=2, the second failure sends the body to the DLQ and deletes it."""
    dlq = queue.client.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    queue.send(["doomed"], MessageAttributes={"kind": {"DataType": "String", "StringValue": "x"}})

    async def handle(message: Message) -> None:
        raise ValueError("always broken")

    options = queue.options(max_receives=2, dead_letter_queue_url=dlq, retry=FAST_RETRY)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().dead_lettered == 1)
        await wait_for(lambda: consumer.stats().deleted == 1)
    got = queue.client.receive_message(
        QueueUrl=dlq, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert got[0]["Body"] == "doomed"
    attributes = got[0]["MessageAttributes"]
    assert attributes["kind"]["StringValue"] == "x"
    assert attributes["sqs_consumer.source_queue"]["StringValue"] == queue.url
    assert "always broken" in attributes["sqs_consumer.error"]["StringValue"]
    assert consumer.stats().failed == 2
    assert queue.counts() == (0, 0)


async def test_random_first_try_failures_all_end_handled_and_deleted(queue: QueueEnv) -> None:
    """200 messages, a third failing their first try, all end succeeded and deleted."""
    bodies = [f"m{i}" for i in range(200)]
    queue.send(bodies)
    rng = random.Random(7)
    doomed = {b for b in bodies if rng.random() < 0.33}
    succeeded: dict[str, int] = {}

    async def handle(message: Message) -> None:
        if message.body in doomed and message.receive_count == 1:
            raise RuntimeError("first try")
        succeeded[message.body] = succeeded.get(message.body, 0) + 1

    consumer = Consumer(handle, queue.options(concurrency=20, retry=FAST_RETRY))
    async with running(consumer):
        # Every body succeeded, not only 200 deletes: on moto a message received twice counts
        # two deletes, and the 200th can come while another message still waits for its retry.
        await wait_for(
            lambda: set(succeeded) == set(bodies) and consumer.stats().deleted >= 200, timeout=30
        )
    if queue.kind == "memory":
        assert succeeded == dict.fromkeys(bodies, 1)
        assert consumer.stats().failed == len(doomed)
    else:
        # moto's server does not lock ReceiveMessage: two receives at once can both get one
        # message (at-least-once allows it; SQS does not do it while it is in flight).
        assert set(succeeded) == set(bodies)
        assert consumer.stats().failed >= len(doomed)
    assert queue.counts() == (0, 0)


@pytest.mark.parametrize("worker", ["semaphore", "pool"])
async def test_every_message_survives_twenty_percent_faults_on_every_call(worker: str) -> None:
    """With 20% of all SQS calls failing, every message is handled and deleted; retries show."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    bodies = [json.dumps(i) for i in range(300)]
    env.send(bodies)
    memory.inject_faults(0.2, seed=3)
    handled: set[str] = set()

    async def handle(message: Message) -> None:
        handled.add(message.body)

    consumer = Consumer(handle, env.options(worker=worker, concurrency=16, retry=FAST_RETRY))
    async with running(consumer):
        await wait_for(lambda: handled == set(bodies), timeout=60)
        await wait_for(
            lambda: memory.counts(url)["visible"] + memory.counts(url)["in_flight"] == 0, timeout=60
        )
    memory.clear_faults()
    assert memory.faults_injected >= 10
    assert consumer.stats().sqs_retries > 0
    assert sum(memory.counts(url).values()) == 0


def test_fractional_delays_round_up_to_whole_seconds() -> None:
    """SQS takes whole seconds: a fraction rounds up so a retry never comes back early."""
    from sqs_consumer._pipeline.visibility import whole_seconds

    assert [whole_seconds(t) for t in (0, 0.2, 1.0, 1.01, 50000)] == [0, 1, 1, 2, 43200]
