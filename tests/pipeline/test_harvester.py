"""Harvester: batched deletes, per-entry failures, and the start-up queue check."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from sqs_consumer import Consumer, Message, QueueCheckError
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for
from tests.pipeline.stages import receive, settling_stages

pytestmark = pytest.mark.anyio


def flaky_deletes(*, fail_first: bool = True) -> tuple[MemorySQS, list[int]]:
    """A MemorySQS whose first DeleteMessageBatch fails every entry with a transient per-entry
    error (unless not `fail_first`), and the entry count of each DeleteMessageBatch call."""
    delete_calls: list[int] = []

    def hook(call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "DeleteMessageBatch":
            return None
        delete_calls.append(len(call.params["Entries"]))
        if fail_first and len(delete_calls) == 1:
            failed = [
                {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"}
                for e in call.params["Entries"]
            ]
            return {"Successful": [], "Failed": failed}
        return None

    return MemorySQS(hook=hook), delete_calls


async def test_transient_entry_failures_are_sent_again() -> None:
    """Entries failed with a server-side code are retried and end up deleted."""
    memory, delete_calls = flaky_deletes()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send(["a", "b", "c"])
    consumer = Consumer(lambda m: None, env.options(delete_flush_interval=0.05))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 3)
    assert len(delete_calls) >= 2
    assert consumer.stats().delete_errors == 0
    assert sum(memory.counts(url).values()) == 0


async def test_expired_receipt_handles_count_as_delete_errors() -> None:
    """A handler that outlives its (unextended) lease while another consumer takes the
    message cannot delete it: delete_errors counts it, and the message stays for the other.

    MemorySQS only: moto, like SQS itself, answers a delete with a stale receipt handle
    with success (SQS documents that the message "might not be deleted").
    """
    memory = MemorySQS()
    queue = QueueEnv(
        "memory",
        memory,
        memory.create_queue(QueueName=unique_name())["QueueUrl"],
        {"client": memory},
    )
    queue.send(["late"])
    taken: list[str] = []

    def someone_else_receives() -> bool:
        got = memory.receive_message(QueueUrl=queue.url, WaitTimeSeconds=0).get("Messages", [])
        taken.extend(m["ReceiptHandle"] for m in got)
        return bool(taken)

    async def handle(message: Message) -> None:
        # Another consumer takes the message while this one is still "working".
        await wait_for(someone_else_receives, timeout=10)

    # max_visibility=1 caps the lease at one second: the heartbeat cannot keep it.
    options = queue.options(visibility_timeout=1, max_visibility=1, concurrency=1, prefetch=0)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().delete_errors == 1, timeout=15)
    assert consumer.stats().deleted == 0
    assert queue.counts() == (0, 1)  # still the other consumer's


class CountsDeliveries:
    """A call hook that counts how many receives returned each message id."""

    def __init__(self) -> None:
        self.deliveries: dict[str, int] = {}
        self.answered = 0  # receive calls that returned

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "ReceiveMessage":
            return None
        response = call.proceed()
        self.answered += 1
        for message in response.get("Messages", []):
            mid = message["MessageId"]
            self.deliveries[mid] = self.deliveries.get(mid, 0) + 1
        return response


def one_message(hook: CountsDeliveries) -> tuple[MemorySQS, str, QueueEnv]:
    """A MemorySQS with `hook` and a queue holding one message."""
    memory = MemorySQS(hook=hook)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    queue = QueueEnv("memory", memory, url, {"client": memory})
    queue.send(["late"])
    return memory, url, queue


async def test_a_message_received_again_while_held_is_handled_once_and_deleted() -> None:
    """Its lease outlived (max_visibility=1) and our own next receive got the message again:
    it is not handled a second time at once, and the delete uses the newest receipt handle
    (the one SQS honours), so it succeeds."""
    counted = CountsDeliveries()
    memory, url, queue = one_message(counted)
    calls: list[int] = []

    async def handle(message: Message) -> None:
        calls.append(message.receive_count)
        # Got again, and the runner has taken in every receive that returned (it counts a
        # receive and hands its messages over without yielding in between).
        await wait_for(
            lambda: (
                counted.deliveries.get(message.message_id, 0) >= 2
                and consumer.stats().receives >= counted.answered
            ),
            timeout=10,
        )

    options = queue.options(visibility_timeout=1, max_visibility=1, concurrency=2)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=15)
    assert calls == [1]
    assert consumer.stats().delete_errors == 0
    assert consumer.stats().received == 1
    assert queue.counts() == (0, 0)


class HoldsFirstDelete(CountsDeliveries):
    """Counts deliveries; with `hold`, the first DeleteMessageBatch, once sent (its old
    receipt handle in it), waits in its thread until the message has been received again,
    and a receive after the first delivery waits until that delete has been sent."""

    def __init__(self, hold: bool) -> None:
        super().__init__()
        self.hold = hold
        self.deletes: list[list[str]] = []
        self.failed: list[str] = []
        self._again = threading.Event()
        self._delete_sent = threading.Event()
        self.caught_up: Callable[[], bool] = lambda: True
        """True once the runner has taken in every receive that returned (set by the test)."""

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "ReceiveMessage":
            if self.hold and self.deliveries:
                assert self._delete_sent.wait(10)
            response = super().__call__(call)
            if any(n >= 2 for n in self.deliveries.values()):
                self._again.set()
            return response
        if call.operation != "DeleteMessageBatch":
            return None
        if self.hold and not self._delete_sent.is_set():
            self._delete_sent.set()
            assert self._again.wait(10)
            # The new delivery reaches the runner before this delete's answer does (the two
            # come back to the loop together, in either order).
            deadline = time.monotonic() + 10
            while not self.caught_up():
                assert time.monotonic() < deadline, "the runner did not take the receive in"
                self._again.wait(0.005)  # polling the consumer's stats from this thread
        self.deletes.append([e["ReceiptHandle"] for e in call.params["Entries"]])
        response = call.proceed()
        self.failed += [f["Code"] for f in response.get("Failed", [])]
        return response


@pytest.mark.parametrize("while_", ["queued", "in flight"])
async def test_a_message_received_again_before_its_delete_is_confirmed_is_not_handled_again(
    while_: str,
) -> None:
    """The handler succeeded, and the message came back (its lease lapsed at max_visibility)
    before SQS confirmed its delete: not handled a second time, deleted with the newest
    receipt handle — sent again with it if a delete with the old one was on its way. Before,
    the new delivery was handled as a new message, and the old handle's delete failed."""
    counted = HoldsFirstDelete(hold=while_ == "in flight")
    memory, url, queue = one_message(counted)
    calls: list[int] = []

    async def handle(message: Message) -> None:
        calls.append(message.receive_count)
        # Its only slot is busy (prefetch 0: no receive meanwhile) until the lease lapses.
        await wait_for(lambda: memory.counts(url)["visible"] == 1, timeout=10)

    options = queue.options(
        visibility_timeout=1, max_visibility=1, concurrency=1, prefetch=0,
        delete_flush_interval=0.5 if while_ == "queued" else 0,
    )  # fmt: skip
    consumer = Consumer(handle, options)
    counted.caught_up = lambda: consumer.stats().receives >= counted.answered
    async with running(consumer):
        await wait_for(lambda: sum(memory.counts(url).values()) == 0, timeout=15)
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=5)
    assert calls == [1]
    assert max(counted.deliveries.values()) >= 2  # it really was delivered again
    stats = consumer.stats()
    assert (stats.received, stats.deleted, stats.delete_errors) == (1, 1, 0)
    if while_ == "in flight":
        assert counted.failed == ["ReceiptHandleIsInvalid"]  # the old handle's delete
        assert len(counted.deletes) == 2


