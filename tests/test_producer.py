"""Producer and AsyncProducer: batching, ordering, checks before any call, retries, tracing."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID as ACCOUNT_ID
from moto.sqs.models import sqs_backends
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from sqs_consumer.errors import SqsError
from sqs_consumer.producer import AsyncProducer, AttributeValue, Producer, SendError
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import REGION, QueueEnv, unique_name

MiB = 1_048_576


def producer_for(env: QueueEnv) -> Producer:
    return Producer(env.url, client=env.client)


def receive_all(env: QueueEnv, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Receive (and delete) `count` messages, in the order SQS hands them out."""
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(received) < count:
        assert time.monotonic() < deadline, f"got {len(received)} of {count} messages"
        messages = env.client.receive_message(
            QueueUrl=env.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            env.client.delete_message_batch(QueueUrl=env.url, Entries=entries)
        received += messages
    return received


def stored_bodies(env: QueueEnv) -> dict[str, str]:
    """Message id → body of every message in the queue, without receiving them.

    moto recounts the whole queue on every call, so receiving 1,000 messages one batch at a
    time takes about 40 s; its in-process backend is read directly instead.
    """
    if env.kind == "memory":
        stored = env.client._broker.queues[env.url.removeprefix("memory://")].messages.values()
        return {message.message_id: message.body for message in stored}
    backend = sqs_backends[ACCOUNT_ID][REGION]
    return {m.id: m.body for m in backend.queues[env.url.rsplit("/", 1)[1]]._messages}


@pytest.fixture(params=["memory", "moto"])
def fifo_queue(request: pytest.FixtureRequest) -> Iterator[QueueEnv]:
    """A fresh FIFO queue (no content-based deduplication) on MemorySQS and on moto."""
    name, attributes = unique_name() + ".fifo", {"FifoQueue": "true"}
    if request.param == "memory":
        memory = MemorySQS()
        url = memory.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        yield QueueEnv("memory", memory, url, {"client": memory})
        return
    client = request.getfixturevalue("moto_sqs")
    url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    yield QueueEnv("moto", client, url, {"region_name": REGION})
    client.delete_queue(QueueUrl=url)


class NoCalls:
    """A client that fails the test if any of its methods is ever called."""

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            raise AssertionError(f"the client was called: {name}")

        return call


def checks_only(url: str = "memory://checks") -> Producer:
    return Producer(url, client=NoCalls())


class Recording:
    """A call hook that records the entries of each SendMessageBatch call passed on to
    MemorySQS; `sqs` is the MemorySQS it watches."""

    def __init__(self) -> None:
        self.batches: list[list[Mapping[str, Any]]] = []
        self.sqs = MemorySQS(hook=self)

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "SendMessageBatch":
            self.batches.append(list(call.params["Entries"]))
        return None


class Flaky(Recording):
    """Fails entries with a body in `once` one time (transient) and in `always` for good.

    The first `throttle` calls fail whole with ThrottlingException. `batches` records only the
    entries passed on to MemorySQS.
    """

    def __init__(
        self, once: Collection[str] = (), always: Collection[str] = (), throttle: int = 0
    ) -> None:
        super().__init__()
        self.once, self.always, self.throttle = set(once), set(always), throttle

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "SendMessageBatch":
            return None
        if self.throttle:
            self.throttle -= 1
            raise call.error("ThrottlingException", "slow down")
        failed: list[dict[str, Any]] = []
        kept = []
        for entry in call.params["Entries"]:
            body = entry["MessageBody"]
            if body in self.once:
                self.once.discard(body)
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": False,
                        "Code": "InternalError",
                        "Message": "try again",
                    }
                )
            elif body in self.always:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "InvalidMessageContents",
                        "Message": "no",
                    }
                )
            else:
                kept.append(entry)
        response: dict[str, Any] = {"Successful": [], "Failed": []}
        if kept:
            self.batches.append(kept)
            response = call.proceed(Entries=kept)
        return response | {"Failed": response.get("Failed", []) + failed}


