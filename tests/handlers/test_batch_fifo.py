"""Batch handlers and FIFO queues end to end, on MemorySQS and moto."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from botocore.exceptions import EndpointConnectionError

from sqs_consumer import Consumer, ExponentialBackoff, Message
from sqs_consumer.handlers.batch import BatchResult
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for
from tests.helpers import running as running_consumer

pytestmark = pytest.mark.anyio

FAST_RETRY = ExponentialBackoff(initial=1, jitter=0)


async def test_batch_with_half_failing_once_ends_all_handled(queue: QueueEnv) -> None:
    """Failed ids come back; succeeded ones are handled once; batches hold several messages."""
    bodies = [f"m{i}" for i in range(40)]
    queue.send(bodies)
    successes: dict[str, int] = {}
    sizes: list[int] = []

    async def handle(messages: list[Message]) -> list[str]:
        sizes.append(len(messages))
        failed = []
        for m in messages:
            if int(m.body[1:]) % 2 and m.receive_count == 1:
                failed.append(m.message_id)
            else:
                successes[m.body] = successes.get(m.body, 0) + 1
        return failed

    # One receive loop on moto: its ReceiveMessage is not locked (see test_consumer).
    pollers: int | str = 1 if queue.kind == "moto" else "auto"
    options = queue.options(batch=True, concurrency=10, retry=FAST_RETRY, pollers=pollers)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 40, timeout=20)
    assert successes == dict.fromkeys(bodies, 1)
    assert max(sizes) > 1
    assert consumer.stats().failed == 20


@pytest.mark.parametrize(("prefetch", "most_held"), [(0, 4), ("auto", 4 + 16)])
async def test_a_batch_counts_its_size_against_concurrency(
    queue: QueueEnv, prefetch: int | str, most_held: int
) -> None:
    """With concurrency 4 no batch exceeds 4 messages (prefetch or not); with prefetch=0
    (strict) no more than 4 are held, and with the default prefetch at most 4 x 4 more.
    (Held: leased by the consumer; acknowledged messages waiting for their delete hold
    nothing, though SQS counts them in flight until it is confirmed.)"""
    queue.send([f"m{i}" for i in range(20)])
    sizes: list[int] = []
    held: list[int] = []
    consumer: Consumer

    def handle(messages: list[Message]) -> None:
        sizes.append(len(messages))
        held.append(consumer.stats().in_flight)

    options = queue.options(batch=True, concurrency=4, batch_size=10, prefetch=prefetch)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 20)
    assert max(sizes) <= 4, prefetch
    assert max(held) <= most_held, prefetch


async def test_raising_or_an_unknown_id_fails_the_whole_batch(queue: QueueEnv) -> None:
    """A raise, or a result naming a message not in the batch, fails every message of it."""
    queue.send(["a", "b", "c"])
    calls = 0

    async def handle(messages: list[Message]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return BatchResult(failed=["not-in-this-batch"])
        if calls == 2:
            raise RuntimeError("whole batch")
        return None

    consumer = Consumer(handle, queue.options(batch=True, concurrency=3, retry=FAST_RETRY))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 3, timeout=20)
    assert consumer.stats().failed >= 3 * 2 - 3  # both failing calls failed what they held


def test_middleware_with_a_batch_handler_is_refused(queue: QueueEnv) -> None:
    """Middleware is per message: combining it with batch=True is a clear error."""

    async def mw(message: Message, call_next: Any) -> Any:
        return await call_next(message)

    with pytest.raises(ValueError, match="batch handler"):
        Consumer(lambda ms: None, queue.options(batch=True, middleware=[mw]))


@pytest.fixture(params=["memory", "moto"])
def fifo(request: pytest.FixtureRequest) -> QueueEnv:
    name = unique_name("fifo") + ".fifo"
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    if request.param == "memory":
        memory = MemorySQS()
        url = memory.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return QueueEnv("memory", memory, url, {"client": memory})
    endpoint = request.getfixturevalue("moto_endpoint")
    client = request.getfixturevalue("moto_sqs")
    url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return QueueEnv("moto", client, url, {"endpoint_url": endpoint, "region_name": "us-east-1"})


def send_groups(env: QueueEnv, groups: int, per_group: int) -> None:
    for i in range(per_group):
        for g in range(groups):
            env.client.send_message(
                QueueUrl=env.url, MessageBody=f"g{g}-{i:02d}", MessageGroupId=f"g{g}"
            )


async def test_fifo_groups_stay_in_order_with_no_overlap_after_a_failure(fifo: QueueEnv) -> None:
    """Three groups of 15, one failure: each group handled in order, one at a time."""
    send_groups(fifo, 3, 15)
    lock = threading.Lock()
    order: dict[str, list[str]] = {}
    active: dict[str, int] = {}
    overlap = False
    parallel_groups = 0
    failed_once = False

    async def handle(message: Message) -> None:
        nonlocal overlap, parallel_groups, failed_once
        group = message.group_id or ""
        with lock:
            active[group] = active.get(group, 0) + 1
            overlap = overlap or active[group] > 1
            parallel_groups = max(parallel_groups, sum(1 for v in active.values() if v))
        await anyio.sleep(0.01)  # the handler's work: long enough for a wrong overlap to show
        with lock:
            active[group] -= 1
        if message.body == "g1-05" and not failed_once:
            failed_once = True
            raise RuntimeError("one failure")
        order.setdefault(group, []).append(message.body)

    consumer = Consumer(handle, fifo.options(concurrency=10, retry=FAST_RETRY))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 45, timeout=30)
    for g in range(3):
        assert order[f"g{g}"] == [f"g{g}-{i:02d}" for i in range(15)]
    assert not overlap
    assert failed_once and consumer.stats().failed == 1
    assert parallel_groups > 1


async def test_fifo_failure_releases_the_rest_of_the_group_unhandled() -> None:
    """After a failure in a group, its later messages of that receive are not handled."""
    memory = MemorySQS()
    url = memory.create_queue(
        QueueName=unique_name() + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    send_groups(env, 1, 5)
    handled: list[tuple[str, int]] = []

    async def handle(message: Message) -> None:
        handled.append((message.body, message.receive_count))
        if message.body == "g0-01" and message.receive_count == 1:
            raise RuntimeError("stop here")

    consumer = Consumer(handle, env.options(concurrency=5, retry=FAST_RETRY))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 5, timeout=20)
    bodies = [body for body, _ in handled]
    assert bodies == ["g0-00", "g0-01", "g0-01", "g0-02", "g0-03", "g0-04"]
    assert consumer.stats().released == 3  # g0-02..04 went back unhandled


async def test_fifo_batch_failure_fails_the_rest_of_its_group(fifo: QueueEnv) -> None:
    """A batch handler fails one message of a group: the later ones of that group in the
    batch are not deleted (though the handler said they succeeded) but come back after it,
    so the group's deletes stay in order; other groups are untouched."""
    send_groups(fifo, 2, 4)  # g0-00, g1-00, g0-01, g1-01, ...
    deleted_order: list[str] = []
    batches: list[list[str]] = []

    async def handle(messages: list[Message]) -> list[str]:
        batches.append([m.body for m in messages])
        failed = [m.message_id for m in messages if m.body == "g0-01" and m.receive_count == 1]
        for m in messages:
            if m.message_id not in failed:
                deleted_order.append(m.body)  # what the handler believes is done
        return failed

    consumer = Consumer(
        handle, fifo.options(batch=True, concurrency=10, retry=FAST_RETRY, pollers=1)
    )
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 8, timeout=30)
    first_with_failure = next(b for b in batches if "g0-01" in b)
    held_back = [b for b in first_with_failure if b.startswith("g0-") and b > "g0-01"]
    assert held_back, batches  # the failure had later messages of its group in its batch
    assert consumer.stats().released >= len(held_back)
    # Every later message of g0 was handled again after g0-01 succeeded: its last handling
    # comes after g0-01's.
    last = {body: i for i, body in enumerate(deleted_order)}
    assert all(last[b] > last["g0-01"] for b in held_back), deleted_order
    assert consumer.stats().failed == 1


