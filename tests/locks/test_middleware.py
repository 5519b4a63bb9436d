"""Idempotent and KeyLock on real consumers: MemorySQS + MemoryLockStore, and moto's SQS +
DynamoDB servers over HTTP on 127.0.0.1 (DynamoDBLockStore)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import anyio
import pytest

from sqs_consumer import Consumer, ExponentialBackoff, Message, Retry
from sqs_consumer.locks import (
    DynamoDBLockStore,
    Idempotent,
    KeyLock,
    LockCheckError,
    MemoryLockStore,
)
from sqs_consumer.middleware import CallNext
from tests.conftest import REGION, unique_name
from tests.helpers import running, wait_for
from tests.locks.conftest import Env

pytestmark = pytest.mark.anyio

FAST_RETRY = ExponentialBackoff(initial=0.1, max_delay=1.0, jitter=0.0)  # 1 s once rounded up


def jobs(*pairs: tuple[str, int]) -> list[str]:
    return [json.dumps({"key": key, "n": n}) for key, n in pairs]


class Overlap:
    """A handler that records, per key, how many of its calls ran at once."""

    def __init__(self, work: float = 0.05) -> None:
        self.work = work
        self.active: Counter[str] = Counter()
        self.most = 0
        self.done: list[int] = []

    async def __call__(self, message: Message) -> None:
        body = message.json()
        key = body["key"]
        self.active[key] += 1
        self.most = max(self.most, self.active[key])
        try:
            await anyio.sleep(self.work)  # the job's work, long enough for a rival to overlap
        finally:
            self.active[key] -= 1
        self.done.append(body["n"])


def total(consumers: list[Consumer], field: str) -> int:
    return sum(getattr(consumer.stats(), field) for consumer in consumers)


class TestIdempotent:
    async def test_two_messages_with_one_key_run_the_handler_once(self, env: Env) -> None:
        """The second message of a completed key is acked unhandled and counted a duplicate."""
        calls: list[int] = []

        async def handler(message: Message) -> None:
            calls.append(message.json()["n"])

        idempotent = Idempotent(env.store, key="json:key", retry_delay=1)
        consumer = Consumer(handler, env.queue.options(middleware=[idempotent]))
        env.queue.send(jobs(("event-1", 1), ("event-1", 2)))
        async with running(consumer):
            await wait_for(lambda: consumer.stats().succeeded == 2, timeout=15)
        assert len(calls) == 1
        assert consumer.stats().duplicates == 1
        assert env.state("idempotent:event-1") == "completed"

    async def test_a_redelivered_message_runs_once(self, env: Env) -> None:
        """A delivery that completed but came back (its ack lost) is not handled again."""
        calls: list[str] = []
        lost: set[str] = set()

        async def lose_first_ack(message: Message, call_next: CallNext) -> Any:
            result = await call_next(message)
            if message.message_id not in lost:
                lost.add(message.message_id)
                raise Retry(delay=0)  # as if the delete never reached SQS
            return result

        async def handler(message: Message) -> None:
            calls.append(message.message_id)

        middleware = [lose_first_ack, Idempotent(env.store)]  # key: the message id
        consumer = Consumer(handler, env.queue.options(middleware=middleware))
        env.queue.send(["once"])
        async with running(consumer):
            await wait_for(lambda: consumer.stats().duplicates == 1, timeout=15)
        assert len(calls) == 1
        assert consumer.stats().received == 2

    async def test_a_failure_releases_the_key_and_the_retry_runs(self, env: Env) -> None:
        """Failing releases the claim at once, so the next delivery runs the handler."""
        calls: list[int] = []

        async def handler(message: Message) -> None:
            calls.append(message.receive_count)
            if len(calls) == 1:
                raise RuntimeError("first try fails")

        idempotent = Idempotent(env.store, key="json:key")  # lease 60 s: only a release frees it
        consumer = Consumer(handler, env.queue.options(middleware=[idempotent], retry=FAST_RETRY))
        env.queue.send(jobs(("job", 1)))
        async with running(consumer):
            await wait_for(lambda: consumer.stats().succeeded == 1, timeout=15)
        assert calls == [1, 2]
        assert env.state("idempotent:job") == "completed"

    async def test_a_timed_out_handler_releases_its_key(self, env: Env) -> None:
        """handler_timeout cancels the handler; the key is released and the retry runs it."""
        calls: list[int] = []

        async def handler(message: Message) -> None:
            calls.append(message.receive_count)
            if len(calls) == 1:
                await anyio.sleep_forever()

        options = env.queue.options(
            middleware=[Idempotent(env.store, key="json:key")],
            handler_timeout=0.3,
            retry=FAST_RETRY,
        )
        consumer = Consumer(handler, options)
        env.queue.send(jobs(("slow", 1)))
        async with running(consumer):
            await wait_for(lambda: consumer.stats().succeeded == 1, timeout=15)
        assert calls == [1, 2]
        assert consumer.stats().timed_out == 1


class TestKeyLock:
    async def test_two_consumers_with_one_key_never_overlap(self, env: Env) -> None:
        """Four jobs with one lock key on two consumers: all run, one at a time."""
        handler = Overlap()
        lock = KeyLock(env.store, key="json:key", retry_delay=1)
        consumers = [
            Consumer(handler, env.queue.options(middleware=[lock], concurrency=4)) for _ in "ab"
        ]
        env.queue.send(jobs(*(("only", n) for n in range(4))))
        async with running(consumers[0]), running(consumers[1]):
            await wait_for(lambda: len(handler.done) == 4, timeout=30)
        assert handler.most == 1
        assert sorted(handler.done) == [0, 1, 2, 3]
        assert total(consumers, "retried") >= 1  # the lock really was contended

    async def test_abort_if_locked_discards_the_second(self, env: Env) -> None:
        """With abort_if_locked, a job whose key is held is discarded, not retried."""
        started, finish = anyio.Event(), anyio.Event()
        calls: list[int] = []

        async def handler(message: Message) -> None:
            calls.append(message.json()["n"])
            started.set()
            await finish.wait()

        lock = KeyLock(env.store, key="json:key", abort_if_locked=True)
        consumers = [
            Consumer(handler, env.queue.options(middleware=[lock], concurrency=2)) for _ in "ab"
        ]
        async with running(consumers[0]), running(consumers[1]):
            env.queue.send(jobs(("k", 1)))
            with anyio.fail_after(10):
                await started.wait()
            env.queue.send(jobs(("k", 2)))
            await wait_for(lambda: total(consumers, "discarded") == 1)
            finish.set()
            await wait_for(lambda: total(consumers, "succeeded") == 1)
        assert calls == [1]
        assert env.state("lock:k") is None  # released after the first job

    async def test_a_crashed_holders_lock_expires_and_the_work_goes_on(self, env: Env) -> None:
        """A lock left by a holder that died blocks only until its lease runs out."""
        await env.store.claim("lock:k", "a-consumer-that-crashed", 2)
        handler = Overlap(work=0)
        lock = KeyLock(env.store, key="json:key", retry_delay=1)
        consumer = Consumer(handler, env.queue.options(middleware=[lock]))
        env.queue.send(jobs(("k", 1)))
        async with running(consumer):
            await wait_for(lambda: handler.done == [1], timeout=15)
        assert consumer.stats().retried >= 1  # it waited for the dead holder's lease
        assert env.state("lock:k") is None

    async def test_the_lease_is_renewed_while_the_handler_runs(self, env: Env) -> None:
        """A handler running well past its lease keeps the lock: no rival runs meanwhile."""
        handler = Overlap(work=0)
        first = anyio.Event()

        async def slow_first(message: Message) -> None:
            if message.json()["n"] == 1:
                first.set()
                # Held across several rival retries, each ~1 s: well past the 1 s lease.
                await wait_for(lambda: consumer.stats().retried >= 3, timeout=20)
            await handler(message)

        lock = KeyLock(env.store, key="json:key", lease=1, retry_delay=1)
        consumer = Consumer(slow_first, env.queue.options(middleware=[lock], concurrency=2))
        async with running(consumer):
            env.queue.send(jobs(("k", 1)))
            with anyio.fail_after(10):
                await first.wait()
            env.queue.send(jobs(("k", 2)))
            await wait_for(lambda: len(handler.done) == 2, timeout=30)
        assert handler.done == [1, 2]  # the rival ran only after the slow one had finished

    async def test_shutdown_releases_the_lock(self, env: Env) -> None:
        """A handler cancelled at shutdown (shutdown_timeout) lets go of its lock."""
        started = anyio.Event()

        async def handler(message: Message) -> None:
            started.set()
            await anyio.sleep_forever()

        lock = KeyLock(env.store, key="json:key")
        consumer = Consumer(handler, env.queue.options(middleware=[lock], shutdown_timeout=0.2))
        env.queue.send(jobs(("k", 1)))
        async with running(consumer):
            with anyio.fail_after(10):
                await started.wait()
            assert env.state("lock:k") == "held"
        assert env.state("lock:k") is None

    async def test_a_failure_releases_the_lock(self, env: Env) -> None:
        """A failing handler's lock is released at once: the retry gets it."""
        calls: list[int] = []

        async def handler(message: Message) -> None:
            calls.append(message.receive_count)
            if len(calls) == 1:
                raise RuntimeError("boom")

        lock = KeyLock(env.store, key="json:key")  # 60 s lease: only a release frees it soon
        consumer = Consumer(handler, env.queue.options(middleware=[lock], retry=FAST_RETRY))
        env.queue.send(jobs(("k", 1)))
        async with running(consumer):
            await wait_for(lambda: consumer.stats().succeeded == 1, timeout=15)
        assert calls == [1, 2]


