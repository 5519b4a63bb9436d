"""@sqs_handler: the function stays callable and gains a consumer."""

from __future__ import annotations

import pytest

from sqs_consumer import Consumer, Message, sqs_handler
from sqs_consumer.testing import MemorySQS

MESSAGE = Message(message_id="1", receipt_handle="r", body="hello")


def test_decorated_function_is_still_the_function() -> None:
    """Calling the decorated name runs the handler; name and docstring are kept."""

    @sqs_handler(queue_url="memory://decorated", concurrency=3)
    def handle(message: Message) -> str:
        """Shout the body."""
        return message.body.upper()

    assert handle(MESSAGE) == "HELLO"
    assert handle.__name__ == "handle" and handle.__doc__ == "Shout the body."
    assert isinstance(handle.consumer, Consumer)
    assert handle.consumer.options.concurrency == 3


def test_options_are_validated_at_decoration() -> None:
    """A bad option fails where the decorator is applied."""
    with pytest.raises(ValueError, match="concurrency"):
        sqs_handler(queue_url="memory://x", concurrency=0)


def test_async_handler_consumes_through_start() -> None:
    """.start() runs the consumer of an async handler until it is stopped."""
    memory = MemorySQS()
    url = memory.create_queue(QueueName="decorated-async")["QueueUrl"]
    memory.send_message(QueueUrl=url, MessageBody="one")
    seen: list[str] = []

    @sqs_handler(queue_url=url, client=memory, wait_time_seconds=1)
    async def handle(message: Message) -> None:
        seen.append(message.body)
        handle.consumer.stop()

    handle.start()
    assert seen == ["one"]
    assert handle.consumer.stats().deleted == 1
