"""Logging: a line per failure, start and stop summaries, silence per success."""

from __future__ import annotations

import logging

import pytest

from sqs_consumer import Consumer, Message
from tests.conftest import QueueEnv
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio


async def test_one_line_per_failure_and_nothing_per_success(
    queue: QueueEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures log their message id, receive count and error; successes log nothing at INFO."""
    queue.send(["ok1", "ok2", "ok3", "bad"])
    failed_ids: list[str] = []

    async def handle(message: Message) -> None:
        if message.body == "bad":
            failed_ids.append(message.message_id)
            raise ValueError("broken payload")

    caplog.set_level(logging.INFO, logger="sqs_consumer")
    consumer = Consumer(handle, queue.options(retry=None))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().succeeded == 3 and consumer.stats().failed == 1)
    records = [r for r in caplog.records if r.name == "sqs_consumer"]
    failures = [r for r in records if r.levelno >= logging.WARNING]
    assert len(failures) == 1
    text = failures[0].getMessage()
    assert failed_ids[0] in text and "receive 1" in text and "broken payload" in text
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any(m.startswith("consuming ") for m in infos)  # start-up summary
    assert any(m.startswith("stopped: ") and "succeeded=3" in m for m in infos)  # shutdown
    assert len(infos) == 2  # nothing per success above DEBUG
