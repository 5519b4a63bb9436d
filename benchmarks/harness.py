"""Shared pieces of the benchmark suite: handlers, the run driver, bare loops, machine info.

Everything drives the library through its public API (``Consumer``, ``ConsumerOptions``,
``stats()``) over ``MemorySQS`` or a real SQS endpoint, so a benchmark measures whatever the
library is when it runs. The bare loops here are the baselines: what a few lines of code with
no framework do over the same queue, in the same run.

Clock (for ours and for every baseline alike): from the first handler call to the return of the
N-th handler call. CPU: ``time.process_time()`` over that span / N (every thread of this
process: with MemorySQS the fake's own work is included; with a server, it runs elsewhere).
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import attrs

from sqs_consumer import Consumer, ConsumerOptions
from sqs_consumer.testing import MemorySQS

Strategy = Literal["semaphore", "pool"]
Style = Literal["async", "sync"]
STRATEGIES: tuple[Strategy, ...] = ("semaphore", "pool")
STYLES: tuple[Style, ...] = ("async", "sync")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ROOT / "docs" / "benchmarks"
SENDER_THREADS = 64  # concurrent SendMessageBatch calls while filling (each pays the latency)
RUN_TIMEOUT = 300.0  # a run that takes longer than this is a hang: fail loudly
BARE_WAIT = 0  # the bare loops stop on their first empty receive (the queue is full at start)

_queue_names = count()


# -- the machine --------------------------------------------------------------------------------


def load() -> dict[str, Any]:
    """The machine's load now: `uptime`'s line and the 1/5/15-minute load averages."""
    try:
        line = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        line = ""
    one, five, fifteen = os.getloadavg()
    return {"uptime": line, "loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)]}


def machine() -> dict[str, Any]:
    """What ran the benchmark: interpreter, platform, cores, versions, commit, load."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "sqs_consumer": _version("sqs-consumer"),
        "anyio": _version("anyio"),
        "boto3": _version("boto3"),
        "git": git_state(),
        "load": load(),
    }


