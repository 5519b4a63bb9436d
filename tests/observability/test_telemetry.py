"""Telemetry: CONSUMER spans linked to the producer, metrics, and a no-op without an SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, TraceFlags

from sqs_consumer import Discard, Message
from sqs_consumer.observability.telemetry import (
    SpanScope,
    Telemetry,
    producer_contexts,
    xray_span_context,
)
from sqs_consumer.stats import Counters, Stats
from sqs_consumer.workers import WorkerStats

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
WORKER = WorkerStats(workers=4, busy=3, idle_workers=1, waiting=0, capacity=1)
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def message(
    message_id: str = "m-1",
    *,
    traceparent: str | None = None,
    xray: str | None = None,
    receive_count: int = 1,
) -> Message:
    attributes = {"ApproximateReceiveCount": str(receive_count)}
    if xray is not None:
        attributes["AWSTraceHeader"] = xray
    message_attributes: dict[str, Any] = {"type": {"DataType": "String", "StringValue": "x"}}
    if traceparent is not None:
        message_attributes["traceparent"] = {"DataType": "String", "StringValue": traceparent}
    raw = {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": "{}",
        "Attributes": attributes,
        "MessageAttributes": message_attributes,
    }
    return Message.from_sqs(raw, queue_url=QUEUE_URL)


def traceparent(trace_id: str = TRACE_ID, span_id: str = PARENT_ID) -> str:
    return f"00-{trace_id}-{span_id}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter, reader: InMemoryMetricReader) -> Iterator[Telemetry]:
    """A Telemetry on SDK providers passed explicitly (the global ones stay untouched)."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(
        queue_url=QUEUE_URL,
        queue_name="orders",
        region="eu-west-1",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    tracer_provider.shutdown()
    meter_provider.shutdown()


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point collected now, by metric name."""
    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    if data is None:  # nothing recorded yet
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


class TestMessageSpan:
    def test_consumer_span_with_messaging_attributes(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """One CONSUMER span named after the queue, with the messaging conventions' attributes."""
        with telemetry.message_span(message("m-7", receive_count=3)):
            pass
        span = only_span(exporter)
        assert span.name == "process orders"
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes is not None
        assert {
            "messaging.system": "aws_sqs",
            "messaging.destination.name": "orders",
            "messaging.operation.type": "process",
            "messaging.operation": "process",
            "messaging.message.id": "m-7",
            "messaging.aws_sqs.message.receive_count": 3,
            "cloud.region": "eu-west-1",
            "aws.sqs.queue.url": QUEUE_URL,
        }.items() <= dict(span.attributes).items()
        assert span.status.status_code is StatusCode.UNSET

    def test_linked_to_the_traceparent_attribute(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """A W3C traceparent message attribute becomes a link to the producer's span."""
        with telemetry.message_span(message(traceparent=traceparent())):
            pass
        span = only_span(exporter)
        (link,) = span.links
        assert link.context.trace_id == int(TRACE_ID, 16)
        assert link.context.span_id == int(PARENT_ID, 16)
        assert span.parent is None  # a link, not a parent: the handling is its own trace

    def test_linked_to_the_aws_trace_header(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """The AWSTraceHeader system attribute (X-Ray format) becomes a link too."""
        with telemetry.message_span(message(xray=XRAY)):
            pass
        (link,) = only_span(exporter).links
        assert link.context.trace_id == 0x5759E988BD862E3FE1BE46A994272793
        assert link.context.span_id == 0x53995C3F42CD8AD8
        assert link.context.trace_flags.sampled

    def test_both_sources_give_two_links(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """A message with both a traceparent and an AWSTraceHeader links to both contexts."""
        with telemetry.message_span(message(traceparent=traceparent(), xray=XRAY)):
            pass
        trace_ids = {link.context.trace_id for link in only_span(exporter).links}
        assert trace_ids == {int(TRACE_ID, 16), 0x5759E988BD862E3FE1BE46A994272793}

    def test_span_is_current_inside_the_block(self, telemetry: Telemetry) -> None:
        """The handler's own spans nest under the message span; the context is restored after."""
        with telemetry.message_span(message()):
            current = trace.get_current_span()
            assert current.is_recording()
            assert current.get_span_context().is_valid
        assert not trace.get_current_span().get_span_context().is_valid

    def test_exception_recorded_and_propagated(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """An exception leaving the block is recorded, sets status ERROR, and propagates."""
        with pytest.raises(ValueError, match="boom"), telemetry.message_span(message()):
            raise ValueError("boom")
        span = only_span(exporter)
        assert span.status.status_code is StatusCode.ERROR
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == "boom"

    def test_discard_is_not_an_error(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """Discard propagates but does not mark the span as failed."""
        with pytest.raises(Discard), telemetry.message_span(message()):
            raise Discard()
        span = only_span(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert not span.events

    def test_record_outcome_for_caught_errors(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """record_outcome() marks a failure whose exception the handling already caught."""
        with telemetry.message_span(message()) as scope:
            scope.record_outcome("failed", TimeoutError("handler exceeded handler_timeout"))
        span = only_span(exporter)
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["sqs_consumer.outcome"] == "failed"
        assert span.attributes["error.type"] == "TimeoutError"
        assert [e.name for e in span.events] == ["exception"]


class TestBatchSpan:
    def test_one_span_with_a_link_per_message(
        self, telemetry: Telemetry, exporter: InMemorySpanExporter
    ) -> None:
        """A batch gets one CONSUMER span with the batch size and one link per producer."""
        trace_ids = [f"{n:032x}" for n in (1, 2, 3)]
        batch = [message(f"m-{n}", traceparent=traceparent(t)) for n, t in enumerate(trace_ids)]
        with telemetry.batch_span(batch):
            pass
        span = only_span(exporter)
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes is not None
        assert span.attributes["messaging.batch.message_count"] == 3
        assert [link.context.trace_id for link in span.links] == [int(t, 16) for t in trace_ids]
        assert [(link.attributes or {}).get("messaging.message.id") for link in span.links] == [
            "m-0",
            "m-1",
            "m-2",
        ]


class TestProducerContexts:
    def test_xray_header_parsed(self) -> None:
        """Root and Parent give the trace and span ids; Sampled=0 clears the sampled flag."""
        context = xray_span_context(XRAY.replace("Sampled=1", "Sampled=0"))
        assert context is not None
        assert (context.trace_id, context.span_id) == (
            0x5759E988BD862E3FE1BE46A994272793,
            0x53995C3F42CD8AD8,
        )
        assert context.is_remote and context.trace_flags == TraceFlags.DEFAULT

    @pytest.mark.parametrize(
        "header",
        [
            "",
            "Root=1-5759e988-bd862e3fe1be46a994272793",  # no Parent: nothing to link to
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=xyz",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8",
        ],
    )
    def test_malformed_xray_header_ignored(self, header: str) -> None:
        """A header without a usable Root and Parent gives no context (and no error)."""
        assert xray_span_context(header) is None

    def test_non_string_and_missing_attributes_ignored(self) -> None:
        """Binary attributes and messages without trace context give no links."""
        m = Message.from_sqs(
            {
                "MessageId": "m",
                "ReceiptHandle": "r",
                "MessageAttributes": {"traceparent": {"DataType": "Binary", "BinaryValue": b"x"}},
            },
            queue_url=QUEUE_URL,
        )
        assert producer_contexts(m) == []
        assert producer_contexts(message()) == []

    def test_same_context_from_both_sources_linked_once(self) -> None:
        """A traceparent and an AWSTraceHeader naming the same span give one context."""
        same = traceparent("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8")
        assert len(producer_contexts(message(traceparent=same, xray=XRAY))) == 1


class TestMetrics:
    def test_counters_and_handler_duration(
        self, telemetry: Telemetry, reader: InMemoryMetricReader
    ) -> None:
        """Each method adds to its counter, tagged with the queue; durations go to a histogram."""
        telemetry.received(3)
        telemetry.handled("succeeded", 0.25)
        telemetry.handled("succeeded", 0.75)
        telemetry.handled("failed", 2.0)
        telemetry.handled("discarded", 0.01)
        telemetry.retried()
        telemetry.dead_lettered()
        telemetry.deleted(2)
        points = metric_points(reader)
        totals = {
            name.removeprefix("sqs_consumer.messages."): sum(p.value for p in found)
            for name, found in points.items()
            if name.startswith("sqs_consumer.messages.")
            and name != "sqs_consumer.messages.in_flight"
        }
        assert totals == {
            "received": 3,
            "succeeded": 2,
            "failed": 1,
            "discarded": 1,
            "retried": 1,
            "dead_lettered": 1,
            "deleted": 2,
        }
        (received,) = points["sqs_consumer.messages.received"]
        assert received.attributes["messaging.destination.name"] == "orders"
        durations = {
            p.attributes["sqs_consumer.outcome"]: (p.count, p.sum)
            for p in points["sqs_consumer.handler.duration"]
        }
        assert durations == {"succeeded": (2, 1.0), "failed": (1, 2.0), "discarded": (1, 0.01)}

    def test_sqs_call_duration_by_operation(
        self, telemetry: Telemetry, reader: InMemoryMetricReader
    ) -> None:
        """SQS call durations are recorded per operation, failed attempts with error.type."""
        telemetry.sqs_call("ReceiveMessage", 0.5)
        telemetry.sqs_call("receive_message", 1.5)  # the client method name works too
        telemetry.sqs_call("DeleteMessageBatch", 0.02)
        telemetry.sqs_call("DeleteMessageBatch", 0.03, error="ThrottlingException")
        found = {
            (p.attributes["operation"], p.attributes.get("error.type")): (p.count, p.sum)
            for p in metric_points(reader)["sqs_consumer.sqs.call.duration"]
        }
        assert found == {
            ("ReceiveMessage", None): (2, 2.0),
            ("DeleteMessageBatch", None): (1, 0.02),
            ("DeleteMessageBatch", "ThrottlingException"): (1, 0.03),
        }

    def test_seconds_buckets(self, telemetry: Telemetry, reader: InMemoryMetricReader) -> None:
        """Duration histograms use second-sized buckets, not the SDK's millisecond defaults."""
        telemetry.handled("succeeded", 0.02)
        (point,) = metric_points(reader)["sqs_consumer.handler.duration"]
        assert point.explicit_bounds[:3] == (0.005, 0.01, 0.025)
        assert point.bucket_counts[2] == 1

    def test_gauges_read_the_stats_source(
        self, telemetry: Telemetry, reader: InMemoryMetricReader
    ) -> None:
        """The in-flight and worker gauges read the observed stats at each collection."""
        assert "sqs_consumer.messages.in_flight" not in metric_points(reader)  # nothing observed
        telemetry.observe(lambda: Stats.build(Counters(), WORKER, in_flight=5, pollers=1))
        points = metric_points(reader)
        values = {
            name: points[name][0].value
            for name in (
                "sqs_consumer.messages.in_flight",
                "sqs_consumer.workers",
                "sqs_consumer.workers.busy",
            )
        }
        assert values == {
            "sqs_consumer.messages.in_flight": 5,
            "sqs_consumer.workers": 4,
            "sqs_consumer.workers.busy": 3,
        }


class TestWithoutSdk:
    @pytest.fixture
    def noop(self, monkeypatch: pytest.MonkeyPatch) -> Telemetry:
        """A Telemetry on the global providers, as they are in a process without an SDK."""
        # The API lets a process set its global providers only once, so no test here sets
        # them. Should a future test do so, stand in the API's defaults for this one.
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
        if not isinstance(metrics.get_meter_provider(), _ProxyMeterProvider):
            monkeypatch.setattr(metrics, "get_meter_provider", _ProxyMeterProvider)
        return Telemetry(queue_url=QUEUE_URL, queue_name="orders")

    def test_disabled(self, noop: Telemetry) -> None:
        """With the API's default providers, neither spans nor metrics are recorded."""
        assert not noop.tracing
        assert not noop.metering

    def test_span_is_a_shared_no_op(self, noop: Telemetry) -> None:
        """message_span() allocates nothing, sets no current span, and lets errors through."""
        first = noop.message_span(message(traceparent=traceparent()))
        assert first is noop.message_span(message()) is noop.batch_span([message()])
        assert type(first) is SpanScope
        with first as scope:
            assert not trace.get_current_span().get_span_context().is_valid
            scope.record_outcome("failed", ValueError("ignored"))
        with pytest.raises(ValueError, match="kept"), noop.message_span(message()):
            raise ValueError("kept")

    def test_metric_methods_do_nothing(self, noop: Telemetry) -> None:
        """Every metric method returns at once without error, whatever its arguments."""
        noop.observe(lambda: Stats.build(Counters(), WORKER, in_flight=0, pollers=0))
        noop.received(10)
        noop.handled("succeeded", 0.1)
        noop.handled("unknown", 0.1)  # no instruments, so nothing to look up
        noop.retried()
        noop.dead_lettered()
        noop.deleted(10)
        noop.sqs_call("ReceiveMessage", 0.1)

    def test_explicit_noop_providers(self) -> None:
        """NoOp providers passed explicitly disable telemetry just the same."""
        telemetry = Telemetry(
            queue_url=QUEUE_URL,
            queue_name="orders",
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=metrics.NoOpMeterProvider(),
        )
        assert not telemetry.tracing and not telemetry.metering

    def test_tracing_and_metrics_are_independent(self, exporter: InMemorySpanExporter) -> None:
        """An SDK tracer provider with a no-op meter provider traces without metering."""
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        telemetry = Telemetry(
            queue_url=QUEUE_URL,
            queue_name="orders",
            tracer_provider=provider,
            meter_provider=metrics.NoOpMeterProvider(),
        )
        assert telemetry.tracing and not telemetry.metering
        with telemetry.message_span(message()):
            telemetry.handled("succeeded", 0.1)
        assert len(exporter.get_finished_spans()) == 1
