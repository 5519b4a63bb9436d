"""Quickstart: consume a few messages from the in-memory queue `memory://quickstart`.

Run it with `python docs/examples/quickstart.py`; it needs no AWS account.
"""

import json

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer.testing import MemorySQS

QUEUE_URL = "memory://quickstart"  # the process-wide MemorySQS creates the queue on first use
COUNT = 5


def main() -> None:
    sqs = MemorySQS.shared()
    for n in range(COUNT):
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({"order": n}))

    handled: list[int] = []

    async def handle(message: Message) -> None:
        order = message.json()["order"]  # raise to fail the message; return to acknowledge it
        handled.append(order)
        print(f"handled order {order} (receive {message.receive_count})")
        if len(handled) == COUNT:
            consumer.stop()  # graceful: lets running handlers finish and flushes the deletes

    consumer = Consumer(handle, ConsumerOptions(queue_url=QUEUE_URL, concurrency=2))
    consumer.start()  # blocks until stopped (stop(), Ctrl-C or SIGTERM) and drained
    stats = consumer.stats()
    print(f"succeeded={stats.succeeded} deleted={stats.deleted}")
    assert sorted(handled) == list(range(COUNT)) and stats.deleted == COUNT


if __name__ == "__main__":
    main()