def git_state() -> str:
    """The commit benchmarked, with "+dirty" when the work tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit}{'+dirty' if dirty else ''}" if commit else "unknown"


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


# -- counting handled messages ------------------------------------------------------------------


@attrs.define
class Tally:
    """Counts handled messages; reads both clocks at the first call and the N-th return.

    Thread-safe: sync handlers run in many threads at once.
    """

    target: int
    on_done: Callable[[], None] = lambda: None
    started: int = 0
    handled: int = 0
    first_wall: float | None = None
    first_cpu: float = 0.0
    last_wall: float = 0.0
    last_cpu: float = 0.0
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def begin(self) -> None:
        with self.lock:
            self.started += 1
            if self.first_wall is None:
                self.first_cpu = time.process_time()
                self.first_wall = time.perf_counter()

    def finish(self) -> None:
        with self.lock:
            self.handled += 1
            last = self.handled == self.target
            if last:
                self.last_wall = time.perf_counter()
                self.last_cpu = time.process_time()
        if last:
            self.on_done()

    @property
    def done(self) -> bool:
        return self.handled >= self.target

    def figures(self) -> dict[str, float]:
        """msgs/s and CPU µs/msg over the timed span."""
        assert self.first_wall is not None, "no handler call was made"
        elapsed = self.last_wall - self.first_wall
        return {
            "msgs_per_s": self.target / elapsed if elapsed > 0 else float("inf"),
            "cpu_us_per_msg": (self.last_cpu - self.first_cpu) / self.target * 1e6,
            "measured_s": elapsed,
        }


def make_handler(style: Style, work: float, tally: Tally) -> Callable[[Any], Any]:
    """The handler under test: a no-op or a sleep of `work` seconds, async or sync.

    It ignores its argument, so the bare loops can pass it the raw message dict.
    """
    if style == "async":

        async def handle_async(message: Any) -> None:
            tally.begin()
            if work:
                await anyio.sleep(work)
            tally.finish()

        return handle_async

    def handle_sync(message: Any) -> None:
        tally.begin()
        if work:
            time.sleep(work)
        tally.finish()

    return handle_sync


# -- queues -------------------------------------------------------------------------------------


def new_queue(latency: float = 0.0, **attributes: str) -> tuple[MemorySQS, str]:
    """A fresh MemorySQS (every call sleeps `latency` seconds) and one queue on it."""
    sqs = MemorySQS(latency=latency)
    name = f"bench-{os.getpid()}-{next(_queue_names)}"
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return sqs, url


def fill(
    client: Any, url: str, n: int, *, body_size: int = 0, threads: int = SENDER_THREADS
) -> None:
    """Send `n` messages, 10 per SendMessageBatch, from `threads` threads at once (so calls
    that pay a latency pay it in parallel). Bodies are `{"n": i}`, padded to `body_size`."""

    def send(start: int) -> None:
        entries = []
        for i in range(min(10, n - start)):
            body = f'{{"n": {start + i}}}'
            entries.append({"Id": str(i), "MessageBody": body.ljust(body_size)})
        response = client.send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"send_message_batch failed: {response['Failed']}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(0, n, 10)))


class SplitLatency:
    """A boto3-style client over MemorySQS that sleeps its own latency per operation.

    MemorySQS's `latency` is one figure for every call; this sets receive and delete apart
    (e.g. a 100 ms receive and a 50 ms delete). Operations not named pass straight through.
    """

    def __init__(self, sqs: MemorySQS, latency: dict[str, float]) -> None:
        self._sqs = sqs
        self._latency = latency

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._sqs, name)
        delay = self._latency.get(name)
        if delay is None or not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            time.sleep(delay)
            return attribute(**kwargs)

        return call


# -- driving the consumer -----------------------------------------------------------------------


@attrs.define
class Peaks:
    """Highest values seen in stats() while a run goes on (sampled every 50 ms)."""

    pollers: int = 0
    workers: int = 0
    busy: int = 0
    waiting: int = 0
    in_flight: int = 0
    prefetched: int = 0

    def see(self, consumer: Consumer) -> None:
        s = consumer.stats().as_dict()
        for name in attrs.fields_dict(Peaks):
            setattr(self, name, max(getattr(self, name), s.get(name, 0)))


async def drive(
    options: ConsumerOptions,
    handler: Callable[[Any], Any],
    tally: Tally,
    *,
    on_sample: Callable[[Consumer], None] | None = None,
    sample_interval: float = 0.05,
    side: Callable[[Consumer], Any] | None = None,
) -> dict[str, Any]:
    """Run a Consumer until the tally has counted its N-th message, then stop it.

    Returns the tally's figures, start-up and shutdown times, peaks and final stats().
    `side` is an async function started beside the consumer (a producer, a gate).
    """
    done = anyio.Event()
    token = anyio.lowlevel.current_token()
    loop_thread = threading.get_ident()

    def signal_done() -> None:
        if threading.get_ident() == loop_thread:
            done.set()
        else:  # a sync handler's thread: hop to the loop to set the event
            anyio.from_thread.run_sync(done.set, token=token)

    tally.on_done = signal_done
    consumer = Consumer(handler, options)
    peaks = Peaks()
    started = time.perf_counter()
    stop_wall = 0.0
    helpers = anyio.CancelScope()  # the sampler and the side task end when N are handled

    async def sample() -> None:
        while True:
            peaks.see(consumer)
            if on_sample is not None:
                on_sample(consumer)
            await anyio.sleep(sample_interval)

    async def helper_tasks() -> None:
        with helpers:
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                if side is not None:
                    tg.start_soon(side, consumer)

    async def stop_when_done() -> None:
        nonlocal stop_wall
        await done.wait()
        peaks.see(consumer)
        if on_sample is not None:
            on_sample(consumer)
        stop_wall = time.perf_counter()
        consumer.stop()
        helpers.cancel()

    with anyio.fail_after(RUN_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_when_done)
            tg.start_soon(helper_tasks)
            await consumer.run()  # returns once stopped and drained (acks flushed)
    stopped = time.perf_counter()
    assert tally.first_wall is not None
    stats = consumer.stats().as_dict()
    return tally.figures() | {
        "startup_s": tally.first_wall - started,
        "shutdown_s": stopped - stop_wall,
        "peaks": attrs.asdict(peaks),
        "stats": stats,
        "msgs_per_receive": stats["received"] / stats["receives"] if stats["receives"] else 0.0,
    }


def ours(
    client: Any,
    url: str,
    *,
    strategy: Strategy,
    style: Style,
    concurrency: int,
    messages: int,
    work: float,
    **options: Any,
) -> dict[str, Any]:
    """One run of the Consumer over `client` (already filled with `messages`)."""
    tally = Tally(target=messages)
    opts = ConsumerOptions(
        queue_url=url,
        client=client,
        worker=strategy,
        concurrency=concurrency,
        wait_time_seconds=options.pop("wait_time_seconds", 1),
        **options,
    )
    gc.collect()
    return anyio.run(drive, opts, make_handler(style, work, tally), tally)


# -- the bare loops (baselines) ----------------------------------------------------------------


def _delete(client: Any, url: str, messages: list[dict[str, Any]]) -> None:
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    client.delete_message_batch(QueueUrl=url, Entries=entries)


def bare_sync(client: Any, url: str, *, workers: int, messages: int, work: float) -> dict[str, Any]:
    """`workers` threads, each: receive 10 -> call the sync handler on each -> delete batch.

    One worker is the overhead limit (no thread hop at all); C workers the io baseline.
    Each stops on an empty receive (the queue is full from the start) or once N are handled.
    """
    tally = Tally(target=messages)
    handler = make_handler("sync", work, tally)

    def loop() -> None:
        while not tally.done:
            response = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=BARE_WAIT
            )
            batch = response.get("Messages", [])
            if not batch:
                return
            for message in batch:
                handler(message)
            _delete(client, url, batch)

    gc.collect()
    if workers == 1:
        loop()
    else:
        threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(RUN_TIMEOUT)
    return tally.figures() | {"workers": workers}


def bare_async(
    client: Any, url: str, *, workers: int, messages: int, work: float, inline: bool = False
) -> dict[str, Any]:
    """`workers` tasks on one event loop, each: receive 10 -> await the async handler on each ->
    delete batch. The SQS calls run in threads (anyio.to_thread, as many as workers), as boto3
    blocks; with `inline` (one worker, no latency: the overhead limit) on the loop itself."""
    tally = Tally(target=messages)
    handler = make_handler("async", work, tally)

    async def main() -> None:
        limiter = anyio.CapacityLimiter(workers)

        async def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            if inline:
                return function(*args, **kwargs)
            return await anyio.to_thread.run_sync(
                lambda: function(*args, **kwargs), limiter=limiter
            )

        async def loop() -> None:
            while not tally.done:
                response = await call(
                    client.receive_message,
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=BARE_WAIT,
                )
                batch = response.get("Messages", [])
                if not batch:
                    return
                for message in batch:
                    await handler(message)
                await call(_delete, client, url, batch)

        with anyio.fail_after(RUN_TIMEOUT):
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(loop)

    gc.collect()
    anyio.run(main)
    return tally.figures() | {"workers": workers}


def thread_round_trip_cpu_us(calls: int = 2_000) -> float:
    """CPU µs of one `anyio.to_thread.run_sync` of a function that does nothing: what each
    SQS call made from an event loop through a thread costs before the call's own work."""

    async def main() -> float:
        for _ in range(100):  # the worker thread exists, the code paths are warm
            await anyio.to_thread.run_sync(int)
        begun = time.process_time()
        for _ in range(calls):
            await anyio.to_thread.run_sync(int)
        return (time.process_time() - begun) / calls * 1e6

    return anyio.run(main)


def bare(
    style: Style, client: Any, url: str, *, inline: bool = False, **kwargs: Any
) -> dict[str, Any]:
    """The bare loop for a handler style; `inline`: one loop making its calls directly (no
    thread at all), the overhead limit over a fake that answers at once."""
    if style == "async":
        return bare_async(client, url, inline=inline, **kwargs)
    return bare_sync(client, url, **kwargs)


def warm_up() -> None:
    """Small unreported runs (both styles, ours and bare): imports and caches are ready after."""
    for style in STYLES:
        sqs, url = new_queue()
        fill(sqs, url, 1_000)
        ours(sqs, url, strategy="semaphore", style=style, concurrency=100, messages=1_000, work=0)
        sqs, url = new_queue()
        fill(sqs, url, 1_000)
        bare(style, sqs, url, workers=1, messages=1_000, work=0, inline=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table, columns right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join(name.rjust(width) for name, width in zip(header, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join([line, "-" * len(line), *body])


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; the peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
