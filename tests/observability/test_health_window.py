"""Issue 9 item 9: /healthz turns 503 only once receives or deletes have failed for a while."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer.observability.health import HealthState
from sqs_consumer.testing import MemorySQS
from tests.conftest import unique_name
from tests.helpers import running, wait_for


class Clock:
    """A clock the test moves by hand: nothing sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestHealthWindow:
    def test_quick_receive_failures_are_not_an_outage(self) -> None:
        """Three (or thirty) failed receives within a second stay healthy."""
        clock = Clock()
        state = HealthState(clock=clock)
        for _ in range(30):
            state.poll_failed()
            clock.now += 0.03
        assert state.healthy()
        assert state.poll_failures == 30

    def test_receives_failing_for_the_window_are_unhealthy(self) -> None:
        clock = Clock()
        state = HealthState(30, clock=clock)
        state.poll_failed()
        clock.now += 29.9
        state.poll_failed()
        assert state.healthy()
        clock.now += 0.1
        assert not state.healthy()
        assert state.problem() == "receives failing for 30 s"

    def test_a_success_resets_the_window(self) -> None:
        clock = Clock()
        state = HealthState(10, clock=clock)
        state.poll_failed()
        clock.now += 9
        state.poll_succeeded()
        state.poll_failed()  # a new streak starts now
        clock.now += 9
        assert state.healthy()
        clock.now += 1
        assert not state.healthy()
        state.poll_succeeded()
        assert state.healthy()

    def test_deletes_failing_for_the_window_are_unhealthy(self) -> None:
        """Receives that work do not hide deletes that do not."""
        clock = Clock()
        state = HealthState(5, clock=clock)
        state.delete_failed()
        for _ in range(10):
            clock.now += 0.5
            state.poll_succeeded()
        assert not state.healthy()
        assert state.problem() == "deletes failing for 5 s"
        assert "delete_failures=1" in repr(state)
        state.delete_succeeded()
        assert state.healthy()

    def test_stopping_is_unhealthy_at_once(self) -> None:
        state = HealthState(clock=Clock())
        state.stopping()
        assert state.problem() == "stopping" and not state.healthy()

    @pytest.mark.parametrize("bad", [0, -1, math.nan, True, "30", None])
    def test_the_window_is_validated(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="unhealthy_after must be a number of seconds > 0"):
            HealthState(bad)


def test_the_option_defaults_to_30_seconds_and_is_validated() -> None:
    assert ConsumerOptions(queue_url="memory://q").unhealthy_after == 30.0
    assert ConsumerOptions(queue_url="memory://q", unhealthy_after=0.5).unhealthy_after == 0.5
    for bad in (0, -5, math.nan, True, "30"):
        with pytest.raises(ValueError, match=r"^ConsumerOptions.unhealthy_after must be"):
            ConsumerOptions(queue_url="memory://q", unhealthy_after=bad)


def _memory() -> tuple[MemorySQS, str]:
    sqs = MemorySQS()
    return sqs, sqs.create_queue(QueueName=unique_name())["QueueUrl"]


@pytest.mark.anyio
async def test_consumer_stays_healthy_through_a_few_failed_receives() -> None:
    """With the default window, failed receive retries do not turn /healthz to 503."""
    sqs, url = _memory()
    options = ConsumerOptions(queue_url=url, client=sqs, wait_time_seconds=0)
    consumer = Consumer(lambda m: None, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().receives >= 1)
        sqs.inject_faults(1.0, kinds=["server"], operations=["receive_message"])
        await wait_for(lambda: consumer.stats().sqs_retries >= 4)
        assert consumer.healthy()
        sqs.clear_faults()


@pytest.mark.anyio
async def test_consumer_turns_unhealthy_when_deletes_keep_failing() -> None:
    """Deletes failing for unhealthy_after make it unhealthy; deletes working again heal it."""
    sqs, url = _memory()
    options = ConsumerOptions(
        queue_url=url,
        client=sqs,
        wait_time_seconds=0,
        unhealthy_after=0.2,
        visibility_timeout=1,
        delete_flush_interval=0,
    )
    handled: list[str] = []

    def handle(message: Message) -> None:
        handled.append(message.message_id)

    consumer = Consumer(handle, options)
    async with running(consumer):
        sqs.inject_faults(1.0, kinds=["server"], operations=["delete_message_batch"])
        sqs.send_message(QueueUrl=url, MessageBody="one")
        await wait_for(lambda: len(handled) >= 1)
        await wait_for(lambda: not consumer.healthy())
        assert consumer.stats().receives >= 1  # receiving still works: deletes alone did it
        sqs.clear_faults()
        await wait_for(lambda: consumer.stats().deleted == 1, timeout=20)
        assert consumer.healthy()
