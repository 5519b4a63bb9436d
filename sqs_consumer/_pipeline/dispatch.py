"""From received messages to jobs: lease, handle, settle — per message and per batch.

The runner hands every receive to one `Dispatcher`; the dispatcher registers a lease per
message and submits jobs to the worker. Three shapes:

- `PerMessage`: one job per message (the default).
- `Batches`: one job per receive; the handler takes `list[Message]`.
- `FifoGroups` (in `fifo.py`): one job per MessageGroupId, in order, one at a time.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Protocol

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

__all__ = ["Batches", "Dispatcher", "Pipeline", "PerMessage", "outcome_kind", "wait_straggler"]

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

        The caller waits for a timed-out sync handler's thread (`wait_straggler`) afterwards.
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


async def wait_straggler(outcome: Outcome) -> None:
    """Wait for a timed-out sync handler's thread to end (the slot stays taken till then)."""
    if isinstance(outcome, Fail) and outcome.straggler is not None:
        await outcome.straggler.wait()  # the slot stays taken until the thread ends


@attrs.frozen
class Batches:
    """One job per receive: the handler takes the list (it counts as its size).

    On a FIFO queue a failure in the batch fails the rest of its group: a later message of
    that group is not deleted even if the handler says it succeeded, but released, so that
    it comes back after the failed one (SQS holds the group until then) and the deletes
    keep the group's order. The handler ran it once already: at-least-once, in order (as
    AWS Powertools' FIFO batch processor does, by not running the rest).
    """

    pipeline: Pipeline
    handling: BatchHandling
    fifo: bool = False

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
        failed_groups: set[str] = set()
        for lease in started:
            outcome = outcomes[lease.message.message_id]
            telemetry.handled(outcome_kind(outcome), seconds)
            if self.fifo:
                group = lease.message.group_id or ""
                if group in failed_groups and not isinstance(outcome, Fail):
                    log.info("message %s: released, after an earlier failure in its FIFO group "
                             "%r (it comes back after that one)", lease.message.message_id,
                             group)  # fmt: skip
                    await self.pipeline.release(lease)
                    continue
                if isinstance(outcome, Fail):
                    failed_groups.add(group)
            await self.pipeline.settle(lease, outcome)
        if straggler is not None:
            await straggler.wait()  # the slot stays taken until the thread ends


def outcome_kind(outcome: Outcome) -> str:
    """The outcome's name in metrics and spans: succeeded, discarded or failed."""
    if isinstance(outcome, Fail):
        return "failed"
    return "discarded" if outcome.discarded else "succeeded"
