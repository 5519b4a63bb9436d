"""The benchmark suite: ``make bench`` runs it (``--quick`` for a short run).

Sections (each also runs alone: ``python benchmarks/<name>.py [--quick]``):

- matrix: overhead (no-op, ours vs a bare loop), the io matrix over strategies x handler styles x
  concurrency x MemorySQS latency (each against its bound concurrency / work and a bare loop),
  scaling, and the targets of issue 10;
- elasticity: the pool's workers, waiting room, in flight, prefetch and throughput over time;
- wire: ours vs a plain boto3 loop on moto's server (or ``--endpoint-url``);
- memory: RSS with 1,000 messages in flight, and over a 100,000-message run.

Results: one JSON per section under benchmarks/results/ (git-ignored) and PNG plots, written to
docs/benchmarks/ by a full run and to benchmarks/results/plots/ by a quick one (so a quick run
never overwrites the committed figures). See benchmarks/README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import elasticity
import harness
import matrix
import memory
import wire

SECTIONS = ("matrix", "elasticity", "wire", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sqs-consumer benchmark suite")
    parser.add_argument("--quick", action="store_true", help="a short run (about 2 minutes)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help="comma-separated sections (default: all)"
    )
    parser.add_argument("--endpoint-url", help="wire: use this SQS endpoint, start no server")
    parser.add_argument(
        "--moto-srv",
        type=Path,
        default=wire.DEFAULT_MOTO_SRV,
        help="wire: the patched moto server script (default: %(default)s)",
    )
    parser.add_argument("--results", type=Path, default=harness.RESULTS)
    parser.add_argument("--plots", type=Path, help="where PNGs go (default: see above)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")

    info = harness.machine()
    print(
        f"sqs-consumer benchmarks{' (--quick)' if args.quick else ''}: Python {info['python']} "
        f"on {info['platform']}, {info['cpu_count']} CPUs, commit {info['git']}\n"
        f"load: {info['load']['uptime']}\n"
        "msgs/s: N / (N-th handler return - first handler call); CPU us/msg: process_time over "
        "that span / N.\nEvery figure stands beside its baseline from the same run: absolute "
        "figures on a shared machine move, ratios much less."
    )
    began = time.perf_counter()
    harness.warm_up()
    for name in sections:
        started = time.perf_counter()
        if name == "matrix":
            body = matrix.run(args.quick)
        elif name == "elasticity":
            body = elasticity.run(args.quick)
        elif name == "wire":
            body = wire.run(args.quick, args.endpoint_url, args.moto_srv)
        else:
            body = memory.run(args.quick)
        body["seconds"] = time.perf_counter() - started
        document = {"machine": info, "quick": args.quick} | body
        harness.write_json(args.results / f"{name}.json", document)
        print(f"({name}: {body['seconds']:.0f} s, load now {harness.load()['loadavg']})")
    print(f"\ntotal {time.perf_counter() - began:.0f} s; JSON in {args.results}")
    if not args.no_plots:
        import plots

        out = args.plots or (args.results / "plots" if args.quick else harness.PLOTS)
        for path in plots.make_all(args.results, out):
            print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
