"""FIFO queues: throughput with messages spread over 1, 10 and 100 MessageGroupIds, both strategies.

Run ``python benchmarks/fifo.py``; ``--quick`` for a short run. See benchmarks/README.md
("FIFO groups") for what the figures mean.

On a FIFO queue the consumer handles the messages of one MessageGroupId one at a time, in
order, and different groups in parallel up to ``concurrency``; MemorySQS, like SQS, delivers
no later message of a group while one of it is in flight. So the ceiling is
``min(groups, concurrency) / work``: with one group the handler's duration alone sets the
rate, with many groups the concurrency should be used.

Everything goes through the public API, as in strategies.py: ``Consumer(handler,
ConsumerOptions(...))`` run with ``await consumer.run()`` inside ``anyio.run``. The handler
sets an ``anyio.Event`` once it has handled the N-th message; a side task then calls
``consumer.stop()``. Besides timing, every run checks that each group's messages were handled
one at a time and in send order, each exactly once, and exits non-zero if not.

Timing: from the first handler call to the return of the N-th handler call.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from itertools import count
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs
from harness import machine  # benchmarks/ is on sys.path when run as a script

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer.testing import MemorySQS

Strategy = Literal["semaphore", "pool"]

GROUPS = (1, 10, 100)
CONCURRENCY = 50
WORK = 0.01  # seconds each handler call sleeps
LATENCY = 0.005  # seconds MemorySQS sleeps per call once the queue is filled
WAIT_TIME_SECONDS = 1  # long poll; the queue is full from the start, so it only matters at the end
SAMPLE_INTERVAL = 0.05  # seconds between stats() samples (in-flight and pollers peaks)
RUN_TIMEOUT = 60.0  # a case that takes longer than this is a hang: fail loudly

_queue_names = count()


class OrderViolation(AssertionError):
    """A group's messages were handled out of order, twice, concurrently, or not at all."""


@attrs.frozen(kw_only=True)
class Case:
    """One benchmark run."""

    groups: int
    strategy: Strategy
    concurrency: int
    messages: int
    work: float  # seconds each handler call sleeps
    latency: float  # seconds MemorySQS sleeps per call (the simulated network)
    repeats: int = 1  # runs of the case; the row reported is the median by msgs/s

    @property
    def bound(self) -> float:
        """The ceiling `min(groups, concurrency) / work`: one message at a time per group."""
        return min(self.groups, self.concurrency) / self.work

    def sent(self, group: int) -> int:
        """How many of the N messages went to `group` (message i goes to group i % G)."""
        return len(range(group, self.messages, self.groups))


@attrs.define
class Tally:
    """What the handler saw: per group, the sequence numbers in the order their calls began."""

    target: int
    done: anyio.Event = attrs.field(factory=anyio.Event)
    handled: int = 0
    first_wall: float | None = None
    last_wall: float = 0.0
    seen: dict[str, list[int]] = attrs.field(factory=dict)
    active: set[str] = attrs.field(factory=set)  # groups with a handler call running now
    active_peak: int = 0
    problems: list[str] = attrs.field(factory=list)

    def begin(self, message: Message) -> str:
        """Record the start of a call; returns the message's group."""
        if self.first_wall is None:
            self.first_wall = time.perf_counter()
        group = message.group_id or ""
        label, _, seq = message.body.partition(":")
        if label != group:
            self.problems.append(f"body {message.body!r} arrived with MessageGroupId {group!r}")
        if group in self.active:
            self.problems.append(f"group {group}: message {seq} began while another ran")
        self.active.add(group)
        self.active_peak = max(self.active_peak, len(self.active))
        self.seen.setdefault(group, []).append(int(seq))
        return group

    def finish(self, group: str) -> None:
        """Record the end of a call; the N-th sets `done`."""
        self.active.discard(group)
        self.handled += 1
        if self.handled == self.target:
            self.last_wall = time.perf_counter()
            self.done.set()


def make_handler(work: float, tally: Tally) -> Callable[[Message], Coroutine[Any, Any, None]]:
    """The handler under test: an async sleep of `work` seconds (IO), recorded in `tally`."""

    async def handle(message: Message) -> None:
        group = tally.begin(message)
        try:
            await anyio.sleep(work)
        finally:
            tally.finish(group)

    return handle


