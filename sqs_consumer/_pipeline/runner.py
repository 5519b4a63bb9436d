"""`SqsRunner`: the receive loops, asking SQS for the free slots plus a measured prefetch."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..errors import SqsError
from ..message import Message
from ..observability.telemetry import Telemetry
from ..stats import Counters
from ..workers import Worker
from .flow import Feed, Prefetch
from .leases import Leases
from .sqs import Sqs

__all__ = ["SqsRunner"]

log = logging.getLogger("sqs_consumer")

_SHORT_POLL_PAUSE = 0.2
_HELD_GROUPS_REPOLL = 1.0  # seconds: see SqsRunner._holding_groups
_PREFETCH_WAIT = 1  # seconds: see SqsRunner._wait_for_prefetch


class Acks(Protocol):
    """Protocol: the harvester as the runner sees it (acks still held on the queue)."""

    def outstanding(self) -> int:
        """Acknowledged messages whose delete SQS has not confirmed yet."""
        ...

    def flush_nowait(self) -> None:
        """Send queued deletes now."""
        ...

    async def wait_deleted(self) -> None:
        """Return when the next delete call completes."""
        ...

    def adopt(self, message: Message) -> bool:
        """True if `message` is acknowledged already (delivered again before its delete
        was confirmed): its delete takes the new receipt handle."""
        ...

    def on_confirmed(self, callback: Callable[[], None]) -> None:
        """Call `callback` after every delete call completes."""
        ...


class SqsRunner:
    """Long-poll the queue and hand each message to the worker as a job.

    Each receive asks for `min(batch_size, free)`, where `free` is what the consumer may
    hold (`limit` slots plus the prefetch target) minus what it holds (leased messages,
    running or waiting for a slot) and minus what receives in flight have asked for
    (SPEC §3). Acknowledged messages hold nothing: their deletes go out in the background,
    under their own bound (`unconfirmed_limit`), past which receiving pauses until SQS
    confirms some. Messages waiting for a slot are leased, so the heartbeat extends them
    and shutdown releases them. With `prefetch=0` (strict) the worker's free capacity also
    bounds each receive. With `max_pollers > 1` and `auto=True`, another receive loop
    starts while receives come back full with room left over, and a loop ends when its
    receive comes back empty (never the last one). Auto loops open with one long poll and,
    beside it, a short poll per batch of slots still to fill, so that a consumer started
    on a backlog fills every slot in one round trip rather than two (and its slots do not
    run a round trip out of step for the rest of the run); on an empty queue the short
    polls come back empty at once and end, leaving the one long poll.

    Args:
        sqs: the SQS adapter.
        worker: the concurrency strategy.
        acks: the harvester (its unconfirmed deletes count against capacity).
        queue_url: the queue.
        dispatch: hands the messages of one receive (and the clock time the receive was
            sent) over as jobs.
        leases: the in-flight registry: messages held count against `limit`.
        limit: the most messages held at once for the slots (`concurrency`).
        prefetch: the messages to hold beyond `limit` (measured, or fixed).
        feed: hands the dispatchers' jobs to the worker (the runner runs it).
        unconfirmed_limit: the most acks waiting for their delete before receiving pauses.
        per_job: the most messages one job may hold (1 per message; a batch for batch
            handlers and FIFO groups).
        fifo: the queue is FIFO: a receive retried after an error reuses its
            ReceiveRequestAttemptId, so SQS returns the same messages, in order.
        release: hands back raw messages received after the runner stopped (in a thread).
        hand_back: hands back raw messages that came back as the runner stopped (on the
            loop, without waiting: visibility 0, sent with the other visibility changes).
        receive_options: extra ReceiveMessage parameters (wait time, visibility, ...).
        batch_size: the most messages per receive.
        max_pollers: the most concurrent receive loops.
        auto: grow and shrink the loops with demand; False keeps `max_pollers` running.
        counters: the consumer's tallies.
        telemetry: metrics (messages received).
        on_fatal: called with the error when receiving can no longer work.
    """

    def __init__(
        self,
        sqs: Sqs,
        worker: Worker,
        acks: Acks,
        *,
        queue_url: str,
        dispatch: Callable[[list[Message], float], Awaitable[None]],
        leases: Leases,
        limit: int,
        prefetch: Prefetch,
        feed: Feed,
        unconfirmed_limit: int,
        per_job: int,
        fifo: bool,
        release: Callable[[list[Any]], None],
        hand_back: Callable[[list[Any]], None],
        receive_options: dict[str, Any],
        batch_size: int,
        max_pollers: int,
        auto: bool,
        counters: Counters,
        telemetry: Telemetry,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self._sqs = sqs
        self._telemetry = telemetry
        self._worker = worker
        self._acks = acks
        self._queue_url = queue_url
        self._dispatch = dispatch
        self._leases = leases
        self._limit = limit
        self._prefetch = prefetch
        self._feed = feed
        self._unconfirmed_limit = unconfirmed_limit
        self._per_job = per_job
        self._fifo = fifo
        self._release = release
        self._hand_back = hand_back
        self._receive = {
            "QueueUrl": queue_url,
            "AttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
            **receive_options,
        }
        self._batch = batch_size
        self._max_pollers = max_pollers
        self._auto = auto
        self._counters = counters
        self._on_fatal = on_fatal
        self._pollers = 0
        self._asked = 0  # messages requested by receives still in flight
        # Receive loops waiting for room, oldest first: woken one at a time, and only once
        # there is room worth a receive (a settle per message would otherwise wake them all).
        self._waiting: deque[anyio.Event] = deque()
        self._woken = False  # a loop was woken and has not looked yet: wake no other
        # Room grows when a held message settles, when a receive answers, and when deletes
        # are confirmed (past `unconfirmed_limit` nothing else is free): each of them wakes
        # a waiting loop, or one can wait with room free and nothing left to wake it.
        leases.on_removed = self._room_changed
        acks.on_confirmed(self._room_changed)
        self._tg: TaskGroup | None = None
        self._stopping = False
        self._done = anyio.Event()

    @property
    def pollers(self) -> int:
        """Receive loops running now."""
        return self._pollers

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the receive loops until `stop()`."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await tg.start(self._feed.run)
                if self._auto:
                    self._spawn()
                    for _ in range(self._opening_loops() - 1):
                        self._spawn(first_wait=0)
                else:
                    for _ in range(self._max_pollers):
                        self._spawn()
                task_status.started()
        finally:
            self._done.set()

    def stop(self) -> None:
        """Stop receiving now, abandoning long polls in flight (their messages are released)."""
        self._stopping = True
        self._feed.close()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def aclose(self) -> None:
        """`stop()`, then wait until no receive loop runs: nothing is leased after this."""
        self.stop()
        if self._tg is not None:
            await self._done.wait()

    def _opening_loops(self) -> int:
        """Receive loops to start with: one per batch of slots, within `max_pollers`.

        FIFO queues start with one: a receive takes whole groups' runs, so parallel ones
        gain little, and they race each other for the same groups.
        """
        if self._fifo:
            return 1
        return max(1, min(-(-self._limit // self._batch), self._max_pollers))

    def _spawn(self, *, first_wait: int | None = None) -> None:
        assert self._tg is not None
        self._pollers += 1
        self._tg.start_soon(self._poll, first_wait)

    async def _poll(self, first_wait: int | None = None) -> None:
        try:
            while True:
                free = self._free()
                if not self._worth_asking(free):
                    await self._wait_for_free(free)
                    continue
                ask = min(self._batch, free)
                if first_wait is not None:
                    wait: int | None = first_wait
                    first_wait = None
                else:
                    wait = 0 if self._holding_groups() else self._wait_for_prefetch()
                sent_at = anyio.current_time()
                try:
                    raw = await self._receive_some(ask, wait=wait)
                except SqsError as exc:
                    log.error("receiving from %s failed: %s", self._queue_url, exc)
                    self._on_fatal(exc)
                    return
                if raw and self._stopping:
                    # Came back just as we stopped (the cancellation could not interrupt a
                    # call that had already returned): these were never leased.
                    self._hand_back(raw)
                    return
                if raw:
                    await self._hand_over(raw, sent_at)
                if self._auto and not self._keep_polling(ask, len(raw), free):
                    return
                if raw:
                    continue
                if wait == 0 and self._fifo:
                    with anyio.move_on_after(_HELD_GROUPS_REPOLL):
                        await self._acks.wait_deleted()  # a delete may free one of our groups
                elif self._receive.get("WaitTimeSeconds", 0) == 0:
                    # Short polling on an empty queue: pause rather than spin on ReceiveMessage.
                    await anyio.sleep(_SHORT_POLL_PAUSE)
        finally:
            self._pollers -= 1

    def _holding_groups(self) -> bool:
        """FIFO: True while we hold messages (handling, waiting their turn or being deleted).

        SQS returns nothing more of a message group while one of its messages is in flight,
        and a long poll sent then need not notice the group come free when we delete them:
        moto's server decides which groups are blocked once per ReceiveMessage, so that poll
        stays blind to every group we hold for its whole WaitTimeSeconds (20 s by default)
        while their next messages wait (and it spins on them). So while we hold messages a
        FIFO receive does not wait; an empty one is tried again when a delete call of ours
        completes (that is what frees a group we hold) or after `_HELD_GROUPS_REPOLL`
        (another group may have new messages, a failed message may be visible again).
        """
        return self._fifo and bool(len(self._leases) or self._acks.outstanding())

    def _wait_for_prefetch(self) -> int | None:
        """A shorter long poll when it only fills the prefetch (every slot is busy).

        A long poll in flight at stop cannot be called back: it goes on in its thread and
        can receive the very messages shutdown has just released (they come back at once,
        but with one more receive count). One that only prefetches is kept short, so it
        rarely outlives a shutdown; one that fills free slots waits the full time.
        """
        if self._strict or self._worker.capacity() > len(self._feed):
            return None
        return min(int(self._receive.get("WaitTimeSeconds", 0)), _PREFETCH_WAIT)

    async def _receive_some(self, ask: int, *, wait: int | None = None) -> list[Any]:
        self._asked += ask
        self._room_changed()  # room may be left over for the next waiting loop
        options = self._receive if wait is None else {**self._receive, "WaitTimeSeconds": wait}
        sent = time.monotonic()
        try:
            raw = await self._sqs.receive(
                self._release,
                on_abandoned=self._returned_late,
                attempt_id=self._fifo,
                MaxNumberOfMessages=ask,
                **options,
            )
        finally:
            self._asked -= ask
            self._room_changed()
        self._prefetch.received(time.monotonic() - sent, asked=ask, got=len(raw))
        self._counters.receives += 1
        self._counters.received += len(raw)
        self._telemetry.received(len(raw))
        if not raw:
            self._counters.empty_receives += 1
        return raw

    async def _hand_over(self, raw: list[Any], sent_at: float) -> None:
        url, leases, acks = self._queue_url, self._leases, self._acks
        messages = [Message.from_sqs(m, queue_url=url) for m in raw]
        fresh = [m for m in messages if not (leases.adopt(m, sent_at) or acks.adopt(m))]
        again = len(messages) - len(fresh)
        if again:
            self._counters.received -= again  # the same messages, held once
            log.info("%d message(s) delivered again while held or being deleted: not handled "
                     "twice", again)  # fmt: skip
        if fresh:
            await self._dispatch(fresh, sent_at)

    def _returned_late(self, raw: list[Any]) -> None:
        """Messages a cancelled receive had already got: received, and handed straight back
        (counted as both, so that released never exceeds received)."""
        self._counters.received += len(raw)
        self._hand_back(raw)

    def _keep_polling(self, asked: int, got: int, free: int) -> bool:
        """Auto pollers: after a receive that got all it asked for, add a loop per batch of
        room still to fill (all at once: growing one by one takes a round trip per loop);
        end on empty."""
        if got == 0:
            return self._pollers <= 1
        if got == asked:
            # Room left after a receive that got all it asked for: more loops fill it
            # (one per batch of it, at least one, so small concurrencies grow too).
            room = free - got
            wanted = min(-(-room // self._batch), self._max_pollers - self._pollers)
            for _ in range(wanted):
                self._spawn()
        return True

    def _free(self) -> int:
        """Messages a receive may ask for now."""
        if self._acks.outstanding() >= self._unconfirmed_limit:
            return 0  # deletes are not getting through: hold no more until they do
        held = len(self._leases) + self._asked
        if self._strict:
            capacity = self._worker.capacity() - len(self._feed)
            if capacity <= 0:
                return 0
            return min(self._limit - held, capacity * self._per_job - self._asked)
        return self._limit + self._prefetch.target() - held

    @property
    def _strict(self) -> bool:
        # FIFO queues hold a batch per group already (see Wiring._held_limit).
        return self._fifo or self._prefetch.strict

    def _worth_asking(self, free: int) -> bool:
        """True when a receive should go out for `free` messages now.

        Small receives cost as much as full ones (a round trip, a thread hop, the wake-ups),
        so with receives in flight a loop waits until a fair share is free: a full batch,
        or a quarter of what may be held when that is smaller (small concurrencies). With
        none in flight, any room is worth a receive: nothing else would fill it.
        """
        if free <= 0:
            return False
        if not self._asked:
            return True
        held_most = self._limit if self._strict else self._limit + self._prefetch.target()
        return free >= min(self._batch, max(1, held_most // 4))

    async def _wait_for_free(self, free: int) -> None:
        if self._acks.outstanding() >= self._unconfirmed_limit:
            self._acks.flush_nowait()
            await self._acks.wait_deleted()
        elif free > 0 or self._asked or not self._strict or self._worker.capacity() > 0:
            # Receives in flight have claimed what is free, or held messages fill it: wait
            # until a receive answers or held messages settle and there is room worth a
            # receive (waiting on only one of them makes the receives go out in waves).
            wake = anyio.Event()
            self._waiting.append(wake)
            try:
                await wake.wait()
            finally:
                if wake.is_set():
                    self._woken = False
                else:
                    self._waiting.remove(wake)
        else:
            await self._worker.wait_for_capacity()

    def _room_changed(self) -> None:
        """Wake the longest-waiting loop if there is room worth a receive now.

        Strict mode also counts the worker's free slots, and a settle comes just before its
        slot frees: there the loop is woken to look again (by then the slot is free).
        """
        if self._woken or not self._waiting:
            return
        if self._strict or self._worth_asking(self._free()):
            self._woken = True
            self._waiting.popleft().set()
