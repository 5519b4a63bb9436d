"""Elasticity over time: the pool through a trickle, a burst, an idle spell and a second burst.

One Consumer (``worker="pool"``, concurrency 100, ``pool_idle_timeout`` 0.5 s) over MemorySQS
with 5 ms per call, handlers that sleep 50 ms. A producer thread follows a schedule:

- 0-1 s: nothing (the pool has no worker yet);
- 1-4 s: a trickle of 200 msgs/s (about 200 x 50 ms = 10 handlers busy);
- 4 s: a burst of 4,000 messages at once (100 workers, the waiting room full, ~2,000 msgs/s);
- then nothing for 3 s once the burst is drained (idle workers retire after 0.5 s);
- a second burst of 2,000, and the run ends when all are handled.

``stats()`` is sampled every 50 ms: workers, busy, waiting (the waiting room), in flight,
prefetched (``stats().as_dict().get("prefetched")``: drawn once the library reports it)
and the handled count, from which throughput is taken over 250 ms windows.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

import anyio
import harness

from sqs_consumer import Consumer, ConsumerOptions

CONCURRENCY = 100
WORK = 0.05
LATENCY = 0.005
IDLE_TIMEOUT = 0.5


def schedule(quick: bool) -> list[tuple[float, int]]:
    """(start second, messages) sends; a trickle is many small sends."""
    scale = 0.5 if quick else 1.0
    trickle = [(1.0 + i * 0.05, 10) for i in range(int(60 * scale))]  # 200 msgs/s
    return [*trickle, (1.0 + 3.0 * scale, int(4000 * scale))]


def run_one(style: harness.Style, quick: bool) -> dict[str, Any]:
    scale = 0.5 if quick else 1.0
    idle_spell = 3.0 * scale
    second_burst = int(2000 * scale)
    plan = schedule(quick)
    total = sum(n for _, n in plan) + second_burst
    sqs, url = harness.new_queue(LATENCY)
    tally = harness.Tally(target=total)
    samples: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    events: list[dict[str, Any]] = []
    stop = threading.Event()

    def produce() -> None:
        for at, n in plan:
            if stop.wait(max(0.0, at - (time.perf_counter() - t0))):
                return
            events.append({"t": time.perf_counter() - t0, "sent": n})
            harness.fill(sqs, url, n, threads=16)
        # The idle spell starts once the first burst is handled.
        first = sum(n for _, n in plan)
        while tally.handled < first and not stop.wait(0.01):
            pass
        if stop.wait(idle_spell):
            return
        events.append({"t": time.perf_counter() - t0, "sent": second_burst})
        harness.fill(sqs, url, second_burst, threads=16)

    def sample(consumer: Consumer) -> None:
        s = consumer.stats().as_dict()
        samples.append(
            {
                "t": time.perf_counter() - t0,
                "handled": tally.handled,
                "workers": s["workers"],
                "busy": s["busy"],
                "idle_workers": s["idle_workers"],
                "waiting": s["waiting"],
                "in_flight": s["in_flight"],
                "prefetched": s.get("prefetched"),  # None until the library reports it
                "pollers": s["pollers"],
            }
        )

    options = ConsumerOptions(
        queue_url=url,
        client=sqs,
        worker="pool",
        concurrency=CONCURRENCY,
        wait_time_seconds=1,
        pool_idle_timeout=IDLE_TIMEOUT,
    )
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        result = anyio.run(
            lambda: harness.drive(
                options,
                harness.make_handler(style, WORK, tally),
                tally,
                on_sample=sample,
                sample_interval=0.05,
            )
        )
    finally:
        stop.set()
        producer.join()
    window = 0.25
    for s in samples:
        earlier = [p for p in samples if s["t"] - window <= p["t"] < s["t"]]
        if earlier:
            p = earlier[0]
            s["msgs_per_s"] = (s["handled"] - p["handled"]) / (s["t"] - p["t"])
        else:
            s["msgs_per_s"] = 0.0
    peaks = {k: max(s[k] for s in samples) for k in ("workers", "waiting", "in_flight")}
    # Workers left just before the second burst: how many retired over the idle spell.
    second_at = events[-1]["t"] if len(events) > len(plan) else float("inf")
    after_idle = [s["workers"] for s in samples if s["t"] < second_at]
    return {
        "style": style,
        "strategy": "pool",
        "concurrency": CONCURRENCY,
        "work": WORK,
        "latency": LATENCY,
        "pool_idle_timeout": IDLE_TIMEOUT,
        "messages": total,
        "sends": events,
        "samples": samples,
        "peaks": peaks | {"prefetched": max((s["prefetched"] or 0) for s in samples)},
        "prefetch_reported": any(s["prefetched"] is not None for s in samples),
        "workers_at_end_of_idle_spell": after_idle[-1] if after_idle else None,
        "stats": result["stats"],
    }


def run(quick: bool) -> dict[str, Any]:
    before = harness.load()
    runs = [run_one(style, quick) for style in (("async",) if quick else harness.STYLES)]
    rows = [
        [
            r["style"],
            str(r["messages"]),
            str(r["peaks"]["workers"]),
            str(r["peaks"]["waiting"]),
            str(r["peaks"]["in_flight"]),
            str(r["peaks"]["prefetched"]) if r["prefetch_reported"] else "n/a",
            str(r["workers_at_end_of_idle_spell"]),
            f"{max(s['msgs_per_s'] for s in r['samples']):,.0f}",
        ]
        for r in runs
    ]
    print(
        f"\n== elasticity: pool, concurrency {CONCURRENCY}, idle timeout {IDLE_TIMEOUT} s, "
        f"{WORK * 1000:.0f} ms handlers, {LATENCY * 1000:.0f} ms latency "
        "(trickle 200 msgs/s, burst, idle, burst)"
    )
    header = ["handler", "N", "workers^", "waiting^", "inflight^", "prefetch^", "workers idle"]
    print(harness.table(rows, [*header, "peak msgs/s"]))
    return {"load_before": before, "load_after": harness.load(), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pool elasticity over time")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    document = {"machine": harness.machine(), "quick": args.quick} | run(args.quick)
    harness.write_json(harness.RESULTS / "elasticity.json", document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
