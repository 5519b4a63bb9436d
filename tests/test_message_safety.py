"""Message safety (issue 9): no handler mistake, cancellation or stop race loses, strands or hides
a message. Each test drives the public API on asyncio and trio."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from sqs_consumer import Consumer, ConsumerOptions, LambdaHandler, Message, Router
from sqs_consumer.testing import MemorySQS
from tests.conftest import QueueEnv, unique_name, wait_until
from tests.helpers import running, wait_for

pytestmark = pytest.mark.anyio


class NoDelay:
    """A retry policy that makes a failed message visible again at once."""

    def delay(self, receive_count: int) -> float:
        return 0


def memory_queue(count: int = 0, **attributes: str) -> tuple[MemorySQS, str]:
    sqs = MemorySQS()
    url = sqs.create_queue(QueueName=unique_name(), Attributes=attributes)["QueueUrl"]
    for start in range(0, count, 10):
        entries = [
            {"Id": str(i), "MessageBody": f"m{n}"}
            for i, n in enumerate(range(start, min(count, start + 10)))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return sqs, url


def options(sqs: MemorySQS, url: str, **overrides: Any) -> ConsumerOptions:
    settings: dict[str, Any] = {"queue_url": url, "client": sqs, "wait_time_seconds": 1}
    settings.update(overrides)
    return ConsumerOptions(**settings)


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The text of every 'message ... failed' line the consumer logged."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sqs_consumer" and r.msg.startswith("message %s failed")
    ]


# -- 1. a handler that does not really run must never ack --------------------------------------


async def _real_work(done: list[str], message: Message) -> None:
    await anyio.lowlevel.checkpoint()
    done.append(message.body)


def _no_wraps(function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(message: Message) -> Any:  # no functools.wraps: looks sync, returns a coroutine
        return function(message)

    return wrapper


def _coroutine_returning(kind: str, done: list[str]) -> Callable[[Message], Any]:
    if kind == "lambda":
        return lambda m: _real_work(done, m)
    if kind == "partial":
        return functools.partial(_real_work, done)
    return _no_wraps(functools.partial(_real_work, done))


@pytest.mark.parametrize("kind", ["lambda", "partial", "decorator"])
async def test_a_sync_callable_returning_a_coroutine_is_awaited(queue: QueueEnv, kind: str) -> None:
    """`lambda m: real(m)`, a partial of an async function, an async function under a decorator
    without functools.wraps: the coroutine is awaited, the work runs, the message is deleted."""
    queue.send(["a", "b", "c"])
    done: list[str] = []
    consumer = Consumer(_coroutine_returning(kind, done), queue.options())
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 3, timeout=15)
    assert sorted(done) == ["a", "b", "c"]
    assert consumer.stats().failed == 0
    assert queue.counts() == (0, 0)


def _generator() -> Iterator[str]:
    yield "never"


async def _async_generator() -> Any:
    yield "never"


@pytest.mark.parametrize(
    ("make", "returned"),
    [(_generator, "returned a generator"), (_async_generator, "returned an async generator")],
)
@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_handler_returning_a_generator_fails_and_is_retried(
    queue: QueueEnv,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[], Any],
    returned: str,
    flavour: str,
) -> None:
    """A handler whose result is a (async) generator ran nothing: the message fails with a
    message saying what was returned, comes back, and is never deleted."""
    queue.send(["g"])
    calls: list[int] = []

    def sync_handler(message: Message) -> Any:
        calls.append(message.receive_count)
        return make()

    async def async_handler(message: Message) -> Any:
        calls.append(message.receive_count)
        return make()

    handler = sync_handler if flavour == "sync" else async_handler
    consumer = Consumer(handler, queue.options(retry=NoDelay()))
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        async with running(consumer):
            await wait_for(lambda: len(calls) >= 2, timeout=15)  # failed, came back
    stats = consumer.stats()
    assert stats.deleted == 0 and stats.succeeded == 0 and stats.failed >= 2
    assert calls[:2] == [1, 2]
    assert any(returned in line and "HandlerResultError" in line for line in failures(caplog))
    assert sum(queue.counts()) == 1  # still on the queue


async def test_a_generator_function_is_rejected_at_construction() -> None:
    """A generator function as handler could never run a message: refused by Consumer()."""
    sqs, url = memory_queue()

    def handler(message: Message) -> Iterator[None]:
        yield None

    with pytest.raises(TypeError, match="generator"):
        Consumer(handler, options(sqs, url))


async def test_middleware_that_does_not_await_call_next_fails_the_message(
    queue: QueueEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """`call_next(message)` without await ran nothing: HandlerResultError, message kept."""
    queue.send(["x"])
    handled: list[str] = []
    calls: list[int] = []

    async def forgetful(message: Message, call_next: Any) -> None:
        calls.append(message.receive_count)
        call_next(message)  # the bug: no await

    async def handler(message: Message) -> None:
        handled.append(message.body)

    consumer = Consumer(handler, queue.options(middleware=[forgetful], retry=NoDelay()))
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        async with running(consumer):
            await wait_for(lambda: len(calls) >= 2, timeout=15)
    assert handled == []
    assert consumer.stats().deleted == 0
    assert any(
        "HandlerResultError" in line and "without awaiting" in line for line in failures(caplog)
    )
    assert sum(queue.counts()) == 1


# -- 2. a cancellation that escapes a handler is that handler's failure ------------------------


async def _await_a_cancelled_task() -> None:
    """What a handler sees when it awaits work that someone else cancelled."""
    if _on_asyncio():

        async def other() -> None:
            await anyio.sleep_forever()

        task = asyncio.ensure_future(other())
        await anyio.lowlevel.checkpoint()  # one turn: the task is running when cancelled
        task.cancel()
        await task  # raises asyncio.CancelledError in the handler
    raise asyncio.CancelledError()  # trio: the same exception, raised by library code


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("worker", ["pool", "semaphore"])
async def test_a_foreign_cancellation_fails_only_that_message(
    caplog: pytest.LogCaptureFixture, worker: str
) -> None:
    """An async handler awaiting a task someone else cancelled: that message fails with
    HandlerCancelled and is retried; the consumer keeps consuming; run() returns normally."""
    sqs, url = memory_queue(8)
    handled: list[tuple[str, int]] = []

    async def handler(message: Message) -> None:
        if message.body == "m0" and message.receive_count == 1:
            await _await_a_cancelled_task()
        handled.append((message.body, message.receive_count))

    consumer = Consumer(handler, options(sqs, url, worker=worker, concurrency=2, retry=NoDelay()))
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        async with running(consumer):
            await wait_for(lambda: consumer.stats().deleted == 8, timeout=15)
            # keeps receiving after the failure: a message sent now is handled too
            sqs.send_message(QueueUrl=url, MessageBody="later")
            await wait_for(lambda: consumer.stats().deleted == 9, timeout=15)
    assert ("m0", 2) in handled and ("later", 1) in handled
    assert consumer.stats().failed == 1
    lines = [line for line in failures(caplog) if "HandlerCancelled" in line]
    assert len(lines) == 1
    assert sqs.counts(url) == {"visible": 0, "in_flight": 0, "delayed": 0}


async def test_a_sync_handler_raising_cancelled_error_is_a_failure() -> None:
    """A sync handler raising asyncio.CancelledError fails its message; receiving goes on."""
    sqs, url = memory_queue(5)
    handled: list[str] = []

    def handler(message: Message) -> None:
        if message.body == "m2" and message.receive_count == 1:
            raise asyncio.CancelledError()
        handled.append(message.body)

    consumer = Consumer(handler, options(sqs, url, concurrency=2, retry=NoDelay()))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 5, timeout=15)
        sqs.send_message(QueueUrl=url, MessageBody="later")
        await wait_for(lambda: consumer.stats().deleted == 6, timeout=15)
    assert sorted(handled) == ["later", "m0", "m1", "m2", "m3", "m4"]
    assert consumer.stats().failed == 1


async def test_handler_timeout_is_still_a_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """The consumer's own handler_timeout cancels the handler: reported as a TimeoutError."""
    sqs, url = memory_queue(1)

    async def handler(message: Message) -> None:
        if message.receive_count == 1:
            await anyio.sleep_forever()

    consumer = Consumer(handler, options(sqs, url, handler_timeout=0.2, retry=NoDelay()))
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        async with running(consumer):
            await wait_for(lambda: consumer.stats().deleted == 1, timeout=15)
    assert consumer.stats().timed_out == 1
    lines = failures(caplog)
    assert len(lines) == 1 and "TimeoutError" in lines[0] and "HandlerCancelled" not in lines[0]


