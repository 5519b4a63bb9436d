"""LambdaHandler: Lambda's SQS event and context, and partial batch responses read as Lambda does.

Also the batch contract it builds on (`sqs_consumer.batch`: BatchResult, normalize_batch_result).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import SqsModel

from sqs_consumer import Message
from sqs_consumer.handlers.batch import BatchResult, is_batch_handler, normalize_batch_result
from sqs_consumer.handlers.lambda_compat import (
    LambdaContext,
    LambdaHandler,
    lambda_event,
    queue_arn_from_url,
    read_lambda_response,
)
from sqs_consumer.testing import MemorySQS
from tests.conftest import unique_name

pytestmark = pytest.mark.anyio

ARN = "arn:aws:sqs:eu-west-1:123456789012:orders"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
ATTRIBUTES = {
    "type": {"DataType": "String", "StringValue": "created"},
    "count": {"DataType": "Number", "StringValue": "3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xffdata"},
}
STANDARD_ATTRIBUTES = {
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
}
FIFO_ATTRIBUTES = STANDARD_ATTRIBUTES | {
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
}


def send_and_receive(client: Any, url: str, count: int, **entry: Any) -> list[dict[str, Any]]:
    """Send `count` JSON bodies {"n": i}, then receive them all as raw boto3 dicts, in order."""
    for n in range(count):
        extra = {"MessageDeduplicationId": str(n)} if url.endswith(".fifo") else {}
        client.send_message(QueueUrl=url, MessageBody=json.dumps({"n": n}), **entry, **extra)
    raw: list[dict[str, Any]] = []
    while len(raw) < count:
        raw += client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )["Messages"]
    return sorted(raw, key=lambda r: json.loads(r["Body"])["n"])


def received(count: int = 4, *, fifo: bool = False, **entry: Any) -> list[Message]:
    """Messages as a consumer gets them from MemorySQS (all system attributes)."""
    sqs = MemorySQS()
    name = unique_name() + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    if fifo:
        entry.setdefault("MessageGroupId", "group-1")
    raw = send_and_receive(sqs, url, count, **entry)
    return [Message.from_sqs(r, queue_url=url) for r in raw]


def number(record: SQSRecord) -> int:
    return int(json.loads(record.body)["n"])


def powertools_handler(
    record_handler: Callable[[SQSRecord], Any], processor: BatchProcessor | None = None
) -> Callable[[dict[str, Any], Any], Any]:
    """An unmodified Lambda function, written the way the Powertools docs show."""
    batch = processor or BatchProcessor(event_type=EventType.SQS)

    def lambda_handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=batch, context=context
        )

    return lambda_handler


class Recorder:
    """A Lambda function that records its event and context and returns a fixed response."""

    def __init__(self, response: Any = None) -> None:
        self.response = response
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.threads: list[int] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        self.threads.append(threading.get_ident())
        return self.response


class TestEvent:
    def test_validates_as_powertools_sqs_model(self) -> None:
        """The event parses with Powertools' SqsModel, attributes and message attributes kept."""
        messages = received(3, MessageAttributes=ATTRIBUTES)
        event = lambda_event(messages, ARN)
        parsed = SqsModel.model_validate(event)
        assert [r.messageId for r in parsed.Records] == [m.message_id for m in messages]
        record = parsed.Records[0]
        assert record.body == messages[0].body
        assert record.receiptHandle == messages[0].receipt_handle
        assert record.md5OfBody == messages[0].md5_of_body
        assert (record.eventSource, record.eventSourceARN, record.awsRegion) == (
            "aws:sqs",
            ARN,
            "eu-west-1",
        )
        assert record.messageAttributes["type"].stringValue == "created"
        assert record.messageAttributes["count"].dataType == "Number"

    def test_record_has_lambdas_fields_and_standard_attributes(self) -> None:
        """A standard-queue record has Lambda's keys, and exactly its four system attributes."""
        [message] = received(1)
        [record] = lambda_event([message], ARN)["Records"]
        assert list(record) == [
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfMessageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        ]
        assert set(record["attributes"]) == STANDARD_ATTRIBUTES
        assert record["attributes"] == {k: message.attributes[k] for k in STANDARD_ATTRIBUTES}
        assert all(isinstance(v, str) for v in record["attributes"].values())
        assert record["messageAttributes"] == {}
        assert record["md5OfMessageAttributes"] is None

    def test_fifo_and_trace_attributes_when_present(self) -> None:
        """FIFO messages add SequenceNumber, MessageGroupId, MessageDeduplicationId; X-Ray adds
        AWSTraceHeader."""
        trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": TRACE}}
        [message] = received(1, fifo=True, MessageSystemAttributes=trace)
        attributes = lambda_event([message], ARN)["Records"][0]["attributes"]
        assert set(attributes) == FIFO_ATTRIBUTES | {"AWSTraceHeader"}
        assert attributes["MessageGroupId"] == "group-1"
        assert attributes["AWSTraceHeader"] == TRACE
        assert attributes["SequenceNumber"] == message.attributes["SequenceNumber"]

    def test_other_system_attributes_are_left_out(self) -> None:
        """Only Lambda's attribute set reaches the event, whatever else the receive returned."""
        [message] = received(1)
        raw = {
            "MessageId": message.message_id,
            "ReceiptHandle": message.receipt_handle,
            "Body": message.body,
            "MD5OfBody": message.md5_of_body,
            "Attributes": {**message.attributes, "SqsManagedSseEnabled": "true"},
        }
        record = lambda_event([Message.from_sqs(raw, queue_url="q")], ARN)["Records"][0]
        assert set(record["attributes"]) == STANDARD_ATTRIBUTES

    def test_message_attributes_in_lambda_form(self) -> None:
        """stringValue / binaryValue (base64) / list values / dataType, as Lambda spells them."""
        [message] = received(1, MessageAttributes=ATTRIBUTES)
        attributes = lambda_event([message], ARN)["Records"][0]["messageAttributes"]
        assert attributes["type"] == {
            "stringValue": "created",
            "binaryValue": None,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
        assert attributes["blob"]["binaryValue"] == base64.b64encode(b"\x00\xffdata").decode()
        assert attributes["blob"]["dataType"] == "Binary"
        assert attributes["blob"]["stringValue"] is None
        json.dumps(attributes)  # nothing left that JSON cannot carry (bytes)

    def test_md5_of_message_attributes_matches_sqs(self) -> None:
        """md5OfMessageAttributes is the digest SQS itself returned for the attributes."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
        [raw] = send_and_receive(sqs, url, 1, MessageAttributes=ATTRIBUTES)
        record = lambda_event([Message.from_sqs(raw, queue_url=url)], ARN)["Records"][0]
        assert record["md5OfMessageAttributes"] == raw["MD5OfMessageAttributes"]

    def test_from_a_moto_server(self, moto_sqs: Any, moto_queue: str) -> None:
        """Messages from a real SQS API (moto) give a valid event with SQS's own digests."""
        raw = send_and_receive(moto_sqs, moto_queue, 2, MessageAttributes=ATTRIBUTES)
        messages = [Message.from_sqs(r, queue_url=moto_queue) for r in raw]
        event = lambda_event(messages, queue_arn_from_url(moto_queue))
        SqsModel.model_validate(event)
        record = event["Records"][0]
        assert record["md5OfMessageAttributes"] == raw[0]["MD5OfMessageAttributes"]
        assert record["md5OfBody"] == raw[0]["MD5OfBody"]
        name = moto_queue.rsplit("/", 1)[1]
        assert record["eventSourceARN"] == f"arn:aws:sqs:us-east-1:123456789012:{name}"

    @pytest.mark.parametrize(
        ("url", "region", "arn"),
        [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
                None,
                "arn:aws:sqs:eu-west-1:123456789012:orders",
            ),
            (
                "https://sqs.us-east-2.amazonaws.com/123456789012/jobs.fifo",
                "eu-west-1",
                "arn:aws:sqs:us-east-2:123456789012:jobs.fifo",
            ),
            (
                "https://ap-south-1.queue.amazonaws.com/123456789012/legacy",
                None,
                "arn:aws:sqs:ap-south-1:123456789012:legacy",
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/cn",
                None,
                "arn:aws-cn:sqs:cn-north-1:123456789012:cn",
            ),
            (
                "http://127.0.0.1:5000/123456789012/local",
                "eu-central-1",
                "arn:aws:sqs:eu-central-1:123456789012:local",
            ),
            ("memory://demo", None, "arn:aws:sqs:us-east-1:123456789012:demo"),
            ("http://localhost:4566/queue/x", "sa-east-1", "arn:aws:sqs:sa-east-1:123456789012:x"),
        ],
    )
    def test_queue_arn_from_url(self, url: str, region: str | None, arn: str) -> None:
        """AWS URLs map to their ARN; other URLs use region_name (or us-east-1)."""
        assert queue_arn_from_url(url, region) == arn


