"""In-process benchmarks over MemorySQS: overhead, the io matrix (with scaling), the targets.

- overhead: a no-op handler, no latency. Ours (both strategies, both handler styles) beside a
  bare loop in one thread (receive 10 -> call the handler on each -> delete batch): the bare
  loop is the most any consumer can do over this fake, so ours/bare is the library's overhead.
  For async handlers also the same loop with its SQS calls in a thread (``bare-threads``), as
  any async consumer over a blocking client makes them: what the thread hops alone cost.
- io: handlers that sleep `WORK` (50 ms) at concurrency C and MemorySQS latency L per call.
  The bound is C / WORK (every slot always busy); the baseline is a bare loop with C workers
  (tasks for async, threads for sync), each receive 10 -> handle each -> delete batch.
- targets: the figures issue 10 asks for, each with its bound and a bare loop.

Run through ``benchmarks/bench.py`` (``make bench``), or alone:
``python benchmarks/matrix.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import harness
from harness import STRATEGIES, STYLES, Style

WORK = 0.05  # seconds each io handler call sleeps
OVERHEAD_CONCURRENCY = 100
# (latencies, concurrencies): every concurrency at every latency, plus extra points at 20 ms
# for the scaling plot.
FULL = {"latencies": (0.0, 0.005, 0.02, 0.1), "concurrency": (1, 10, 100, 500)}
FULL_SCALING = (1, 10, 50, 100, 200, 500)
QUICK = {"latencies": (0.0, 0.02), "concurrency": (10, 100)}
SCALING_LATENCY = 0.02
THREADED = "bare-threads"  # the overhead case's bare loop with its SQS calls in a thread


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["msgs_per_s"])
    row = ordered[len(ordered) // 2]
    row["runs_msgs_per_s"] = [r["msgs_per_s"] for r in runs]
    return row


def _repeat(times: int, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return _median_run([fn() for _ in range(times)])


def overhead(quick: bool) -> list[dict[str, Any]]:
    """No-op handlers at latency 0: ours beside the one-thread bare loop, median of 3 runs."""
    n = 5_000 if quick else 20_000
    repeats = 1 if quick else 3
    rows: list[dict[str, Any]] = []
    for style in STYLES:

        def run_bare(style: Style = style) -> dict[str, Any]:
            sqs, url = harness.new_queue()
            harness.fill(sqs, url, n)
            return harness.bare(style, sqs, url, workers=1, messages=n, work=0, inline=True)

        base = _repeat(repeats, run_bare) | {"strategy": "bare", "style": style}
        rows.append(base)
        threaded: dict[str, Any] | None = None
        if style == "async":
            # The same loop with its SQS calls in a thread (anyio.to_thread), as any async
            # consumer over a blocking client must: what the thread hops alone cost here.
            def run_threaded() -> dict[str, Any]:
                sqs, url = harness.new_queue()
                harness.fill(sqs, url, n)
                return harness.bare("async", sqs, url, workers=1, messages=n, work=0)

            threaded = _repeat(repeats, run_threaded) | {"strategy": THREADED, "style": style}
            threaded["ratio_to_bare"] = threaded["msgs_per_s"] / base["msgs_per_s"]
            threaded["thread_round_trip_cpu_us"] = harness.thread_round_trip_cpu_us()
            rows.append(threaded)
        for strategy in STRATEGIES:

            def run_ours(strategy: Any = strategy, style: Style = style) -> dict[str, Any]:
                sqs, url = harness.new_queue()
                harness.fill(sqs, url, n)
                return harness.ours(
                    sqs,
                    url,
                    strategy=strategy,
                    style=style,
                    concurrency=OVERHEAD_CONCURRENCY,
                    messages=n,
                    work=0,
                )

            row = _repeat(repeats, run_ours) | {"strategy": strategy, "style": style}
            row["ratio_to_bare"] = row["msgs_per_s"] / base["msgs_per_s"]
            if threaded is not None:
                row["ratio_to_threaded_bare"] = row["msgs_per_s"] / threaded["msgs_per_s"]
            rows.append(row)
    for row in rows:
        row |= {"messages": n, "concurrency": OVERHEAD_CONCURRENCY, "latency": 0.0, "work": 0.0}
    return rows


def _io_messages(concurrency: int, seconds: float) -> int:
    # About `seconds` of run at the bound, and two receives' worth for each bare worker.
    return max(int(concurrency / WORK * seconds), 20 * concurrency)


def io_point(latency: float, concurrency: int, seconds: float) -> list[dict[str, Any]]:
    """One (latency, concurrency) point: ours x 4 and the bare loop per style."""
    n = _io_messages(concurrency, seconds)
    bound = concurrency / WORK
    rows: list[dict[str, Any]] = []
    for style in STYLES:
        sqs, url = harness.new_queue(latency)
        harness.fill(sqs, url, n)
        base = harness.bare(style, sqs, url, workers=concurrency, messages=n, work=WORK)
        base |= {"strategy": "bare", "style": style}
        rows.append(base)
        for strategy in STRATEGIES:
            sqs, url = harness.new_queue(latency)
            harness.fill(sqs, url, n)
            row = harness.ours(
                sqs,
                url,
                strategy=strategy,
                style=style,
                concurrency=concurrency,
                messages=n,
                work=WORK,
            )
            row |= {"strategy": strategy, "style": style}
            row["ratio_to_bare"] = row["msgs_per_s"] / base["msgs_per_s"]
            rows.append(row)
    for row in rows:
        row |= {"latency": latency, "concurrency": concurrency, "work": WORK, "messages": n}
        row |= {"bound": bound, "ratio_to_bound": row["msgs_per_s"] / bound}
    return rows


def io_plan(quick: bool) -> list[tuple[float, int]]:
    grid = QUICK if quick else FULL
    points = [(lat, c) for lat in grid["latencies"] for c in grid["concurrency"]]
    if not quick:
        points += [(SCALING_LATENCY, c) for c in FULL_SCALING if (SCALING_LATENCY, c) not in points]
    return sorted(points)


def targets(quick: bool) -> list[dict[str, Any]]:
    """The io targets of issue 10, each with a bare loop over the same latency."""
    seconds = 0.5 if quick else 1.0
    cases: list[dict[str, Any]] = [
        {
            "name": "async 200 x 50 ms, 20 ms latency",
            "style": "async",
            "concurrency": 200,
            "work": 0.05,
            "latency": {"all": 0.02},
            "goal": ("ratio_to_bound", 0.95),
        },
        {
            "name": "sync 32 x 20 ms, 20 ms latency",
            "style": "sync",
            "concurrency": 32,
            "work": 0.02,
            "latency": {"all": 0.02},
            "goal": ("ratio_to_bound", 0.9),
        },
        {
            "name": "async 100 x 10 ms, receive 100 ms, delete 50 ms",
            "style": "async",
            "concurrency": 100,
            "work": 0.01,
            "latency": {"receive_message": 0.1, "delete_message_batch": 0.05},
            "goal": ("msgs_per_s", 3000.0),
        },
    ]
    rows: list[dict[str, Any]] = []
    for case in cases:
        concurrency, work = case["concurrency"], case["work"]
        bound = concurrency / work
        # About `seconds` at the bound, at most 3,000 msgs/s (the last case's target; its bound
        # is 10,000), and two receives' worth for each bare worker.
        n = max(int(min(bound, 3000) * seconds), 20 * concurrency)

        def client(latency: dict[str, float] = case["latency"], n: int = n) -> tuple[Any, str]:
            if "all" in latency:
                sqs, url = harness.new_queue(latency["all"])
                harness.fill(sqs, url, n)
                return sqs, url
            sqs, url = harness.new_queue()
            harness.fill(sqs, url, n)
            return harness.SplitLatency(sqs, latency), url

        common = {k: case[k] for k in ("name", "style", "concurrency", "work")}
        common |= {"latency": case["latency"], "messages": n, "bound": bound}
        base = harness.bare(case["style"], *client(), workers=concurrency, messages=n, work=work)
        rows.append(
            base | common | {"strategy": "bare", "ratio_to_bound": base["msgs_per_s"] / bound}
        )
        for strategy in STRATEGIES:
            row = harness.ours(
                *client(),
                strategy=strategy,
                style=case["style"],
                concurrency=concurrency,
                messages=n,
                work=work,
            )
            row |= common | {"strategy": strategy, "ratio_to_bound": row["msgs_per_s"] / bound}
            row["ratio_to_bare"] = row["msgs_per_s"] / base["msgs_per_s"]
            metric, goal = case["goal"]
            row |= {"goal": f"{metric} >= {goal}", "met": row[metric] >= goal}
            rows.append(row)
    return rows


def overhead_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """No-op goals: async >= 0.25x the bare loop; sync >= half the async figure."""
    by = {(r["strategy"], r["style"]): r for r in rows}
    out = []
    for strategy in STRATEGIES:
        a, s = by[(strategy, "async")], by[(strategy, "sync")]
        out.append(
            {
                "name": f"no-op async, {strategy}: ours / bare",
                "value": a["ratio_to_bare"],
                "goal": ">= 0.25",
                "met": a["ratio_to_bare"] >= 0.25,
            }
        )
        out.append(
            {
                "name": f"no-op sync / async, {strategy}",
                "value": s["msgs_per_s"] / a["msgs_per_s"],
                "goal": ">= 0.5",
                "met": s["msgs_per_s"] >= 0.5 * a["msgs_per_s"],
            }
        )
    return out


def _f(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def print_overhead(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n== overhead: no-op handler, MemorySQS latency 0, concurrency {OVERHEAD_CONCURRENCY}"
        " (bare: one loop, no thread hop)"
    )
    print(
        harness.table(
            [
                [
                    r["style"],
                    r["strategy"],
                    _f(r["msgs_per_s"]),
                    _f(r["cpu_us_per_msg"], 1),
                    "-" if r["strategy"] == "bare" else _f(r["ratio_to_bare"], 3),
                    _f(r["ratio_to_threaded_bare"], 3) if "ratio_to_threaded_bare" in r else "-",
                ]
                for r in rows
            ],
            ["handler", "strategy", "msgs/s", "CPU us/msg", "ours/bare", "ours/bare-threads"],
        )
    )
    for r in rows:
        if "thread_round_trip_cpu_us" in r:
            print(
                f"bare-threads: the bare loop with its SQS calls in anyio.to_thread; one thread"
                f" round trip costs {r['thread_round_trip_cpu_us']:.0f} us of CPU on this machine"
            )


def print_io(rows: list[dict[str, Any]]) -> None:
    print(f"\n== io: handlers sleep {WORK * 1000:.0f} ms; bound = concurrency / work")
    cells = []
    for r in rows:
        cells.append(
            [
                f"{r['latency'] * 1000:.0f}",
                str(r["concurrency"]),
                r["style"],
                r["strategy"],
                _f(r["msgs_per_s"]),
                _f(r["bound"]),
                _f(r["ratio_to_bound"], 2),
                "-" if r["strategy"] == "bare" else _f(r["ratio_to_bare"], 2),
                _f(r["cpu_us_per_msg"]),
            ]
        )
    header = ["lat ms", "conc", "handler", "strategy", "msgs/s", "bound", "/bound", "ours/bare"]
    print(harness.table(cells, [*header, "CPU us/msg"]))


def print_targets(rows: list[dict[str, Any]], goals: list[dict[str, Any]]) -> None:
    print("\n== targets (issue 10)")
    cells = []
    for r in rows:
        met = r.get("met")
        cells.append(
            [
                r["name"],
                r["strategy"],
                _f(r["msgs_per_s"]),
                _f(r["bound"]),
                _f(r["ratio_to_bound"], 2),
                "-" if r["strategy"] == "bare" else _f(r["ratio_to_bare"], 2),
                r.get("goal", "-"),
                "-" if met is None else ("met" if met else "MISSED"),
            ]
        )
    for g in goals:
        verdict = "met" if g["met"] else "MISSED"
        cells.append([g["name"], "", "", "", _f(g["value"], 2), "", g["goal"], verdict])
    header = ["case", "strategy", "msgs/s", "bound", "/bound", "ours/bare", "goal", ""]
    print(harness.table(cells, header))


def run(quick: bool) -> dict[str, Any]:
    """Every in-process section; prints each table as it completes."""
    began = time.perf_counter()
    load_before = harness.load()
    over = overhead(quick)
    print_overhead(over)
    io: list[dict[str, Any]] = []
    seconds = 0.4 if quick else 1.0
    for latency, concurrency in io_plan(quick):
        io += io_point(latency, concurrency, seconds)
    io.sort(key=lambda r: (r["latency"], r["concurrency"], r["style"], r["strategy"]))
    print_io(io)
    tgt = targets(quick)
    goals = overhead_targets(over)
    print_targets(tgt, goals)
    return {
        "load_before": load_before,
        "load_after": harness.load(),
        "seconds": time.perf_counter() - began,
        "work_s": WORK,
        "scaling_latency_s": SCALING_LATENCY,
        "overhead": over,
        "io": io,
        "targets": tgt,
        "overhead_goals": goals,
        "median_io_ratio_to_bare": {
            style: statistics.median(
                r["ratio_to_bare"] for r in io if r["style"] == style and "ratio_to_bare" in r
            )
            for style in STYLES
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="in-process benchmarks over MemorySQS")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    harness.warm_up()
    document = {"machine": harness.machine(), "quick": args.quick} | run(args.quick)
    harness.write_json(harness.RESULTS / "matrix.json", document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