# -- 3. stop() from any thread or from inside a handler, at any moment, drains cleanly --------

_CYCLE_MESSAGES = 40


def _one_cycle(rng: random.Random, worker: str, sync: bool, where: str, backend: str) -> None:
    """One start/stop cycle with a random stop time while messages flow."""
    sqs, url = memory_queue(_CYCLE_MESSAGES, VisibilityTimeout="60")
    handled: set[str] = set()
    lock = threading.Lock()
    stop_after = rng.randint(1, _CYCLE_MESSAGES - 5)
    pauses = [rng.random() * 0.002 for _ in range(_CYCLE_MESSAGES)]
    consumer: Consumer

    def note(message: Message) -> None:
        with lock:
            handled.add(message.body)
            count = len(handled)
        if where == "inside" and count >= stop_after:
            consumer.stop()

    # The handlers' work: random lengths, so stop() lands at random points of the flow.
    def sync_handler(message: Message) -> None:
        time.sleep(pauses[int(message.body[1:])])
        note(message)

    async def async_handler(message: Message) -> None:
        await anyio.sleep(pauses[int(message.body[1:])])
        note(message)

    handler = sync_handler if sync else async_handler
    consumer = Consumer(
        handler, options(sqs, url, worker=worker, concurrency=8, shutdown_timeout=5)
    )
    timer = None
    if where == "thread":
        timer = threading.Timer(rng.random() * 0.03, consumer.stop)
        timer.start()
    consumer.start(backend=backend)  # must return normally, whatever the moment of stop()
    if timer is not None:
        timer.join()
    counts = sqs.counts(url)
    what = f"{worker} {'sync' if sync else 'async'} stop {where} on {backend}"
    assert counts["in_flight"] == 0, f"{what}: messages stranded in flight: {counts}"
    assert len(handled) + counts["visible"] == _CYCLE_MESSAGES, f"{what}: {counts} {handled}"