class TestInvocation:
    async def test_powertools_partial_failure(self) -> None:
        """An unmodified Powertools batch function: exactly the records it failed fail."""
        messages = received(6)

        def record_handler(record: SQSRecord) -> None:
            if number(record) in (1, 4):
                raise ValueError(f"bad record {number(record)}")

        result = await LambdaHandler(powertools_handler(record_handler))(messages)
        assert result == BatchResult(failed={messages[1].message_id, messages[4].message_id})

    async def test_powertools_all_succeed(self) -> None:
        """Powertools returns an empty batchItemFailures list: nothing fails."""
        messages = received(3)
        handled: list[int] = []

        def record_handler(record: SQSRecord) -> None:
            handled.append(number(record))

        result = await LambdaHandler(powertools_handler(record_handler))(messages)
        assert result == BatchResult.all_ok()
        assert handled == [0, 1, 2]

    async def test_powertools_fifo_processor(self) -> None:
        """The FIFO processor fails the failing record and every record after it."""
        messages = received(4, fifo=True)

        def record_handler(record: SQSRecord) -> None:
            if number(record) == 1:
                raise ValueError("stop here")

        handler = LambdaHandler(powertools_handler(record_handler, SqsFifoPartialProcessor()))
        result = await handler(messages)
        assert result.failed == {m.message_id for m in messages[1:]}

    async def test_powertools_all_fail_fails_the_whole_batch(self) -> None:
        """Powertools raises when every record failed, which fails the whole batch."""

        def record_handler(record: SQSRecord) -> None:
            raise ValueError("all bad")

        with pytest.raises(BatchProcessingError):
            await LambdaHandler(powertools_handler(record_handler))(received(2))

    async def test_raising_fails_the_whole_batch(self) -> None:
        """Whatever the function raises propagates to the consumer."""

        def lambda_handler(event: dict[str, Any], context: Any) -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await LambdaHandler(lambda_handler)(received(2))

    async def test_sync_function_runs_in_a_worker_thread(self) -> None:
        """A plain Lambda function runs off the event loop's thread."""
        function = Recorder()
        await LambdaHandler(function)(received(1))
        assert function.threads and function.threads[0] != threading.get_ident()

    async def test_async_function(self) -> None:
        """An async function is awaited; its batchItemFailures are honored."""
        messages = received(3)

        async def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["messageId"]}]}

        result = await LambdaHandler(lambda_handler)(messages)
        assert result.failed == {messages[2].message_id}

    async def test_one_invocation_per_batch_in_order(self) -> None:
        """The whole batch is one event, records in the batch's order."""
        messages = received(5)
        function = Recorder()
        assert await LambdaHandler(function)(messages) == BatchResult.all_ok()
        [event] = function.events
        assert [r["messageId"] for r in event["Records"]] == [m.message_id for m in messages]

    async def test_event_source_arn_of_a_memory_queue_is_its_queue_arn(self) -> None:
        """Over MemorySQS the derived eventSourceARN is the QueueArn the queue reports."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        assert queue_arn_from_url(url) == arn["Attributes"]["QueueArn"]

    async def test_event_source_arn_from_constructor_or_url(self) -> None:
        """queue_arn wins; otherwise the ARN comes from the queue URL and region_name."""
        messages = received(1)
        function = Recorder()
        await LambdaHandler(function, queue_arn=ARN)(messages)
        await LambdaHandler(function, region_name="eu-north-1")(messages)
        name = messages[0].queue_url.removeprefix("memory://")
        first, second = (event["Records"][0] for event in function.events)
        assert (first["eventSourceARN"], first["awsRegion"]) == (ARN, "eu-west-1")
        assert second["eventSourceARN"] == f"arn:aws:sqs:eu-north-1:123456789012:{name}"
        assert second["awsRegion"] == "eu-north-1"

    async def test_empty_batch_is_not_invoked(self) -> None:
        """Lambda never invokes with no records; neither does LambdaHandler."""
        function = Recorder()
        assert await LambdaHandler(function)([]) == BatchResult.all_ok()
        assert function.events == []

    def test_is_a_batch_handler(self) -> None:
        """LambdaHandler marks itself with __sqs_batch__ = True; plain functions are not."""
        assert LambdaHandler.__sqs_batch__ is True
        assert is_batch_handler(LambdaHandler(Recorder()))
        assert not is_batch_handler(lambda messages: None)

    def test_rejects_bad_arguments(self) -> None:
        """A non-callable, a non-positive timeout and a malformed ARN are refused."""
        with pytest.raises(TypeError, match="callable"):
            LambdaHandler("handler")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            LambdaHandler(Recorder(), timeout=0)
        with pytest.raises(ValueError, match="queue_arn"):
            LambdaHandler(Recorder(), queue_arn="orders")


class TestContext:
    async def test_has_lambdas_attributes(self) -> None:
        """The context has the Python runtime's attributes, with values derived from the queue."""
        function = Recorder()
        handler = LambdaHandler(
            function, queue_arn=ARN, function_name="orders-fn", memory_limit_in_mb=512
        )
        await handler(received(1))
        [context] = function.contexts
        assert isinstance(context, LambdaContext)
        assert context.function_name == "orders-fn"
        assert context.function_version == "$LATEST"
        assert context.invoked_function_arn == (
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-fn"
        )
        assert context.memory_limit_in_mb == "512"  # a str, as the Python runtime gives it
        assert context.log_group_name == "/aws/lambda/orders-fn"
        assert "[$LATEST]" in context.log_stream_name
        assert uuid.UUID(context.aws_request_id).version == 4
        assert context.identity.cognito_identity_id is None
        assert context.identity.cognito_identity_pool_id is None
        assert context.client_context is None

    async def test_request_id_is_new_for_each_invocation(self) -> None:
        """Each batch is a new invocation with its own aws_request_id."""
        function = Recorder()
        handler = LambdaHandler(function)
        messages = received(2)
        await handler(messages[:1])
        await handler(messages[1:])
        first, second = function.contexts
        assert first.aws_request_id != second.aws_request_id
        assert first.log_stream_name == second.log_stream_name  # one "execution environment"

    async def test_remaining_time_counts_down_from_the_timeout(self) -> None:
        """get_remaining_time_in_millis() starts at the timeout and falls with the clock."""
        now = [100.0]
        remaining: list[int] = []

        def lambda_handler(event: dict[str, Any], context: Any) -> None:
            remaining.append(context.get_remaining_time_in_millis())
            now[0] += 2.5
            remaining.append(context.get_remaining_time_in_millis())
            now[0] += 60
            remaining.append(context.get_remaining_time_in_millis())

        handler = LambdaHandler(lambda_handler, timeout=30, clock=lambda: now[0])
        await handler(received(1))
        assert remaining == [30000, 27500, 0]

    async def test_default_timeout_is_lambdas_maximum(self) -> None:
        """Without a timeout the function has Lambda's 900 s."""
        function = Recorder()
        await LambdaHandler(function)(received(1))
        assert 899_000 < function.contexts[0].get_remaining_time_in_millis() <= 900_000