class TestSendMany:
    def test_thousand_json_bodies_arrive_with_ids_in_input_order(self, queue: QueueEnv) -> None:
        """1,000 dict bodies arrive as 1,000 JSON messages whose ids match the returned list."""
        ids = producer_for(queue).send_many({"n": n, "name": f"job-{n}"} for n in range(1000))
        assert len(ids) == len(set(ids)) == 1000
        stored = stored_bodies(queue)
        assert len(stored) == 1000
        assert [json.loads(stored[message_id])["n"] for message_id in ids] == list(range(1000))
        assert stored[ids[7]] == '{"n":7,"name":"job-7"}'  # compact JSON
        for message in receive_all(queue, 10):  # and they are receivable as sent
            assert message["Body"] == stored[message["MessageId"]]

    def test_batches_hold_at_most_ten_entries_and_one_mib(self) -> None:
        """Entries are grouped ten at a time, and a new batch starts before 1 MiB is exceeded."""
        recording = Recording()
        sqs = recording.sqs
        url = sqs.create_queue(QueueName="batches")["QueueUrl"]
        producer = Producer(url, client=sqs)
        producer.send_many(["x"] * 25)
        producer.send_many(["y" * 300_000] * 5)
        assert [len(batch) for batch in recording.batches] == [10, 10, 5, 3, 2]

    def test_a_lone_body_is_not_taken_for_many(self) -> None:
        """send_many("text") is a TypeError, not one message per character."""
        with pytest.raises(TypeError, match="iterable of bodies, not str"):
            checks_only().send_many("text")

    def test_empty_input_makes_no_call(self) -> None:
        """send_many([]) returns [] without calling SQS."""
        assert checks_only().send_many([]) == []

    def test_transient_entry_failures_are_resent(self) -> None:
        """Entries failing with SenderFault false are resent; every id still comes back in order."""
        flaky = Flaky(once={"m3", "m17"}, throttle=1)
        sqs = flaky.sqs
        url = sqs.create_queue(QueueName="flaky")["QueueUrl"]
        ids = Producer(url, client=sqs).send_many([f"m{n}" for n in range(25)])
        assert len(set(ids)) == 25
        # Entries SQS took per call: 9 of the first ten, then m3 resent alone; same for m17.
        assert [len(batch) for batch in flaky.batches] == [9, 1, 9, 1, 5]
        bodies = stored_bodies(QueueEnv("memory", sqs, url, {}))
        assert [bodies[i] for i in ids] == [f"m{n}" for n in range(25)]

    def test_permanent_entry_failure_raises_send_error_naming_it(self) -> None:
        """A sender fault stops sending and SendError names the entry; sent ids are kept."""
        sqs = Flaky(always={"m13"}).sqs
        url = sqs.create_queue(QueueName="broken")["QueueUrl"]
        with pytest.raises(
            SendError,
            match=r"11 of 30 .*InvalidMessageContents: no \(message 13\); 10 more not tried",
        ) as caught:
            Producer(url, client=sqs).send_many([f"m{n}" for n in range(30)])
        error = caught.value
        assert isinstance(error, SqsError)
        assert [f.index for f in error.failures] == [13]
        assert error.failures[0].sender_fault
        assert all(error.message_ids[n] for n in range(20) if n != 13)
        assert error.message_ids[13] is None
        assert error.message_ids[20:] == (None,) * 10  # the batch after the failure is not sent

    def test_missing_queue_is_a_send_error_with_the_code(self) -> None:
        """A fatal whole-call error is not retried and names the SQS code."""
        with pytest.raises(SendError, match=r"NonExistentQueue: .* \(messages 0, 1\)"):
            Producer("memory://missing", client=MemorySQS()).send_many(["a", "b"])


