"""Checked by mypy (make types): @sqs_handler keeps the decorated function's signature."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from sqs_consumer import Consumer, Message, sqs_handler


@sqs_handler(queue_url="memory://typing", concurrency=3)
def handle(message: Message) -> int:
    return len(message.body)


@sqs_handler(queue_url="memory://typing")
async def handle_async(message: Message) -> None:
    return None


def uses(message: Message) -> None:
    size: int = handle(message)
    pending: Coroutine[Any, Any, None] = handle_async(message)
    pending.close()
    consumer: Consumer = handle.consumer
    del size, consumer
    handle.start  # noqa: B018 - the attribute exists and is typed


def misuse(message: Message) -> None:
    handle("not a message")  # type: ignore[arg-type]
    text: str = handle(message)  # type: ignore[assignment]
    del text