def verify(case: Case, tally: Tally) -> None:
    """Each group: every message exactly once, in send order, one at a time; else raise."""
    problems = list(tally.problems)
    expected_groups = {f"g{g}" for g in range(case.groups)}
    if extra := set(tally.seen) - expected_groups:
        problems.append(f"unknown groups {sorted(extra)[:5]}")
    for g in range(case.groups):
        got = tally.seen.get(f"g{g}", [])
        want = list(range(case.sent(g)))
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
            where = f"first difference at position {at}" if at is not None else "lengths differ"
            problems.append(
                f"group g{g}: handled {len(got)} of {len(want)}, {where}: "
                f"got {got[:12]}{'...' if len(got) > 12 else ''}"
            )
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise OrderViolation(f"FIFO order broken in {case}:\n  {shown}{more}")


def fill(sqs: MemorySQS, url: str, case: Case) -> None:
    """Send N messages in order, 10 per SendMessageBatch, message i to group ``g{i % G}``.

    Sent from one thread, so each group's send order is the order of i; body ``g{g}:{k}`` is
    the k-th message of group g (unique, as content-based deduplication needs).
    """
    sequence = [0] * case.groups
    for start in range(0, case.messages, 10):
        entries = []
        for i in range(start, min(start + 10, case.messages)):
            g = i % case.groups
            body = f"g{g}:{sequence[g]}"
            sequence[g] += 1
            entries.append({"Id": str(i - start), "MessageBody": body, "MessageGroupId": f"g{g}"})
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"send_message_batch failed: {response['Failed']}")


@attrs.define
class Peaks:
    """Highest values seen by the stats() sampler."""

    pollers: int = 0
    in_flight: int = 0

    def see(self, consumer: Consumer) -> None:
        s = consumer.stats()
        self.pollers = max(self.pollers, s.pollers)
        self.in_flight = max(self.in_flight, s.in_flight)


async def _sample(consumer: Consumer, peaks: Peaks, scope: anyio.CancelScope) -> None:
    with scope:
        while True:
            peaks.see(consumer)
            await anyio.sleep(SAMPLE_INTERVAL)


async def _drive(case: Case, sqs: MemorySQS, url: str) -> dict[str, Any]:
    tally = Tally(target=case.messages)
    options = ConsumerOptions(
        queue_url=url,
        client=sqs,
        worker=case.strategy,
        concurrency=case.concurrency,
        wait_time_seconds=WAIT_TIME_SECONDS,
    )
    consumer = Consumer(make_handler(case.work, tally), options)
    peaks = Peaks()
    sampler = anyio.CancelScope()

    async def stop_when_done() -> None:
        await tally.done.wait()
        peaks.see(consumer)
        consumer.stop()
        sampler.cancel()

    with anyio.fail_after(RUN_TIMEOUT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_when_done)
            tg.start_soon(_sample, consumer, peaks, sampler)
            await consumer.run()  # returns once stopped and drained (acks flushed)
    verify(case, tally)
    assert tally.first_wall is not None
    elapsed = tally.last_wall - tally.first_wall
    rate = case.messages / elapsed if elapsed > 0 else float("inf")
    stats = consumer.stats()
    return {
        "msgs_per_s": rate,
        "ratio_to_bound": rate / case.bound,
        "measured_s": elapsed,
        "handled": tally.handled,
        "order_verified": True,
        "groups_active_peak": tally.active_peak,
        "stats": {
            "received": stats.received,
            "succeeded": stats.succeeded,
            "deleted": stats.deleted,
            "receives": stats.receives,
            "msgs_per_receive": stats.received / stats.receives if stats.receives else 0.0,
            "released": stats.released,
            "sqs_retries": stats.sqs_retries,
            "pollers_peak": peaks.pollers,
            "in_flight_peak": peaks.in_flight,
        },
    }


def run_once(case: Case) -> dict[str, Any]:
    """Fill a fresh FIFO queue, consume it with the case's settings, verify and time it."""
    sqs = MemorySQS()  # no latency while filling: sends are sequential (they fix the order)
    name = f"fifo-{os.getpid()}-{next(_queue_names)}.fifo"
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    fill(sqs, url, case)
    # Latency only now that the queue is full (sends are sequential, so it would add up).
    sqs.latency = case.latency
    gc.collect()
    result = anyio.run(_drive, case, sqs, url)
    row = attrs.asdict(case) | {"bound": case.bound} | result
    row["queue_after"] = sqs.counts(url)
    if result["stats"]["deleted"] != case.messages:
        print(f"  warning: deleted {result['stats']['deleted']} of {case.messages}", flush=True)
    return row