def test_stop_at_random_moments_always_drains_cleanly() -> None:
    """Hundreds of short start/stop cycles, both strategies, sync and async handlers, stop()
    from another thread and from inside a handler: every start() returns normally and
    handled + visible == sent (nothing stranded in flight)."""
    rng = random.Random(9)
    began = time.monotonic()
    cycles = 0
    while cycles < 400 and time.monotonic() - began < 30:  # bounded on a loaded machine
        for worker in ("semaphore", "pool"):
            for sync in (True, False):
                for where in ("thread", "inside"):
                    backend = "trio" if cycles % 2 else "asyncio"
                    _one_cycle(rng, worker, sync, where, backend)
                    cycles += 1
    assert cycles >= 80  # enough cycles ran to mean something even on a slow machine


# -- 7. one policy for running sync code -------------------------------------------------------


class Gauge:
    """Counts the calls running at once and the threads they ran in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.calls = 0
        self.threads: set[str] = set()

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.calls += 1
            self.most = max(self.most, self.now)
            self.threads.add(threading.current_thread().name)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


_OUR_THREADS = "sqs-consumer worker"


async def test_a_timed_out_sync_batch_handler_keeps_its_slot() -> None:
    """A sync batch handler past handler_timeout keeps its slot until its thread ends: with
    concurrency 2, never more than 2 handler threads run at once."""
    sqs, url = memory_queue(40)
    gauge = Gauge()

    def handler(messages: list[Message]) -> None:
        with gauge:
            time.sleep(0.25)  # the behaviour under test: a sync handler past its timeout

    consumer = Consumer(
        handler,
        options(sqs, url, batch=True, batch_size=2, concurrency=2, handler_timeout=0.05),
    )
    async with running(consumer):
        await wait_for(lambda: gauge.calls >= 8, timeout=20)
    assert consumer.stats().timed_out >= 6
    assert gauge.most <= 2


async def test_sync_router_routes_run_in_our_threads_under_the_limit() -> None:
    """Sync Router routes run in the consumer's threads, and a timed-out route keeps its slot."""
    sqs, url = memory_queue()
    for i in range(20):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=str(i),
            MessageAttributes={"type": {"DataType": "String", "StringValue": "created"}},
        )
    gauge = Gauge()
    router = Router(attribute="type")

    @router.route("created")
    def created(message: Message) -> None:
        with gauge:
            time.sleep(0.25)  # the behaviour under test: a sync handler past its timeout

    consumer = Consumer(router, options(sqs, url, concurrency=2, handler_timeout=0.05))
    async with running(consumer):
        await wait_for(lambda: gauge.calls >= 8, timeout=20)
    assert gauge.threads == {_OUR_THREADS}
    assert gauge.most <= 2


