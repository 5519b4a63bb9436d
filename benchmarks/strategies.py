"""Compare the worker strategies (semaphore vs pool) x handler styles (async vs sync) on MemorySQS.

Run ``python benchmarks/strategies.py`` (or ``make bench``); ``--quick`` for a short run.
See benchmarks/README.md for what the figures mean and their caveats.

Everything goes through the public API: ``Consumer(handler, ConsumerOptions(...))`` run with
``await consumer.run()`` inside ``anyio.run``. A side task waits on an ``anyio.Event`` that the
handler sets once it has handled the N-th message, then calls ``consumer.stop()``.

Timing: the clock starts when the handler is first called (the consumer has started
receiving and handed the first message over) and stops when the N-th handler call returns.
CPU time is ``time.process_time()`` over the same span (every thread of the process, so the
in-memory SQS is included) divided by N.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
import attrs

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer.testing import MemorySQS

Strategy = Literal["semaphore", "pool"]
Style = Literal["async", "sync"]

OVERHEAD_TARGET = 20_000.0  # msgs/s for the async no-op handler
RATIO_TARGET = 0.9  # IO-bound throughput / (concurrency / work)
WAIT_TIME_SECONDS = 1  # long poll; the queue is full from the start, so it only matters at the end
SENDER_THREADS = 32  # concurrent SendMessageBatch calls while filling (each pays the latency)
SAMPLE_INTERVAL = 0.05  # seconds between stats() samples (pollers / workers peaks)
RUN_TIMEOUT = 120.0  # a case that takes longer than this is a hang: fail loudly

_queue_names = count()


@attrs.frozen(kw_only=True)
class Case:
    """One benchmark run."""

    scenario: Literal["overhead", "io"]
    strategy: Strategy
    style: Style
    concurrency: int
    messages: int
    work: float  # seconds each handler call sleeps (0: a no-op)
    latency: float  # seconds MemorySQS sleeps per call (the simulated network)
    repeats: int = 1  # runs of the case; the row reported is the median by msgs/s

    @property
    def bound(self) -> float | None:
        """The throughput ceiling `concurrency / work` (None for a no-op handler)."""
        return self.concurrency / self.work if self.work else None

    @property
    def bound_with_receive(self) -> float | None:
        """`concurrency / (work + 2 * latency)`: the ceiling under strict backpressure, where
        a slot waits for its DeleteMessageBatch and then a ReceiveMessage round trip before
        its next message starts (no prefetch)."""
        return self.concurrency / (self.work + 2 * self.latency) if self.work else None


@attrs.define
class Tally:
    """Counts handled messages; records the first call and the N-th completion."""

    target: int
    done: anyio.Event
    token: anyio.lowlevel.EventLoopToken
    handled: int = 0
    first_wall: float | None = None
    first_cpu: float = 0.0
    last_wall: float = 0.0
    last_cpu: float = 0.0
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def begin(self) -> None:
        if self.first_wall is None:
            self.first_cpu = time.process_time()
            self.first_wall = time.perf_counter()

    def finish(self) -> bool:
        """Count one message; True for the N-th (the clocks are read then)."""
        self.handled += 1
        if self.handled != self.target:
            return False
        self.last_wall = time.perf_counter()
        self.last_cpu = time.process_time()
        return True


def make_handler(style: Style, work: float, tally: Tally) -> Callable[[Message], Any]:
    """The handler under test: a no-op, or a sleep of `work` seconds, async or sync."""
    if style == "async":

        async def handle_async(message: Message) -> None:
            tally.begin()
            if work:
                await anyio.sleep(work)
            if tally.finish():
                tally.done.set()

        return handle_async

    def handle_sync(message: Message) -> None:
        with tally.lock:
            tally.begin()
        if work:
            time.sleep(work)
        with tally.lock:
            last = tally.finish()
        if last:  # we run in one of the consumer's threads: hop to the loop to set the event
            anyio.from_thread.run_sync(tally.done.set, token=tally.token)

    return handle_sync


def fill(sqs: MemorySQS, url: str, n: int) -> None:
    """Send `n` messages, 10 per SendMessageBatch, from a few threads.

    The calls pay MemorySQS's latency like the consumer's do; sending from
    SENDER_THREADS threads at once makes that negligible (they sleep in parallel).
    """

    def send(start: int) -> None:
        entries = [
            {"Id": str(i), "MessageBody": f'{{"n": {start + i}}}'}
            for i in range(min(10, n - start))
        ]
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"send_message_batch failed: {response['Failed']}")

    with ThreadPoolExecutor(SENDER_THREADS) as pool:
        list(pool.map(send, range(0, n, 10)))


@attrs.define
class Peaks:
    """Highest values seen by the stats() sampler."""

    pollers: int = 0
    workers: int = 0
    busy: int = 0
    waiting: int = 0
    in_flight: int = 0

    def see(self, consumer: Consumer) -> None:
        s = consumer.stats()
        self.pollers = max(self.pollers, s.pollers)
        self.workers = max(self.workers, s.workers)
        self.busy = max(self.busy, s.busy)
        self.waiting = max(self.waiting, s.waiting)
        self.in_flight = max(self.in_flight, s.in_flight)


async def _sample(consumer: Consumer, peaks: Peaks, scope: anyio.CancelScope) -> None:
    with scope:
        while True:
            peaks.see(consumer)
            await anyio.sleep(SAMPLE_INTERVAL)


async def _drive(case: Case, sqs: MemorySQS, url: str) -> dict[str, Any]:
    tally = Tally(target=case.messages, done=anyio.Event(), token=anyio.lowlevel.current_token())
    options = ConsumerOptions(
        queue_url=url,
        client=sqs,
        worker=case.strategy,
        concurrency=case.concurrency,
        wait_time_seconds=WAIT_TIME_SECONDS,
    )
    consumer = Consumer(make_handler(case.style, case.work, tally), options)
    peaks = Peaks()
    started = time.perf_counter()
    stop_wall = 0.0
    sampler = anyio.CancelScope()

    async def stop_when_done() -> None:
        nonlocal stop_wall
        await tally.done.wait()
        peaks.see(consumer)
        stop_wall = time.perf_counter()
        consumer.stop()
        sampler.cancel()

    with anyio.fail_after(RUN_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_when_done)
            tg.start_soon(_sample, consumer, peaks, sampler)
            await consumer.run()  # returns once stopped and drained (acks flushed)
    stopped = time.perf_counter()
    assert tally.first_wall is not None
    elapsed = tally.last_wall - tally.first_wall
    rate = case.messages / elapsed if elapsed > 0 else float("inf")
    stats = consumer.stats()
    return {
        "msgs_per_s": rate,
        "cpu_us_per_msg": (tally.last_cpu - tally.first_cpu) / case.messages * 1e6,
        "ratio_to_bound": rate / case.bound if case.bound else None,
        "measured_s": elapsed,
        "startup_s": tally.first_wall - started,
        "shutdown_s": stopped - stop_wall,
        "handled": tally.handled,
        "stats": {
            "received": stats.received,
            "succeeded": stats.succeeded,
            "deleted": stats.deleted,
            "receives": stats.receives,
            "msgs_per_receive": stats.received / stats.receives if stats.receives else 0.0,
            "sqs_retries": stats.sqs_retries,
            "released": stats.released,
            "pollers_peak": peaks.pollers,
            "workers_peak": peaks.workers,
            "busy_peak": peaks.busy,
            "waiting_peak": peaks.waiting,
            "in_flight_peak": peaks.in_flight,
        },
    }


def run_once(case: Case) -> dict[str, Any]:
    """Fill a fresh queue, consume it with the case's settings, and return one result row."""
    sqs = MemorySQS(latency=case.latency)
    url = sqs.create_queue(QueueName=f"bench-{os.getpid()}-{next(_queue_names)}")["QueueUrl"]
    fill(sqs, url, case.messages)
    gc.collect()
    result = anyio.run(_drive, case, sqs, url)
    bound_rtt = case.bound_with_receive
    row = attrs.asdict(case) | {"bound": case.bound, "bound_with_receive": bound_rtt} | result
    row["ratio_to_bound_with_receive"] = result["msgs_per_s"] / bound_rtt if bound_rtt else None
    row["queue_after"] = sqs.counts(url)
    if result["stats"]["deleted"] != case.messages:
        print(f"  warning: deleted {result['stats']['deleted']} of {case.messages}", flush=True)
    return row


