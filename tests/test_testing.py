"""MemorySQS behaves like SQS: checked on its own, and side by side with the moto server."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given, settings
from hypothesis import strategies as st

from sqs_consumer.errors import ErrorKind, classify
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import unique_name, wait_until

# MD5OfMessageAttributes of ATTRIBUTES, as SQS (and moto) compute it.
ATTRIBUTES: dict[str, dict[str, Any]] = {
    "b": {"DataType": "String", "StringValue": "v"},
    "a": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
    "n": {"DataType": "Number", "StringValue": "1"},
}
ATTRIBUTES_MD5 = "c60e82d77d8ed1f8c0c98447825de0c3"


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sqs(clock: FakeClock) -> MemorySQS:
    return MemorySQS(clock=clock)


@pytest.fixture
def url(sqs: MemorySQS) -> str:
    return str(sqs.create_queue(QueueName="jobs")["QueueUrl"])


@pytest.fixture
def fifo(sqs: MemorySQS) -> str:
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    return str(sqs.create_queue(QueueName="jobs.fifo", Attributes=attributes)["QueueUrl"])


@pytest.fixture(params=["memory", "moto"])
def client(request: pytest.FixtureRequest) -> Any:
    """Either backend, for scenarios whose observable result must be the same on both."""
    if request.param == "memory":
        return MemorySQS()
    return request.getfixturevalue("moto_sqs")


def code_of(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    details: dict[str, str] = dict(error.value.response["Error"])  # type: ignore[arg-type]
    return details["Code"], details.get("QueryErrorCode", "")


def receive(sqs: Any, url: str, **options: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, **options).get(
        "Messages", []
    )
    return messages


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `target` in a daemon thread; its result lands in the returned list."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


class TestRoundTrip:
    def test_send_receive_delete_keeps_body_attributes_and_md5(
        self, sqs: MemorySQS, url: str
    ) -> None:
        """A sent message comes back whole, with SQS's MD5s, and is gone once deleted."""
        sent = sqs.send_message(QueueUrl=url, MessageBody="héllo", MessageAttributes=ATTRIBUTES)
        assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest()
        assert sent["MD5OfMessageAttributes"] == ATTRIBUTES_MD5

        [message] = receive(sqs, url, AttributeNames=["All"], MessageAttributeNames=["All"])

        assert message["MessageId"] == sent["MessageId"]
        assert message["Body"] == "héllo"
        assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
        assert message["MessageAttributes"] == ATTRIBUTES
        assert message["MD5OfMessageAttributes"] == ATTRIBUTES_MD5
        assert message["Attributes"]["ApproximateReceiveCount"] == "1"
        assert int(message["Attributes"]["SentTimestamp"]) <= time.time() * 1000
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        assert sqs.counts(url) == {"visible": 0, "in_flight": 0, "delayed": 0}

    def test_receive_returns_only_the_attributes_asked_for(self, sqs: MemorySQS, url: str) -> None:
        """System attributes by name, message attributes by name or `prefix.*`."""
        attributes: dict[str, dict[str, Any]] = {
            "trace.id": {"DataType": "String", "StringValue": "1"},
            "other": {"DataType": "String", "StringValue": "2"},
        }
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)

        [message] = receive(
            sqs,
            url,
            AttributeNames=["ApproximateReceiveCount"],
            MessageAttributeNames=["trace.*"],
        )

        assert message["Attributes"] == {"ApproximateReceiveCount": "1"}
        assert list(message["MessageAttributes"]) == ["trace.id"]

    def test_an_empty_receive_has_no_messages_key(self, sqs: MemorySQS, url: str) -> None:
        """Like boto3, an empty answer omits "Messages" and keeps ResponseMetadata."""
        response = sqs.receive_message(QueueUrl=url)
        assert "Messages" not in response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200

    def test_response_shapes_match_moto(self, moto_sqs: Any) -> None:
        """Send and receive answers carry the same keys and MD5s as moto's."""
        shapes = []
        for sqs in (MemorySQS(), moto_sqs):
            url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
            sent = sqs.send_message(QueueUrl=url, MessageBody="b", MessageAttributes=ATTRIBUTES)
            [got] = receive(sqs, url, AttributeNames=["All"], MessageAttributeNames=["All"])
            for unique in ("MessageId", "ReceiptHandle", "ResponseMetadata"):
                sent.pop(unique, None)
                got.pop(unique, None)
            got["Attributes"] = sorted(got["Attributes"])
            shapes.append((sent, got))
        assert shapes[0] == shapes[1]

    def test_queue_attributes(self, sqs: MemorySQS, url: str) -> None:
        """Attributes report defaults, the ARN and the message counts per state."""
        sqs.send_message(QueueUrl=url, MessageBody="a")
        sqs.send_message(QueueUrl=url, MessageBody="b", DelaySeconds=10)
        receive(sqs, url)
        sqs.send_message(QueueUrl=url, MessageBody="c")

        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

        assert attributes["QueueArn"] == "arn:aws:sqs:us-east-1:123456789012:jobs"
        assert attributes["VisibilityTimeout"] == "30"
        assert attributes["ApproximateNumberOfMessages"] == "1"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
        assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
        assert "FifoQueue" not in attributes


