"""DeadLetters: the copy of a message that failed its last receive, sent to the DLQ."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sqs_consumer import Message
from sqs_consumer._pipeline.deadletter import (
    ERROR_ATTRIBUTE,
    RECEIVES_ATTRIBUTE,
    SOURCE_ATTRIBUTE,
    DeadLetters,
)
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.pipeline.stages import adapter, make_queue, receive

pytestmark = pytest.mark.anyio

SOURCE = "memory://source"


def dead_letters(memory: MemorySQS, dlq: str, max_receives: int = 3) -> DeadLetters:
    return DeadLetters(adapter(memory), dlq, source_url=SOURCE, max_receives=max_receives)


def failed_message(receives: int = 3, **fields: Any) -> Message:
    return Message(
        message_id="m1",
        receipt_handle="r1",
        body="payload",
        queue_url=SOURCE,
        attributes={"ApproximateReceiveCount": str(receives)},
        **fields,
    )


def attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def test_due_at_the_last_allowed_receive() -> None:
    """A failure on receive max_receives (or later) is the last one; before, it is not."""
    letters = dead_letters(MemorySQS(), "memory://dlq", max_receives=3)
    assert not letters.due(failed_message(receives=2))
    assert letters.due(failed_message(receives=3))
    assert letters.due(failed_message(receives=7))


async def test_the_copy_keeps_body_and_attributes_and_says_where_and_why() -> None:
    """The DLQ gets the body, the user's attributes, and the source, error and receives."""
    memory = MemorySQS()
    dlq = make_queue(memory)
    message = failed_message(message_attributes={"tenant": attribute("acme")})
    assert await dead_letters(memory, dlq).send(message, ValueError("bad input"))
    (copy,) = receive(memory, dlq)
    assert copy.body == "payload"
    values = {name: v.get("StringValue") for name, v in copy.message_attributes.items()}
    assert values == {
        "tenant": "acme",
        SOURCE_ATTRIBUTE: SOURCE,
        ERROR_ATTRIBUTE: "ValueError('bad input')",
        RECEIVES_ATTRIBUTE: "3",
    }


def test_only_sendable_attribute_keys_are_copied() -> None:
    """What a receive returns beside the value (e.g. empty list fields) is not sent back."""
    letters = dead_letters(MemorySQS(), "memory://dlq")
    received = {"DataType": "Binary", "BinaryValue": b"\x00", "BinaryListValues": []}
    request = letters.request(failed_message(message_attributes={"blob": received}), None)
    assert request["MessageAttributes"]["blob"] == {"DataType": "Binary", "BinaryValue": b"\x00"}
    assert request["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"] == "unknown"


@pytest.mark.parametrize(("user", "added"), [(8, 2), (9, 1), (10, 0)])
def test_added_attributes_only_as_room_allows(user: int, added: int) -> None:
    """SQS allows 10 attributes: the user's are all kept, ours fill what room is left
    (the source first), so the send is never refused for too many."""
    attributes = {f"a{i}": attribute(str(i)) for i in range(user)}
    letters = dead_letters(MemorySQS(), "memory://dlq")
    sent = letters.request(failed_message(message_attributes=attributes), None)["MessageAttributes"]
    assert len(sent) == user + added
    ours = [SOURCE_ATTRIBUTE, ERROR_ATTRIBUTE, RECEIVES_ATTRIBUTE][:added]
    assert [name for name in sent if not name.startswith("a")] == ours


def test_a_long_error_is_cut() -> None:
    """The error text is bounded, so a huge exception message cannot make the send fail."""
    letters = dead_letters(MemorySQS(), "memory://dlq")
    request = letters.request(failed_message(), RuntimeError("x" * 100_000))
    assert len(request["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"]) == 1024


async def test_a_fifo_dlq_gets_a_group_and_a_deduplication_id() -> None:
    """A FIFO DLQ needs MessageGroupId: the message's own (or a fixed one), and the
    message id deduplicates a second send of the same failure."""
    memory = MemorySQS()
    dlq = make_queue(memory, fifo=True, ContentBasedDeduplication="false")
    letters = dead_letters(memory, dlq)
    grouped = Message(
        message_id="m1",
        receipt_handle="r1",
        body="payload",
        queue_url=SOURCE,
        attributes={"ApproximateReceiveCount": "3", "MessageGroupId": "g7"},
    )
    request = letters.request(grouped, None)
    assert request["MessageGroupId"] == "g7" and request["MessageDeduplicationId"] == "m1"
    assert letters.request(failed_message(), None)["MessageGroupId"] == "dead-letters"
    assert await letters.send(grouped, None)
    assert await letters.send(grouped, None)  # a repeat: deduplicated by SQS
    assert len(memory.all_messages(dlq)) == 1


async def test_a_refused_send_returns_false_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A send SQS refuses: False (the message stays in its queue) and an error log line."""

    def deny(call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "SendMessage":
            raise call.error("AccessDenied", "no sqs:SendMessage", status=403)
        return None

    memory = MemorySQS(hook=deny)
    dlq = make_queue(memory)
    assert not await dead_letters(memory, dlq).send(failed_message(), ValueError("x"))
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "could not dead-letter message m1" in record.getMessage()
    assert memory.all_messages(dlq) == []


async def test_a_transient_failure_is_retried() -> None:
    """A throttled send is tried again: the copy arrives once."""
    sends: list[int] = []

    def throttle_once(call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "SendMessage":
            sends.append(1)
            if len(sends) == 1:
                raise call.error("ThrottlingException", "slow down", status=400)
        return None

    memory = MemorySQS(hook=throttle_once)
    dlq = make_queue(memory)
    assert await dead_letters(memory, dlq).send(failed_message(), None)
    assert len(sends) == 2 and memory.all_messages(dlq) == ["payload"]