async def test_fifo_receive_retry_reuses_its_attempt_id() -> None:
    """A receive retried after a connection error carries the same ReceiveRequestAttemptId."""
    attempts: list[str | None] = []

    def drop_first_receive(call: SQSCall) -> None:
        if call.operation == "ReceiveMessage":
            attempts.append(call.params.get("ReceiveRequestAttemptId"))
            if len(attempts) == 1:
                raise EndpointConnectionError(endpoint_url="memory://")

    memory = MemorySQS(hook=drop_first_receive)
    url = memory.create_queue(
        QueueName=unique_name() + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    send_groups(env, 1, 1)
    consumer = Consumer(lambda m: None, env.options())
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    assert attempts[0] is not None and attempts[0] == attempts[1]


async def test_fifo_concurrency_counts_groups_not_messages() -> None:
    """With many groups, `concurrency` groups run at once even though each holds a backlog."""
    memory = MemorySQS()
    url = memory.create_queue(
        QueueName=unique_name() + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    send_groups(env, 20, 10)
    running: set[str] = set()
    peak = 0
    gate = anyio.Event()

    async def handle(message: Message) -> None:
        nonlocal peak
        running.add(message.group_id or "")
        peak = max(peak, len(running))
        if peak >= 8:
            gate.set()
        await gate.wait()
        running.discard(message.group_id or "")

    consumer = Consumer(handle, env.options(concurrency=8))
    async with running_consumer(consumer):
        await wait_for(lambda: consumer.stats().deleted == 200, timeout=20)
    assert peak == 8  # 8 groups at once, although a receive brings ~10 messages of one group
