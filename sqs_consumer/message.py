"""`Message`: one received SQS message as a frozen value."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from .errors import MessageDecodeError

__all__ = ["Message"]


@attrs.frozen(slots=True, kw_only=True)
class Message:
    """One SQS message as received, with typed views on its system attributes.

    Build it with `Message.from_sqs(raw, queue_url=...)` from one entry of a
    ReceiveMessage response.
    """

    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, str] = attrs.field(factory=dict)
    """System attributes (ApproximateReceiveCount, SentTimestamp, MessageGroupId, ...)."""
    message_attributes: Mapping[str, Any] = attrs.field(factory=dict)
    """Message attributes exactly as SQS returns them ({"name": {"DataType": ..., ...}})."""
    md5_of_body: str = ""
    queue_url: str = ""

    @classmethod
    def from_sqs(cls, raw: Mapping[str, Any], *, queue_url: str) -> Message:
        """Build a Message from one entry of a ReceiveMessage response.

        Args:
            raw: the message dict as boto3 returns it.
            queue_url: the queue it was received from.
        """
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            attributes=raw.get("Attributes") or {},
            message_attributes=raw.get("MessageAttributes") or {},
            md5_of_body=raw.get("MD5OfBody", ""),
            queue_url=queue_url,
        )

    @property
    def receive_count(self) -> int:
        """How many times SQS has delivered this message, this delivery included (≥ 1)."""
        return int(self.attributes.get("ApproximateReceiveCount", "1"))

    @property
    def sent_at(self) -> datetime | None:
        """When the message was sent (aware, UTC), or None if SQS did not say."""
        millis = self.attributes.get("SentTimestamp")
        if millis is None:
            return None
        return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)

    @property
    def group_id(self) -> str | None:
        """The MessageGroupId (FIFO queues, or fair queuing on standard queues), else None."""
        return self.attributes.get("MessageGroupId")

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises:
            MessageDecodeError: the body is not valid JSON (the text names the message id).
        """
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise MessageDecodeError(self.message_id, str(exc)) from None
