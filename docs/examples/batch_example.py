"""Batch handler: take a whole receive at once and fail only the messages that need another try.

Run it with `python docs/examples/batch_example.py`; it uses the in-memory queue
`memory://batch-example`. Every third order is refused on its first delivery: the handler reports
it in a `BatchResult` with a 1 s retry delay, so only those messages come back, in a later batch,
and succeed. The handler stops the consumer once every order is in.
"""

import json
import logging

from sqs_consumer import BatchResult, Consumer, ConsumerOptions, Message
from sqs_consumer.testing import MemorySQS

QUEUE_URL = "memory://batch-example"
COUNT = 12
saved: dict[int, int] = {}  # order -> the receive that saved it
batches: list[list[int]] = []  # the orders of each call, in call order


def bulk_insert(orders: list[dict[str, int]], receives: list[int]) -> list[int]:
    """Stands in for a database bulk insert: the indexes of the rows it refused."""
    refused = []
    for index, (order, receive) in enumerate(zip(orders, receives, strict=True)):
        if order["order"] % 3 == 2 and receive == 1:
            refused.append(index)  # e.g. a row lock: worth trying again shortly
        else:
            saved[order["order"]] = receive
    return refused


async def handle(messages: list[Message]) -> BatchResult:
    orders = [message.json() for message in messages]  # raising here fails the whole batch
    batches.append([order["order"] for order in orders])
    refused = bulk_insert(orders, [message.receive_count for message in messages])
    failed = [messages[i].message_id for i in refused]
    if len(saved) == COUNT:
        consumer.stop()  # only for this example: stop once every order is in
    return BatchResult(
        failed=failed,  # these come back; every other message of the batch is deleted
        retry_delays=dict.fromkeys(failed, 1),  # seconds, per message (else the retry policy)
    )


consumer = Consumer(
    handle,
    ConsumerOptions(queue_url=QUEUE_URL, batch=True, batch_size=5, concurrency=10),
)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sqs = MemorySQS.shared()
    for n in range(COUNT):
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({"order": n}))
    consumer.start()  # blocks until stopped and drained
    stats = consumer.stats()
    for number, orders in enumerate(batches, start=1):
        print(f"batch {number}: orders {orders}")
    retried = sorted(n for n, receive in saved.items() if receive == 2)
    print(f"saved on the second receive: orders {retried}")
    print(
        f"succeeded={stats.succeeded} failed={stats.failed} retried={stats.retried} "
        f"deleted={stats.deleted}"
    )
    assert sorted(saved) == list(range(COUNT)) and retried == [2, 5, 8, 11]
    assert (stats.succeeded, stats.failed, stats.retried, stats.deleted) == (COUNT, 4, 4, COUNT)


if __name__ == "__main__":
    main()