@pytest.mark.parametrize("env", ["moto"], indirect=True)
async def test_many_messages_several_consumers_several_keys(env: Env) -> None:
    """Twelve jobs on three keys, three consumers, lock and idempotency: each job runs once,
    never two with one key at once, none lost."""
    handler = Overlap(work=0.02)
    middleware = [
        Idempotent(env.store, key="json:n", retry_delay=1),
        KeyLock(env.store, key="json:key", retry_delay=1),
    ]
    consumers = [
        Consumer(handler, env.queue.options(middleware=middleware, concurrency=4)) for _ in "abc"
    ]
    bodies = jobs(*((key, n) for n, key in enumerate("abc" * 4)))
    env.queue.send(bodies + bodies[:3])  # three sent twice: duplicates
    async with running(consumers[0]), running(consumers[1]), running(consumers[2]):
        await wait_for(lambda: total(consumers, "succeeded") == 15, timeout=45)
    assert handler.most == 1
    assert sorted(handler.done) == list(range(12))
    assert total(consumers, "duplicates") == 3


class TestStartCheck:
    async def test_a_missing_table_fails_start(self, moto_endpoint: str) -> None:
        """A lock table that does not exist fails run() before any message is received."""
        from sqs_consumer.testing import MemorySQS

        sqs = MemorySQS()
        url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
        store = DynamoDBLockStore("no-such-table", endpoint_url=moto_endpoint, region_name=REGION)
        options_ = {"queue_url": url, "client": sqs, "middleware": [KeyLock(store, "job")]}
        from sqs_consumer import ConsumerOptions

        consumer = Consumer(lambda message: None, ConsumerOptions(**options_))
        with pytest.raises(LockCheckError, match="'no-such-table' does not exist: create it"):
            await consumer.run()
        assert consumer.stats().receives == 0

    async def test_a_store_with_no_region_fails_the_check_in_one_clear_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No region anywhere (a memory:// queue names none): a LockCheckError saying what to
        set, not botocore's NoRegionError escaping from the first call."""
        for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        store = DynamoDBLockStore("locks")
        with pytest.raises(LockCheckError, match="'locks': You must specify a region.*region_name"):
            await store.check()

    async def test_memory_store_needs_no_check(self) -> None:
        """MemoryLockStore's check passes (nothing to reach)."""
        await Idempotent(MemoryLockStore()).__sqs_check__()
