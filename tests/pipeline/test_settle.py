"""Settling: each outcome routed to its stage, and never a crash (broken retry policies,
unprintable errors, logging)."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sqs_consumer import Consumer, Message
from sqs_consumer._pipeline.deadletter import ERROR_ATTRIBUTE
from sqs_consumer._pipeline.outcome import ACK, DISCARDED, Fail
from sqs_consumer._pipeline.saferepr import safe_repr, safe_str
from sqs_consumer._pipeline.settle import Settled
from sqs_consumer.observability.telemetry import Telemetry
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import QueueEnv, unique_name
from tests.helpers import running, wait_for
from tests.pipeline.stages import receive, settling_stages

pytestmark = pytest.mark.anyio


class Unprintable(Exception):
    """An exception whose str() and repr() both raise."""

    def __str__(self) -> str:
        raise ValueError("no str for you")

    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class RaisingPolicy:
    def __init__(self) -> None:
        self.calls = 0

    def delay(self, receive_count: int) -> float:
        self.calls += 1
        raise ZeroDivisionError("policy bug")


class ReturningPolicy:
    def __init__(self, value: Any) -> None:
        self.value = value

    def delay(self, receive_count: int) -> Any:
        return self.value


def fails_first_receive(handled: list[tuple[str, int]], error: type[BaseException] = RuntimeError):
    def handle(message: Message) -> None:
        handled.append((message.body, message.receive_count))
        if message.receive_count == 1:
            raise error()

    return handle


async def retried_and_handled(consumer: Consumer, count: int, handled: list[Any]) -> None:
    """Run until every message failed once, came back (a retry delay was set) and succeeded."""
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == count, timeout=15)
    stats = consumer.stats()
    assert stats.failed == count and stats.retried == count and stats.succeeded == count
    assert sorted(rc for _, rc in handled) == [1] * count + [2] * count


def settle_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sqs_consumer" and "retry policy" in r.msg]


async def test_a_raising_retry_policy_gets_the_default_backoff(
    queue: QueueEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """RetryPolicy.delay() raising: the message is retried with ExponentialBackoff's delay
    (1 s on the first receive), later handled, and run() returns normally; logged once."""
    queue.send(["a", "b", "c"])
    handled: list[tuple[str, int]] = []
    policy = RaisingPolicy()
    consumer = Consumer(fails_first_receive(handled), queue.options(retry=policy))
    caplog.set_level(logging.DEBUG, logger="sqs_consumer")
    await retried_and_handled(consumer, 3, handled)
    assert policy.calls == 3
    records = settle_errors(caplog)
    assert [r.levelno for r in records].count(logging.ERROR) == 1  # once, then at debug level
    assert len(records) == 3
    error = next(r for r in records if r.levelno == logging.ERROR)
    assert "ZeroDivisionError('policy bug')" in error.getMessage()
    assert error.exc_info is not None


@pytest.mark.parametrize("value", [-1, math.nan, "5", None, object(), True])
async def test_a_retry_policy_returning_garbage_gets_the_default_backoff(
    value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A negative, NaN or non-number delay: the default backoff, and the value is logged."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send(["a"])
    handled: list[tuple[str, int]] = []
    consumer = Consumer(fails_first_receive(handled), env.options(retry=ReturningPolicy(value)))
    await retried_and_handled(consumer, 1, handled)
    (record,) = settle_errors(caplog)
    assert f"returned {safe_repr(value)}" in record.getMessage()


async def test_an_infinite_delay_is_capped_not_refused() -> None:
    """+inf: SQS's longest visibility (12 h) rather than a refused change."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send(["a"])
    handled: list[tuple[str, int]] = []
    consumer = Consumer(fails_first_receive(handled), env.options(retry=ReturningPolicy(math.inf)))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().retried == 1)
    assert handled == [("a", 1)]


