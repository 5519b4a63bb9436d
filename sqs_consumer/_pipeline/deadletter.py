"""Framework-side dead-lettering: send a message that failed its last receive to the DLQ."""

from __future__ import annotations

import logging
from typing import Any

from .._sqs_rules import MAX_ATTRIBUTES
from ..errors import SqsError
from ..message import Message
from .saferepr import safe_repr
from .sqs import Sqs

__all__ = ["DeadLetters"]

log = logging.getLogger("sqs_consumer")

SOURCE_ATTRIBUTE = "sqs_consumer.source_queue"
ERROR_ATTRIBUTE = "sqs_consumer.error"
RECEIVES_ATTRIBUTE = "sqs_consumer.receive_count"
_ERROR_TEXT_LIMIT = 1024
_SENDABLE_KEYS = ("DataType", "StringValue", "BinaryValue")


class DeadLetters:
    """Move messages that failed `max_receives` times to a dead-letter queue.

    The copy keeps the body and message attributes and, room permitting (SQS allows 10
    attributes), adds `sqs_consumer.source_queue`, `sqs_consumer.error` and
    `sqs_consumer.receive_count`. The original is deleted only once the send succeeded.

    Args:
        sqs: the SQS adapter.
        queue_url: the dead-letter queue.
        source_url: the queue the messages come from.
        max_receives: receives allowed before a failure dead-letters the message.
    """

    def __init__(self, sqs: Sqs, queue_url: str, *, source_url: str, max_receives: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._source_url = source_url
        self._max_receives = max_receives

    def due(self, message: Message) -> bool:
        """True when this failure used up the message's last allowed receive."""
        return message.receive_count >= self._max_receives

    async def send(self, message: Message, error: BaseException | None) -> bool:
        """Copy the message to the DLQ; False (and a log line) if that failed."""
        try:
            await self._sqs.call("send_message", attempts=5, **self.request(message, error))
        except SqsError as exc:
            log.error("could not dead-letter message %s: %s", message.message_id, exc)
            return False
        log.warning(
            "message %s dead-lettered after %d receives: %s",
            message.message_id,
            message.receive_count,
            safe_repr(error),
        )
        return True

    def request(self, message: Message, error: BaseException | None) -> dict[str, Any]:
        """The SendMessage parameters for the copy (pure)."""
        attributes: dict[str, Any] = {
            name: {k: v for k, v in value.items() if k in _SENDABLE_KEYS}
            for name, value in message.message_attributes.items()
        }
        extra = {
            SOURCE_ATTRIBUTE: self._source_url,
            # A safe repr: the handler's exception class may have a __repr__ that raises.
            ERROR_ATTRIBUTE: safe_repr(error)[:_ERROR_TEXT_LIMIT]
            if error is not None
            else "unknown",
            RECEIVES_ATTRIBUTE: str(message.receive_count),
        }
        for name, text in extra.items():
            if len(attributes) < MAX_ATTRIBUTES and name not in attributes:
                attributes[name] = {"DataType": "String", "StringValue": text or "-"}
        request: dict[str, Any] = {"QueueUrl": self._queue_url, "MessageBody": message.body}
        if attributes:
            request["MessageAttributes"] = attributes
        if self._queue_url.endswith(".fifo"):
            request["MessageGroupId"] = message.group_id or "dead-letters"
            request["MessageDeduplicationId"] = message.message_id
        return request
