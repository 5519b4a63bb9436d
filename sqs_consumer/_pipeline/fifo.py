"""FIFO queues: one job per message group, handled in order, stopped at the first failure."""

from __future__ import annotations

import logging
from collections import deque
from functools import partial

import anyio
import attrs

from ..message import Message
from .dispatch import PerMessage, Pipeline, wait_straggler
from .leases import Lease
from .outcome import Fail
from .settle import Settled

__all__ = ["FifoGroups"]

log = logging.getLogger("sqs_consumer")

_COMEBACK_GRACE = 10.0
"""Seconds past its due time a FIFO group waits for its failed message to come back."""
_STOPS_KEPT = 1024  # stopped groups remembered before expired ones are pruned


@attrs.frozen(slots=True)
class _Stop:
    """A FIFO group whose message failed and is due back: nothing after it may run first."""

    message_id: str
    sequence: int | None
    until: float
    """Clock time after which we stop waiting (it went to another consumer, or was lost)."""


@attrs.define
class FifoGroups:
    """One job per message group: in order, one at a time, and stop at the first failure.

    After a failure the group is *stopped* until the failed message comes back: every
    message of that group we hold is released unhandled, whichever receive brought it,
    and so is every later one a receive brings before the failed one is back. SQS itself
    delivers nothing of a group while one of its messages is in flight, so there this
    never triggers; a server with weaker group locking cannot break the order (moto
    un-blocks a group message by message as a receive's scan finds their visibility
    lapsed, and can hand out later messages of the group before an earlier one).
    """

    pipeline: Pipeline
    per_message: PerMessage
    _backlog: dict[str, deque[Lease]] = attrs.field(factory=dict, init=False)
    _stopped: dict[str, _Stop] = attrs.field(factory=dict, init=False)

    async def dispatch(self, messages: list[Message], received_at: float) -> None:
        # Lease every message before the first await (a submit may wait for a free slot):
        # a message not yet leased would get no heartbeat and no release at shutdown.
        new_groups: list[tuple[str, deque[Lease]]] = []
        early: list[Lease] = []
        for message in messages:
            lease = self.pipeline.lease(message, received_at)
            group = message.group_id or ""
            if self._waits(group, message):
                early.append(lease)
                continue
            backlog = self._backlog.get(group)
            if backlog is not None:  # that group's job exists: it takes this one in turn
                backlog.append(lease)
                continue
            backlog = self._backlog[group] = deque([lease])
            new_groups.append((group, backlog))
        for lease in early:
            await self.pipeline.release(lease)
        for group, backlog in new_groups:
            await self.pipeline.worker.submit(partial(self._drain, group, backlog))

    def _waits(self, group: str, message: Message) -> bool:
        """True if `message` must go back: its group waits for an earlier failed message."""
        stop = self._stopped.get(group)
        if stop is None:
            return False
        if message.message_id == stop.message_id or anyio.current_time() >= stop.until:
            del self._stopped[group]  # it is back (first, as SQS orders them), or long due
            return False
        sequence = _sequence(message)
        if stop.sequence is not None and sequence is not None and sequence < stop.sequence:
            return False  # sent before the failed one (a redelivery): its turn is now
        log.debug("message %s released: group %r waits for %s", message.message_id, group, stop)
        return True

    async def _drain(self, group: str, backlog: deque[Lease]) -> None:
        try:
            while backlog:
                lease = backlog.popleft()
                done = await self.per_message.handle(lease)
                if done is None:
                    continue  # released unstarted (shutdown)
                outcome, settled = done
                stop = isinstance(outcome, Fail) and settled.kept
                if stop:
                    # It comes back first (SQS keeps the group's order): nothing after it
                    # may run before it does. Detach the backlog before the first await,
                    # so a receive landing meanwhile meets the stop in dispatch().
                    self._stop(group, lease, settled)
                    self._forget(group, backlog)
                    held = list(backlog)
                    backlog.clear()
                    for later in held:
                        await self.pipeline.release(later)
                await wait_straggler(outcome)
                if stop:
                    return
        finally:
            self._forget(group, backlog)

    def _stop(self, group: str, lease: Lease, settled: Settled) -> None:
        now = anyio.current_time()
        due = now + settled.delay if settled.delay is not None else max(now, lease.visible_at)
        if len(self._stopped) >= _STOPS_KEPT:
            self._stopped = {g: s for g, s in self._stopped.items() if s.until > now}
        message = lease.message
        self._stopped[group] = _Stop(message.message_id, _sequence(message), due + _COMEBACK_GRACE)

    def _forget(self, group: str, backlog: deque[Lease]) -> None:
        if self._backlog.get(group) is backlog:  # not a newer job's
            del self._backlog[group]


def _sequence(message: Message) -> int | None:
    """The FIFO SequenceNumber (it grows within a group), if the receive returned it."""
    text = message.attributes.get("SequenceNumber")
    return int(text) if text is not None and text.isdigit() else None
