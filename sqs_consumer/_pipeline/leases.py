"""The in-flight registry: every received message from receive until it is settled."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anyio
import attrs

from ..message import Message

__all__ = ["Lease", "Leases"]


@attrs.define(slots=True, eq=False)
class Lease:
    """One received message while the consumer holds it."""

    message: Message
    received_at: float
    """Clock time of the receive (visibility is counted from here)."""
    visible_at: float
    """Clock time when SQS will show the message to others unless extended."""
    visibility: float = 0.0
    """The visibility timeout each receive of it starts (a second delivery starts it anew)."""
    started: bool = False
    """True once a handler is running on it (it can no longer be released unstarted)."""
    extending: anyio.Event | None = None
    """Set while a heartbeat extension of this lease is in flight; settling waits for it."""

    async def wait_extended(self) -> None:
        """Wait for an extension in flight, so it cannot land after a delete or retry delay."""
        if self.extending is not None:
            await self.extending.wait()


class Leases:
    """Received-and-unsettled messages, read by the heartbeat and by shutdown.

    Args:
        clock: the time source (seconds).
    """

    def __init__(self, clock: Callable[[], float] = anyio.current_time) -> None:
        self._clock = clock
        self._leases: dict[str, Lease] = {}
        self._by_id: dict[str, Lease] = {}  # the same leases, by message id
        self.on_removed: Callable[[], None] | None = None
        """Called when a lease goes (the runner: room for another message)."""
        self._accepting = True
        self._started = 0  # leases held whose handler has begun
        self.finished = 0
        """Leases removed so far (settled or released): the handling rate is read from it."""

    def __len__(self) -> int:
        return len(self._leases)

    @property
    def running(self) -> int:
        """Leases held whose handler has begun (running, or settling)."""
        return self._started

    @property
    def unstarted(self) -> int:
        """Leases held whose handler has not begun (prefetched, waiting for a slot)."""
        return len(self._leases) - self._started

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._leases.values()))

    def add(self, message: Message, visibility: float, received_at: float) -> Lease:
        """Register a message received by a call sent at `received_at` (clock time).

        Counting from when the receive was sent errs on the safe side: SQS started the
        visibility timeout no earlier than that.
        """
        lease = Lease(message, received_at, received_at + visibility, visibility)
        self._leases[message.receipt_handle] = lease
        self._by_id[message.message_id] = lease
        return lease

    def start(self, lease: Lease) -> bool:
        """Mark the lease started; False if it was released or starts are closed (shutdown)."""
        if not self._accepting or lease.message.receipt_handle not in self._leases:
            return False
        if not lease.started:
            lease.started = True
            self._started += 1
        return True

    def __contains__(self, lease: Lease) -> bool:
        return self._leases.get(lease.message.receipt_handle) is lease

    def remove(self, lease: Lease) -> bool:
        """Forget a lease (its message is being settled); False if it was already gone."""
        if self._leases.pop(lease.message.receipt_handle, None) is None:
            return False
        if self._by_id.get(lease.message.message_id) is lease:
            del self._by_id[lease.message.message_id]
        self.finished += 1
        if lease.started:
            self._started -= 1
        if self.on_removed is not None:
            self.on_removed()
        return True

    def adopt(self, message: Message, received_at: float) -> bool:
        """True if a message with this id is held already: a second delivery of it.

        The held lease takes the new receipt handle (SQS honours only the latest one for the
        delete and visibility changes) and the duplicate is not handled a second time at
        once. SQS delivers a message again while it is in flight only if its visibility ran
        out (e.g. past max_visibility); some emulators (moto's server) also do when two
        receives run at once. That receive (sent at `received_at`) started a new visibility
        timeout, so the lease's `visible_at` moves with it: the heartbeat must not take the
        old, lapsed one for the truth (it would ask for what is left of the budget, down to
        0 s, which shows the message to everyone at once).
        """
        lease = self._by_id.get(message.message_id)
        if lease is None:
            return False
        del self._leases[lease.message.receipt_handle]
        # Its attributes too: the receive count SQS's redrive goes by (max_receives and the
        # retry delay read it when the running handler's outcome is settled).
        lease.message = attrs.evolve(
            lease.message, receipt_handle=message.receipt_handle, attributes=message.attributes
        )
        lease.visible_at = received_at + lease.visibility
        self._leases[message.receipt_handle] = lease
        return True

    def close(self) -> None:
        """Refuse further starts (shutdown): a message not yet started is released instead."""
        self._accepting = False

    def take_unstarted(self) -> list[Lease]:
        """Refuse further starts and return every lease no handler has begun (still held:
        the caller releases them)."""
        self._accepting = False
        return [lease for lease in self._leases.values() if not lease.started]