def run_case(case: Case) -> dict[str, Any]:
    """Run the case `repeats` times (each verified); the median run by msgs/s, with every rate."""
    runs = sorted((run_once(case) for _ in range(case.repeats)), key=lambda r: r["msgs_per_s"])
    row = runs[len(runs) // 2]
    row["runs_msgs_per_s"] = [r["msgs_per_s"] for r in runs]
    return row


def plan(quick: bool) -> Iterator[Case]:
    """One case per group count and strategy, with N for `seconds` of run at the bound."""
    strategies: tuple[Strategy, ...] = ("semaphore", "pool")
    seconds = 0.5 if quick else 1.0  # at the bound; runs below it take longer
    repeats = 1 if quick else 3
    for groups in GROUPS:
        bound = min(groups, CONCURRENCY) / WORK
        n = max(int(bound * seconds), 10 * groups)
        for strategy in strategies:
            yield Case(
                groups=groups,
                strategy=strategy,
                concurrency=CONCURRENCY,
                messages=n,
                work=WORK,
                latency=LATENCY,
                repeats=repeats,
            )


def warm_up() -> None:
    """A small unreported run: imports and caches are ready after."""
    run_once(
        Case(groups=10, strategy="semaphore", concurrency=10, messages=200, work=0.001, latency=0.0)
    )


COLUMNS = (
    ("groups", 6),
    ("strategy", 9),
    ("conc", 5),
    ("N", 6),
    ("msgs/s", 8),
    ("bound", 7),
    ("ratio", 6),
    ("groups^", 7),
    ("msgs/rcv", 8),
    ("inflight^", 9),
    ("order", 5),
)


def format_row(row: dict[str, Any]) -> str:
    cells = (
        str(row["groups"]),
        row["strategy"],
        str(row["concurrency"]),
        str(row["messages"]),
        f"{row['msgs_per_s']:,.0f}",
        f"{row['bound']:,.0f}",
        f"{row['ratio_to_bound']:.2f}",
        str(row["groups_active_peak"]),
        f"{row['stats']['msgs_per_receive']:.1f}",
        str(row["stats"]["in_flight_peak"]),
        "ok" if row["order_verified"] else "BROKEN",
    )
    return "  ".join(cell.rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def header() -> str:
    title = "  ".join(name.rjust(width) for name, width in COLUMNS)
    return f"{title}\n{'-' * len(title)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (about 15 s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results/fifo.json"),
        help="where to write the JSON results (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    info = machine()
    print(
        f"sqs-consumer FIFO groups benchmark{' (--quick)' if args.quick else ''}: "
        f"Python {info['python']} on {info['platform']}, {info['cpu_count']} CPUs"
    )
    print(
        f"async handler sleeps {WORK * 1000:.0f} ms, MemorySQS latency {LATENCY * 1000:.0f} ms "
        f"per call; message i goes to group i % groups.\nmsgs/s: N / (N-th handler return - "
        "first handler call); bound: min(groups, conc) / work; ratio: msgs/s / bound;\n"
        "groups^: peak groups handled at once; msgs/rcv: messages per ReceiveMessage; "
        "inflight^: peak messages held;\norder: each group's messages handled once each, one at "
        "a time, in send order (checked; a failure aborts).\n"
    )
    rows: list[dict[str, Any]] = []
    began = time.perf_counter()
    warm_up()
    print("median of 3 runs per row" if not args.quick else "1 run per row")
    print(header())
    for case in plan(args.quick):
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
        "bound": "min(groups, concurrency) / work: one message at a time per group",
        "ratio": "msgs/s / bound",
        "order": "per group: every message handled exactly once, in send order, never two at "
        "once; verified on every run (a violation raises OrderViolation)",
        "settings": {
            "work_s": WORK,
            "latency_s": LATENCY,
            "concurrency": CONCURRENCY,
            "wait_time_seconds": WAIT_TIME_SECONDS,
            "queue": "MemorySQS FIFO, ContentBasedDeduplication",
            "fill": "send_message_batch of 10 from one thread, latency 0, message i to group "
            "i % groups; the latency is set once the queue is full",
            "warm_up": "one unreported 200-message run first",
        },
        "total_s": total,
        "rows": rows,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
