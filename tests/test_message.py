"""Message: built from a raw SQS entry, typed views on its attributes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sqs_consumer import Message, MessageDecodeError

RAW = {
    "MessageId": "id-1",
    "ReceiptHandle": "rh-1",
    "MD5OfBody": "abc",
    "Body": '{"order": 7}',
    "Attributes": {
        "ApproximateReceiveCount": "3",
        "SentTimestamp": "1700000000123",
        "MessageGroupId": "g1",
    },
    "MessageAttributes": {"type": {"DataType": "String", "StringValue": "created"}},
}


def test_from_sqs_keeps_every_field() -> None:
    """from_sqs maps the boto3 dict onto the fields, message attributes as SQS gives them."""
    m = Message.from_sqs(RAW, queue_url="memory://q")
    assert (m.message_id, m.receipt_handle, m.body, m.md5_of_body) == (
        "id-1",
        "rh-1",
        RAW["Body"],
        "abc",
    )
    assert m.message_attributes["type"]["StringValue"] == "created"
    assert m.queue_url == "memory://q"


def test_typed_views() -> None:
    """receive_count is an int, sent_at an aware UTC datetime, group_id a str."""
    m = Message.from_sqs(RAW, queue_url="memory://q")
    assert m.receive_count == 3
    assert m.sent_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert m.sent_at is not None and m.sent_at.tzinfo is not None
    assert m.group_id == "g1"


def test_missing_system_attributes() -> None:
    """Without attributes: first receive, unknown send time, no group."""
    m = Message.from_sqs({"MessageId": "x", "ReceiptHandle": "r", "Body": ""}, queue_url="q")
    assert (m.receive_count, m.sent_at, m.group_id) == (1, None, None)


def test_json_decodes_and_names_the_message_on_error() -> None:
    """json() returns the decoded body; a bad body raises MessageDecodeError with the id."""
    assert Message.from_sqs(RAW, queue_url="q").json() == {"order": 7}
    bad = Message.from_sqs({**RAW, "Body": "not json"}, queue_url="q")
    with pytest.raises(MessageDecodeError, match="id-1") as info:
        bad.json()
    assert isinstance(info.value, ValueError)


def test_message_is_frozen() -> None:
    """A message cannot be modified by a handler."""
    m = Message.from_sqs(RAW, queue_url="q")
    with pytest.raises(AttributeError):
        m.body = "changed"  # type: ignore[misc]