def item_failures(*ids: Any) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


class TestResponse:
    """read_lambda_response: Lambda's ReportBatchItemFailures rules."""

    @pytest.mark.parametrize(
        "response",
        [
            None,
            {},
            {"batchItemFailures": []},
            {"batchItemFailures": None},
            {"statusCode": 200},
            "done",
            b'{"batchItemFailures": []}',
        ],
    )
    def test_complete_success(self, response: Any) -> None:
        """Empty or null failures, an empty or null response, other values: all succeeded."""
        assert read_lambda_response(response, received(2)) == BatchResult.all_ok()

    def test_listed_items_fail(self) -> None:
        """Each itemIdentifier names a failed message; duplicates are harmless."""
        messages = received(3)
        ids = [messages[0].message_id, messages[2].message_id, messages[0].message_id]
        result = read_lambda_response(item_failures(*ids), messages)
        assert result.failed == {messages[0].message_id, messages[2].message_id}

    def test_json_equivalents_are_honored(self) -> None:
        """The response crosses JSON as on Lambda: tuples are lists, bytes are parsed."""
        messages = received(2)
        as_tuple = {"batchItemFailures": ({"itemIdentifier": messages[1].message_id},)}
        as_bytes = json.dumps(item_failures(messages[0].message_id)).encode()
        assert read_lambda_response(as_tuple, messages).failed == {messages[1].message_id}
        assert read_lambda_response(as_bytes, messages).failed == {messages[0].message_id}
        with_decimal = {**item_failures(messages[0].message_id), "took": Decimal("1.5")}
        assert read_lambda_response(with_decimal, messages).failed == {messages[0].message_id}

    @pytest.mark.parametrize(
        ("response", "match"),
        [
            (item_failures(""), "itemIdentifier"),
            (item_failures(None), "itemIdentifier"),
            (item_failures(42), "itemIdentifier"),
            ({"batchItemFailures": [{"itemIdentifer": "typo"}]}, "itemIdentifier"),
            ({"batchItemFailures": ["an-id"]}, "itemIdentifier"),
            (item_failures("not-in-this-batch"), "'not-in-this-batch'"),
            ({"batchItemFailures": "an-id"}, "must be a list"),
            ({"batchItemFailures": [], "when": object()}, "not valid JSON"),
            (b"not json", "not valid JSON"),
        ],
    )
    def test_complete_failure(self, response: Any, match: str) -> None:
        """A bad itemIdentifier, an unknown id or a response that is not JSON fail the batch."""
        with pytest.raises(ValueError, match=match):
            read_lambda_response(response, received(2))

    async def test_handler_raises_for_an_unknown_id(self) -> None:
        """Through LambdaHandler, an unknown itemIdentifier fails the whole batch."""
        handler = LambdaHandler(Recorder(item_failures("someone-else")))
        with pytest.raises(ValueError, match="someone-else"):
            await handler(received(2))