class TestFifo:
    def test_one_group_keeps_input_order(self, fifo_queue: QueueEnv) -> None:
        """send_many to one FIFO group is received in input order."""
        bodies = [f"step-{n}" for n in range(35)]
        ids = Producer(fifo_queue.url, client=fifo_queue.client).send_many(bodies, group_id="g")
        received = receive_all(fifo_queue, 35)
        assert [m["Body"] for m in received] == bodies
        assert [m["MessageId"] for m in received] == ids

    def test_equal_bodies_in_one_call_are_all_sent(self, fifo_queue: QueueEnv) -> None:
        """Derived deduplication ids are unique per message, so equal bodies are not merged."""
        ids = Producer(fifo_queue.url, client=fifo_queue.client).send_many(
            ["same"] * 3, group_id="g"
        )
        assert len(set(ids)) == 3
        assert len(receive_all(fifo_queue, 3)) == 3

    def test_a_deduplication_prefix_makes_the_call_idempotent(self, fifo_queue: QueueEnv) -> None:
        """Repeating send_many with the same prefix sends nothing twice."""
        producer = Producer(fifo_queue.url, client=fifo_queue.client)
        for _ in range(2):
            producer.send_many(["a", "b"], group_id="g", deduplication_id="job-7")
        assert len(stored_bodies(fifo_queue)) == 2
        received = receive_all(fifo_queue, 2)
        assert [m["Attributes"]["MessageDeduplicationId"] for m in received] == [
            "job-7-0",
            "job-7-1",
        ]

    def test_content_based_deduplication_is_left_to_sqs(self) -> None:
        """On a ContentBasedDeduplication queue no id is derived: SQS merges equal bodies."""
        sqs = MemorySQS()
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        url = sqs.create_queue(QueueName="cbd.fifo", Attributes=attributes)["QueueUrl"]
        ids = Producer(url, client=sqs).send_many(["same", "same"], group_id="g")
        assert ids[0] == ids[1]

    def test_no_permission_to_look_means_derived_ids(self) -> None:
        """If GetQueueAttributes is denied, ids are derived (once asked, never again)."""

        asked: list[str] = []

        def deny(call: SQSCall) -> None:
            if call.operation == "GetQueueAttributes":
                asked.append(call.operation)
                raise call.error("AccessDenied", "no", status=403)

        sqs = MemorySQS(hook=deny)
        url = sqs.create_queue(QueueName="denied.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"
        ]
        producer = Producer(url, client=sqs)
        assert len(set(producer.send_many(["same", "same"], group_id="g"))) == 2
        producer.send("same", group_id="g")
        assert len(asked) == 1

    def test_single_send_needs_a_group_and_takes_no_delay(self) -> None:
        """group_id is required on FIFO queues, and a delay is refused, before any call."""
        producer = checks_only("memory://orders.fifo")
        with pytest.raises(ValueError, match="group_id is required"):
            producer.send("x")
        with pytest.raises(ValueError, match="FIFO queues do not support a per-message delay"):
            producer.send("x", group_id="g", delay=0)
        with pytest.raises(ValueError, match="group_id"):
            producer.send("x", group_id="has space")

    def test_send_returns_the_id(self, fifo_queue: QueueEnv) -> None:
        """send() to a FIFO queue derives a deduplication id and returns the message id."""
        message_id = Producer(fifo_queue.url, client=fifo_queue.client).send({"a": 1}, group_id="g")
        assert receive_all(fifo_queue, 1)[0]["MessageId"] == message_id


