"""OpenTelemetry spans and metrics for one consumer run, through opentelemetry-api only.

The consumer builds one `Telemetry` per run. Without an SDK (the global providers are
still the API's proxies or no-ops when it is built), every method returns at once and
`message_span()` hands back one shared do-nothing context manager, so the hot path pays a
method call and an `is None` test. Configure the SDK before the consumer starts: a
provider set later is not picked up by a run already going.

Spans follow the messaging semantic conventions: one CONSUMER span per message (or per
batch), named `process <queue name>`, *linked* (not parented) to each producer's context,
read from the `traceparent`/`tracestate` message attributes and the `AWSTraceHeader`
system attribute.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import Token
from importlib import metadata
from types import TracebackType
from typing import Any, Final

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation

# The API's "no SDK yet" meter provider has no public name; it has lived here since 1.12.
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .._pipeline.saferepr import safe_str
from ..errors import Discard
from ..message import Message
from ..stats import Stats

__all__ = ["OUTCOMES", "SpanScope", "Telemetry", "producer_contexts", "xray_span_context"]

_SCOPE: Final = "sqs_consumer"
OUTCOMES: Final = ("succeeded", "failed", "discarded")
"""The `outcome` values `Telemetry.handled()` accepts."""
# Seconds. Semconv's duration buckets, stretched for long handlers and 20 s long polls.
_BUCKETS: Final = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    *(20.0, 30.0, 60.0, 120.0, 300.0),
)
_COUNTERS: Final = {
    "received": "Messages received from SQS.",
    "succeeded": "Handler calls that returned.",
    "failed": "Handler calls that raised (Retry included) or timed out.",
    "discarded": "Handler calls that raised Discard.",
    "retried": "Failed messages given a retry delay.",
    "dead_lettered": "Messages moved to the dead-letter queue.",
    "deleted": "Messages deleted from the queue.",
}
_GAUGES: Final = (  # (name, Stats field, unit, description)
    ("messages.in_flight", "in_flight", "{message}", "Messages received and not yet settled."),
    ("workers", "workers", "{worker}", "Live workers (or running tasks)."),
    ("workers.busy", "busy", "{worker}", "Handlers running now."),
)
_XRAY_ROOT = re.compile(r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})")
_XRAY_PARENT = re.compile(r"[0-9a-fA-F]{16}")


class _AttributeGetter(Getter[Mapping[str, Any]]):
    """Reads String message attributes (`{"DataType": "String", "StringValue": ...}`)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        text = value.get("StringValue") if isinstance(value, Mapping) else None
        return [text] if isinstance(text, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER: Final = _AttributeGetter()
_Callback = Callable[[CallbackOptions], Iterable[Observation]]


def xray_span_context(header: str) -> SpanContext | None:
    """The producer's span context from an X-Ray trace header, or None if it has none.

    Args:
        header: e.g. `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
    """
    fields = dict(part.strip().partition("=")[::2] for part in header.split(";"))
    root = _XRAY_ROOT.fullmatch(fields.get("Root", ""))
    parent = fields.get("Parent", "")
    if root is None or not _XRAY_PARENT.fullmatch(parent):
        return None
    trace_id, span_id = int(root[1] + root[2], 16), int(parent, 16)
    if not trace_id or not span_id:
        return None
    sampled = TraceFlags.SAMPLED if fields.get("Sampled") == "1" else TraceFlags.DEFAULT
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(sampled))


def producer_contexts(message: Message) -> list[SpanContext]:
    """The producer span contexts a message carries, without duplicates.

    Read from the message attributes through the configured propagator (W3C `traceparent`
    and `tracestate` by default) and from the `AWSTraceHeader` system attribute.

    Args:
        message: the received message.
    """
    found: list[SpanContext] = []
    if message.message_attributes:
        carried = propagate.extract(message.message_attributes, getter=_GETTER)
        span_context = trace.get_current_span(carried).get_span_context()
        if span_context.is_valid:
            found.append(span_context)
    header = message.attributes.get("AWSTraceHeader")
    xray = xray_span_context(header) if header else None
    if xray is not None and all(
        (xray.trace_id, xray.span_id) != (c.trace_id, c.span_id) for c in found
    ):
        found.append(xray)
    return found