class TestBatchResult:
    """The batch contract LambdaHandler returns: BatchResult and normalize_batch_result."""

    def test_fields_and_all_ok(self) -> None:
        """failed becomes a frozenset; retry_delays defaults to empty; all_ok fails nothing."""
        result = BatchResult(failed=["a", "b", "a"], retry_delays={"a": 5})
        assert result.failed == frozenset({"a", "b"})
        assert dict(result.retry_delays) == {"a": 5}
        assert BatchResult.all_ok() == BatchResult(failed=())
        assert BatchResult.all_ok().retry_delays == {}
        assert repr(result) == "BatchResult(failed=['a', 'b'], retry_delays={'a': 5})"

    def test_is_frozen_and_keyword_only(self) -> None:
        """Fields cannot be reassigned, the delays cannot be mutated, arguments are named."""
        result = BatchResult(failed=["a"], retry_delays={"a": 1})
        with pytest.raises(AttributeError):
            result.failed = frozenset()  # type: ignore[misc]
        with pytest.raises(TypeError):
            result.retry_delays["a"] = 2  # type: ignore[index]
        with pytest.raises(TypeError):
            BatchResult(["a"])  # type: ignore[call-arg]

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"failed": "abc"}, TypeError, "iterable of message ids"),
            ({"failed": [1]}, TypeError, "message ids are str"),
            ({"failed": ["a"], "retry_delays": {"b": 1}}, ValueError, "'b' is not in failed"),
            ({"failed": ["a"], "retry_delays": {"a": -1}}, ValueError, "between 0 and 43200"),
            ({"failed": ["a"], "retry_delays": {"a": "1"}}, TypeError, "must be seconds"),
        ],
    )
    def test_validation(
        self, kwargs: Mapping[str, Any], error: type[Exception], match: str
    ) -> None:
        """A lone string, non-str ids, and delays that are unknown, out of range or not numbers."""
        with pytest.raises(error, match=match):
            BatchResult(**kwargs)

    def test_normalize_accepted_returns(self) -> None:
        """None, an iterable of ids (any kind), or a BatchResult."""
        messages = received(3)
        ids = [m.message_id for m in messages]
        assert normalize_batch_result(None, messages) == BatchResult.all_ok()
        assert normalize_batch_result([], messages) == BatchResult.all_ok()
        assert normalize_batch_result(iter(ids[:2]), messages).failed == set(ids[:2])
        given = BatchResult(failed=[ids[2]], retry_delays={ids[2]: 10})
        assert normalize_batch_result(given, messages) is given

    def test_normalize_names_an_unknown_id(self) -> None:
        """An id that is not in the batch is a ValueError naming it (also inside a BatchResult)."""
        messages = received(2)
        with pytest.raises(ValueError, match="'nope'"):
            normalize_batch_result([messages[0].message_id, "nope"], messages)
        with pytest.raises(ValueError, match="'other'"):
            normalize_batch_result(BatchResult(failed=["other"]), messages)

    @pytest.mark.parametrize("result", ["an-id", 3, True, {"batchItemFailures": []}])
    def test_normalize_rejects_other_types(self, result: object) -> None:
        """A lone string, a number or a mapping is a TypeError; a mapping hints at LambdaHandler."""
        with pytest.raises(
            TypeError, match="LambdaHandler" if isinstance(result, dict) else "None"
        ):
            normalize_batch_result(result, received(1))