class TestVisibility:
    def test_an_expired_message_comes_back_with_receive_count_2(
        self, sqs: MemorySQS, url: str, clock: FakeClock
    ) -> None:
        """After its visibility timeout the same message is received again, with a new handle."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [first] = receive(sqs, url, VisibilityTimeout=5)
        clock.advance(4.9)
        assert receive(sqs, url) == []

        clock.advance(0.1)
        [second] = receive(sqs, url, AttributeNames=["ApproximateReceiveCount"])

        assert second["MessageId"] == first["MessageId"]
        assert second["ReceiptHandle"] != first["ReceiptHandle"]
        assert second["Attributes"]["ApproximateReceiveCount"] == "2"

    def test_a_long_poll_wakes_when_visibility_expires(self) -> None:
        """A blocked receive returns as the in-flight message times out, not at the end."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        receive(sqs, url, VisibilityTimeout=1)
        started = time.monotonic()

        [again] = receive(sqs, url, WaitTimeSeconds=10, AttributeNames=["All"])

        assert 0.5 < time.monotonic() - started < 5
        assert again["Attributes"]["ApproximateReceiveCount"] == "2"

    def test_visibility_0_wakes_a_blocked_long_poll(self, sqs: MemorySQS, url: str) -> None:
        """Releasing a message makes it receivable at once, also for a poll already waiting."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [message] = receive(sqs, url)
        started = time.monotonic()
        thread, result = in_thread(lambda: receive(sqs, url, WaitTimeSeconds=20))
        wait_until(lambda: sqs.waiting(url) == 1)

        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
        thread.join(5)

        assert [m["MessageId"] for m in result[0]] == [message["MessageId"]]
        assert time.monotonic() - started < 5

    def test_a_stale_handle_fails_its_batch_entry(self, sqs: MemorySQS, url: str) -> None:
        """Only the latest receipt handle is valid; the other entries still succeed."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [old] = receive(sqs, url, VisibilityTimeout=0)
        [new] = receive(sqs, url)

        response = sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "old", "ReceiptHandle": old["ReceiptHandle"]},
                {"Id": "new", "ReceiptHandle": new["ReceiptHandle"]},
            ],
        )

        assert response["Successful"] == [{"Id": "new"}]
        [failure] = response["Failed"]
        assert (failure["Id"], failure["Code"], failure["SenderFault"]) == (
            "old",
            "ReceiptHandleIsInvalid",
            True,
        )

    def test_deleting_twice_with_the_latest_handle_succeeds(self, sqs: MemorySQS, url: str) -> None:
        """Delete is idempotent, as in SQS."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [message] = receive(sqs, url)
        for _ in range(2):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def test_an_unknown_handle_raises_receipt_handle_is_invalid(
        self, sqs: MemorySQS, url: str
    ) -> None:
        """The error is the modeled botocore class, as `client.exceptions` has it."""
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as error:
            sqs.delete_message(QueueUrl=url, ReceiptHandle="AQEBnot-a-handle")
        assert code_of(error) == ("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid")

    def test_a_message_not_in_flight_cannot_change_visibility(
        self, sqs: MemorySQS, url: str, clock: FakeClock
    ) -> None:
        """Once its visibility expired, a message must be received again first."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [message] = receive(sqs, url, VisibilityTimeout=1)
        clock.advance(1)

        with pytest.raises(ClientError) as error:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=10
            )

        assert code_of(error) == ("AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight")

    def test_total_visibility_is_capped_at_12_hours_since_the_receive(
        self, sqs: MemorySQS, url: str, clock: FakeClock
    ) -> None:
        """Extending past 43,200 s after the receive is refused; up to it is fine."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [message] = receive(sqs, url, VisibilityTimeout=43200)
        clock.advance(43000)
        change = {"QueueUrl": url, "ReceiptHandle": message["ReceiptHandle"]}

        with pytest.raises(ClientError) as error:
            sqs.change_message_visibility(**change, VisibilityTimeout=201)
        assert code_of(error)[0] == "InvalidParameterValue"
        sqs.change_message_visibility(**change, VisibilityTimeout=200)

    def test_change_visibility_batch_reports_each_entry(self, sqs: MemorySQS, url: str) -> None:
        """A timeout out of range fails its own entry only."""
        for body in "ab":
            sqs.send_message(QueueUrl=url, MessageBody=body)
        first, second = receive(sqs, url, MaxNumberOfMessages=2)

        response = sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "ok", "ReceiptHandle": first["ReceiptHandle"], "VisibilityTimeout": 60},
                {"Id": "bad", "ReceiptHandle": second["ReceiptHandle"], "VisibilityTimeout": -1},
            ],
        )

        assert response["Successful"] == [{"Id": "ok"}]
        assert [(f["Id"], f["Code"]) for f in response["Failed"]] == [
            ("bad", "InvalidParameterValue")
        ]

    def test_dropping_dead_timers_keeps_the_live_ones(
        self, sqs: MemorySQS, url: str, clock: FakeClock
    ) -> None:
        """After thousands of deletes compact the timer heap, undeleted messages still expire."""
        for start in range(0, 3000, 10):
            entries = [{"Id": str(i), "MessageBody": str(start + i)} for i in range(10)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
        received = [m for _ in range(300) for m in receive(sqs, url, MaxNumberOfMessages=10)]
        for message in received[:2500]:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        sqs.send_message(QueueUrl=url, MessageBody="late", DelaySeconds=60)  # schedules: compacts

        clock.advance(30)

        again = [m["Body"] for _ in range(60) for m in receive(sqs, url, MaxNumberOfMessages=10)]
        assert sorted(again) == sorted(m["Body"] for m in received[2500:])


class TestModel:
    """Random operations on a fake clock agree with a plain model of one standard queue."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["send", "receive", "delete", "release", "extend", "advance"]),
                st.integers(0, 12),
            ),
            max_size=60,
        )
    )
    def test_operations_match_the_model(self, operations: list[tuple[str, int]]) -> None:
        """Counts, receive counts and handle validity follow SQS's rules step by step."""
        clock = FakeClock()
        sqs = MemorySQS(clock=clock)
        url = sqs.create_queue(QueueName="model")["QueueUrl"]
        # body -> [visible_at, in flight, receive count, latest handle]
        model: dict[str, list[Any]] = {}
        for step, (operation, n) in enumerate(operations):
            now = clock.now
            visible = [b for b, (at, _, _, _) in model.items() if at <= now]
            in_flight = [b for b, (at, flying, _, _) in model.items() if flying and at > now]
            if operation == "send":
                sqs.send_message(QueueUrl=url, MessageBody=str(step), DelaySeconds=n % 3)
                model[str(step)] = [now + n % 3, False, 0, None]
            elif operation == "receive":
                got = receive(
                    sqs,
                    url,
                    MaxNumberOfMessages=n % 10 + 1,
                    VisibilityTimeout=n % 4,
                    AttributeNames=["ApproximateReceiveCount"],
                )
                assert len(got) == min(n % 10 + 1, len(visible))
                for message in got:
                    entry = model[message["Body"]]
                    assert entry[0] <= now
                    assert message["Attributes"]["ApproximateReceiveCount"] == str(entry[2] + 1)
                    entry[:] = [now + n % 4, True, entry[2] + 1, message["ReceiptHandle"]]
            elif operation in ("delete", "release", "extend") and in_flight:
                body = in_flight[n % len(in_flight)]
                change = {"QueueUrl": url, "ReceiptHandle": model[body][3]}
                if operation == "delete":
                    sqs.delete_message(**change)
                    del model[body]
                else:
                    seconds = 0 if operation == "release" else n
                    sqs.change_message_visibility(**change, VisibilityTimeout=seconds)
                    model[body][0] = now + seconds
            elif operation == "advance":
                clock.advance(n / 4)
            now = clock.now
            expected = {
                "visible": sum(at <= now for at, _, _, _ in model.values()),
                "in_flight": sum(flying and at > now for at, flying, _, _ in model.values()),
                "delayed": sum(not flying and at > now for at, flying, _, _ in model.values()),
            }
            assert sqs.counts(url) == expected


