"""Leases: the in-flight registry from receive to settle (what shutdown and the heartbeat read)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import attrs
import pytest

from sqs_consumer import Message
from sqs_consumer._pipeline.leases import Leases


def message(n: int, handle: str | None = None) -> Message:
    return Message(message_id=f"m{n}", receipt_handle=handle or f"r{n}", body=str(n))


def test_a_lease_counts_its_visibility_from_the_receive() -> None:
    """visible_at is the receive's send time plus the visibility: never later than SQS's."""
    lease = Leases().add(message(1), 30, received_at=100.0)
    assert (lease.received_at, lease.visible_at) == (100.0, 130.0)


def test_started_and_unstarted_are_counted_apart() -> None:
    """running counts started leases, unstarted the rest; removing one updates both."""
    leases = Leases()
    first, second, third = (leases.add(message(n), 30, 0.0) for n in range(3))
    assert leases.start(first) and leases.start(first)  # starting twice counts once
    assert (len(leases), leases.running, leases.unstarted) == (3, 1, 2)
    assert leases.remove(first)
    assert (len(leases), leases.running, leases.unstarted) == (2, 0, 2)
    assert leases.finished == 1
    assert {lease.message.message_id for lease in leases} == {"m1", "m2"}
    assert second in leases and first not in leases and third in leases


def test_remove_happens_once_and_tells_the_runner() -> None:
    """A second remove (a release after a settle) is refused, and on_removed fires once."""
    leases = Leases()
    removed: list[int] = []
    leases.on_removed = lambda: removed.append(1)
    lease = leases.add(message(1), 30, 0.0)
    assert leases.remove(lease)
    assert not leases.remove(lease)
    assert removed == [1] and leases.finished == 1


def test_a_removed_lease_cannot_start() -> None:
    """A message released before its job ran is not handled."""
    leases = Leases()
    lease = leases.add(message(1), 30, 0.0)
    leases.remove(lease)
    assert not leases.start(lease)
    assert leases.running == 0


def test_take_unstarted_closes_starts_and_keeps_the_leases() -> None:
    """Shutdown takes the unstarted leases (to release them) and refuses any later start;
    the leases stay registered until the caller releases them."""
    leases = Leases()
    running = leases.add(message(1), 30, 0.0)
    waiting = leases.add(message(2), 30, 0.0)
    leases.start(running)
    assert leases.take_unstarted() == [waiting]
    assert not leases.start(waiting)
    assert waiting in leases and len(leases) == 2


def test_close_refuses_starts() -> None:
    leases = Leases()
    lease = leases.add(message(1), 30, 0.0)
    leases.close()
    assert not leases.start(lease)


def test_a_second_delivery_is_adopted_with_the_newest_receipt_handle() -> None:
    """The same message id received again while held: not a new lease, and the held one
    takes the new receipt handle (the one SQS honours for the delete)."""
    leases = Leases()
    lease = leases.add(message(1, "old"), 30, 0.0)
    assert not leases.adopt(message(2, "other"), 40.0)
    assert leases.adopt(message(1, "new"), 40.0)
    assert len(leases) == 1
    assert lease.message.receipt_handle == "new"
    assert lease in leases
    assert leases.remove(lease) and len(leases) == 0


def test_a_second_delivery_starts_a_new_visibility_timeout() -> None:
    """The receive that delivered it again made it invisible anew: visible_at follows (the
    budget of max_visibility still counts from the first receive)."""
    leases = Leases()
    lease = leases.add(message(1, "old"), 30, 0.0)
    lease.visible_at = 45.0  # extended once, then lapsed at the cap
    assert leases.adopt(message(1, "new"), 50.0)
    assert (lease.visible_at, lease.received_at) == (80.0, 0.0)


def test_a_second_delivery_brings_its_receive_count() -> None:
    """max_receives and the retry delay read the count of the latest delivery, as SQS's
    redrive does."""
    leases = Leases()
    first = attrs.evolve(message(1, "old"), attributes={"ApproximateReceiveCount": "1"})
    again = attrs.evolve(message(1, "new"), attributes={"ApproximateReceiveCount": "2"})
    lease = leases.add(first, 30, 0.0)
    assert leases.adopt(again, 40.0)
    assert lease.message.receive_count == 2


@pytest.mark.anyio
async def test_wait_extended_waits_for_the_extension_in_flight() -> None:
    """A settle waits for an extension in flight, so the extension cannot land after it."""
    lease = Leases().add(message(1), 30, 0.0)
    with anyio.fail_after(1):
        await lease.wait_extended()  # none in flight: at once
    lease.extending = anyio.Event()
    waited: list[str] = []

    async def settle() -> None:
        await lease.wait_extended()
        waited.append("settled")

    async with anyio.create_task_group() as tg:
        tg.start_soon(settle)
        await anyio.lowlevel.checkpoint()
        assert waited == []
        lease.extending.set()
    assert waited == ["settled"]
