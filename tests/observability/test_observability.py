"""Observability end to end: producer→consumer trace link, metrics, /healthz and /stats."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sqs_consumer import Consumer, Message, Producer
from tests.conftest import QueueEnv
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio

_EXPORTER = InMemorySpanExporter()


class _WhileTesting(SimpleSpanProcessor):
    """Exports only while a test asks for spans: the global provider outlives the test."""

    recording = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


_PROCESSOR = _WhileTesting(_EXPORTER)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The global tracer provider, set once per process (OpenTelemetry allows no reset)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(_PROCESSOR)
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    _PROCESSOR.recording = True
    yield _EXPORTER
    _PROCESSOR.recording = False
    _EXPORTER.clear()


async def test_consumer_span_is_linked_to_the_producer_trace(
    queue: QueueEnv, spans: InMemorySpanExporter
) -> None:
    """A message sent inside a span is handled in a CONSUMER span linked to that trace."""
    producer = Producer(queue.url, client=queue.client)
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("checkout") as parent:
        message_id = producer.send({"order": 1})
        trace_id = parent.get_span_context().trace_id
    handled = anyio.Event()

    async def handle(message: Message) -> None:
        handled.set()

    consumer = Consumer(handle, queue.options())
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 1)
    consumer_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert len(consumer_spans) == 1
    span = consumer_spans[0]
    assert span.attributes is not None
    assert span.attributes["messaging.system"] == "aws_sqs"
    assert span.attributes["messaging.message.id"] == message_id
    linked = {link.context.trace_id for link in span.links}
    assert trace_id in linked or span.context.trace_id == trace_id


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


async def test_stats_port_serves_healthz_and_stats_while_running(queue: QueueEnv) -> None:
    """/healthz answers 200 while polling works and /stats returns the counts as JSON."""
    queue.send(["a", "b"])
    consumer = Consumer(lambda m: None, queue.options(stats_port=0))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 2)
        port = consumer.stats_port
        assert port
        status, body = await anyio.to_thread.run_sync(_get, f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        status, body = await anyio.to_thread.run_sync(_get, f"http://127.0.0.1:{port}/stats")
        stats: dict[str, Any] = json.loads(body)
        assert status == 200
        assert stats["received"] == 2 and stats["deleted"] == 2
        assert {"workers", "idle_workers", "waiting", "in_flight"} <= set(stats)
    assert not consumer.healthy()  # stopped: unhealthy from the first step of shutdown


async def test_repeated_poll_failures_make_healthz_unhealthy() -> None:
    """Receives failing for unhealthy_after turn /healthz to 503; a good one turns it back."""
    from sqs_consumer.testing import MemorySQS
    from tests.conftest import unique_name

    memory = MemorySQS()
    url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("memory", memory, url, {"client": memory})
    consumer = Consumer(
        lambda m: None, env.options(stats_port=0, wait_time_seconds=0, unhealthy_after=0.2)
    )
    async with running(consumer):
        await wait_for(lambda: consumer.stats().receives >= 1)
        memory.inject_faults(1.0, kinds=["server"], operations=["receive_message"])
        await wait_for(lambda: not consumer.healthy(), timeout=20)
        status, _ = await anyio.to_thread.run_sync(
            _get, f"http://127.0.0.1:{consumer.stats_port}/healthz"
        )
        assert status == 503
        memory.clear_faults()
        await wait_for(consumer.healthy, timeout=20)


async def test_a_busy_stats_port_fails_run_with_a_plain_error(queue: QueueEnv) -> None:
    """A stats_port already in use raises OSError from run(), not an exception group."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        consumer = Consumer(lambda m: None, queue.options(stats_port=port))
        with pytest.raises(OSError):
            await consumer.run()