class SpanScope:
    """Context manager around one message or batch; this base class records nothing.

    An exception leaving the block is recorded on the span, which gets status ERROR
    (`Discard` excepted), and propagates.
    """

    __slots__ = ()

    def __enter__(self) -> SpanScope:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def record_outcome(self, outcome: str, error: BaseException | None = None) -> None:
        """Note how handling ended, for handlers whose exceptions were already caught.

        Args:
            outcome: one of `OUTCOMES` (`succeeded`, `failed`, `discarded`).
            error: what the handler raised (or the timeout); recorded with status ERROR.
        """


_NO_SCOPE: Final = SpanScope()


class _RecordingScope(SpanScope):
    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._token: Token[Context] | None = None

    def __enter__(self) -> SpanScope:
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if error is not None and not isinstance(error, Discard):
                self._fail(error)
        finally:
            if self._token is not None:
                context.detach(self._token)
            self._span.end()

    def record_outcome(self, outcome: str, error: BaseException | None = None) -> None:
        self._span.set_attribute("sqs_consumer.outcome", outcome)
        if error is not None:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        # The SDK's record_exception calls str(error): a handler's exception whose __str__
        # raises must still leave a failed span, not crash the job before it settles.
        try:
            self._span.record_exception(error)
        except Exception:
            self._span.add_event("exception", {"exception.type": type(error).__qualname__})
        self._span.set_attribute("error.type", type(error).__qualname__)
        self._span.set_status(
            Status(StatusCode.ERROR, f"{type(error).__name__}: {safe_str(error)}")
        )


class _Instruments:
    """The metric instruments, created once per run."""

    def __init__(self, meter: metrics.Meter, gauge: Callable[[str], _Callback]) -> None:
        self.counters = {
            name: meter.create_counter(f"sqs_consumer.messages.{name}", "{message}", text)
            for name, text in _COUNTERS.items()
        }
        self.handler_duration, self.sqs_duration = (
            meter.create_histogram(name, "s", text, explicit_bucket_boundaries_advisory=_BUCKETS)
            for name, text in (
                ("sqs_consumer.handler.duration", "Handler calls, middleware included."),
                ("sqs_consumer.sqs.call.duration", "SQS API call attempts, by operation."),
            )
        )
        for name, field, unit, text in _GAUGES:
            meter.create_observable_gauge(f"sqs_consumer.{name}", [gauge(field)], unit, text)