async def test_sync_lambda_functions_run_in_our_threads_under_the_limit() -> None:
    """A sync LambdaHandler function runs in the consumer's threads, under the same limit."""
    sqs, url = memory_queue(40)
    gauge = Gauge()

    def lambda_function(event: dict[str, Any], context: Any) -> None:
        with gauge:
            time.sleep(0.25)  # the behaviour under test: a sync handler past its timeout

    consumer = Consumer(
        LambdaHandler(lambda_function),
        options(sqs, url, batch_size=2, concurrency=2, handler_timeout=0.05),
    )
    async with running(consumer):
        await wait_for(lambda: gauge.calls >= 8, timeout=20)
    assert gauge.threads == {_OUR_THREADS}
    assert gauge.most <= 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("kind", ["handler", "router", "lambda"])
def test_no_non_daemon_thread_outlives_start(backend: str, kind: str) -> None:
    """Sync code still running when start() returns (abandoned at shutdown) runs in daemon
    threads: nothing of ours keeps the process alive."""
    sqs, url = memory_queue(3)
    release = threading.Event()
    entered = threading.Event()

    def block(*_: Any) -> None:
        entered.set()
        release.wait(10)

    handler: Any = block
    if kind == "router":
        handler = Router(attribute="type", default=block)
    elif kind == "lambda":
        handler = LambdaHandler(block)
    before = set(threading.enumerate())
    consumer = Consumer(handler, options(sqs, url, concurrency=2, shutdown_timeout=0.1))
    stopper = threading.Thread(target=lambda: (entered.wait(10), consumer.stop()))
    stopper.start()
    try:
        consumer.start(backend=backend)
        stopper.join()
        left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
        assert entered.is_set()
        assert left, "the blocked call's thread should still be running"
        assert [t.name for t in left if not t.daemon] == []
    finally:
        release.set()


# -- 6. shutdown is bounded ---------------------------------------------------------------------