async def test_an_unprintable_handler_error_is_retried_and_logged_safely(
    queue: QueueEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler exception whose str() and repr() raise: retried, handled later, and the
    log line names it by a safe repr (no logging traceback, nothing escapes run())."""
    queue.send(["a"])
    handled: list[tuple[str, int]] = []
    consumer = Consumer(fails_first_receive(handled, Unprintable), queue.options())
    await retried_and_handled(consumer, 1, handled)
    (record,) = [r for r in caplog.records if "failed on receive" in r.msg]
    text = record.getMessage()
    assert "<Unprintable object (repr failed: ValueError: no repr for you)>" in text


async def test_a_raising_log_filter_does_not_stop_settling() -> None:
    """Logging itself must not raise out of a settle: a broken filter on our logger."""

    class Broken(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if "failed on receive" in str(record.msg):
                raise RuntimeError("filter bug")
            return True

    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send(["a"])
    handled: list[tuple[str, int]] = []
    logger = logging.getLogger("sqs_consumer")
    broken = Broken()
    logger.addFilter(broken)
    try:
        await retried_and_handled(Consumer(fails_first_receive(handled), env.options()), 1, handled)
    finally:
        logger.removeFilter(broken)


async def test_dead_letter_attribute_holds_a_safe_repr() -> None:
    """At the last receive, the DLQ copy carries a safe repr of an unprintable error."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    dlq = memory.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    env.send(["a"])

    def handle(message: Message) -> None:
        raise Unprintable()

    options = env.options(dead_letter_queue_url=dlq, max_receives=1)
    consumer = Consumer(handle, options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().dead_lettered == 1)
    (copy,) = memory.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    text = copy["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]
    assert text == "<Unprintable object (repr failed: ValueError: no repr for you)>"
    json.dumps(copy)  # plain data all the way


def test_a_span_records_an_unprintable_error() -> None:
    """With tracing on, recording an exception whose str() raises still fails the span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(queue_url="memory://q", queue_name="q", tracer_provider=provider)
    message = Message(message_id="m", receipt_handle="r", body="x", queue_url="memory://q")
    with telemetry.message_span(message) as span:
        span.record_outcome("failed", Unprintable())
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert "Unprintable" in str(finished.status.description)
    provider.shutdown()


def test_safe_repr_and_safe_str() -> None:
    """The fallbacks name the type and why formatting failed; working values pass through."""
    assert safe_repr(ValueError("x")) == "ValueError('x')"
    assert safe_str(ValueError("x")) == "x"
    expected = "<Unprintable object (repr failed: ValueError: no repr for you)>"
    assert safe_repr(Unprintable()) == expected
    assert safe_str(Unprintable()) == expected


class TestRouting:
    """The Settler sends each outcome to the stage that makes it true on the queue."""

    async def test_an_ack_is_deleted_and_a_discard_counted_apart(self) -> None:
        async with settling_stages() as kit:
            kit.memory.send_message_batch(
                QueueUrl=kit.url,
                Entries=[{"Id": b, "MessageBody": b} for b in ("ok", "drop")],
            )
            ok, drop = sorted(receive(kit.memory, kit.url), key=lambda m: m.body != "ok")
            assert await kit.settler.settle(ok, ACK) == Settled(kept=False)
            assert await kit.settler.settle(drop, DISCARDED) == Settled(kept=False)
        assert (kit.counters.succeeded, kit.counters.discarded, kit.counters.deleted) == (1, 1, 2)
        assert sum(kit.counts().values()) == 0

    async def test_a_failure_with_a_delay_is_retried_after_it(self) -> None:
        """Fail(delay=2.5): the visibility becomes 3 s (rounded up), the message is kept."""
        clock = [0.0]
        memory = MemorySQS(clock=lambda: clock[0])
        async with settling_stages(memory=memory) as kit:
            memory.send_message(QueueUrl=kit.url, MessageBody="later")
            (message,) = receive(memory, kit.url)
            settled = await kit.settler.settle(message, Fail(RuntimeError("x"), delay=2.5))
            assert settled == Settled(kept=True, delay=3)
        assert kit.counters.failed == 1 and kit.counters.retried == 1
        clock[0] = 2.9
        assert kit.counts()["visible"] == 0  # not back early
        clock[0] = 3.0
        assert kit.counts()["visible"] == 1

    async def test_a_retry_policy_sets_the_delay(self) -> None:
        """Without Fail.delay the policy decides, from the receive count."""
        async with settling_stages(retry=ReturningPolicy(7)) as kit:
            kit.memory.send_message(QueueUrl=kit.url, MessageBody="x")
            (message,) = receive(kit.memory, kit.url)
            assert await kit.settler.settle(message, Fail(None)) == Settled(kept=True, delay=7)

    async def test_without_a_policy_the_visibility_timeout_decides(self) -> None:
        """No retry policy and no delay: no visibility change at all (delay None)."""
        changes: list[str] = []

        def hook(call: SQSCall) -> None:
            changes.append(call.operation)

        async with settling_stages(hook=hook) as kit:
            kit.memory.send_message(QueueUrl=kit.url, MessageBody="x")
            (message,) = receive(kit.memory, kit.url)
            assert await kit.settler.settle(message, Fail(None)) == Settled(kept=True)
        assert "ChangeMessageVisibilityBatch" not in changes
        assert kit.counters.retried == 0 and kit.counts()["in_flight"] == 1

    async def test_the_last_receive_goes_to_the_dlq_then_is_deleted(self) -> None:
        memory = MemorySQS()
        dlq = memory.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
        async with settling_stages(memory=memory, dead_letter=(dlq, 1)) as kit:
            memory.send_message(QueueUrl=kit.url, MessageBody="poison")
            (message,) = receive(memory, kit.url)
            settled = await kit.settler.settle(message, Fail(ValueError("bad")))
            assert settled == Settled(kept=False)
        assert kit.counters.dead_lettered == 1 and kit.counters.deleted == 1
        assert memory.all_messages(dlq) == ["poison"] and memory.all_messages(kit.url) == []

    async def test_a_dlq_send_that_fails_keeps_the_message(self) -> None:
        """Not in the DLQ, so not deleted: it comes back (at-least-once)."""

        def deny(call: SQSCall) -> None:
            if call.operation == "SendMessage" and call.params["QueueUrl"] == dlq:
                raise call.error("AccessDenied", status=403)

        memory = MemorySQS(hook=deny)
        dlq = memory.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
        async with settling_stages(memory=memory, dead_letter=(dlq, 1)) as kit:
            memory.send_message(QueueUrl=kit.url, MessageBody="poison")
            (message,) = receive(memory, kit.url)
            settled = await kit.settler.settle(message, Fail(ValueError("bad")))
            assert settled.kept
        assert kit.counters.dead_lettered == 0 and kit.counters.deleted == 0
        assert memory.all_messages(kit.url) == ["poison"]