def run_case(case: Case) -> dict[str, Any]:
    """Run the case `repeats` times; the median run by msgs/s, with every run's rate."""
    runs = sorted((run_once(case) for _ in range(case.repeats)), key=lambda r: r["msgs_per_s"])
    row = runs[len(runs) // 2]
    row["runs_msgs_per_s"] = [r["msgs_per_s"] for r in runs]
    return row


def warm_up() -> None:
    """Small unreported runs (one per handler style): imports and caches are ready after."""
    styles: tuple[Style, ...] = ("async", "sync")
    for style in styles:
        run_once(
            Case(
                scenario="overhead",
                strategy="semaphore",
                style=style,
                concurrency=100,
                messages=1_000,
                work=0.0,
                latency=0.0,
            )
        )


def plan(quick: bool) -> Iterator[Case]:
    """The cases to run: overhead first, then IO-bound."""
    strategies: tuple[Strategy, ...] = ("semaphore", "pool")
    styles: tuple[Style, ...] = ("async", "sync")
    overhead_n = 5_000 if quick else 20_000
    repeats = 1 if quick else 3
    for strategy in strategies:
        for style in styles:
            yield Case(
                scenario="overhead",
                strategy=strategy,
                style=style,
                concurrency=100,
                messages=overhead_n,
                work=0.0,
                latency=0.0,
                repeats=repeats,
            )
    latency = 0.02
    seconds = 1.0 if quick else 3.0  # of run at the bound (longer in practice)
    # Strict backpressure (a message is received only once a slot is free, and an ack holds
    # its slot until SQS confirms the delete) costs each slot a delete and a receive round
    # trip per message: the ceiling is work / (work + 2 * latency). Several work durations
    # show how that fixed cost fades as handlers get longer.
    for work, concurrency in ((0.05, 50), (0.05, 200), (0.2, 50), (0.5, 50), (1.0, 100)):
        n = max(int(concurrency / work * seconds), concurrency * 2)
        for strategy in strategies:
            for style in styles:
                yield Case(
                    scenario="io",
                    strategy=strategy,
                    style=style,
                    concurrency=concurrency,
                    messages=n,
                    work=work,
                    latency=latency,
                )


COLUMNS = (
    ("scenario", 9),
    ("strategy", 9),
    ("handler", 7),
    ("conc", 5),
    ("N", 6),
    ("msgs/s", 9),
    ("CPU us/msg", 10),
    ("ratio", 6),
    ("target", 6),
    ("receives", 8),
    ("pollers^", 8),
)


def _target_met(row: dict[str, Any]) -> bool | None:
    if row["scenario"] == "overhead":
        return row["msgs_per_s"] >= OVERHEAD_TARGET if row["style"] == "async" else None
    return bool(row["ratio_to_bound"] >= RATIO_TARGET)


def format_row(row: dict[str, Any]) -> str:
    met = _target_met(row)
    ratio = row["ratio_to_bound"]
    cells = (
        row["scenario"],
        row["strategy"],
        row["style"],
        str(row["concurrency"]),
        str(row["messages"]),
        f"{row['msgs_per_s']:,.0f}",
        f"{row['cpu_us_per_msg']:.0f}",
        "-" if ratio is None else f"{ratio:.2f}",
        "-" if met is None else ("met" if met else "MISSED"),
        str(row["stats"]["receives"]),
        str(row["stats"]["pollers_peak"]),
    )
    return "  ".join(cell.rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def header() -> str:
    title = "  ".join(name.rjust(width) for name, width in COLUMNS)
    return f"{title}\n{'-' * len(title)}"


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "anyio": anyio.__version__ if hasattr(anyio, "__version__") else _version("anyio"),
        "sqs_consumer": _version("sqs-consumer"),
        "git": _git_state(),
    }


def _git_state() -> str:
    """The commit benchmarked, with "+dirty" when the work tree has changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (about 20 s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/strategies.json"),
        help="where to write the JSON results (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    info = machine()
    print(
        f"sqs-consumer strategies benchmark{' (--quick)' if args.quick else ''}: "
        f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs"
    )
    print(
        "msgs/s: N / (N-th handler return - first handler call); CPU us/msg: process_time over "
        "the same span / N;\nratio: msgs/s / (concurrency / work); pollers^: peak receive loops. "
        f"Targets: async no-op >= {OVERHEAD_TARGET:,.0f} msgs/s, IO ratio >= {RATIO_TARGET}.\n"
    )
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    warm_up()
    scenario = ""
    for case in plan(args.quick):
        if case.scenario != scenario:
            scenario = case.scenario
            if scenario == "overhead":
                runs = "1 run" if args.quick else "median of 3 runs"
                print(f"overhead: no-op handler, MemorySQS latency 0 ({runs})")
            else:
                print(
                    f"\nio: handler sleeps {case.work * 1000:.0f} ms, "
                    f"MemorySQS latency {case.latency * 1000:.0f} ms per call"
                )
            print(header())
        row = run_case(case)
        rows.append(row)
        print(format_row(row), flush=True)
    total = time.perf_counter() - began
    print(f"\ntotal {total:.1f} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": info,
        "quick": args.quick,
        "timing": "first handler call to the return of the N-th handler call",
        "ratio": "msgs/s / (concurrency / work); ratio_to_bound_with_receive: msgs/s / "
        "(concurrency / (work + 2 * latency))",
        "cpu": "time.process_time() over the timed span (all threads, MemorySQS included) / N",
        "targets": {"overhead_async_msgs_per_s": OVERHEAD_TARGET, "io_ratio": RATIO_TARGET},
        "settings": {
            "wait_time_seconds": WAIT_TIME_SECONDS,
            "fill": f"send_message_batch of 10 from {SENDER_THREADS} threads, before consuming",
            "warm_up": "one unreported 1,000-message run per handler style first",
        },
        "total_s": total,
        "rows": [row | {"target_met": _target_met(row)} for row in rows],
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