async def test_deletes_go_out_in_batches_of_ten() -> None:
    """Acks are grouped: 50 messages need about 5 DeleteMessageBatch calls, not 50."""
    memory, delete_calls = flaky_deletes(fail_first=False)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send([f"m{i}" for i in range(50)])
    consumer = Consumer(lambda m: None, env.options(concurrency=50, delete_flush_interval=1))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 50)
    sizes = delete_calls
    assert sum(sizes) == 50 and max(sizes) == 10 and len(sizes) <= 10


def denied(code: str) -> MemorySQS:
    """A MemorySQS whose GetQueueAttributes fails with `code` (HTTP 403)."""

    def hook(call: SQSCall) -> None:
        if call.operation == "GetQueueAttributes":
            raise call.error(code, "nope", status=403)

    return MemorySQS(hook=hook)


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "AccessDenied", "SignatureDoesNotMatch"])
async def test_bad_credentials_or_permissions_fail_run_at_once(code: str) -> None:
    """Credential and permission errors raise from run() with the AWS code in the text."""
    memory = denied(code)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    consumer = Consumer(
        lambda m: None, QueueEnv("memory", memory, url, {"client": memory}).options()
    )
    with anyio.fail_after(5), pytest.raises(QueueCheckError, match=code):
        await consumer.run()


async def test_unreachable_endpoint_fails_run_within_seconds() -> None:
    """A closed port on 127.0.0.1 is retried briefly, then run() raises naming the problem."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    options = QueueEnv("moto", None, f"{endpoint}/123456789012/q", {}).options(
        endpoint_url=endpoint, region_name="us-east-1"
    )
    started = time.monotonic()
    with pytest.raises(QueueCheckError, match="connect"):
        await Consumer(lambda m: None, options).run()
    assert time.monotonic() - started < 10


async def test_the_harvester_tells_when_sqs_has_confirmed_deletes() -> None:
    """The runner's cue that room is free again past the unconfirmed bound: called after
    each DeleteMessageBatch, once outstanding() has dropped by its entries."""
    async with settling_stages() as kit:
        kit.memory.send_message_batch(
            QueueUrl=kit.url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(3)]
        )
        seen: list[int] = []
        confirmed = anyio.Event()

        def on_confirmed() -> None:
            seen.append(kit.harvester.outstanding())
            confirmed.set()

        kit.harvester.on_confirmed(on_confirmed)
        for message in receive(kit.memory, kit.url):
            kit.harvester.ack(message.receipt_handle, message.message_id)
        assert kit.harvester.outstanding() == 3
        kit.harvester.flush_nowait()
        await confirmed.wait()
        assert seen == [0]
        assert kit.counts()["in_flight"] == 0