class Partition:
    """A MemorySQS whose chosen calls hang (or fail to connect) while `cut` is set."""

    def __init__(self, sqs: MemorySQS, operations: set[str], *, mode: str = "hang") -> None:
        self._sqs = sqs
        self._operations = operations
        self._mode = mode
        self.cut = threading.Event()
        self.healed = threading.Event()
        self.hit = threading.Event()  # a call met the partition

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._sqs, name)
        if name not in self._operations:
            return method

        def call(**kwargs: Any) -> Any:
            if self.cut.is_set() and not self.healed.is_set():
                self.hit.set()
                if self._mode == "errors":
                    from botocore.exceptions import EndpointConnectionError

                    raise EndpointConnectionError(endpoint_url="https://sqs.partitioned")
                self.healed.wait(120)
            return method(**kwargs)

        return call


def _run_in_thread(
    consumer: Consumer, backend: str
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.start(backend=backend)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def _shutdown_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "sqs_consumer" and r.getMessage().startswith("shutdown gave up")
    ]


_BOUND = 0.5 + 1.0  # shutdown_timeout=0.5, plus its flush budget (at least 1 s)
_SLACK = 3.0  # a loaded 2-core machine


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("operation", "mode"),
    [
        ("delete_message_batch", "hang"),
        ("delete_message_batch", "errors"),
        ("change_message_visibility_batch", "hang"),
        ("send_message", "hang"),
    ],
)
def test_a_partition_at_shutdown_cannot_hold_start(
    caplog: pytest.LogCaptureFixture, backend: str, operation: str, mode: str
) -> None:
    """SQS hangs (or refuses connections) on the final deletes, the releases and retry
    delays, or the dead-letter send: start() still returns within shutdown_timeout plus the
    flush budget, and one log line names the messages that were not sent."""
    sqs, url = memory_queue(3)
    dlq = sqs.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    client = Partition(sqs, {operation}, mode=mode)
    ids: set[str] = set()
    lock = threading.Lock()

    def handler(message: Message) -> None:
        with lock:
            ids.add(message.message_id)
        if operation != "delete_message_batch":
            raise RuntimeError("fail: a retry delay or a dead letter is due")

    extra: dict[str, Any] = {}
    if operation == "send_message":
        extra = {"dead_letter_queue_url": dlq, "max_receives": 1}
    if operation != "delete_message_batch":
        client.cut.set()  # from the start: retry delays and dead letters are sent at once
    consumer = Consumer(
        handler,
        ConsumerOptions(
            queue_url=url,
            client=client,
            wait_time_seconds=1,
            shutdown_timeout=0.5,
            delete_flush_interval=30,  # acks wait in the batch until the final flush
            **extra,
        ),
    )
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        thread, errors = _run_in_thread(consumer, backend)
        try:
            wait_until(lambda: len(ids) == 3, timeout=10)
            wait_until(lambda: consumer.stats().failed + consumer.stats().succeeded == 3)
            if operation == "delete_message_batch":
                client.cut.set()  # the partition begins as we stop
            else:
                wait_until(client.hit.is_set)
            stopped = time.monotonic()
            consumer.stop()  # repeated: still graceful
            consumer._in_loop(consumer._force)  # what a second SIGINT/SIGTERM does
            thread.join(_BOUND + _SLACK)
            took = time.monotonic() - stopped
            assert not thread.is_alive(), f"start() still blocked {took:.1f} s after stop()"
        finally:
            client.healed.set()
            thread.join(10)
    assert errors == []
    assert client.hit.is_set()
    if mode == "hang":
        lines = _shutdown_warnings(caplog)
        assert len(lines) == 1, lines
    else:  # the retries may give up before the deadline: that line names them instead
        lines = [r.getMessage() for r in caplog.records if r.name == "sqs_consumer"]
    for message_id in ids:
        assert len([line for line in lines if message_id in line]) == 1, (message_id, lines)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_second_signal_cuts_a_stuck_flush_short(
    caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    """With the final deletes hanging and a long shutdown_timeout, a second signal ends the
    shutdown at once; the log still names the messages."""
    sqs, url = memory_queue(2)
    client = Partition(sqs, {"delete_message_batch"})
    consumer = Consumer(
        lambda m: None,
        ConsumerOptions(
            queue_url=url,
            client=client,
            wait_time_seconds=1,
            shutdown_timeout=20,  # bound without the second signal: 25 s
            delete_flush_interval=30,
        ),
    )
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        thread, errors = _run_in_thread(consumer, backend)
        try:
            wait_until(lambda: consumer.stats().succeeded == 2, timeout=10)
            client.cut.set()
            consumer.stop()
            wait_until(client.hit.is_set)  # the final flush is stuck
            stopped = time.monotonic()
            consumer.stop()  # repeated: still graceful
            consumer._in_loop(consumer._force)  # what a second SIGINT/SIGTERM does
            thread.join(_SLACK + 1.0)
            took = time.monotonic() - stopped
            assert not thread.is_alive(), f"start() still blocked {took:.1f} s after stop()"
        finally:
            client.healed.set()
            thread.join(10)
    assert errors == []
    lines = _shutdown_warnings(caplog)
    assert len(lines) == 1 and "forced" in lines[0], lines


async def test_repeated_stop_from_handlers_stays_graceful() -> None:
    """Handlers that each call stop() do not force the shutdown: every one that started
    finishes (the messages not started by then are released, as stop() does)."""
    sqs, url = memory_queue(4)
    begun: list[str] = []
    finished: list[str] = []

    async def handler(message: Message) -> None:
        begun.append(message.body)
        consumer.stop()  # every handler says "we are done"
        await anyio.sleep(0.3)  # the handler's work, which the stop must let finish
        finished.append(message.body)

    consumer = Consumer(handler, options(sqs, url, concurrency=4, shutdown_timeout=10))
    with anyio.fail_after(15):
        await consumer.run()
    stats = consumer.stats()
    assert sorted(finished) == sorted(begun) and finished
    assert stats.deleted == len(finished)
    assert stats.released == stats.received - len(finished)


# -- 8. a BaseException out of a handler ------------------------------------------------------


class Custom(BaseException):
    """A BaseException of the application's own."""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, Custom])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_base_exception_comes_out_of_start_unwrapped(
    caplog: pytest.LogCaptureFixture, backend: str, error: type[BaseException], flavour: str
) -> None:
    """KeyboardInterrupt, SystemExit or a custom BaseException from a handler: start() raises
    it as itself (no ExceptionGroup), asyncio logs no shutdown traceback, and every other
    message received is released exactly once."""
    sqs, url = memory_queue(6)
    lock = threading.Lock()
    entered: list[str] = []
    release = threading.Event()

    def arrive(message: Message) -> bool:
        with lock:
            entered.append(message.body)
            return len(entered) == 3  # the third raises, once the other two are running

    def sync_handler(message: Message) -> None:
        if arrive(message):
            wait_until(lambda: len(entered) == 3)
            raise error()
        release.wait(10)

    async def async_handler(message: Message) -> None:
        if arrive(message):
            raise error()
        await anyio.sleep_forever()

    handler = sync_handler if flavour == "sync" else async_handler
    consumer = Consumer(handler, options(sqs, url, concurrency=3))
    caught: BaseException | None = None
    with caplog.at_level(logging.DEBUG):
        try:
            consumer.start(backend=backend)
        except BaseException as exc:
            caught = exc
        finally:
            release.set()
    assert type(caught) is error, repr(caught)
    stats = consumer.stats()
    assert stats.released == stats.received >= 3, stats
    assert stats.failed == 0 and stats.deleted == 0
    assert sqs.counts(url) == {"visible": 6, "in_flight": 0, "delayed": 0}
    noise = [
        r.getMessage()
        for r in caplog.records
        if (r.name == "asyncio" and r.levelno >= logging.WARNING)
        or "never retrieved" in r.getMessage()
        or "Traceback" in (r.exc_text or "")
    ]
    assert noise == []
