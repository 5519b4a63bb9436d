"""FIFO groups: one job per group, in order, and a stopped group after a failure."""

from __future__ import annotations

import anyio
import pytest

from sqs_consumer import Message
from sqs_consumer._pipeline.dispatch import PerMessage
from sqs_consumer._pipeline.fifo import FifoGroups
from sqs_consumer._pipeline.handling import Handling
from tests.pipeline.stages import receive, settling_stages

pytestmark = pytest.mark.anyio


class Recorder:
    """A handler that records the bodies it gets and fails the ones named in `fail`."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.handled: list[str] = []
        self.fail = fail

    async def one(self, message: Message) -> None:
        self.handled.append(message.body)
        if message.body in self.fail:
            raise RuntimeError(f"{message.body} failed")


def fifo_entries(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [
        {"Id": str(i), "MessageBody": body, "MessageGroupId": group}
        for i, (group, body) in enumerate(pairs)
    ]


class TestFifoGroups:
    async def test_one_job_per_group_in_order(self) -> None:
        """Two groups in one receive: two jobs, each handling its group in send order."""
        async with settling_stages(fifo=True) as kit:
            kit.memory.send_message_batch(
                QueueUrl=kit.url,
                Entries=fifo_entries(("g1", "a1"), ("g2", "b1"), ("g1", "a2"), ("g1", "a3")),
            )
            recorder = Recorder()
            dispatch = FifoGroups(kit.pipeline, PerMessage(kit.pipeline, Handling(recorder.one)))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            assert len(kit.jobs.jobs) == 2
            await kit.jobs.run_all()
        assert [b for b in recorder.handled if b.startswith("a")] == ["a1", "a2", "a3"]
        assert sorted(recorder.handled) == ["a1", "a2", "a3", "b1"]
        assert kit.counters.deleted == 4

    async def test_a_failure_releases_the_rest_of_its_group_only(self) -> None:
        """After a1 fails, a2 and a3 are handed back unhandled (they must not run before
        a1 does); the other group is not held back."""
        async with settling_stages(fifo=True) as kit:
            kit.memory.send_message_batch(
                QueueUrl=kit.url,
                Entries=fifo_entries(("g1", "a1"), ("g1", "a2"), ("g2", "b1"), ("g1", "a3")),
            )
            recorder = Recorder(fail=("a1",))
            dispatch = FifoGroups(kit.pipeline, PerMessage(kit.pipeline, Handling(recorder.one)))
            await dispatch.dispatch(receive(kit.memory, kit.url), anyio.current_time())
            await kit.jobs.run_all()
        assert sorted(recorder.handled) == ["a1", "b1"]
        assert kit.counters.released == 2 and kit.counters.deleted == 1
        assert len(kit.leases) == 0

    async def test_a_stopped_group_sends_back_what_a_later_receive_brings(self) -> None:
        """While the failed message is due back, a later receive's message of that group
        is released at once, without a job; once the failed one is back, the group runs."""
        async with settling_stages(fifo=True) as kit:
            kit.memory.send_message(QueueUrl=kit.url, MessageBody="a1", MessageGroupId="g1")
            recorder = Recorder(fail=("a1",))
            dispatch = FifoGroups(kit.pipeline, PerMessage(kit.pipeline, Handling(recorder.one)))
            (failed,) = receive(kit.memory, kit.url)
            await dispatch.dispatch([failed], anyio.current_time())
            await kit.jobs.run_all()
            # A server with weaker group locking (moto) hands out a later message of the
            # group; MemorySQS keeps the group locked, so the test makes that receive up.
            sequence = failed.attributes["SequenceNumber"]
            later = Message(
                message_id="later",
                receipt_handle="later-handle",
                body="a2",
                queue_url=kit.url,
                attributes={"MessageGroupId": "g1", "SequenceNumber": str(int(sequence) + 1)},
            )
            await dispatch.dispatch([later], anyio.current_time())
            assert kit.jobs.jobs == []  # no job: released at once
            assert kit.counters.released == 1
            recorder.fail = ()
            await dispatch.dispatch([failed], anyio.current_time())  # it is back
            await kit.jobs.run_all()
        assert recorder.handled == ["a1", "a1"]