class TestChecks:
    def test_oversized_body_fails_before_any_call(self) -> None:
        """A body over 1 MiB raises ValueError naming the size and the limit."""
        with pytest.raises(ValueError, match=f"{MiB + 1} bytes.*{MiB}"):
            checks_only().send("x" * (MiB + 1))
        with pytest.raises(ValueError, match="message 2 is"):
            checks_only().send_many(["a", "b", "x" * MiB], attributes={"k": "v"})

    def test_a_body_of_exactly_one_mib_is_sent(self) -> None:
        """The limit itself is allowed."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="big")["QueueUrl"]
        assert Producer(url, client=sqs).send("x" * MiB)

    @pytest.mark.parametrize(
        ("body", "name"), [(b"raw", "bytes"), (42, "int"), (None, "NoneType"), ({1, 2}, "set")]
    )
    def test_unsupported_body_types(self, body: object, name: str) -> None:
        """Only str, dict and list bodies are accepted; the error names the type."""
        with pytest.raises(TypeError, match=f"not {name}$"):
            checks_only().send(body)

    def test_bodies_json_cannot_encode(self) -> None:
        """A dict holding a non-JSON value is a TypeError; NaN and empty bodies are ValueErrors."""
        with pytest.raises(TypeError, match="not JSON serializable"):
            checks_only().send({"when": object()})
        with pytest.raises(ValueError, match="Out of range float"):
            checks_only().send({"x": float("nan")})
        with pytest.raises(ValueError, match="empty"):
            checks_only().send("")
        with pytest.raises(ValueError, match="character SQS rejects"):
            checks_only().send("bad \x00 byte")

    @pytest.mark.parametrize("delay", [-1, 901, 1.5, True, "5"])
    def test_delay_must_be_whole_seconds_up_to_900(self, delay: Any) -> None:
        """delay is an int from 0 to 900."""
        with pytest.raises(ValueError, match="delay must be an int from 0 to 900"):
            checks_only().send("x", delay=delay)

    def test_delay_holds_the_message_back(self, queue: QueueEnv) -> None:
        """A delayed message is not visible at once."""
        producer_for(queue).send_many(["later"], delay=900)
        assert queue.counts() == (0, 0)

    def test_deduplication_id_is_for_fifo_queues(self) -> None:
        """deduplication_id on a standard queue is refused before any call."""
        with pytest.raises(ValueError, match="only for FIFO"):
            checks_only().send("x", deduplication_id="d")

    @pytest.mark.parametrize(
        ("attributes", "error", "match"),
        [
            ({f"a{n}": "v" for n in range(11)}, ValueError, "11 message attributes"),
            ({"AWS.thing": "v"}, ValueError, "invalid message attribute name"),
            ({"a..b": "v"}, ValueError, "invalid message attribute name"),
            ({"has space": "v"}, ValueError, "invalid message attribute name"),
            ({"flag": True}, TypeError, "bool is not supported"),
            ({"when": object()}, TypeError, "unsupported type object"),
            ({"empty": ""}, ValueError, "empty values"),
            ({"n": float("inf")}, ValueError, "not a finite number"),
            ({"shaped": {"DataType": "Strange", "StringValue": "x"}}, ValueError, "DataType"),
        ],
    )
    def test_attributes_are_validated(
        self, attributes: Any, error: type[Exception], match: str
    ) -> None:
        """Attribute names, counts, types and values are checked before any call."""
        with pytest.raises(error, match=match):
            checks_only().send("x", attributes=attributes)


class TestAttributes:
    def test_round_trip(self, queue: QueueEnv) -> None:
        """str, int, float, bytes and SQS-shaped attributes arrive as SQS-typed values."""
        attributes: dict[str, AttributeValue] = {
            "type": "created",
            "count": 3,
            "ratio": 0.25,
            "blob": b"\x00\x01",
            "custom": {"DataType": "String.json", "StringValue": "{}"},
        }
        producer_for(queue).send("x", attributes=attributes)
        got = receive_all(queue, 1)[0]["MessageAttributes"]
        assert got["type"] == {"DataType": "String", "StringValue": "created"}
        assert got["count"] == {"DataType": "Number", "StringValue": "3"}
        assert got["ratio"] == {"DataType": "Number", "StringValue": "0.25"}
        assert got["blob"] == {"DataType": "Binary", "BinaryValue": b"\x00\x01"}
        assert got["custom"] == {"DataType": "String.json", "StringValue": "{}"}


@pytest.fixture
def tracer() -> trace.Tracer:
    """An SDK tracer that is not installed globally: only its current span matters here."""
    return TracerProvider().get_tracer("test_producer")


class TestTraceContext:
    def test_traceparent_carries_the_current_span(
        self, queue: QueueEnv, tracer: trace.Tracer
    ) -> None:
        """With a span active, each message gets a traceparent naming the span's trace."""
        with tracer.start_as_current_span("publish") as span:
            producer_for(queue).send_many(["a", "b"], attributes={"type": "t"})
        trace_id = f"{span.get_span_context().trace_id:032x}"
        for message in receive_all(queue, 2):
            traceparent = message["MessageAttributes"]["traceparent"]
            assert traceparent["DataType"] == "String"
            assert traceparent["StringValue"].split("-")[1] == trace_id
            assert "tracestate" not in message["MessageAttributes"]

    def test_no_room_means_no_traceparent(self, queue: QueueEnv, tracer: trace.Tracer) -> None:
        """With ten attributes already, the send succeeds without trace context."""
        attributes = {f"a{n}": n for n in range(10)}
        with tracer.start_as_current_span("publish"):
            producer_for(queue).send("x", attributes=attributes)
        assert set(receive_all(queue, 1)[0]["MessageAttributes"]) == set(attributes)

    def test_no_room_in_size_means_no_traceparent(self, tracer: trace.Tracer) -> None:
        """A body just under 1 MiB is sent without trace context rather than refused."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="full")["QueueUrl"]
        with tracer.start_as_current_span("publish"):
            Producer(url, client=sqs).send("x" * (MiB - 5))
        assert "MessageAttributes" not in receive_all(QueueEnv("memory", sqs, url, {}), 1)[0]

    def test_tracestate_follows_when_there_is_room(self) -> None:
        """tracestate is added after traceparent, only while attributes are under ten."""
        parent = SpanContext(
            trace_id=0x1234, span_id=0x99, is_remote=True, trace_flags=TraceFlags(1),
            trace_state=TraceState([("vendor", "v1")]),
        )  # fmt: skip
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="traced")["QueueUrl"]
        producer = Producer(url, client=sqs)
        with trace.use_span(NonRecordingSpan(parent)):
            producer.send("roomy")
            producer.send("tight", attributes={f"a{n}": n for n in range(9)})
        env = QueueEnv("memory", sqs, url, {})
        got = {m["Body"]: m["MessageAttributes"] for m in receive_all(env, 2)}
        assert got["roomy"]["tracestate"]["StringValue"] == "vendor=v1"
        assert got["roomy"]["traceparent"]["StringValue"].startswith(f"00-{0x1234:032x}-")
        assert "traceparent" in got["tight"] and "tracestate" not in got["tight"]

    def test_no_span_no_attribute(self, queue: QueueEnv) -> None:
        """Without an active span nothing is added."""
        producer_for(queue).send("x")
        assert "MessageAttributes" not in receive_all(queue, 1)[0]


class TestAsyncProducer:
    pytestmark = pytest.mark.anyio

    async def test_send_and_send_many(self, queue: QueueEnv) -> None:
        """The async twin sends one message and a batch, returning ids in input order."""
        producer = AsyncProducer(queue.url, client=queue.client)
        first = await producer.send({"n": 0})
        rest = await producer.send_many([{"n": n} for n in range(1, 15)])
        received = receive_all(queue, 15)
        by_id = {m["MessageId"]: json.loads(m["Body"])["n"] for m in received}
        assert [by_id[i] for i in [first, *rest]] == list(range(15))

    async def test_checks_raise_before_any_call(self) -> None:
        """The same checks run before the first call."""
        producer = AsyncProducer("memory://checks", client=NoCalls())
        with pytest.raises(ValueError, match="bytes"):
            await producer.send_many(["x" * (MiB + 1)])

    async def test_retries_sleep_on_the_loop(self) -> None:
        """A throttled call is retried from the event loop and then succeeds."""
        flaky = Flaky(throttle=2)
        sqs = flaky.sqs
        url = sqs.create_queue(QueueName="async-flaky")["QueueUrl"]
        ids = await AsyncProducer(url, client=sqs).send_many(["a", "b"])
        assert len(ids) == 2 and len(flaky.batches) == 1
