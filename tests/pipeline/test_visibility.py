"""VisibilityChanger: batched ChangeMessageVisibilityBatch for retry delays and releases."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest

from sqs_consumer import SqsError
from sqs_consumer._pipeline.deadlines import ShutdownDeadline
from sqs_consumer._pipeline.visibility import VisibilityChanger
from sqs_consumer.stats import Counters
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.helpers import wait_for
from tests.pipeline.stages import adapter, make_queue, receive

pytestmark = pytest.mark.anyio


class Changes:
    """A call hook recording every ChangeMessageVisibilityBatch's entries."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "ChangeMessageVisibilityBatch":
            with self._lock:
                self.calls.append(list(call.params["Entries"]))
        return None


def changer(memory: MemorySQS, url: str, **kwargs: Any) -> tuple[VisibilityChanger, Counters]:
    counters = Counters()
    fatal = kwargs.pop("fatal", [])
    changes = VisibilityChanger(
        adapter(memory, counters),
        url,
        interval=kwargs.pop("interval", 0.01),
        counters=counters,
        on_fatal=fatal.append,
        **kwargs,
    )
    return changes, counters


def send(memory: MemorySQS, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": str(i)} for i in range(start, min(count, start + 10))
        ]
        memory.send_message_batch(QueueUrl=url, Entries=entries)


async def test_a_release_makes_the_message_visible_again() -> None:
    """A change to 0 hands the message back now, not after its visibility timeout."""
    memory = MemorySQS()
    url = make_queue(memory)
    send(memory, url, 1)
    (message,) = receive(memory, url, VisibilityTimeout=300)
    changes, counters = changer(memory, url)
    async with anyio.create_task_group() as tg:
        await tg.start(changes.run)
        changes.change(message.receipt_handle, 0, message.message_id)
        await wait_for(lambda: memory.counts(url)["visible"] == 1)
        await changes.aclose()
    assert counters.visibility_errors == 0 and changes.unsent() == []


async def test_changes_go_out_ten_per_call_in_whole_seconds() -> None:
    """25 changes: calls of 10, 10 and 5; a fraction rounds up (never back early), and the
    value is kept within SQS's 0..43200."""
    hook = Changes()
    memory = MemorySQS(hook=hook)
    url = make_queue(memory)
    send(memory, url, 25)
    messages = receive(memory, url) + receive(memory, url) + receive(memory, url)
    assert len(messages) == 25
    changes, counters = changer(memory, url, interval=60)
    timeouts = [2.2, 1e9, -5.0, 0.0, 7.0]
    async with anyio.create_task_group() as tg:
        await tg.start(changes.run)
        for i, message in enumerate(messages):
            changes.change(message.receipt_handle, timeouts[i % 5], message.message_id)
        await wait_for(lambda: len(hook.calls) == 2)  # the full ones at once
        await changes.aclose()  # the rest without waiting for the minute
    assert [len(call) for call in hook.calls] == [10, 10, 5]
    sent = [entry["VisibilityTimeout"] for call in hook.calls for entry in call]
    assert sent[:5] == [3, 43200, 0, 0, 7]
    # 43200 s from now ends past 12 h from the receive: refused, as SQS does, and counted
    # (not retried: it cannot succeed).
    assert counters.visibility_errors == 5


def failing_entries(code: str, times: int) -> tuple[MemorySQS, list[int]]:
    """A MemorySQS whose first `times` ChangeMessageVisibilityBatch calls fail every entry
    with `code`, and the entry count of each such call."""
    calls: list[int] = []

    def hook(call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "ChangeMessageVisibilityBatch":
            return None
        calls.append(len(call.params["Entries"]))
        if len(calls) > times:
            return None
        sender = code != "InternalError"
        failed = [
            {"Id": e["Id"], "SenderFault": sender, "Code": code, "Message": code}
            for e in call.params["Entries"]
        ]
        return {"Successful": [], "Failed": failed}

    return MemorySQS(hook=hook), calls


async def test_transient_entry_failures_are_sent_again() -> None:
    """Entries failed with a server-side code go out again, and the change lands."""
    memory, calls = failing_entries("InternalError", times=1)
    url = make_queue(memory)
    send(memory, url, 2)
    messages = receive(memory, url, VisibilityTimeout=300)
    changes, counters = changer(memory, url)
    async with anyio.create_task_group() as tg:
        await tg.start(changes.run)
        for message in messages:
            changes.change(message.receipt_handle, 0, message.message_id)
        await wait_for(lambda: memory.counts(url)["visible"] == 2)
        await changes.aclose()
    assert calls == [2, 2]
    assert counters.visibility_errors == 0


async def test_a_receipt_handle_that_is_gone_is_counted_not_retried() -> None:
    """ReceiptHandleIsInvalid: retrying cannot help; counted as a visibility error."""
    memory, calls = failing_entries("ReceiptHandleIsInvalid", times=1)
    url = make_queue(memory)
    changes, counters = changer(memory, url)
    async with anyio.create_task_group() as tg:
        await tg.start(changes.run)
        changes.change("stale-handle", 0, "m")
        await wait_for(lambda: counters.visibility_errors == 1)
        await changes.aclose()
    assert calls == [1]


async def test_a_fatal_error_is_reported_and_counted() -> None:
    """A denied call stops the consumer (on_fatal gets the SqsError) and counts its entries."""

    def deny(call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "ChangeMessageVisibilityBatch":
            raise call.error("AccessDenied", "not allowed", status=403)
        return None

    memory = MemorySQS(hook=deny)
    url = make_queue(memory)
    fatal: list[BaseException] = []
    changes, counters = changer(memory, url, fatal=fatal)
    async with anyio.create_task_group() as tg:
        await tg.start(changes.run)
        changes.change("h1", 5, "m1")
        changes.change("h2", 5, "m2")
        await wait_for(lambda: counters.visibility_errors == 2)
        await changes.aclose()
    (error,) = fatal
    assert isinstance(error, SqsError) and "AccessDenied" in str(error)


async def test_a_change_cut_short_by_the_shutdown_deadline_is_named_as_unsent() -> None:
    """A hanging call at shutdown is abandoned at the deadline; unsent() names the message
    (it comes back after its visibility timeout)."""
    entered, release = threading.Event(), threading.Event()

    def hang(call: SQSCall) -> dict[str, Any] | None:
        if call.operation == "ChangeMessageVisibilityBatch":
            entered.set()
            release.wait(10)
        return None

    memory = MemorySQS(hook=hang)
    url = make_queue(memory)
    deadline = ShutdownDeadline()
    changes, _ = changer(memory, url, deadline=deadline)
    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                await tg.start(changes.run)
                changes.change("h1", 0, "m1")
                await wait_for(entered.is_set)
                deadline.within(0.05)
                await changes.aclose()
    finally:
        release.set()
    assert changes.unsent() == ["m1"]
