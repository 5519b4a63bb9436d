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

import time
from collections import deque
from functools import partial
from typing import Protocol

import anyio
import attrs

from .handling import BatchHandling, Handling
from .leases import Lease, Leases
from .message import Message
from .outcome import Fail, Outcome
from .settle import Settler
from .stats import Counters
from .telemetry import Telemetry
from .visibility import VisibilityChanger
from .workers import Worker

__all__ = ["Batches", "Dispatcher", "FifoGroups", "Pipeline", "PerMessage"]


class Dispatcher(Protocol):
    """Protocol: turns the messages of one receive into jobs on the worker."""

    async def dispatch(self, messages: list[Message], received_at: float) -> None:
        """Lease `messages` (received by a call sent at `received_at`) and submit jobs."""
        ...


@attrs.frozen(kw_only=True)
class Pipeline:
    """What every job needs: the registry, the settler and the way to hand messages back."""

    worker: Worker
    leases: Leases
    settler: Settler
    visibility: VisibilityChanger
    counters: Counters
    telemetry: Telemetry
    lease_seconds: float
    """Visibility a receive gave each message (the heartbeat extends it)."""

    def lease(self, message: Message, received_at: float) -> Lease:
        return self.leases.add(message, self.lease_seconds, received_at)

    async def settle(self, lease: Lease, outcome: Outcome) -> None:
        # Out of the registry first, so the heartbeat starts no new extension; then wait
        # for one in flight, so it cannot land after the delete or undo a retry delay.
        # Shielded: the handler's work is done, and a cancellation (shutdown_timeout, a
        # forced stop) must not drop its ack. Both waits are bounded by SQS retry attempts.
        self.leases.remove(lease)
        with anyio.CancelScope(shield=True):
            await lease.wait_extended()
            await self.settler.settle(lease.message, outcome)

    async def release(self, lease: Lease) -> None:
        """Hand an unhandled message back now (visibility 0), once."""
        if not self.leases.remove(lease):
            return  # already settled or released
        with anyio.CancelScope(shield=True):
            await lease.wait_extended()  # an extension landing later would undo the release
        self.visibility.change(lease.message.receipt_handle, 0)
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
        for lease in leases:
            await self.pipeline.worker.submit(partial(self._job, lease))

    async def _job(self, lease: Lease) -> None:
        await self.run(lease)

    async def run(self, lease: Lease) -> Outcome | None:
        """Handle and settle one leased message; None if it was released unstarted."""
        if not self.pipeline.leases.start(lease):
            return None  # released unstarted during shutdown
        telemetry = self.pipeline.telemetry
        started = time.monotonic()  # a duration: no need for the event loop's clock
        with telemetry.message_span(lease.message) as span:
            outcome = await self.handling(lease.message)
            kind = outcome_kind(outcome)
            span.record_outcome(kind, outcome.error if isinstance(outcome, Fail) else None)
        telemetry.handled(kind, time.monotonic() - started)
        await self.pipeline.settle(lease, outcome)
        if isinstance(outcome, Fail) and outcome.straggler is not None:
            await outcome.straggler.wait()  # the slot stays taken until the thread ends
        return outcome


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


@attrs.define
class FifoGroups:
    """One job per message group: in order, one at a time, and stop at the first failure."""

    pipeline: Pipeline
    per_message: PerMessage
    _backlog: dict[str, deque[Lease]] = attrs.field(factory=dict, init=False)

    async def dispatch(self, messages: list[Message], received_at: float) -> None:
        # Lease every message before the first submit (which may wait for a free slot):
        # a message not yet leased would get no heartbeat and no release at shutdown.
        new_groups = []
        for message in messages:
            lease = self.pipeline.lease(message, received_at)
            group = message.group_id or ""
            backlog = self._backlog.get(group)
            if backlog is not None:  # that group's job exists: it takes this one in turn
                backlog.append(lease)
                continue
            self._backlog[group] = deque([lease])
            new_groups.append(group)
        for group in new_groups:
            await self.pipeline.worker.submit(partial(self._drain, group))

    async def _drain(self, group: str) -> None:
        backlog = self._backlog[group]
        try:
            while backlog:
                outcome = await self.per_message.run(backlog.popleft())
                if isinstance(outcome, Fail):
                    # The failed message comes back first (SQS keeps the group's order);
                    # what followed it must not run before it does.
                    while backlog:
                        await self.pipeline.release(backlog.popleft())
        finally:
            del self._backlog[group]


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
