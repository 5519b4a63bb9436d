"""Middleware: an audit middleware of our own outside the built-in `NonRetryable`, in that order.

Run it with `python docs/examples/middleware_example.py`; it uses the in-memory queue
`memory://middleware-example`. Each message goes `audit` -> `NonRetryable` -> handler and back
out. `NonRetryable` turns errors no retry can fix (a malformed body, a missing field) into
`Discard`, so `audit`, being outside it, sees a `Discard`; other errors pass through it and the
message is retried. The audit middleware stops the consumer once every message is settled for good.
"""

import json
import logging
from typing import Any

from sqs_consumer import (
    Consumer,
    ConsumerOptions,
    Discard,
    ExponentialBackoff,
    Message,
    MessageDecodeError,
)
from sqs_consumer.middleware import CallNext, NonRetryable
from sqs_consumer.testing import MemorySQS

QUEUE_URL = "memory://middleware-example"
MESSAGES = [
    json.dumps({"order": 1, "total": 30}),  # succeeds
    json.dumps({"order": 2}),  # KeyError: NonRetryable discards it
    "{not json",  # MessageDecodeError: NonRetryable discards it
    json.dumps({"order": 3, "total": 5}),  # ConnectionError once: retried, then succeeds
]
trail: list[str] = []  # what ran, in order
totals: dict[int, int] = {}


async def handle(message: Message) -> None:
    trail.append(f"    handle  {message.body}")
    order = message.json()  # MessageDecodeError on a malformed body
    if order["order"] == 3 and message.receive_count == 1:
        raise ConnectionError("database unavailable")  # not listed: NonRetryable lets it through
    totals[order["order"]] = order["total"]  # KeyError when "total" is missing


class Audit:
    """The outer middleware: records what goes in and what comes out, and stops when done."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.settled = 0  # messages that succeeded or were discarded: they will not come back
        self.consumer: Consumer | None = None

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        trail.append(f"  audit >  {message.body} (receive {message.receive_count})")
        try:
            result = await call_next(message)  # NonRetryable, then the handler
        except Discard:
            trail.append("  audit <  Discard (from NonRetryable)")
            self._settled()
            raise
        except Exception as error:
            trail.append(f"  audit <  {type(error).__name__}: the message will be retried")
            raise
        trail.append("  audit <  ok")
        self._settled()
        return result

    def _settled(self) -> None:
        self.settled += 1
        if self.settled == self.expected and self.consumer is not None:
            self.consumer.stop()  # only for this example


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sqs = MemorySQS.shared()
    for body in MESSAGES:
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=body)

    audit = Audit(len(MESSAGES))
    options = ConsumerOptions(
        queue_url=QUEUE_URL,
        concurrency=1,  # one message at a time, so the trail reads in order
        middleware=[audit, NonRetryable(MessageDecodeError, KeyError)],  # outermost first
        retry=ExponentialBackoff(initial=1, jitter=0),
    )
    consumer = audit.consumer = Consumer(handle, options)
    consumer.start()
    stats = consumer.stats()
    print("\n".join(trail))
    print(f"totals={totals}")
    print(
        f"succeeded={stats.succeeded} discarded={stats.discarded} failed={stats.failed} "
        f"deleted={stats.deleted}"
    )
    assert totals == {1: 30, 3: 5}
    assert trail.count("  audit <  Discard (from NonRetryable)") == 2
    assert (stats.succeeded, stats.discarded, stats.failed, stats.deleted) == (2, 2, 1, 4)


if __name__ == "__main__":
    main()
