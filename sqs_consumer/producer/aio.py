"""`AsyncProducer`: the async driver of the producer's logic (`_sending.py`): each SQS call in
a worker thread, the backoff sleeps on the event loop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._retrying import drive_async
from ._encoding import AttributeValue
from ._sending import Options, ProducerClient, Sending

__all__ = ["AsyncProducer"]


class AsyncProducer:
    """`Producer` for async code: the SQS calls run in worker threads, never on the event loop.

    Args:
        queue_url: as for `Producer`.
        client: as for `Producer`.
        endpoint_url: as for `Producer`.
        region_name: as for `Producer`.

    Raises:
        TypeError, ValueError: as for `Producer`.
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
            "AsyncProducer",
            queue_url,
            client=client,
            endpoint_url=endpoint_url,
            region_name=region_name,
        )
        self.queue_url, self.client = queue_url, self._sending.client

    def __repr__(self) -> str:
        return f"<AsyncProducer {self.queue_url}>"

    async def send(
        self,
        body: object,
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> str:
        """Send one message; return its message id (as `Producer.send`).

        Takes the arguments of `Producer.send`.

        Raises:
            TypeError, ValueError, SendError: as for `Producer.send`.
        """
        options = Options(delay, group_id, deduplication_id, attributes)
        return (await drive_async(self._sending.plan([body], options, single=True)))[0]

    async def send_many(
        self,
        bodies: Iterable[object],
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> list[str]:
        """Send messages in batches, in order; return their ids in input order (as `send_many`).

        Takes the arguments of `Producer.send_many`.

        Raises:
            TypeError, ValueError, SendError: as for `Producer.send_many`.
        """
        options = Options(delay, group_id, deduplication_id, attributes)
        return await drive_async(self._sending.plan(bodies, options, single=False))