class TestValidation:
    @pytest.mark.parametrize(
        ("entries", "code"),
        [
            ([], "EmptyBatchRequest"),
            (
                [{"Id": str(i), "MessageBody": "x"} for i in range(11)],
                "TooManyEntriesInBatchRequest",
            ),
            ([{"Id": "a", "MessageBody": "x"}] * 2, "BatchEntryIdsNotDistinct"),
            ([{"Id": "a b", "MessageBody": "x"}], "InvalidBatchEntryId"),
        ],
    )
    def test_a_bad_batch_fails_whole_with_the_same_codes_as_moto(
        self, moto_sqs: Any, entries: list[dict[str, str]], code: str
    ) -> None:
        """Batch shape errors fail the call, with SQS's legacy Code and botocore's class."""
        for sqs in (MemorySQS(), moto_sqs):
            url = sqs.create_queue(QueueName=unique_name())["QueueUrl"]
            with pytest.raises(getattr(sqs.exceptions, code)) as error:
                sqs.send_message_batch(QueueUrl=url, Entries=entries)
            assert code_of(error) == (f"AWS.SimpleQueueService.{code}", code)

    def test_delete_and_visibility_batches_check_their_shape_too(
        self, sqs: MemorySQS, url: str
    ) -> None:
        """Every batch call refuses an empty batch."""
        for call in (sqs.delete_message_batch, sqs.change_message_visibility_batch):
            with pytest.raises(sqs.exceptions.EmptyBatchRequest):
                call(QueueUrl=url, Entries=[])

    def test_a_bad_entry_fails_alone(self, sqs: MemorySQS, url: str) -> None:
        """Per-entry problems land in Failed while the rest are sent."""
        response = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": "ok", "MessageBody": "x"},
                {"Id": "late", "MessageBody": "x", "DelaySeconds": 901},
                {"Id": "empty", "MessageBody": ""},
            ],
        )
        assert [s["Id"] for s in response["Successful"]] == ["ok"]
        assert [(f["Id"], f["Code"]) for f in response["Failed"]] == [
            ("late", "InvalidParameterValue"),
            ("empty", "MissingParameter"),
        ]
        assert sqs.all_messages(url) == ["x"]

    @pytest.mark.parametrize(
        "options",
        [{"MaxNumberOfMessages": 0}, {"MaxNumberOfMessages": 11}, {"WaitTimeSeconds": 21}],
    )
    def test_receive_limits(self, sqs: MemorySQS, url: str, options: dict[str, Any]) -> None:
        """Out-of-range receive options are InvalidParameterValue."""
        with pytest.raises(ClientError) as error:
            sqs.receive_message(QueueUrl=url, **options)
        assert code_of(error)[0] == "InvalidParameterValue"

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ("x" * (1024 * 1024 + 1), "InvalidParameterValue"),
            ("bell \x07", "InvalidMessageContents"),
            ("", "MissingParameter"),
        ],
    )
    def test_bad_bodies_are_refused(self, sqs: MemorySQS, url: str, body: str, code: str) -> None:
        """Bodies over 1 MiB, with characters outside XML's set, or empty are refused."""
        with pytest.raises(ClientError) as error:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        assert code_of(error)[0] == code

    def test_a_body_of_exactly_1_mib_is_accepted(self, sqs: MemorySQS, url: str) -> None:
        """The limit is inclusive."""
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1024 * 1024)

    def test_missing_queue_code_matches_moto(self, moto_sqs: Any) -> None:
        """Both answer a missing queue with the legacy code and the QueueDoesNotExist class."""
        for sqs in (MemorySQS(), moto_sqs):
            with pytest.raises(sqs.exceptions.QueueDoesNotExist) as error:
                sqs.get_queue_url(QueueName=unique_name())
            assert code_of(error) == (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            )

    @pytest.mark.parametrize(
        ("method", "arguments"),
        [
            ("send_message", {"MessageBody": "x"}),
            ("send_message_batch", {"Entries": [{"Id": "1", "MessageBody": "x"}]}),
            ("receive_message", {}),
            ("delete_message", {"ReceiptHandle": "h"}),
            ("delete_message_batch", {"Entries": [{"Id": "1", "ReceiptHandle": "h"}]}),
            ("change_message_visibility", {"ReceiptHandle": "h", "VisibilityTimeout": 1}),
            ("get_queue_attributes", {"AttributeNames": ["All"]}),
            ("set_queue_attributes", {"Attributes": {"DelaySeconds": "1"}}),
            ("purge_queue", {}),
            ("delete_queue", {}),
        ],
    )
    def test_every_queue_call_reports_a_missing_queue(
        self, sqs: MemorySQS, method: str, arguments: dict[str, Any]
    ) -> None:
        """Any call with an unknown QueueUrl raises QueueDoesNotExist."""
        with pytest.raises(ClientError) as error:
            getattr(sqs, method)(QueueUrl="memory://nope", **arguments)
        assert code_of(error)[0] == "AWS.SimpleQueueService.NonExistentQueue"

    def test_fifo_names_and_the_fifo_attribute_go_together(self, sqs: MemorySQS) -> None:
        """A .fifo name needs FifoQueue=true, and FifoQueue=true needs a .fifo name."""
        for name, attributes in [("a.fifo", {}), ("a", {"FifoQueue": "true"})]:
            with pytest.raises(ClientError) as error:
                sqs.create_queue(QueueName=name, Attributes=attributes)
            assert code_of(error)[0] == "InvalidParameterValue"

    def test_create_queue_is_idempotent_only_with_the_same_attributes(self, sqs: MemorySQS) -> None:
        """The same attributes return the URL; different ones are QueueNameExists."""
        first = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "5"})
        again = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "5"})
        assert first["QueueUrl"] == again["QueueUrl"] == "memory://q"
        with pytest.raises(sqs.exceptions.QueueNameExists):
            sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "6"})

    def test_unknown_or_invalid_attributes_are_refused(self, sqs: MemorySQS, url: str) -> None:
        """Unknown names are InvalidAttributeName, bad values InvalidAttributeValue."""
        with pytest.raises(sqs.exceptions.InvalidAttributeName):
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Colour": "red"})
        with pytest.raises(sqs.exceptions.InvalidAttributeName):
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"ContentBasedDeduplication": "1"})
        with pytest.raises(sqs.exceptions.InvalidAttributeValue):
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "43201"})
        with pytest.raises(sqs.exceptions.InvalidAttributeName):
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Colour"])


