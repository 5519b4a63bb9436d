"""From received messages to jobs: lease, handle, settle — per message, per batch, per FIFO group.

The runner hands every receive to one `Dispatcher`; the dispatcher registers a lease per
message and submits jobs to the worker. Three shapes:

- `PerMessage`: one job per message (the default).
- `Batches`: one job per receive; the handler takes `list[Message]`.
- `FifoGroups`: one job per MessageGroupId with messages in this receive; it handles the
  group's messages one at a time, in order, and after a failure releases the rest of
  the group rather than handle them out of order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from functools import partial
from typing import Protocol

import anyio
import attrs

from ..message import Message
from ..observability.telemetry import Telemetry
from ..stats import Counters
from ..workers import Job
from .deadlines import ShutdownDeadline
from .flow import Feed
from .handling import BatchHandling, Handling
from .leases import Lease, Leases
from .outcome import Ack, Fail, Outcome
from .settle import Settled, Settler
from .visibility import VisibilityChanger

__all__ = ["Batches", "Dispatcher", "FifoGroups", "Pipeline", "PerMessage"]

log = logging.getLogger("sqs_consumer")


class Dispatcher(Protocol):
    """Protocol: turns the messages of one receive into jobs on the worker."""

    async def dispatch(self, messages: list[Message], received_at: float) -> None:
        """Lease `messages` (received by a call sent at `received_at`) and submit jobs."""
        ...


class JobQueue(Protocol):
    """Protocol: where jobs go (the runner's `Feed`, or a `Worker` itself)."""

    async def submit(self, job: Job) -> None:
        """Hand a job over."""
        ...


@attrs.frozen(kw_only=True)
class Pipeline:
    """What every job needs: the registry, the settler and the way to hand messages back."""

    worker: JobQueue
    leases: Leases
    settler: Settler
    visibility: VisibilityChanger
    counters: Counters
    telemetry: Telemetry
    lease_seconds: float
    """Visibility a receive gave each message (the heartbeat extends it)."""
    deadline: ShutdownDeadline = attrs.field(factory=ShutdownDeadline)
    """Bounds the shielded waits of settling and releasing at shutdown."""

    def lease(self, message: Message, received_at: float) -> Lease:
        return self.leases.add(message, self.lease_seconds, received_at)

    async def settle(self, lease: Lease, outcome: Outcome) -> Settled:
        """Make the outcome true on the queue; what became of the message."""
        # Out of the registry first, so the heartbeat starts no new extension; then wait
        # for one in flight, so it cannot land after the delete or undo a retry delay.
        # Shielded: the handler's work is done, and a cancellation (shutdown_timeout, a
        # forced stop) must not drop its ack; but only until the shutdown's deadline (a
        # hanging dead-letter send must not hold the shutdown).
        if isinstance(outcome, Fail) and outcome.interrupted:
            await self.release(lease)  # not the message's failure: the process is going
            return Settled(kept=True, delay=0)
        self.leases.remove(lease)
        settled = Settled(kept=True)
        if lease.extending is None and isinstance(outcome, Ack):
            # The common case needs no await, hence no shield (a cancel scope costs more
            # than the rest of the settle): nothing can cancel code that never yields.
            try:
                return self.settler.ack(lease.message, outcome)
            except Exception:
                log.exception("settling message %s failed", lease.message.message_id)
                return settled
        with self.deadline.shielded() as scope:
            await lease.wait_extended()
            try:
                settled = await self.settler.settle(lease.message, outcome)
            except Exception:
                # The settler contains user code's errors; anything left is our bug, and
                # it must not take the consumer down: the message comes back by itself.
                log.exception("settling message %s failed", lease.message.message_id)
        if scope.cancelled_caught:
            self.deadline.abandon(lease.message.message_id)  # back after its visibility
        return settled

    async def release(self, lease: Lease) -> None:
        """Hand an unhandled message back now (visibility 0), once."""
        if not self.leases.remove(lease):
            return  # already settled or released
        with self.deadline.shielded():
            await lease.wait_extended()  # an extension landing later would undo the release
        message = lease.message
        self.visibility.change(message.receipt_handle, 0, message.message_id)
        self.counters.released += 1


@attrs.frozen
class PerMessage:
    """One job per message."""

    pipeline: Pipeline
    handling: Handling

    async def dispatch(self, messages: list[Message], received_at: float) -> None:
        # Lease every message before the first submit (which may wait for a free slot):
        # a message not yet leased would get no heartbeat and no release at shutdown.
        leases = [self.pipeline.lease(message, received_at) for message in messages]
        queue = self.pipeline.worker
        if isinstance(queue, Feed):
            queue.submit_nowait([partial(self.run, lease) for lease in leases])
            return
        for lease in leases:
            await queue.submit(partial(self.run, lease))

    async def run(self, lease: Lease) -> None:
        """Handle and settle one leased message (nothing if it was released unstarted)."""
        done = await self.handle(lease)
        if done is not None:
            outcome = done[0]
            if isinstance(outcome, Fail) and outcome.straggler is not None:
                await outcome.straggler.wait()  # the slot stays taken until the thread ends

    async def handle(self, lease: Lease) -> tuple[Outcome, Settled] | None:
        """Handle and settle one leased message; None if it was released unstarted.

        The caller waits for a timed-out sync handler's thread (`_straggler`) afterwards.
        """
        if not self.pipeline.leases.start(lease):
            return None  # released unstarted during shutdown
        telemetry = self.pipeline.telemetry
        if not (telemetry.tracing or telemetry.metering):
            # No SDK: no span to open and no duration to record, so none of their cost.
            outcome = await self.handling(lease.message)
            return outcome, await self.pipeline.settle(lease, outcome)
        started = time.monotonic()  # a duration: no need for the event loop's clock
        with telemetry.message_span(lease.message) as span:
            outcome = await self.handling(lease.message)
            kind = outcome_kind(outcome)
            span.record_outcome(kind, outcome.error if isinstance(outcome, Fail) else None)
        telemetry.handled(kind, time.monotonic() - started)
        return outcome, await self.pipeline.settle(lease, outcome)


async def _straggler(outcome: Outcome) -> None:
    if isinstance(outcome, Fail) and outcome.straggler is not None:
        await outcome.straggler.wait()  # the slot stays taken until the thread ends


@attrs.frozen
class Batches:
    """One job per receive: the handler takes the list (it counts as its size)."""

    pipeline: Pipeline
    handling: BatchHandling

    async def dispatch(self, messages: list[Message], received_at: float) -> None:
        leases = [self.pipeline.lease(message, received_at) for message in messages]
        await self.pipeline.worker.submit(partial(self.run, leases))

    async def run(self, leases: list[Lease]) -> None:
        started = [lease for lease in leases if self.pipeline.leases.start(lease)]
        if not started:
            return
        messages = [lease.message for lease in started]
        telemetry = self.pipeline.telemetry
        begun = time.monotonic()
        with telemetry.batch_span(messages) as span:
            outcomes, straggler = await self.handling(messages)
            failures = [o for o in outcomes.values() if isinstance(o, Fail)]
            span.record_outcome("failed" if failures else "succeeded")
        seconds = time.monotonic() - begun
        for lease in started:
            outcome = outcomes[lease.message.message_id]
            telemetry.handled(outcome_kind(outcome), seconds)
            await self.pipeline.settle(lease, outcome)
        if straggler is not None:
            await straggler.wait()  # the slot stays taken until the thread ends


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
                await _straggler(outcome)
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


def outcome_kind(outcome: Outcome) -> str:
    """The outcome's name in metrics and spans: succeeded, discarded or failed."""
    if isinstance(outcome, Fail):
        return "failed"
    return "discarded" if outcome.discarded else "succeeded"


def dispatcher_for(
    pipeline: Pipeline,
    handling: Handling | BatchHandling,
    *,
    fifo: bool,
) -> tuple[Dispatcher, int]:
    """The dispatcher for a handler model and queue type, and the messages one job may hold."""
    if isinstance(handling, BatchHandling):
        return Batches(pipeline, handling), 10
    per_message = PerMessage(pipeline, handling)
    if fifo:
        return FifoGroups(pipeline, per_message), 10
    return per_message, 1
