"""Dispatch: received messages become jobs per message or per batch (FIFO groups: test_fifo)."""

from __future__ import annotations

import anyio
import pytest

from sqs_consumer import BatchResult, Message
from sqs_consumer._pipeline.dispatch import Batches, PerMessage
from sqs_consumer._pipeline.handling import BatchHandling, Handling
from tests.pipeline.stages import receive, settling_stages

pytestmark = pytest.mark.anyio


class Recorder:
    """Handlers that record the bodies they get and fail the ones named in `fail`."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.handled: list[str] = []
        self.batches: list[list[str]] = []
        self.fail = fail

    async def one(self, message: Message) -> None:
        self.handled.append(message.body)
        if message.body in self.fail:
            raise RuntimeError(f"{message.body} failed")

    async def batch(self, messages: list[Message]) -> BatchResult:
        self.batches.append([m.body for m in messages])
        return BatchResult(failed=[m.message_id for m in messages if m.body in self.fail])


class TestPerMessage:
    async def test_one_job_per_message_all_leased_before_the_first_submit(self) -> None:
        """Three messages: three jobs, and all three leases exist before the first submit
        (a submit may wait for a slot; an unleased message would get no heartbeat)."""
        async with settling_stages() as kit:
            kit.memory.send_message_batch(
                QueueUrl=kit.url,
                Entries=[{"Id": b, "MessageBody": b} for b in ("a", "b", "c")],
            )
            recorder = Recorder()
            dispatch = PerMessage(kit.pipeline, Handling(recorder.one))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            assert len(kit.jobs.jobs) == 3
            assert kit.jobs.leased_at_submit == [3, 3, 3]
            assert recorder.handled == []  # nothing runs before its job does
            await kit.jobs.run_all()
            assert sorted(recorder.handled) == ["a", "b", "c"]
            assert len(kit.leases) == 0
        assert kit.counters.succeeded == 3 and kit.counters.deleted == 3
        assert kit.counts() == {"visible": 0, "in_flight": 0, "delayed": 0}

    async def test_a_message_released_before_its_job_starts_is_not_handled(self) -> None:
        """Shutdown releases what no handler started: its job then does nothing, and the
        message is visible again at once."""
        async with settling_stages() as kit:
            kit.memory.send_message(QueueUrl=kit.url, MessageBody="early")
            recorder = Recorder()
            dispatch = PerMessage(kit.pipeline, Handling(recorder.one))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            for lease in kit.leases.take_unstarted():
                await kit.pipeline.release(lease)
            await kit.jobs.run_all()
        assert recorder.handled == []
        assert kit.counters.released == 1 and kit.counters.deleted == 0
        assert kit.counts()["visible"] == 1

    async def test_a_failure_keeps_the_message_on_the_queue(self) -> None:
        """A handler that raises: no delete, the lease is gone, the failure is counted."""
        async with settling_stages() as kit:
            kit.memory.send_message(QueueUrl=kit.url, MessageBody="bad")
            recorder = Recorder(fail=("bad",))
            dispatch = PerMessage(kit.pipeline, Handling(recorder.one))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            await kit.jobs.run_all()
            assert len(kit.leases) == 0
        assert kit.counters.failed == 1 and kit.counters.deleted == 0
        assert kit.counts()["in_flight"] == 1  # back when its visibility timeout ends


class TestBatches:
    async def test_one_job_per_receive_and_only_the_successes_deleted(self) -> None:
        """The handler gets the receive's messages in one list; the ones it names as
        failed stay on the queue, the rest are deleted."""
        async with settling_stages() as kit:
            kit.memory.send_message_batch(
                QueueUrl=kit.url,
                Entries=[{"Id": b, "MessageBody": b} for b in ("a", "b", "c", "d")],
            )
            recorder = Recorder(fail=("b",))
            dispatch = Batches(kit.pipeline, BatchHandling(recorder.batch))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            assert len(kit.jobs.jobs) == 1
            await kit.jobs.run_all()
        assert [sorted(batch) for batch in recorder.batches] == [["a", "b", "c", "d"]]
        assert kit.counters.succeeded == 3 and kit.counters.failed == 1
        assert kit.counts() == {"visible": 0, "in_flight": 1, "delayed": 0}

    async def test_released_messages_leave_the_batch(self) -> None:
        """A batch job starts only the messages still held: released ones are not in it."""
        async with settling_stages() as kit:
            kit.memory.send_message_batch(
                QueueUrl=kit.url,
                Entries=[{"Id": b, "MessageBody": b} for b in ("a", "b")],
            )
            recorder = Recorder()
            dispatch = Batches(kit.pipeline, BatchHandling(recorder.batch))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            first = next(lease for lease in kit.leases if lease.message.body == "a")
            await kit.pipeline.release(first)
            await kit.jobs.run_all()
        assert recorder.batches == [["b"]]
        assert kit.counts()["visible"] == 1  # "a", released