class TestDelays:
    def test_a_delayed_message_stays_hidden_until_its_delay_ends(
        self, sqs: MemorySQS, url: str, clock: FakeClock
    ) -> None:
        """Per-message DelaySeconds hides a message, counted as delayed."""
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=5)
        assert receive(sqs, url) == []
        assert sqs.counts(url) == {"visible": 0, "in_flight": 0, "delayed": 1}

        clock.advance(5)

        assert [m["Body"] for m in receive(sqs, url)] == ["later"]

    def test_the_queue_delay_applies_when_the_message_has_none(
        self, sqs: MemorySQS, clock: FakeClock
    ) -> None:
        """The queue's DelaySeconds is the default; an explicit 0 overrides it."""
        url = sqs.create_queue(QueueName="slow", Attributes={"DelaySeconds": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="slow")
        sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
        assert [
            m["Body"] for m in receive(sqs, url, MaxNumberOfMessages=10, VisibilityTimeout=900)
        ] == ["now"]
        clock.advance(60)
        assert [m["Body"] for m in receive(sqs, url)] == ["slow"]

    def test_a_long_poll_wakes_when_a_delay_ends(self) -> None:
        """The wait is computed from the earliest delay, so it returns about then."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=1)
        started = time.monotonic()
        assert len(receive(sqs, url, WaitTimeSeconds=10)) == 1
        assert 0.5 < time.monotonic() - started < 5


class TestLongPolling:
    def test_a_send_wakes_a_long_poll_long_before_its_wait_time(
        self, sqs: MemorySQS, url: str
    ) -> None:
        """A message sent from another thread ends a 20-second poll at once."""
        started = time.monotonic()
        thread, result = in_thread(lambda: receive(sqs, url, WaitTimeSeconds=20))
        wait_until(lambda: sqs.waiting(url) == 1)

        sqs.send_message(QueueUrl=url, MessageBody="wake")
        thread.join(5)

        assert [m["Body"] for m in result[0]] == ["wake"]
        assert time.monotonic() - started < 5

    def test_an_empty_long_poll_returns_after_its_wait_time(self) -> None:
        """With nothing to receive, the poll ends after WaitTimeSeconds (real time)."""
        sqs = MemorySQS(clock=FakeClock())
        url = sqs.create_queue(QueueName="q", Attributes={"ReceiveMessageWaitTimeSeconds": "1"})
        started = time.monotonic()
        assert receive(sqs, url["QueueUrl"]) == []
        assert 0.9 < time.monotonic() - started < 5

    def test_deleting_the_queue_ends_a_long_poll(self, sqs: MemorySQS, url: str) -> None:
        """Pollers of a deleted queue return empty instead of waiting on."""
        thread, result = in_thread(lambda: receive(sqs, url, WaitTimeSeconds=20))
        wait_until(lambda: sqs.waiting(url) == 1)
        sqs.delete_queue(QueueUrl=url)
        thread.join(5)
        assert result == [[]]


class TestFifo:
    def send(self, sqs: Any, url: str, *bodies: str) -> None:
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=body[0])

    def bodies(self, sqs: Any, url: str, **options: Any) -> list[str]:
        return [m["Body"] for m in receive(sqs, url, **options)]

    def test_a_group_is_locked_while_any_of_it_is_in_flight(
        self, sqs: MemorySQS, fifo: str
    ) -> None:
        """Messages of a group come in order; the next waits until all received are deleted."""
        self.send(sqs, fifo, "a1", "a2", "a3", "b1")
        first = receive(sqs, fifo, MaxNumberOfMessages=2)
        assert [m["Body"] for m in first] == ["a1", "a2"]
        assert self.bodies(sqs, fifo, MaxNumberOfMessages=10) == ["b1"]

        sqs.delete_message(QueueUrl=fifo, ReceiptHandle=first[0]["ReceiptHandle"])
        assert self.bodies(sqs, fifo) == []
        sqs.delete_message(QueueUrl=fifo, ReceiptHandle=first[1]["ReceiptHandle"])
        assert self.bodies(sqs, fifo, MaxNumberOfMessages=10) == ["a3"]

    def test_released_messages_come_back_in_order(self, sqs: MemorySQS, fifo: str) -> None:
        """Releasing one of two in-flight messages keeps the group locked; order holds."""
        self.send(sqs, fifo, "a1", "a2", "a3")
        first, second = receive(sqs, fifo, MaxNumberOfMessages=2)
        for message in (second, first):
            sqs.change_message_visibility(
                QueueUrl=fifo, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
            expected = [] if message is second else ["a1", "a2", "a3"]
            assert self.bodies(sqs, fifo, MaxNumberOfMessages=10, VisibilityTimeout=0) == expected

    def test_ordering_and_locking_match_moto(self, client: Any) -> None:
        """Same scenario, same deliveries, on MemorySQS and on moto."""
        url = client.create_queue(
            QueueName=unique_name() + ".fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        self.send(client, url, "a1", "a2", "b1")

        first = receive(client, url, MaxNumberOfMessages=10)
        assert [m["Body"] for m in first] == ["a1", "a2", "b1"]
        assert self.bodies(client, url, MaxNumberOfMessages=10) == []

    def test_duplicates_within_5_minutes_are_dropped(
        self, sqs: MemorySQS, fifo: str, clock: FakeClock
    ) -> None:
        """A duplicate returns the original's ids and is not queued again, until the window ends."""
        first = sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")
        again = sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")
        assert (again["MessageId"], again["SequenceNumber"]) == (
            first["MessageId"],
            first["SequenceNumber"],
        )
        assert sqs.all_messages(fifo) == ["x"]

        clock.advance(300)
        later = sqs.send_message(QueueUrl=fifo, MessageBody="x", MessageGroupId="g")

        assert later["MessageId"] != first["MessageId"]
        assert int(later["SequenceNumber"]) > int(first["SequenceNumber"])
        assert sqs.all_messages(fifo) == ["x", "x"]

    def test_explicit_deduplication_ids(self, sqs: MemorySQS, fifo: str) -> None:
        """Different bodies with one MessageDeduplicationId are one message."""
        for body in ("one", "two"):
            sqs.send_message(
                QueueUrl=fifo, MessageBody=body, MessageGroupId="g", MessageDeduplicationId="d"
            )
        [message] = receive(sqs, fifo, MaxNumberOfMessages=10, AttributeNames=["All"])
        assert message["Body"] == "one"
        assert message["Attributes"]["MessageDeduplicationId"] == "d"
        assert message["Attributes"]["MessageGroupId"] == "g"

    @pytest.mark.parametrize(
        ("options", "code"),
        [
            ({}, "MissingParameter"),
            ({"MessageGroupId": "g", "DelaySeconds": 1}, "InvalidParameterValue"),
        ],
    )
    def test_fifo_send_rules(
        self, sqs: MemorySQS, fifo: str, options: dict[str, Any], code: str
    ) -> None:
        """FIFO sends need a group id and take no per-message delay."""
        with pytest.raises(ClientError) as error:
            sqs.send_message(QueueUrl=fifo, MessageBody="x", **options)
        assert code_of(error)[0] == code

    def test_without_content_deduplication_an_id_is_required(self, sqs: MemorySQS) -> None:
        """A FIFO queue without ContentBasedDeduplication needs MessageDeduplicationId."""
        url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        with pytest.raises(ClientError) as error:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
        assert code_of(error)[0] == "InvalidParameterValue"

    def test_a_retried_receive_attempt_returns_the_same_messages(
        self, sqs: MemorySQS, fifo: str
    ) -> None:
        """ReceiveRequestAttemptId replays the same messages and handles while in flight."""
        self.send(sqs, fifo, "a1", "b1")
        first = receive(sqs, fifo, ReceiveRequestAttemptId="try-1")
        retry = receive(sqs, fifo, ReceiveRequestAttemptId="try-1")
        assert retry == first
        assert self.bodies(sqs, fifo, ReceiveRequestAttemptId="try-2") == ["b1"]

    def test_standard_queues_keep_a_group_id_as_a_label(self, sqs: MemorySQS, url: str) -> None:
        """Fair queuing: MessageGroupId is accepted and reported, but orders nothing."""
        sqs.send_message(QueueUrl=url, MessageBody="1", MessageGroupId="tenant")
        sqs.send_message(QueueUrl=url, MessageBody="2", MessageGroupId="tenant")
        messages = receive(sqs, url, MaxNumberOfMessages=10, AttributeNames=["MessageGroupId"])
        assert [m["Attributes"] for m in messages] == [{"MessageGroupId": "tenant"}] * 2


class TestRedrive:
    def test_the_message_moves_to_the_dlq_after_max_receive_count(self, client: Any) -> None:
        """The (n+1)-th receive moves the message, with its id, body and attributes."""
        dlq = client.create_queue(QueueName=unique_name())["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": 2}
        url = client.create_queue(
            QueueName=unique_name(), Attributes={"RedrivePolicy": json.dumps(policy)}
        )["QueueUrl"]
        sent = client.send_message(QueueUrl=url, MessageBody="poison", MessageAttributes=ATTRIBUTES)

        for _ in range(2):
            assert len(receive(client, url, VisibilityTimeout=0)) == 1
        assert receive(client, url, VisibilityTimeout=0) == []

        [moved] = receive(client, dlq, MessageAttributeNames=["All"])
        assert (moved["MessageId"], moved["Body"]) == (sent["MessageId"], "poison")
        assert moved["MessageAttributes"] == ATTRIBUTES

    def test_a_fifo_dlq_keeps_the_group(self, sqs: MemorySQS) -> None:
        """Moved FIFO messages keep their MessageGroupId, so the DLQ stays ordered."""
        fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        sqs.create_queue(QueueName="dead.fifo", Attributes=fifo)
        policy = '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dead.fifo", '
        policy += '"maxReceiveCount": "1"}'
        url = sqs.create_queue(QueueName="q.fifo", Attributes=fifo | {"RedrivePolicy": policy})
        sqs.send_message(QueueUrl=url["QueueUrl"], MessageBody="x", MessageGroupId="g")
        receive(sqs, url["QueueUrl"], VisibilityTimeout=0)
        assert receive(sqs, url["QueueUrl"]) == []

        [moved] = receive(sqs, "memory://dead.fifo", AttributeNames=["All"])

        assert moved["Attributes"]["MessageGroupId"] == "g"
        assert moved["Attributes"]["DeadLetterQueueSourceArn"].endswith(":q.fifo")

    def test_a_missing_dead_letter_target_is_refused(self, sqs: MemorySQS, url: str) -> None:
        """A RedrivePolicy must name an existing queue of the same type."""
        policy = json.dumps(
            {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:x", "maxReceiveCount": 1}
        )
        with pytest.raises(ClientError) as error:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
        assert code_of(error)[0] == "InvalidParameterValue"


class TestFaults:
    def test_the_rate_is_roughly_honoured_and_faults_change_nothing(
        self, sqs: MemorySQS, url: str
    ) -> None:
        """About `rate` of the calls fail, and a failed send leaves no message behind."""
        sqs.inject_faults(0.3, kinds=["throttling"], seed=7)
        sent = 0
        for i in range(1000):
            try:
                sqs.send_message(QueueUrl=url, MessageBody=str(i))
                sent += 1
            except ClientError:
                pass
        assert 230 < sqs.faults_injected < 370
        assert sqs.faults_injected + sent == 1000
        assert len(sqs.all_messages(url)) == sent

    @pytest.mark.parametrize(
        ("kind", "error_type", "status"),
        [
            ("throttling", ClientError, 400),
            ("server", ClientError, 500),
            ("connection", EndpointConnectionError, None),
        ],
    )
    def test_each_kind_raises_what_boto3_would_and_is_transient(
        self, sqs: MemorySQS, url: str, kind: str, error_type: type[Exception], status: int | None
    ) -> None:
        """Throttling, 5xx and connection faults look like botocore's, and classify as transient."""
        sqs.inject_faults(1.0, kinds=[kind])
        with pytest.raises(error_type) as error:
            sqs.receive_message(QueueUrl=url)
        if status is not None:
            assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == status  # type: ignore[attr-defined]
        assert classify(error.value) is ErrorKind.TRANSIENT

    def test_only_the_listed_operations_fail_until_cleared(self, sqs: MemorySQS, url: str) -> None:
        """`operations` limits the faults; clear_faults stops them."""
        sqs.inject_faults(1.0, operations=["receive_message"])
        sqs.send_message(QueueUrl=url, MessageBody="x")
        with pytest.raises((ClientError, EndpointConnectionError)):
            sqs.receive_message(QueueUrl=url)
        sqs.clear_faults()
        assert len(receive(sqs, url)) == 1
        assert sqs.faults_injected == 1

    @pytest.mark.parametrize(
        "options",
        [{"rate": 1.5}, {"rate": 0.1, "kinds": ["gremlins"]}, {"rate": 0.1, "operations": ["x"]}],
    )
    def test_bad_fault_settings_are_refused(self, sqs: MemorySQS, options: dict[str, Any]) -> None:
        """A rate outside 0..1 or an unknown name is a ValueError, not a silent no-op."""
        with pytest.raises(ValueError, match="inject_faults"):
            sqs.inject_faults(**options)


class TestHelpers:
    def test_wait_until_empty_returns_once_another_thread_deletes(
        self, sqs: MemorySQS, url: str
    ) -> None:
        """It blocks on the queue's condition and wakes on the last delete."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        [message] = receive(sqs, url)
        thread, result = in_thread(lambda: sqs.wait_until_empty(url, timeout=10))
        wait_until(lambda: sqs.waiting(url) == 1)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        thread.join(5)
        assert result == [None]

    def test_wait_until_empty_times_out_with_the_counts(self, sqs: MemorySQS, url: str) -> None:
        """The TimeoutError says what is left."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        with pytest.raises(TimeoutError, match="visible=1 in_flight=0 delayed=0"):
            sqs.wait_until_empty(url, timeout=0.05)

    def test_all_messages_lists_every_state(
        self, sqs: MemorySQS, url: str, clock: FakeClock
    ) -> None:
        """Visible, in-flight and delayed bodies all appear, in send order."""
        for body in ("a", "b"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.send_message(QueueUrl=url, MessageBody="c", DelaySeconds=9)
        receive(sqs, url)
        assert sqs.all_messages(url) == ["a", "b", "c"]
        assert sqs.counts(url) == {"visible": 1, "in_flight": 1, "delayed": 1}

    def test_purge_and_list_queues(self, sqs: MemorySQS, url: str) -> None:
        """Purge empties a queue; list_queues filters by prefix."""
        sqs.send_message(QueueUrl=url, MessageBody="x")
        sqs.purge_queue(QueueUrl=url)
        assert sqs.all_messages(url) == []
        sqs.create_queue(QueueName="other")
        assert sqs.list_queues(QueueNamePrefix="jo")["QueueUrls"] == [url]
        assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix="zz")

    def test_shared_is_one_auto_creating_instance(self) -> None:
        """shared() hands out one instance that creates memory:// queues on first use."""
        shared = MemorySQS.shared()
        assert MemorySQS.shared() is shared
        name = unique_name()
        shared.send_message(QueueUrl=f"memory://{name}", MessageBody="x")
        assert shared.get_queue_url(QueueName=name)["QueueUrl"] == f"memory://{name}"

    def test_latency_is_added_to_each_call(self) -> None:
        """`latency` seconds pass before a call answers."""
        sqs = MemorySQS(latency=0.05)
        started = time.monotonic()
        sqs.list_queues()
        assert time.monotonic() - started >= 0.05

    def test_it_looks_like_a_boto3_client(self, sqs: MemorySQS) -> None:
        """meta, exceptions and close() exist as on a boto3 client."""
        assert (sqs.meta.region_name, sqs.meta.endpoint_url) == ("us-east-1", "memory://")
        assert issubclass(sqs.exceptions.QueueDoesNotExist, ClientError)
        sqs.close()


class TestConcurrency:
    def test_each_message_is_handled_exactly_once_across_threads(self) -> None:
        """4 receivers and 2 senders share one queue; every message is deleted exactly once."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="busy")["QueueUrl"]
        total, lock, done = 2000, threading.Lock(), threading.Event()
        seen: list[int] = []

        def send(start: int) -> None:
            for i in range(start, total, 20):
                entries = [{"Id": str(j), "MessageBody": str(i + j * 2)} for j in range(10)]
                sqs.send_message_batch(QueueUrl=url, Entries=entries)

        def work() -> None:
            while not done.is_set():
                messages = receive(sqs, url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                if not messages:
                    continue
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ]
                assert sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Failed"] == []
                with lock:
                    seen.extend(int(m["Body"]) for m in messages)
                    if len(seen) >= total:
                        done.set()

        threads = [threading.Thread(target=work) for _ in range(4)]
        threads += [threading.Thread(target=send, args=(start,)) for start in (0, 1)]
        for thread in threads:
            thread.start()
        assert done.wait(20)
        for thread in threads:
            thread.join(5)
        assert sorted(seen) == list(range(total))
        sqs.wait_until_empty(url, timeout=1)


class TestHook:
    """The call hook: sees every client call; may answer, raise, delay or let it through."""

    def test_it_sees_each_client_call_with_its_operation_and_parameters(self) -> None:
        seen: list[tuple[str, str, dict[str, Any]]] = []
        sqs = MemorySQS(hook=lambda call: seen.append((call.operation, call.method, call.params)))
        url = sqs.create_queue(QueueName="seen")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="x")
        sqs.counts(url)  # a test helper, not a client call
        assert seen == [
            ("CreateQueue", "create_queue", {"QueueName": "seen"}),
            ("SendMessage", "send_message", {"QueueUrl": url, "MessageBody": "x"}),
        ]
        assert sqs.counts(url)["visible"] == 1  # None let the call through

    def test_an_answer_replaces_the_call_and_gets_response_metadata(self, sqs: MemorySQS) -> None:
        url = sqs.create_queue(QueueName="answered")["QueueUrl"]
        sqs.hook = lambda call: {"MessageId": "fake"} if call.operation == "SendMessage" else None
        response = sqs.send_message(QueueUrl=url, MessageBody="x")
        assert response["MessageId"] == "fake"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert sqs.counts(url)["visible"] == 0  # never reached the queue
        sqs.hook = None
        sqs.send_message(QueueUrl=url, MessageBody="x")
        assert sqs.counts(url)["visible"] == 1

    def test_what_it_raises_is_what_the_caller_gets(self, sqs: MemorySQS) -> None:
        def hook(call: SQSCall) -> None:
            if call.operation == "GetQueueUrl":
                raise call.error("QueueDoesNotExist", "gone")
            if call.operation == "ListQueues":
                raise call.error("AccessDenied", status=403)
            raise EndpointConnectionError(endpoint_url="memory://")

        sqs.hook = hook
        with pytest.raises(sqs.exceptions.QueueDoesNotExist) as missing:
            sqs.get_queue_url(QueueName="jobs")
        assert classify(missing.value) is ErrorKind.FATAL
        with pytest.raises(ClientError) as denied:
            sqs.list_queues()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert denied.value.operation_name == "ListQueues"
        with pytest.raises(EndpointConnectionError):
            sqs.create_queue(QueueName="never")
        sqs.hook = None
        assert "QueueUrls" not in sqs.list_queues()  # nothing was created

    def test_proceed_returns_the_real_answer_and_may_change_parameters(
        self, sqs: MemorySQS, url: str
    ) -> None:
        received: list[str] = []

        def hook(call: SQSCall) -> dict[str, Any] | None:
            if call.operation == "SendMessageBatch":  # pass on only the first entry
                call.proceed(Entries=list(call.params["Entries"])[:1])
            elif call.operation == "ReceiveMessage":
                response = call.proceed()
                received.extend(m["Body"] for m in response.get("Messages", []))
                return response
            return None

        sqs.hook = hook
        entries = [{"Id": "1", "MessageBody": "a"}, {"Id": "2", "MessageBody": "b"}]
        sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert [entry["Id"] for entry in sent["Successful"]] == ["1"]  # one run, not two
        assert sqs.all_messages(url) == ["a"]
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        assert received == ["a"]

    def test_a_call_proceeds_at_most_once(self, sqs: MemorySQS, url: str) -> None:
        def hook(call: SQSCall) -> None:
            call.proceed()
            call.proceed()

        sqs.hook = hook
        with pytest.raises(RuntimeError, match="SendMessage already proceeded"):
            sqs.send_message(QueueUrl=url, MessageBody="x")
        sqs.hook = None
        assert sqs.all_messages(url) == ["x"]

    def test_latency_and_faults_apply_when_it_proceeds_not_to_its_answers(self) -> None:
        calls: list[str] = []
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="faulty")["QueueUrl"]
        sqs.inject_faults(1.0, kinds=["throttling"])

        def answer_all(call: SQSCall) -> dict[str, Any]:
            calls.append(call.operation)
            return {}

        sqs.hook = answer_all
        sqs.send_message(QueueUrl=url, MessageBody="x")
        assert sqs.faults_injected == 0
        sqs.hook = lambda call: None
        with pytest.raises(ClientError, match="ThrottlingException"):
            sqs.send_message(QueueUrl=url, MessageBody="x")
        assert sqs.faults_injected == 1 and calls == ["SendMessage"]

    def test_a_hook_may_block_to_delay_a_call(self, sqs: MemorySQS, url: str) -> None:
        """It runs in the calling thread, outside MemorySQS's lock: others go on meanwhile."""
        entered, release = threading.Event(), threading.Event()

        def hook(call: SQSCall) -> None:
            if call.operation == "SendMessage":
                entered.set()
                release.wait(10)

        sqs.hook = hook
        send = {"QueueUrl": url, "MessageBody": "x"}
        sender = threading.Thread(target=sqs.send_message, kwargs=send)
        sender.start()
        try:
            assert entered.wait(10)
            assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])  # not blocked
            assert sqs.all_messages(url) == []  # held back until the hook lets it go
        finally:
            release.set()
            sender.join(10)
        assert sqs.all_messages(url) == ["x"]

    def test_a_hook_that_is_not_callable_is_refused(self, sqs: MemorySQS) -> None:
        with pytest.raises(TypeError, match="hook must be None or a callable"):
            MemorySQS(hook="receive_message")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="hook must be None or a callable"):
            sqs.hook = 3  # type: ignore[assignment]


def test_the_package_exports_what_the_module_did() -> None:
    """`sqs_consumer.testing` became a package: its public names and old constants remain."""
    import sqs_consumer.testing as testing

    assert sorted(testing.__all__) == ["CallHook", "MemorySQS", "SQSCall"]
    assert (testing.URL_PREFIX, testing.REGION, testing.ACCOUNT_ID) == (
        "memory://",
        "us-east-1",
        "123456789012",
    )
    assert (testing.MAX_VISIBILITY, testing.DEDUP_WINDOW) == (43200, 300.0)
    assert testing.FAULT_KINDS == ("throttling", "server", "connection")
    assert all(not name.startswith("_") for name in testing.__all__)
