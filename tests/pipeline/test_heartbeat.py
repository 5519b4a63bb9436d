"""Heartbeat: which leases are extended, by how much, and in what order with settling."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from sqs_consumer import Consumer, Message, Retry
from sqs_consumer._pipeline.heartbeat import Heartbeat, derive_interval
from sqs_consumer._pipeline.leases import Leases
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for

MESSAGE = Message(message_id="m", receipt_handle="r", body="")


def heartbeat(
    leases: Leases, *, visibility: int = 30, interval: float = 10, cap: float = 43200
) -> Heartbeat:
    return Heartbeat(
        None,  # type: ignore[arg-type]  # due() never calls SQS
        "memory://q",
        leases,
        visibility=visibility,
        interval=interval,
        max_visibility=cap,
        counters=None,
        on_fatal=lambda error: None,
    )


class TestDue:
    def test_only_leases_expiring_within_two_beats(self) -> None:
        """A lease is extended once it would expire within two beats, not before."""
        leases = Leases()
        fresh = leases.add(MESSAGE, 30, received_at=100.0)
        beat = heartbeat(leases, visibility=30, interval=10)
        assert beat.due(105.0) == []  # 25 s left > 20 s
        assert beat.due(111.0) == [(fresh, 30)]  # 19 s left

    def test_never_past_max_visibility(self) -> None:
        """Extensions shrink to what is left of max_visibility and stop at the cap."""
        leases = Leases()
        lease = leases.add(MESSAGE, 30, received_at=0.0)
        beat = heartbeat(leases, visibility=30, interval=10, cap=100)
        lease.visible_at = 75.0
        assert beat.due(60.0) == [(lease, 30)]  # 60 + 30 = 90 <= 100
        lease.visible_at = 90.0
        assert beat.due(75.0) == [(lease, 25)]  # only 25 s of the budget left
        lease.visible_at = 100.0
        assert beat.due(85.0) == []  # the cap is reached: let it lapse

    def test_never_asks_for_less_than_a_second(self) -> None:
        """Under a second of budget left, no extension: 0 s would show the message to every
        consumer at once, and SQS refuses a negative timeout."""
        leases = Leases()
        lease = leases.add(MESSAGE, 2, received_at=0.0)
        beat = heartbeat(leases, visibility=2, interval=0.6, cap=3)
        lease.visible_at = 2.0
        assert beat.due(2.5) == []  # 0.5 s of budget left: floor 0
        assert beat.due(3.5) == []  # past the cap: the budget is negative

    def test_skips_a_lease_with_an_extension_in_flight(self) -> None:
        """A lease already being extended is not extended twice at once."""
        leases = Leases()
        lease = leases.add(MESSAGE, 30, received_at=0.0)
        lease.extending = anyio.Event.__new__(anyio.Event)  # any non-None marker
        assert heartbeat(leases).due(29.0) == []

    def test_default_interval_is_a_third_of_visibility(self) -> None:
        """Without heartbeat_interval the beat is a third of the visibility timeout."""
        assert derive_interval(30) == 10
        assert derive_interval(2) == pytest.approx(2 / 3)


class SlowExtensions:
    """A call hook recording visibility changes; extensions (to `extension` seconds) take
    0.6 s each."""

    def __init__(self, extension: int) -> None:
        self.extension = extension
        self.calls: list[tuple[float, float, int]] = []
        self.extending = threading.Event()
        self._calls_lock = threading.Lock()

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "ChangeMessageVisibilityBatch":
            return None
        started = time.monotonic()
        timeout = call.params["Entries"][0]["VisibilityTimeout"]
        if timeout == self.extension:
            self.extending.set()
            time.sleep(0.6)  # an extension in flight long enough for a failure to meet it
        try:
            return call.proceed()
        finally:
            with self._calls_lock:
                self.calls.append((started, time.monotonic(), timeout))


@pytest.mark.anyio
async def test_retry_delay_is_sent_only_after_an_extension_in_flight_lands() -> None:
    """A failure during an extension waits for it, so the extension cannot undo the delay."""
    slow = SlowExtensions(extension=3)
    memory = MemorySQS(hook=slow)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    memory.send_message(QueueUrl=url, MessageBody="x")

    async def handle(message: Message) -> None:
        await wait_for(slow.extending.is_set)  # fail while an extension is in flight
        raise Retry(delay=7)

    options = QueueEnv("memory", memory, url, {"client": memory}).options(
        visibility_timeout=3, heartbeat_interval=0.5
    )
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: any(t == 7 for _, _, t in slow.calls), timeout=10)
    retry = next(c for c in slow.calls if c[2] == 7)
    extensions = [c for c in slow.calls if c[2] == 3 and c[0] < retry[0]]
    assert extensions, slow.calls
    assert all(end <= retry[0] for _, end, _ in extensions)


class ReceivesAndExtensions:
    """A call hook counting deliveries of each message and recording visibility changes."""

    def __init__(self) -> None:
        self.timeouts: list[int] = []
        self.deliveries: dict[str, int] = {}
        self.again = threading.Event()  # a second delivery
        self.third = threading.Event()  # a third one
        self._lock = threading.Lock()

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        response = call.proceed()
        with self._lock:
            if call.operation == "ChangeMessageVisibilityBatch":
                self.timeouts += [e["VisibilityTimeout"] for e in call.params["Entries"]]
            elif call.operation == "ReceiveMessage":
                for raw in response.get("Messages", []):
                    count = self.deliveries.get(raw["MessageId"], 0) + 1
                    self.deliveries[raw["MessageId"]] = count
                    (self.again if count == 2 else self.third if count == 3 else _NONE).set()
        return response


_NONE = threading.Event()  # deliveries past the third: nothing to wake


@pytest.mark.anyio
async def test_past_max_visibility_a_second_delivery_is_not_shown_again_at_once() -> None:
    """A handler outlives max_visibility: the message lapses and is delivered again (and
    adopted). That delivery made it invisible for a new visibility timeout; the heartbeat
    must not send 0 s (what was left of the budget), which showed the message to everyone
    at once: a third delivery right away, a receive count racing towards a DLQ."""
    calls = ReceivesAndExtensions()
    memory = MemorySQS(hook=calls)
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    memory.send_message(QueueUrl=url, MessageBody="x")
    third_soon: list[bool] = []

    def handle(message: Message) -> None:
        assert calls.again.wait(10)  # lapsed at the cap and received again
        # A new visibility timeout (2 s) has begun: no third delivery within 1.5 s of it.
        third_soon.append(calls.third.wait(1.5))

    options = QueueEnv("memory", memory, url, {"client": memory}).options(
        visibility_timeout=2, max_visibility=3, heartbeat_interval=0.5, concurrency=2
    )
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=15)
    assert third_soon == [False], calls.deliveries
    assert all(t >= 1 for t in calls.timeouts), calls.timeouts


@pytest.mark.anyio
@pytest.mark.parametrize(("visibility_timeout", "asked"), [(None, 10), (5, 5)])
async def test_a_queue_timeout_above_max_visibility_is_not_asked_for(
    visibility_timeout: int | None, asked: int
) -> None:
    """A queue whose own VisibilityTimeout (60 s) exceeds max_visibility (10 s): each receive
    asks for the cap, so no message is hidden past it; an explicit visibility_timeout wins."""
    asks: list[int | None] = []

    def hook(call: SQSCall) -> None:
        if call.operation == "ReceiveMessage":
            asks.append(call.params.get("VisibilityTimeout"))

    memory = MemorySQS(hook=hook)
    url = memory.create_queue(QueueName=unique_name(), Attributes={"VisibilityTimeout": "60"})[
        "QueueUrl"
    ]
    memory.send_message(QueueUrl=url, MessageBody="x")
    handled: list[str] = []
    options = QueueEnv("memory", memory, url, {"client": memory}).options(
        max_visibility=10, visibility_timeout=visibility_timeout
    )
    consumer = Consumer(lambda message: handled.append(message.body), options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    assert handled == ["x"]
    assert asks and set(asks) == {asked}
