"""outcome_of: the one mapping from what a handler raised to its outcome, shared by the
per-message and the batch handling."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sqs_consumer import Discard, Message, Retry
from sqs_consumer._pipeline.handling import BatchHandling, Handling
from sqs_consumer._pipeline.outcome import DISCARDED, Fail, Outcome, outcome_of

pytestmark = pytest.mark.anyio


def _message() -> Message:
    return Message.from_sqs(
        {"MessageId": "m1", "ReceiptHandle": "r1", "Body": "x", "Attributes": {}},
        queue_url="memory://q",
    )


def test_signals_and_errors_map_to_their_outcomes() -> None:
    retry, error = Retry(delay=7), KeyError("order")
    assert outcome_of(retry, None) == Fail(retry, delay=7)
    assert outcome_of(Retry(), None).delay is None  # type: ignore[union-attr]
    assert outcome_of(Discard(), None) is DISCARDED
    assert outcome_of(error, None) == Fail(error)


async def test_an_interrupt_is_reported_and_hands_the_message_back() -> None:
    told: list[BaseException] = []
    interrupt = KeyboardInterrupt()
    assert outcome_of(interrupt, told.append) == Fail(interrupt, interrupted=True)
    assert told == [interrupt]


async def test_an_interrupt_without_a_listener_and_a_cancellation_propagate() -> None:
    told: list[BaseException] = []
    with pytest.raises(SystemExit):
        outcome_of(SystemExit(3), None)
    # trio's Cancelled cannot be made by hand; asyncio's counts as a cancellation on both.
    with pytest.raises(asyncio.CancelledError):
        outcome_of(asyncio.CancelledError(), told.append)
    assert told == []


@pytest.mark.parametrize(
    "raised", [Retry(delay=3), Discard(), ValueError("bad"), KeyboardInterrupt()]
)
async def test_per_message_and_batch_handling_agree(raised: BaseException) -> None:
    """A batch handler's exception fails every message of the batch exactly as the same
    exception fails one message: the two go through one mapping."""
    told: list[BaseException] = []

    def handler(_: Any) -> None:
        raise raised

    one = await Handling(handler, on_interrupt=told.append)(_message())
    batch, _ = await BatchHandling(handler, on_interrupt=told.append)([_message()])
    expected: Outcome = outcome_of(raised, told.append)
    assert one == batch["m1"] == expected
    assert told == ([raised] * 3 if isinstance(raised, KeyboardInterrupt) else [])