class Telemetry:
    """Spans and metrics for one consumer run; cheap no-ops when no SDK is configured.

    Args:
        queue_url: the consumed queue's URL (span attribute `aws.sqs.queue.url`).
        queue_name: its name (`messaging.destination.name`, and the span name).
        region: its AWS region (`cloud.region`), if known.
        tracer_provider: None uses the global one from `opentelemetry.trace`.
        meter_provider: None uses the global one from `opentelemetry.metrics`.
    """

    def __init__(
        self,
        *,
        queue_url: str,
        queue_name: str,
        region: str | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        try:
            version: str | None = metadata.version("sqs-consumer")
        except metadata.PackageNotFoundError:
            version = None
        tracers = tracer_provider or trace.get_tracer_provider()
        meters = meter_provider or metrics.get_meter_provider()
        self._tracer: trace.Tracer | None = None
        if not isinstance(tracers, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            self._tracer = tracers.get_tracer(_SCOPE, version)
        self._instruments: _Instruments | None = None
        if not isinstance(meters, _ProxyMeterProvider | metrics.NoOpMeterProvider):
            self._instruments = _Instruments(meters.get_meter(_SCOPE, version), self._gauge)
        self._stats: Callable[[], Stats] | None = None
        self._span_name = f"process {queue_name}"
        self._span_attributes: dict[str, Any] = {
            "messaging.system": "aws_sqs",
            "messaging.destination.name": queue_name,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.operation": "process",  # the conventions' name before 1.26
            "aws.sqs.queue.url": queue_url,
        }
        if region is not None:
            self._span_attributes.update({"cloud.provider": "aws", "cloud.region": region})
        self._attributes = {"messaging.system": "aws_sqs", "messaging.destination.name": queue_name}
        self._by_outcome = {o: {**self._attributes, "sqs_consumer.outcome": o} for o in OUTCOMES}
        self._by_call: dict[tuple[str, str | None], dict[str, str]] = {}

    @property
    def tracing(self) -> bool:
        """True when spans are recorded (a tracer provider from an SDK was found)."""
        return self._tracer is not None

    @property
    def metering(self) -> bool:
        """True when metrics are recorded (a meter provider from an SDK was found)."""
        return self._instruments is not None

    # -- spans -----------------------------------------------------------------------------

    def message_span(self, message: Message) -> SpanScope:
        """The CONSUMER span for handling one message, current inside the `with` block.

        Args:
            message: the message about to be handled.
        """
        if self._tracer is None:
            return _NO_SCOPE
        attributes = {
            **self._span_attributes,
            "messaging.message.id": message.message_id,
            "messaging.aws_sqs.message.receive_count": message.receive_count,
        }
        if message.group_id is not None:
            attributes["messaging.aws_sqs.message.group_id"] = message.group_id
        links = [Link(c) for c in producer_contexts(message)]
        return self._start(attributes, links)

    def batch_span(self, messages: Sequence[Message]) -> SpanScope:
        """One CONSUMER span for a batch handler call, linked to each message's producer.

        Args:
            messages: the batch about to be handled.
        """
        if self._tracer is None:
            return _NO_SCOPE
        attributes = {**self._span_attributes, "messaging.batch.message_count": len(messages)}
        links = [
            Link(c, {"messaging.message.id": m.message_id})
            for m in messages
            for c in producer_contexts(m)
        ]
        return self._start(attributes, links)

    def _start(self, attributes: dict[str, Any], links: list[Link]) -> SpanScope:
        assert self._tracer is not None
        # Links rather than a parent: a message may be retried for hours and a batch has
        # many producers, so the handling is its own trace that points back to each.
        span = self._tracer.start_span(
            self._span_name, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )
        return _RecordingScope(span)

    # -- metrics ---------------------------------------------------------------------------

    def observe(self, stats: Callable[[], Stats]) -> None:
        """Feed the in-flight and worker gauges from `stats()`, read at each collection.

        Args:
            stats: returns a fresh snapshot (e.g. `consumer.stats`); must not block.
        """
        self._stats = stats

    def received(self, count: int) -> None:
        """Count the messages one ReceiveMessage call returned."""
        self._count("received", count)

    def handled(self, outcome: str, seconds: float) -> None:
        """Count one finished handler call by outcome and record its duration.

        Args:
            outcome: `succeeded`, `failed` (raised, Retry included, or timed out) or `discarded`.
            seconds: from the call into the middleware chain until it returned.

        Raises:
            KeyError: `outcome` is not one of `OUTCOMES` (only checked when metering).
        """
        if self._instruments is not None:
            self._instruments.counters[outcome].add(1, self._attributes)
            self._instruments.handler_duration.record(seconds, self._by_outcome[outcome])

    def retried(self, count: int = 1) -> None:
        """Count failed messages given a retry delay."""
        self._count("retried", count)

    def dead_lettered(self, count: int = 1) -> None:
        """Count messages sent to the dead-letter queue."""
        self._count("dead_lettered", count)

    def deleted(self, count: int) -> None:
        """Count messages SQS confirmed deleted (successful DeleteMessageBatch entries)."""
        self._count("deleted", count)

    def _count(self, name: str, count: int) -> None:
        if self._instruments is not None and count:
            self._instruments.counters[name].add(count, self._attributes)

    def sqs_call(self, operation: str, seconds: float, *, error: str | None = None) -> None:
        """Record the duration of one SQS API call attempt.

        Args:
            operation: the API name, `ReceiveMessage` or the client method `receive_message`
                (recorded as `ReceiveMessage` either way).
            seconds: how long the attempt took.
            error: the error code (or exception type) when it failed, else None.
        """
        if self._instruments is None:
            return
        key = (operation, error)  # a handful of operations and error codes: cache their dicts
        attributes = self._by_call.get(key)
        if attributes is None:
            api = "".join(part[:1].upper() + part[1:] for part in operation.split("_"))
            attributes = {**self._attributes, "operation": api}
            if error is not None:
                attributes["error.type"] = error
            self._by_call[key] = attributes
        self._instruments.sqs_duration.record(seconds, attributes)

    def _gauge(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if self._stats is None:
                return ()
            return (Observation(getattr(self._stats(), field), self._attributes),)

        return observe
