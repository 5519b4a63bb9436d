"""Router and middleware: dispatch on the `type` attribute, discard malformed bodies, log failures.

Run it with `python docs/examples/router_example.py`; it uses the in-memory queue
`memory://router-example` and stops once every message has been dealt with.
"""

import json
import logging
from typing import Any

from sqs_consumer import Consumer, ConsumerOptions, Discard, Message, MessageDecodeError, Router
from sqs_consumer.middleware import CallNext, NonRetryable, log_failures
from sqs_consumer.testing import MemorySQS

QUEUE_URL = "memory://router-example"
MESSAGES = [  # (type attribute, body)
    ("order.created", json.dumps({"order": 1, "total": 30})),
    ("order.created", json.dumps({"order": 2, "total": 12})),
    ("order.cancelled", json.dumps({"order": 1})),
    ("order.created", "{not json"),  # NonRetryable turns the decode error into a Discard
    ("invoice.sent", json.dumps({"invoice": 9})),  # no route: the default decides
]

created: dict[int, int] = {}
cancelled: set[int] = set()


async def unknown_type(message: Message) -> None:
    # Without a default, an unrouted message fails (UnroutedMessage) and is retried, then
    # dead-lettered. This service chooses to drop the types it does not handle, on purpose.
    print(f"no route for type={router.type_of(message)!r}: discarding {message.message_id}")
    raise Discard()


router = Router(attribute="type", default=unknown_type)


@router.route("order.created")
async def order_created(message: Message) -> None:
    order = message.json()  # MessageDecodeError on a malformed body
    created[order["order"]] = order["total"]


@router.route("order.cancelled")
def order_cancelled(message: Message) -> None:  # a sync route runs in a worker thread
    cancelled.add(message.json()["order"])


class StopWhenDone:
    """A middleware of our own: count finished messages and stop the consumer after the last."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.finished = 0
        self.consumer: Consumer | None = None

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        try:
            return await call_next(message)
        finally:
            self.finished += 1
            if self.finished == self.expected and self.consumer is not None:
                self.consumer.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sqs = MemorySQS.shared()
    for kind, body in MESSAGES:
        attributes = {"type": {"DataType": "String", "StringValue": kind}}
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=body, MessageAttributes=attributes)

    done = StopWhenDone(len(MESSAGES))
    options = ConsumerOptions(
        queue_url=QUEUE_URL,
        concurrency=4,
        middleware=[done, log_failures(), NonRetryable(MessageDecodeError)],  # outermost first
    )
    consumer = done.consumer = Consumer(router, options)
    consumer.start()
    stats = consumer.stats()
    print(f"created={created} cancelled={cancelled}")
    print(f"succeeded={stats.succeeded} discarded={stats.discarded} deleted={stats.deleted}")
    assert created == {1: 30, 2: 12} and cancelled == {1}
    assert (stats.succeeded, stats.discarded, stats.deleted) == (3, 2, len(MESSAGES))


if __name__ == "__main__":
    main()
