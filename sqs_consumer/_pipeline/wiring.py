"""`Wiring`: builds every stage of one run from the options; only this module knows them all.

The consumer (consumer.py) owns the lifecycle and the ordered shutdown; it asks this module
for an SQS adapter, then, once the queue check has passed, for the stages (`Stages`), and
starts them in one task group. Data flows runner → dispatch → worker → handling → settle →
harvester / visibility / deadletter, with leases and the heartbeat beside them (see
docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import anyio
import attrs

from ..errors import QueueCheckError
from ..message import Message
from ..observability.health import HealthState
from ..observability.telemetry import Telemetry
from ..options import ConsumerOptions
from ..stats import Counters, Stats
from ..workers import Worker
from .deadletter import DeadLetters
from .deadlines import ShutdownDeadline
from .dispatch import Batches, Dispatcher, PerMessage, Pipeline
from .fifo import FifoGroups
from .flow import Feed, Prefetch
from .handling import BatchHandling, Handling
from .harvester import Harvester
from .heartbeat import Heartbeat, derive_interval
from .leases import Leases
from .runner import SqsRunner
from .settle import Settler
from .sqs import QueueInfo, Sqs, SqsClient, build_client
from .threads import DaemonThreads
from .visibility import VisibilityChanger

__all__ = ["Stages", "Wiring"]

_BATCH_SENDS = 8  # concurrent ChangeMessageVisibilityBatch calls


def _delete_sends(concurrency: int) -> int:
    """Concurrent DeleteMessageBatch calls: deletes must keep up with the slots (a 50 ms
    delete of 10 at 8 sends caps the consumer at 1,600 msgs/s), yet stay a few threads."""
    return max(_BATCH_SENDS, min(64, concurrency // 4))


# Acks waiting for their delete before receiving pauses (a delete outage must not grow
# memory): a few round trips' worth of deletes at full speed.
_UNCONFIRMED_PER_SLOT = 10
_MIN_UNCONFIRMED = 100


@attrs.define(slots=True)
class Stages:
    """The stages of one run, built once the queue check has passed."""

    queue: QueueInfo
    worker: Worker
    pipeline: Pipeline
    leases: Leases
    runner: SqsRunner
    harvester: Harvester
    visibility: VisibilityChanger
    heartbeat: Heartbeat


class Wiring:
    """Builds the SQS adapter and the stages of one run from the consumer's options.

    Args:
        handler: the consumer's handler (per message, or per batch with `batch`).
        options: the consumer's options.
        batch: the handler takes the list of messages of one receive.
        counters: the consumer's tallies, shared by every stage.
        threads: the daemon threads SQS calls run in.
        health: told of every receive and delete attempt.
        deadline: bounds every shielded step once stopping.
        stats: the consumer's snapshot (telemetry observes it).
        on_fatal: a stage hit an error retrying cannot fix.
        on_interrupt: user code raised KeyboardInterrupt, SystemExit, ...
    """

    def __init__(
        self,
        handler: Callable[..., Any],
        options: ConsumerOptions,
        *,
        batch: bool,
        counters: Counters,
        threads: DaemonThreads,
        health: HealthState,
        deadline: ShutdownDeadline,
        stats: Callable[[], Stats],
        on_fatal: Callable[[BaseException], None],
        on_interrupt: Callable[[BaseException], None],
    ) -> None:
        self._handler = handler
        self._options = options
        self._batch = batch
        self._counters = counters
        self._threads = threads
        self._health = health
        self._deadline = deadline
        self._stats = stats
        self._on_fatal = on_fatal
        self._on_interrupt = on_interrupt
        self._telemetry: Telemetry | None = None

    def connect(self) -> Sqs:
        """The SQS adapter over the user's client, or over one built from the options.

        Raises:
            QueueCheckError: the client cannot be built (e.g. no region): it names the
                options that fix it.
        """
        opts = self._options
        max_calls = opts.max_pollers() + _delete_sends(opts.concurrency) + _BATCH_SENDS + 2
        client: SqsClient
        if opts.client is not None:
            client = opts.client
        else:
            try:
                client = build_client(
                    opts.queue_url,
                    endpoint_url=opts.endpoint_url,
                    region_name=opts.region_name,
                    max_connections=max_calls,
                    read_timeout=opts.wait_time_seconds + 15,
                    validate=False,  # the consumer builds every request from checked options
                    lean=True,
                )
            except Exception as exc:  # e.g. botocore NoRegionError: say which option fixes it
                raise QueueCheckError(
                    f"cannot build an SQS client for {opts.queue_url}: {exc} "
                    "(set region_name or endpoint_url, or pass client=)"
                ) from exc
        return Sqs(
            client,
            limiter=anyio.CapacityLimiter(max_calls),
            counters=self._counters,
            threads=self._threads,
            on_call=self._observe_call,
        )

    def _observe_call(self, operation: str, seconds: float, error: str | None) -> None:
        """Every SQS call attempt: its latency to metrics, receives to the health state."""
        if self._telemetry is not None:
            self._telemetry.sqs_call(operation, seconds, error=error)
        if operation == "receive_message":
            if error is None:
                self._health.poll_succeeded()
            else:
                self._health.poll_failed()
        elif operation == "delete_message_batch":
            if error is None:
                self._health.delete_succeeded()
            else:
                self._health.delete_failed()

    def telemetry(self, queue: QueueInfo) -> Telemetry:
        """The run's telemetry, named after the queue (made once the queue check passed)."""
        # arn:aws:sqs:REGION:ACCOUNT:NAME — true for custom endpoints too.
        parts = queue.arn.split(":")
        name = parts[-1] if len(parts) >= 6 else queue.url.rstrip("/").rsplit("/", 1)[-1]
        region = parts[3] if len(parts) >= 6 and parts[3] else None
        telemetry = Telemetry(queue_url=queue.url, queue_name=name, region=region)
        telemetry.observe(self._stats)
        self._telemetry = telemetry
        return telemetry

    def build(self, sqs: Sqs, queue: QueueInfo) -> Stages:
        """Every stage of one run, wired (after `telemetry()`)."""
        opts = self._options
        worker = opts.make_worker()
        harvester, visibility, settler = self._settling(sqs, queue)
        leases = Leases()
        lease_seconds = _receive_visibility(opts, queue) or queue.visibility_timeout
        heartbeat = Heartbeat(
            sqs,
            queue.url,
            leases,
            visibility=lease_seconds,
            interval=opts.heartbeat_interval or derive_interval(lease_seconds),
            max_visibility=opts.max_visibility,
            counters=self._counters,
            on_fatal=self._on_fatal,
            deadline=self._deadline,
        )
        feed = Feed(worker)
        pipeline = Pipeline(
            worker=feed,
            leases=leases,
            settler=settler,
            visibility=visibility,
            counters=self._counters,
            telemetry=self._telemetry_now(),
            lease_seconds=lease_seconds,
            deadline=self._deadline,
        )
        dispatcher, per_job = dispatcher_for(pipeline, self._handling(), fifo=queue.fifo)
        runner = self._runner(sqs, queue, pipeline, worker, feed, harvester, dispatcher, per_job)
        return Stages(
            queue=queue,
            worker=worker,
            pipeline=pipeline,
            leases=leases,
            runner=runner,
            harvester=harvester,
            visibility=visibility,
            heartbeat=heartbeat,
        )

    def _settling(self, sqs: Sqs, queue: QueueInfo) -> tuple[Harvester, VisibilityChanger, Settler]:
        """The stages that make outcomes true on the queue: deletes, delays, dead letters."""
        opts = self._options
        harvester = Harvester(
            sqs,
            queue.url,
            size=opts.delete_batch_size,
            interval=opts.delete_flush_interval,
            sends=_delete_sends(opts.concurrency),
            counters=self._counters,
            telemetry=self._telemetry_now(),
            on_fatal=self._on_fatal,
            deadline=self._deadline,
        )
        visibility = VisibilityChanger(
            sqs,
            queue.url,
            interval=min(opts.delete_flush_interval, 0.05),
            counters=self._counters,
            on_fatal=self._on_fatal,
            deadline=self._deadline,
        )
        dead_letters = None
        if opts.dead_letter_queue_url is not None and opts.max_receives is not None:
            dead_letters = DeadLetters(
                sqs,
                opts.dead_letter_queue_url,
                source_url=queue.url,
                max_receives=opts.max_receives,
            )
        settler = Settler(
            harvester=harvester,
            visibility=visibility,
            retry=opts.retry,
            dead_letters=dead_letters,
            counters=self._counters,
            telemetry=self._telemetry_now(),
        )
        return harvester, visibility, settler

    def _held_limit(self, dispatcher: Dispatcher) -> int:
        """The most messages held at once.

        `concurrency` of them, except on FIFO queues, where `concurrency` counts the groups
        handled at once: a receive returns as many messages of one group as it can, and
        counting those against `concurrency` would leave most groups idle. There each group
        may hold up to a receive's worth (batch_size) of messages waiting their turn.
        """
        if isinstance(dispatcher, FifoGroups):
            return self._options.concurrency * self._options.batch_size
        return self._options.concurrency

    def _telemetry_now(self) -> Telemetry:
        assert self._telemetry is not None, "made by telemetry() before the stages"
        return self._telemetry

    def _handling(self) -> Handling | BatchHandling:
        """How the handler is called: per message (with middleware) or per batch."""
        opts = self._options
        if self._batch:
            return BatchHandling(
                cast(Callable[[list[Message]], Any], self._handler),
                timeout=opts.handler_timeout,
                on_interrupt=self._on_interrupt,
            )
        return Handling(
            cast(Callable[[Message], Any], self._handler),
            middleware=opts.middleware,
            timeout=opts.handler_timeout,
            on_interrupt=self._on_interrupt,
        )

    def _runner(
        self,
        sqs: Sqs,
        queue: QueueInfo,
        pipeline: Pipeline,
        worker: Worker,
        feed: Feed,
        harvester: Harvester,
        dispatcher: Dispatcher,
        per_job: int,
    ) -> SqsRunner:
        opts = self._options
        leases = pipeline.leases
        prefetch = Prefetch(
            opts.prefetch,
            concurrency=opts.concurrency,
            done=lambda: leases.finished,
            running=lambda: leases.running,
            # Until a round of the slots is handled: as many again as the slots (a slot's worth
            # each), so that a slow receive does not starve the start.
            initial=opts.concurrency,
        )
        receive_options: dict[str, Any] = {"WaitTimeSeconds": opts.wait_time_seconds}
        visibility = _receive_visibility(opts, queue)
        if visibility is not None:
            receive_options["VisibilityTimeout"] = visibility
        return SqsRunner(
            sqs,
            worker,
            harvester,
            queue_url=queue.url,
            dispatch=dispatcher.dispatch,
            leases=pipeline.leases,
            limit=self._held_limit(dispatcher),
            prefetch=prefetch,
            feed=feed,
            unconfirmed_limit=max(_MIN_UNCONFIRMED, _UNCONFIRMED_PER_SLOT * opts.concurrency),
            per_job=min(per_job, opts.batch_size),
            fifo=queue.fifo,
            release=partial(sqs.release_now, queue.url),
            hand_back=partial(self._hand_back, pipeline.visibility),
            receive_options=receive_options,
            # A batch is one receive, and counts as its size against concurrency.
            batch_size=min(opts.batch_size, opts.concurrency)
            if isinstance(dispatcher, Batches)
            else opts.batch_size,
            max_pollers=opts.max_pollers(),
            auto=opts.pollers == "auto",
            counters=self._counters,
            telemetry=self._telemetry_now(),
            on_fatal=self._on_fatal,
        )

    def _hand_back(self, visibility: VisibilityChanger, raw: list[Any]) -> None:
        """Release messages a stopping receive returned (queued; the final flush sends them)."""
        for message in raw:
            visibility.change(message["ReceiptHandle"], 0, message.get("MessageId", "?"))
        self._counters.released += len(raw)


def _receive_visibility(opts: ConsumerOptions, queue: QueueInfo) -> int | None:
    """The VisibilityTimeout each receive asks for (None: the queue's own).

    A queue whose own timeout exceeds max_visibility is asked for the cap instead, so no
    receive makes a message invisible for longer than the cap allows.
    """
    if opts.visibility_timeout is not None:
        return opts.visibility_timeout
    if queue.visibility_timeout > opts.max_visibility:
        return max(1, math.floor(opts.max_visibility))
    return None


def dispatcher_for(
    pipeline: Pipeline,
    handling: Handling | BatchHandling,
    *,
    fifo: bool,
) -> tuple[Dispatcher, int]:
    """The dispatcher for a handler model and queue type, and the messages one job may hold."""
    if isinstance(handling, BatchHandling):
        return Batches(pipeline, handling, fifo=fifo), 10
    per_message = PerMessage(pipeline, handling)
    if fifo:
        return FifoGroups(pipeline, per_message), 10
    return per_message, 1
