"""`Producer`: the blocking driver of the producer's logic (`_sending.py`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._retrying import drive
from ._encoding import AttributeValue
from ._sending import Options, ProducerClient, Sending

__all__ = ["Producer"]


class Producer:
    """Sends messages to one SQS queue, blocking until SQS has them. Safe to share by threads.

    Args:
        queue_url: the queue's URL; a ``.fifo`` URL is a FIFO queue, ``memory://NAME`` the
            shared in-memory SQS.
        client: a boto3 SQS client or compatible object; None builds one.
        endpoint_url: passed to boto3 when the client is built here.
        region_name: passed to boto3 when the client is built here.

    Raises:
        TypeError: `queue_url` is not a string (e.g. None), or `client` lacks the SQS
            methods a producer calls.
        ValueError: `queue_url` is not a queue URL (no known scheme, whitespace), or
            `endpoint_url`/`region_name` is not a non-empty string.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: ProducerClient | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self._sending = Sending(
            type(self).__name__,
            queue_url,
            client=client,
            endpoint_url=endpoint_url,
            region_name=region_name,
        )
        self.queue_url = queue_url
        self.client = self._sending.client
        self.fifo = self._sending.fifo

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.queue_url}>"

    def send(
        self,
        body: object,
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> str:
        """Send one message; return its message id.

        Args:
            body: a str (sent as is), or a dict or list (sent as compact JSON).
            delay: seconds (0 to 900) before the message can be received; not on FIFO queues.
            group_id: MessageGroupId; required on FIFO queues.
            deduplication_id: MessageDeduplicationId (FIFO only). None: SQS deduplicates by
                content if the queue is set up so, else an id unique to this call is derived.
            attributes: name → str, int, float, bytes or an SQS-shaped value (at most 10).

        Raises:
            TypeError: a body or attribute value of an unsupported type.
            ValueError: a body over 1 MiB (body plus attributes) or an invalid option; raised
                before any call.
            SendError: SQS refused the message, or kept failing for `ATTEMPTS` tries.
        """
        options = Options(delay, group_id, deduplication_id, attributes)
        return drive(self._sending.plan([body], options, single=True))[0]

    def send_many(
        self,
        bodies: Iterable[object],
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> list[str]:
        """Send messages in batches of up to 10 and 1 MiB; return their ids in input order.

        Every message is checked before the first call. Batches go one after the other, so a
        FIFO group keeps the input order. Transient failures (of a call or of single entries)
        are retried; sending stops at the first batch that does not go through.

        Args:
            bodies: str, dict or list bodies, as for `send`.
            delay: as for `send`, for every message.
            group_id: as for `send`, for every message.
            deduplication_id: FIFO only: a prefix; message i gets ``f"{prefix}-{i}"``, so the
                same call repeated within 5 minutes sends nothing twice.
            attributes: as for `send`, for every message.

        Raises:
            TypeError: a body or attribute value of an unsupported type.
            ValueError: a body over 1 MiB or an invalid option; raised before any call.
            SendError: messages SQS refused; its `message_ids` has the ids of those sent.
        """
        options = Options(delay, group_id, deduplication_id, attributes)
        return drive(self._sending.plan(bodies, options, single=False))
