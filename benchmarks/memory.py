"""Memory: peak RSS with 1,000 messages in flight, and RSS over a 100,000-message run.

- in flight: 1,000 messages (256-byte bodies) on MemorySQS, a Consumer at concurrency 1,000
  whose handlers all wait on one gate, so all 1,000 are received and held at once. RSS is read
  before the consumer starts (queue filled), while the 1,000 are held, and at its peak (sampled
  every 10 ms); the growth / 1,000 is the cost of one message in flight (Message, lease, job,
  worker task or thread; a sync handler holds a thread each).
- long run: a no-op async handler (semaphore, concurrency 100) over 100,000 messages fed by a
  producer thread that keeps about 2,000 messages queued, so the fake's own footprint stays
  constant. RSS is sampled every 100 ms; start (after the first 5 % of messages, once caches
  are warm), end and peak are reported, with the slope over the second half.

Each measurement runs in a fresh Python process (this script with ``--child``), so memory
that earlier runs freed but the allocator kept does not hide growth. RSS is that process's
(Linux /proc/self/statm): the fake SQS lives in it too, which is why the queue is filled before
the baseline is read and kept at a constant depth in the long run.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import threading
import time
from typing import Any

import anyio
import harness

from sqs_consumer import Consumer, ConsumerOptions

MiB = 1024 * 1024
IN_FLIGHT = 1_000
BODY = 256


def _rss_sampler(
    interval: float,
) -> tuple[list[tuple[float, int]], threading.Event, threading.Thread]:
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), harness.rss_bytes()))
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return samples, stop, thread


def in_flight(strategy: harness.Strategy, style: harness.Style) -> dict[str, Any]:
    """RSS before, while 1,000 messages are held by handlers, and at peak."""
    sqs, url = harness.new_queue()
    harness.fill(sqs, url, IN_FLIGHT, body_size=BODY)
    tally = harness.Tally(target=IN_FLIGHT)
    gate_async = anyio.Event()
    gate_sync = threading.Event()
    held_rss = 0

    async def handle_async(message: Any) -> None:
        tally.begin()
        await gate_async.wait()
        tally.finish()

    def handle_sync(message: Any) -> None:
        tally.begin()
        gate_sync.wait(harness.RUN_TIMEOUT)
        tally.finish()

    async def open_gate(consumer: Consumer) -> None:
        nonlocal held_rss
        with anyio.fail_after(60):
            # A counter that sync handlers bump from their threads: polled, not awaited.
            while tally.started < IN_FLIGHT:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await anyio.sleep(0.2)  # let every received message settle into its handler
        held_rss = harness.rss_bytes()
        gate_sync.set()
        gate_async.set()

    options = ConsumerOptions(
        queue_url=url,
        client=sqs,
        worker=strategy,
        concurrency=IN_FLIGHT,
        wait_time_seconds=1,
    )
    handler = handle_async if style == "async" else handle_sync
    gc.collect()
    base = harness.rss_bytes()
    samples, stop, thread = _rss_sampler(0.01)
    try:
        anyio.run(lambda: harness.drive(options, handler, tally, side=open_gate))
    finally:
        stop.set()
        thread.join()
    peak = max(rss for _, rss in samples)
    return {
        "strategy": strategy,
        "style": style,
        "in_flight": IN_FLIGHT,
        "body_bytes": BODY,
        "rss_before_mib": base / MiB,
        "rss_held_mib": held_rss / MiB,
        "rss_peak_mib": peak / MiB,
        "kib_per_message_held": (held_rss - base) / IN_FLIGHT / 1024,
    }


def long_run(messages: int) -> dict[str, Any]:
    """RSS over `messages` no-op async messages at a constant queue depth."""
    sqs, url = harness.new_queue()
    depth = 2_000
    harness.fill(sqs, url, depth)
    sent = depth
    tally = harness.Tally(target=messages)
    stop_feed = threading.Event()

    def feed() -> None:
        nonlocal sent
        while sent < messages and not stop_feed.is_set():
            if sqs.counts(url)["visible"] < depth // 2:
                n = min(depth // 2, messages - sent)
                harness.fill(sqs, url, n, threads=1)
                sent += n
            else:
                stop_feed.wait(0.002)

    feeder = threading.Thread(target=feed, daemon=True)
    trace: list[dict[str, float]] = []
    t0 = time.perf_counter()

    def sample(consumer: Consumer) -> None:
        trace.append(
            {
                "t": time.perf_counter() - t0,
                "handled": tally.handled,
                "rss_mib": harness.rss_bytes() / MiB,
            }
        )

    options = ConsumerOptions(
        queue_url=url, client=sqs, worker="semaphore", concurrency=100, wait_time_seconds=1
    )
    feeder.start()
    try:
        result = anyio.run(
            lambda: harness.drive(
                options,
                harness.make_handler("async", 0.0, tally),
                tally,
                on_sample=sample,
                sample_interval=0.1,
            )
        )
    finally:
        stop_feed.set()
        feeder.join()
    warm = [s for s in trace if s["handled"] >= messages * 0.05]
    start, end = warm[0], warm[-1]
    half = [s for s in warm if s["handled"] >= messages / 2]
    slope = (
        (half[-1]["rss_mib"] - half[0]["rss_mib"])
        / (half[-1]["handled"] - half[0]["handled"])
        * 1e4
        if len(half) > 1 and half[-1]["handled"] > half[0]["handled"]
        else 0.0
    )
    return {
        "strategy": "semaphore",
        "style": "async",
        "concurrency": 100,
        "messages": messages,
        "msgs_per_s": result["msgs_per_s"],
        "rss_start_mib": start["rss_mib"],
        "rss_end_mib": end["rss_mib"],
        "rss_peak_mib": max(s["rss_mib"] for s in trace),
        "rss_mib_per_10k_second_half": slope,
        "trace": trace,
    }


def _child(*args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process; its last line of output is the JSON result."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        timeout=harness.RUN_TIMEOUT,
    )
    if done.returncode:
        raise RuntimeError(f"memory child {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool) -> dict[str, Any]:
    before = harness.load()
    combos = (
        [("semaphore", "async")]
        if quick
        else [(st, sy) for sy in harness.STYLES for st in harness.STRATEGIES]
    )
    held = [_child("in-flight", strategy, style) for strategy, style in combos]
    print(f"\n== memory: RSS with {IN_FLIGHT:,} messages ({BODY}-byte bodies) held by handlers")
    print(
        harness.table(
            [
                [
                    r["style"],
                    r["strategy"],
                    f"{r['rss_before_mib']:.1f}",
                    f"{r['rss_held_mib']:.1f}",
                    f"{r['rss_peak_mib']:.1f}",
                    f"{r['kib_per_message_held']:.1f}",
                ]
                for r in held
            ],
            ["handler", "strategy", "before MiB", "held MiB", "peak MiB", "KiB/msg held"],
        )
    )
    n = 20_000 if quick else 100_000
    long = _child("long", str(n))
    print(f"\n== memory: RSS over {n:,} messages (no-op async, semaphore, C=100, depth ~2,000)")
    print(
        harness.table(
            [
                [
                    f"{long['msgs_per_s']:,.0f}",
                    f"{long['rss_start_mib']:.1f}",
                    f"{long['rss_end_mib']:.1f}",
                    f"{long['rss_peak_mib']:.1f}",
                    f"{long['rss_mib_per_10k_second_half']:+.2f}",
                ]
            ],
            ["msgs/s", "start MiB", "end MiB", "peak MiB", "MiB/10k msgs (2nd half)"],
        )
    )
    return {
        "load_before": before,
        "load_after": harness.load(),
        "in_flight": held,
        "long_run": long,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="memory benchmarks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        result = in_flight(rest[0], rest[1]) if kind == "in-flight" else long_run(int(rest[0]))
        print(json.dumps(result))
        return 0
    document = {"machine": harness.machine(), "quick": args.quick} | run(args.quick)
    harness.write_json(harness.RESULTS / "memory.json", document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
