"""`Consumer`: the lifecycle (states, signals, stop) and the ordered shutdown.

The stages are built by `_pipeline/wiring.py`; the consumer runs them in one task group.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio

from . import stats
from ._checks import generator_problem, positional_problem
from ._pipeline import calls
from ._pipeline.deadlines import FORCED_GRACE, ShutdownDeadline, flush_budget
from ._pipeline.leases import Lease
from ._pipeline.sqs import check_queue
from ._pipeline.threads import DaemonThreads
from ._pipeline.wiring import Stages, Wiring
from .errors import ConsumerStateError
from .handlers.batch import is_batch_handler
from .message import Message
from .observability.health import HealthState, StatsServer
from .options import ConsumerOptions
from .stats import Counters, Stats
from .workers import WorkerStats

__all__ = ["Consumer", "Handler", "State"]

Handler = Callable[[Message], Any] | Callable[[list[Message]], Any]
"""A per-message handler, or a batch handler (`batch=True` or `__sqs_batch__`)."""

log = logging.getLogger("sqs_consumer")

_NO_WORKER = WorkerStats(workers=0, busy=0, idle_workers=0, waiting=0, capacity=0)


class State(enum.Enum):
    """Where a Consumer is in its life; each instance runs once."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Consumer:
    """Consume one SQS queue with one handler (SPEC §2).

    Args:
        handler: `(message) -> None`, sync (runs in a thread) or async (runs on the loop);
            raise to fail the message, return to acknowledge it. With `options.batch` (or a
            handler marked `__sqs_batch__`, like LambdaHandler) it takes `list[Message]`.
        options: how to poll, run and settle.

    Raises:
        TypeError: handler is not callable, is a generator function, or cannot be called
            with one positional argument; or options is not a ConsumerOptions.
    """

    def __init__(self, handler: Handler, options: ConsumerOptions) -> None:
        if not callable(handler):
            raise TypeError(f"Consumer handler must be callable, got {handler!r}")
        if not isinstance(options, ConsumerOptions):
            raise TypeError(f"Consumer options must be a ConsumerOptions, got {options!r}")
        self._batch = options.batch or is_batch_handler(handler)
        _check_handler(handler, batch=self._batch)
        if self._batch and options.middleware:
            raise ValueError(
                "ConsumerOptions.middleware applies to per-message handlers; a batch handler "
                "gets none (wrap the batch handler itself instead)"
            )
        self.handler = handler
        self.options = options
        self._state = State.NEW
        self._lock = threading.Lock()
        self._counters = Counters()
        self._parts: Stages | None = None
        self._fatal: BaseException | None = None
        self._interrupt: BaseException | None = None  # a handler's KeyboardInterrupt, ...
        self._stop_requested = False
        self._stopped: anyio.Event | None = None  # set to begin the graceful shutdown
        self._drain: anyio.CancelScope | None = None  # cancelled by a forced stop
        self._forced = False
        self._deadline = ShutdownDeadline()  # bounds every shielded step once stopping
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None
        self._threads = DaemonThreads()
        self._health = HealthState(options.unhealthy_after)
        self._stats_port: int | None = None

    @property
    def state(self) -> State:
        """The lifecycle state."""
        return self._state

    @property
    def stats_port(self) -> int | None:
        """The port `/healthz` and `/stats` are served on (bound, so never 0), or None."""
        return self._stats_port

    def healthy(self) -> bool:
        """True while SQS works for us: False once receives or deletes have failed for
        `unhealthy_after` seconds in a row, and once stopping."""
        return self._health.healthy()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, backend: str = "asyncio") -> None:
        """Run until stopped and drained, blocking the calling thread.

        On the main thread, SIGINT and SIGTERM start the graceful shutdown; a second
        signal forces a fast one (running handlers are cancelled, acks still flushed).

        Raises:
            QueueCheckError: the queue is missing or cannot be accessed.
            SqsError: SQS failed fatally while running.
            ConsumerStateError: the consumer has already run, or start() was called
                inside a running event loop (use `await consumer.run()` there; the
                consumer is left unstarted, so that still works).
        """
        running = _running_event_loop()
        if running is not None:
            raise ConsumerStateError(
                f"Consumer.start() cannot block inside a running {running} event loop: "
                "use `await consumer.run()` inside a running event loop"
            )
        anyio.run(self._main, backend=backend)

    async def _main(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            await self.run()
            return
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(self._watch_signals)
            try:
                await self.run()
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:  # re-raised below, unwrapped from the task group's
                error = exc  # group (a handler's KeyboardInterrupt or SystemExit too)
            tg.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _watch_signals(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self._state is State.STOPPING:
                    log.warning("second %s: forcing shutdown", signal.Signals(signum).name)
                    self._force()
                else:
                    log.info("%s: shutting down gracefully", signal.Signals(signum).name)
                    self.stop()

    async def run(self) -> None:
        """Run inside a running event loop until stopped and drained (no signal handlers).

        Raises:
            QueueCheckError: the queue is missing or cannot be accessed.
            SqsError: SQS failed fatally while running.
            ConsumerStateError: the consumer has already run.
        """
        self._begin()
        # One policy for every sync call a handler makes (handlers, batch handlers, routes,
        # Lambda functions): our daemon threads, at most `concurrency` at once. Tasks
        # started below inherit it from this context.
        undo = calls.install(
            calls.SyncCalls(self._threads, anyio.CapacityLimiter(self.options.concurrency))
        )
        undo_counters = stats.install(self._counters)
        try:
            await self._serve()
        except BaseExceptionGroup as group:
            # One failure (e.g. the stats port is taken) reads better as itself.
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
                raise group.exceptions[0] from None
            raise
        finally:
            undo_counters()
            undo()
            with self._lock:
                self._state = State.STOPPED
        if self._interrupt is not None:
            raise self._interrupt
        if self._fatal is not None:
            raise self._fatal

    def _begin(self) -> None:
        with self._lock:
            if self._state is not State.NEW:
                raise ConsumerStateError(
                    f"Consumer cannot run: it is {self._state.value} (a Consumer runs once; "
                    "build a new one to run again)"
                )
            self._stopped = anyio.Event()
            self._token = anyio.lowlevel.current_token()
            self._loop_thread = threading.get_ident()
            self._state = State.RUNNING
            if self._stop_requested:
                self._state = State.STOPPING
                self._stopped.set()

    def stop(self) -> None:
        """Begin the graceful shutdown; safe from any thread, and a no-op when repeated.

        Running handlers get `shutdown_timeout` to finish; a second SIGINT/SIGTERM (not a
        second `stop()`, which handlers may call freely) forces the shutdown.
        """
        self._request_stop()

    def _request_stop(self) -> bool:
        """Begin the graceful shutdown; False if it had already begun (or ended)."""
        with self._lock:
            if self._state is State.NEW:
                self._stop_requested = True
                return True
            if self._state is not State.RUNNING:
                return False
            self._state = State.STOPPING
        self._in_loop(self._begin_stop)
        return True

    def _begin_stop(self) -> None:
        # On the loop, at once: no prefetched message starts after stop() (shutdown
        # releases them), even one a slot frees for before the shutdown task runs.
        if self._parts is not None:
            self._parts.leases.close()
        assert self._stopped is not None
        self._stopped.set()

    def _force(self) -> None:
        """Cut the shutdown short (on the loop): cancel running handlers, and give every
        SQS step still to come, or in flight, at most FORCED_GRACE seconds."""
        self._forced = True
        self._deadline.within(FORCED_GRACE)
        if self._drain is not None:
            self._drain.cancel()

    def _in_loop(self, function: Callable[[], object]) -> None:
        if threading.get_ident() == self._loop_thread:
            function()
            return
        # RunFinishedError: the run has already ended, so there is nothing left to stop.
        with contextlib.suppress(anyio.RunFinishedError):
            anyio.from_thread.run_sync(function, token=self._token)

    def _on_interrupt(self, error: BaseException) -> None:
        """A handler raised KeyboardInterrupt, SystemExit or another BaseException: stop at
        once (running handlers are cancelled, their messages released, acks flushed), then
        raise it from start()/run(), unwrapped."""
        if self._interrupt is None:
            self._interrupt = error
            log.warning(
                "handler raised %s: stopping now (running handlers are cancelled and their "
                "messages released)",
                type(error).__name__,
            )
        self._request_stop()
        self._force()

    def _on_fatal(self, error: BaseException) -> None:
        """A stage hit an error retrying cannot fix: shut down gracefully, then raise it."""
        if self._fatal is None:
            self._fatal = error
        self._request_stop()

    # -- the run ---------------------------------------------------------------------------

    def _wiring(self) -> Wiring:
        """What builds this run's stages, lent the consumer's state and callbacks."""
        return Wiring(
            self.handler,
            self.options,
            batch=self._batch,
            counters=self._counters,
            threads=self._threads,
            health=self._health,
            deadline=self._deadline,
            stats=self.stats,
            on_fatal=self._on_fatal,
            on_interrupt=self._on_interrupt,
        )

    async def _serve(self) -> None:
        opts = self.options
        wiring = self._wiring()
        sqs = wiring.connect()
        queue = await check_queue(sqs, opts.queue_url)
        if opts.dead_letter_queue_url is not None:
            await check_queue(sqs, opts.dead_letter_queue_url, option="dead_letter_queue_url")
        for middleware in opts.middleware:
            # A middleware that needs a resource (a lock table) checks it here, so a missing
            # one fails start() before any message is received.
            check = getattr(middleware, "__sqs_check__", None)
            if check is not None:
                await check()
        wiring.telemetry(queue)
        parts = wiring.build(sqs, queue)
        self._parts = parts
        log.info(
            "consuming %s with %r, concurrency %d", opts.queue_url, parts.worker, opts.concurrency
        )
        assert self._stopped is not None
        async with anyio.create_task_group() as tg:
            if opts.stats_port is not None:
                # First, so a port already in use fails start() before any message moves.
                server = StatsServer(
                    opts.stats_port,
                    stats=lambda: self.stats().as_dict(),
                    healthy=self.healthy,
                    host=opts.stats_host,
                )
                try:
                    self._stats_port = await tg.start(server.serve)
                except OSError as exc:
                    raise _stats_port_error(opts.stats_port, opts.stats_host, exc) from exc
            await tg.start(parts.harvester.run)
            await tg.start(parts.visibility.run)
            await tg.start(parts.worker.serve)
            await tg.start(parts.heartbeat.run)
            await tg.start(parts.runner.run)
            try:
                await self._stopped.wait()
                await self._shutdown(parts)
            except anyio.get_cancelled_exc_class():
                # Cancelled from outside (not stop()), possibly mid-drain: our tasks are being
                # cancelled too, so send what is queued from here, shielded, before going.
                self._deadline.within(flush_budget(opts.shutdown_timeout))
                with self._deadline.shielded():
                    self._health.stopping()
                    parts.leases.close()
                    await parts.runner.aclose()
                    await self._release(parts, list(parts.leases))
                    await parts.harvester.drain_here()
                    await parts.visibility.drain_here()
                self._report_unsent(parts)
                raise
            tg.cancel_scope.cancel()  # the stats server runs until cancelled
        log.info("stopped: %r", self)

    # -- shutdown --------------------------------------------------------------------------

    async def _shutdown(self, parts: Stages) -> None:
        """The graceful shutdown, in the only order that loses nothing and holds nothing."""
        # 0. Bounded, whatever SQS does: handlers get shutdown_timeout, and every shielded
        #    SQS step (settles, releases, the final flush) ends by shutdown_timeout plus a
        #    flush budget from now; a forced stop brings that to FORCED_GRACE.
        handlers = self.options.shutdown_timeout
        self._deadline.within(handlers + flush_budget(handlers))
        # 1. Stop receiving at once (and say so on /healthz), and wait for the receive
        #    loops to end, so nothing is leased after this. A long poll in flight is
        #    abandoned; whatever it still returns is released from its thread, so no message
        #    waits out a visibility timeout. No prefetched message starts from now on.
        self._health.stopping()
        parts.leases.close()
        await parts.runner.aclose()
        # 2. Messages received but not started go back now (visibility 0): another consumer
        #    can start them while we finish the rest.
        await self._release(parts, parts.leases.take_unstarted())
        # 3. Running handlers get shutdown_timeout to finish (0 once forced); the worker then
        #    cancels what is left. The heartbeat keeps their leases alive meanwhile, and
        #    their acks join the harvester as they finish.
        timeout = 0.0 if self._forced else self.options.shutdown_timeout
        with anyio.CancelScope() as self._drain:
            await parts.worker.aclose(timeout)
        if self._drain.cancel_called:
            await parts.worker.aclose(0)
        # 4. No handler runs any more: stop extending, then hand back the messages of the
        #    handlers cancelled in step 3 rather than leave them invisible.
        parts.heartbeat.stop()
        await self._release(parts, list(parts.leases))
        # 5. Flush every pending delete and visibility change. Shielded: a cancellation
        #    arriving now must not drop acknowledgements of work already done; but only
        #    until the deadline. What did not make it is logged, once, by message id.
        with self._deadline.shielded():
            await parts.harvester.aclose()
            await parts.visibility.aclose()
        self._report_unsent(parts)

    def _report_unsent(self, parts: Stages) -> None:
        """Log, once, the messages the shutdown could not settle on SQS in time."""
        parts_unsent = [
            ("delete", parts.harvester.unsent()),
            ("visibility change (release or retry delay)", parts.visibility.unsent()),
            ("settle (dead-letter send)", self._deadline.abandoned),
        ]
        lines = [f"{what} of {', '.join(dict.fromkeys(ids))}" for what, ids in parts_unsent if ids]
        if not lines:
            return
        why = "stop was forced" if self._forced else "SQS did not answer in time"
        log.warning(
            "shutdown gave up waiting for SQS (%s); not sent: %s. These messages come back "
            "after their visibility timeout (nothing is lost; a finished one may be handled "
            "again)",
            why,
            "; ".join(lines),
        )

    async def _release(self, parts: Stages, leases: list[Lease]) -> None:
        for lease in leases:
            await parts.pipeline.release(lease)

    # -- observation -----------------------------------------------------------------------

    def stats(self) -> Stats:
        """A frozen snapshot of the counters and the worker's figures (any thread)."""
        parts = self._parts
        if parts is None:
            return Stats.build(self._counters, _NO_WORKER, in_flight=0, pollers=0)
        return Stats.build(
            self._counters,
            parts.worker.stats(),
            in_flight=len(parts.leases),
            pollers=parts.runner.pollers,
            prefetched=parts.leases.unstarted,
            deleting=parts.harvester.outstanding(),
        )

    def __repr__(self) -> str:
        c = self._counters
        return (
            f"<Consumer {self._state.value} received={c.received} succeeded={c.succeeded} "
            f"failed={c.failed} deleted={c.deleted} released={c.released}>"
        )


# -- checks made before a run ----------------------------------------------------------------


def _check_handler(handler: object, *, batch: bool) -> None:
    """Refuse, at construction, a handler that could never run a message."""
    name = getattr(handler, "__qualname__", None) or repr(handler)
    problem = generator_problem(handler)
    if problem is not None:
        raise TypeError(
            f"Consumer handler {name} must be a plain function (def or async def), but {problem}: "
            "calling it only makes a generator, so its body would never run; "
            "drop the `yield`, or call the generator from a plain handler"
        )
    problem = positional_problem(handler, 1)
    if problem is not None:
        takes = "the list of messages of one receive" if batch else "the message"
        raise TypeError(
            f"Consumer handler {name} must take one positional argument ({takes}), but {problem}"
        )


def _running_event_loop() -> str | None:
    """The async library running in this thread ("asyncio", "trio"), or None."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")  # only if imported: then it may be running
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            return None
        return "trio"
    return None


def _stats_port_error(port: int, host: str, exc: OSError) -> OSError:
    """The bind failure, as an OSError still, but naming the option that chose the port."""
    if exc.errno == errno.EADDRINUSE:
        why = f"is already in use on {host} (choose another port, or 0 for a free one)"
    else:
        why = f"cannot be served on {host} (stats_host): {exc.strerror or exc}"
    return OSError(exc.errno, f"ConsumerOptions.stats_port={port} {why}")
