"""Where the CPU per message goes, stage by stage: cProfile (and py-spy, if installed).

``python benchmarks/profile.py [--quick] [--py-spy] [--cases async-semaphore,sync-pool]``

Each case (handler style x strategy: a no-op handler, MemorySQS with no latency, concurrency
100, 20,000 messages; 5,000 with --quick) runs in a fresh child process three ways:

1. plain: no profiler; the CPU µs/msg measured as in matrix.py (process_time over the timed
   span / N). This is the figure the stages add up to.
2. cProfile: one profiler per thread (the event loop, the consumer's SQS threads, the sync
   handlers' threads), timed with ``time.thread_time`` so waiting costs nothing. Each
   function's own time (tottime) goes to the stage of its module; a C function (a lock, a
   deque, a dict) goes to the stage of its Python callers, in proportion. The raw µs/msg are
   inflated by the profiler's own cost per call, so the table also gives each stage's share
   and the share × the plain CPU µs/msg ("scaled").
3. py-spy (``--py-spy``, optional: ``pip install py-spy``, needs ptrace): samples every
   thread on CPU after a warm-up; the leaf frame's module picks the stage. Sampling does not
   slow calls down, so its shares are not biased towards code that makes many small calls, as
   cProfile's are.

Prints one table per case and writes benchmarks/results/profile.json and profile.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named profile.py, and cProfile imports the standard library's `profile`: with
# this directory first on sys.path, that import would find this file instead. Import the
# profilers with the directory removed, then put it back for `harness`.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]
import cProfile  # noqa: E402
import pstats  # noqa: E402

sys.path.insert(0, _HERE)

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from typing import Any  # noqa: E402

import harness  # noqa: E402

CONCURRENCY = 100
TOP = 12  # functions listed per case, by own time
CASES = ("async-semaphore", "async-pool", "sync-semaphore", "sync-pool")
# (stage, path fragments); the first stage with a fragment in the file's path wins.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("runner (receive loops)", ("sqs_consumer/_pipeline/runner.py",)),
    (
        "jobs/handling (dispatch, handler call, settle)",
        (
            "sqs_consumer/_pipeline/dispatch.py",
            "sqs_consumer/_pipeline/fifo.py",
            "sqs_consumer/_pipeline/handling.py",
            "sqs_consumer/_pipeline/settle.py",
            "sqs_consumer/_pipeline/outcome.py",
            "sqs_consumer/message.py",
            "sqs_consumer/handlers/middleware.py",
        ),
    ),
    ("workers (strategy)", ("sqs_consumer/workers/",)),
    (
        "harvester/batching (deletes)",
        ("sqs_consumer/_pipeline/harvester.py", "sqs_consumer/_pipeline/batching.py"),
    ),
    (
        "leases/heartbeat",
        (
            "sqs_consumer/_pipeline/leases.py",
            "sqs_consumer/_pipeline/heartbeat.py",
            "sqs_consumer/_pipeline/visibility.py",
        ),
    ),
    ("sqs adapter (incl. the lean client)", ("sqs_consumer/_pipeline/sqs/",)),
    ("thread hops (threads.py)", ("sqs_consumer/_pipeline/threads.py",)),
    ("telemetry", ("sqs_consumer/observability/telemetry.py",)),
    ("testing (MemorySQS, the fake)", ("sqs_consumer/testing/",)),
    ("other sqs_consumer (consumer, stats)", ("sqs_consumer/",)),
    ("benchmark handler and harness", ("benchmarks/", "/harness.py")),
    (
        "anyio/asyncio internals",
        ("/anyio/", "/asyncio/", "/sniffio/", "selectors.py", "/trio/", "contextlib.py"),
    ),
    ("stdlib threads/queues", ("threading.py", "queue.py", "/concurrent/")),
    ("botocore", ("/botocore/", "/boto3/")),
)
OTHER = "other (stdlib, C builtins)"
STAGE_NAMES = [name for name, _ in STAGES] + [OTHER]


def stage_of(filename: str) -> str | None:
    """The stage a source file belongs to; None for a C function ('~')."""
    if filename == "~" or filename.startswith("<"):
        return None
    path = "/" + filename.replace("\\", "/")  # py-spy names files relative to sys.path
    for name, fragments in STAGES:
        if any(fragment in path for fragment in fragments):
            return name
    return OTHER


# -- in the child process --------------------------------------------------------------------


class ThreadProfiles:
    """One cProfile.Profile per thread, timed by that thread's CPU clock."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _new(self) -> cProfile.Profile:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        return profile

    def start(self) -> None:
        def first_event(frame: Any, event: str, arg: Any) -> None:
            # Called once, on a new thread's first event: swap in a profiler of its own.
            sys.setprofile(None)
            self._new().enable()

        threading.setprofile(first_event)
        self._new().enable()

    def stop(self) -> pstats.Stats:
        threading.setprofile(None)  # type: ignore[arg-type]
        self.profiles[0].disable()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            # Not create_stats(): it would close the frames still open in that thread (a
            # worker blocked in queue.get) with *this* thread's CPU clock, which is nonsense.
            # snapshot_stats() takes what the thread has completed, and leaves it running.
            profile.snapshot_stats()
            if profile.stats:  # type: ignore[attr-defined]
                # A thread that has completed no call yet (parked since it started) has none.
                stats.add(_Snapshot(profile.stats))  # type: ignore[attr-defined]
        return stats


class _Snapshot:
    """What pstats.Stats.add takes: an object with create_stats() and .stats."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        pass


def by_stage(stats: pstats.Stats, messages: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """µs/msg of own time per stage (C functions charged to their callers), and the top 25."""
    totals: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, callers) in raw.items():
        stage = stage_of(filename)
        if stage is not None:
            totals[stage] += tottime
            continue
        shares = {k: v[2] for k, v in callers.items() if stage_of(k[0]) is not None}
        spread = sum(shares.values())
        if not spread:
            totals[OTHER] += tottime
            continue
        for caller, part in shares.items():
            totals[stage_of(caller[0]) or OTHER] += tottime * part / spread
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:25]
    functions = [
        {
            "function": name if f == "~" else f"{'/'.join(Path(f).parts[-2:])}:{line}({name})",
            "stage": stage_of(f) or "C (charged to callers)",
            "us_per_msg": tt / messages * 1e6,
            "calls_per_msg": nc / messages,
        }
        for (f, line, name), (_, nc, tt, _, _) in top
    ]
    return {k: v / messages * 1e6 for k, v in totals.items()}, functions


def child(case: str, mode: str, messages: int) -> dict[str, Any]:
    """Run one case in this process: plain, under cProfile, or waiting for py-spy."""
    style, strategy = case.split("-")
    harness.warm_up()
    sqs, url = harness.new_queue()
    harness.fill(sqs, url, messages)
    if mode == "py-spy":
        print("WARM", flush=True)
        sys.stdin.readline()  # the parent has attached py-spy
    profiles = ThreadProfiles() if mode == "cprofile" else None
    if profiles is not None:
        profiles.start()
    row = harness.ours(
        sqs,
        url,
        strategy=strategy,  # type: ignore[arg-type]
        style=style,  # type: ignore[arg-type]
        concurrency=CONCURRENCY,
        messages=messages,
        work=0.0,
    )
    result: dict[str, Any] = {
        "msgs_per_s": row["msgs_per_s"],
        "cpu_us_per_msg": row["cpu_us_per_msg"],
    }
    if profiles is not None:
        stages, functions = by_stage(profiles.stop(), messages)
        result |= {"stages_us_per_msg": stages, "top_functions": functions}
    return result


# -- in the parent ---------------------------------------------------------------------------


def _run_child(case: str, mode: str, messages: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", case, mode, str(messages)],
        capture_output=True,
        text=True,
        timeout=harness.RUN_TIMEOUT,
    )
    if done.returncode:
        raise RuntimeError(f"profile child {case} {mode} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def py_spy_stages(case: str, messages: int, spy: str) -> dict[str, Any]:
    """Run the case under py-spy (attached after the warm-up); shares of samples per stage."""
    out = harness.RESULTS / f"py-spy-{case}.txt"  # collapsed stacks: feed to a flamegraph tool
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", case, "py-spy", str(messages)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    if process.stdout.readline().strip() != "WARM":
        process.kill()
        raise RuntimeError(f"profile child {case} did not warm up")
    spy_process = subprocess.Popen(
        [spy, "record", "--pid", str(process.pid), "--rate", "500", "--format", "raw", "--gil"]
        + ["--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # py-spy attaches within a few hundred ms
    process.stdin.write("go\n")
    process.stdin.flush()
    result: dict[str, Any] = json.loads(process.stdout.readline())
    # Stop sampling before the child exits: its interpreter shutdown is not ours to count.
    spy_process.send_signal(signal.SIGINT)
    _, errors = spy_process.communicate(timeout=60)
    process.stdin.write("exit\n")
    process.stdin.flush()
    process.wait(harness.RUN_TIMEOUT)
    if not out.is_file():
        raise RuntimeError(f"py-spy wrote no samples: {errors.strip()[-500:]}")
    counts: dict[str, int] = defaultdict(int)
    for line in out.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack.strip():  # a thread with no Python frame (starting or ending)
            continue
        leaf = stack.rsplit(";", 1)[-1]
        filename = leaf.rpartition("(")[2].rpartition(":")[0]
        counts[stage_of(filename) or OTHER] += int(number)
    total = sum(counts.values()) or 1
    return result | {"samples": total, "stage_shares": {k: v / total for k, v in counts.items()}}


def report(
    case: str, plain: dict[str, Any], prof: dict[str, Any], spy: dict[str, Any] | None
) -> str:
    """The table for one case (also used for profile.md)."""
    stages = prof["stages_us_per_msg"]
    raw_total = sum(stages.values())
    cpu = plain["cpu_us_per_msg"]
    rows = []
    for name in STAGE_NAMES:
        share = stages.get(name, 0.0) / raw_total if raw_total else 0.0
        cells = [name, f"{stages.get(name, 0.0):.1f}", f"{share * 100:.1f}", f"{share * cpu:.1f}"]
        if spy is not None:
            spy_share = spy["stage_shares"].get(name, 0.0)
            cells += [f"{spy_share * 100:.1f}", f"{spy_share * cpu:.1f}"]
        rows.append(cells)
    total = ["total", f"{raw_total:.1f}", "100.0", f"{cpu:.1f}"]
    header = ["stage", "cProfile us/msg", "share %", "scaled us/msg"]
    if spy is not None:
        total += ["100.0", f"{cpu:.1f}"]
        header += ["py-spy share %", "py-spy us/msg"]
    rows.append(total)
    title = (
        f"{case}: {plain['msgs_per_s']:,.0f} msgs/s, {cpu:.1f} CPU us/msg without a profiler "
        f"(under cProfile: {prof['msgs_per_s']:,.0f} msgs/s)"
    )
    top = [
        [f"{f['us_per_msg']:.1f}", f"{f['calls_per_msg']:.2f}", f["function"], f["stage"]]
        for f in prof["top_functions"][:TOP]
    ]
    functions = harness.table(top, ["cProfile us/msg", "calls/msg", "function", "stage"])
    return (
        f"{title}\n{harness.table(rows, header)}\n\ntop {TOP} functions by own time:\n{functions}"
    )


def markdown(
    sections: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any] | None]],
) -> str:
    lines = []
    for case, plain, prof, spy in sections:
        stages = prof["stages_us_per_msg"]
        raw_total = sum(stages.values()) or 1.0
        cpu = plain["cpu_us_per_msg"]
        lines.append(f"\n**{case}**: {plain['msgs_per_s']:,.0f} msgs/s, {cpu:.1f} µs CPU/msg\n")
        head = "| stage | cProfile µs/msg | share | scaled µs/msg |"
        rule = "|---|--:|--:|--:|"
        if spy is not None:
            head += " py-spy share | py-spy µs/msg |"
            rule += "--:|--:|"
        lines += [head, rule]
        for name in STAGE_NAMES:
            share = stages.get(name, 0.0) / raw_total
            row = f"| {name} | {stages.get(name, 0.0):.1f} | {share:.0%} | {share * cpu:.1f} |"
            if spy is not None:
                s = spy["stage_shares"].get(name, 0.0)
                row += f" {s:.0%} | {s * cpu:.1f} |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per message by stage (cProfile, py-spy)")
    parser.add_argument("--quick", action="store_true", help="5,000 messages per case")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    parser.add_argument("--py-spy", action="store_true", help="also sample with py-spy")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, mode, messages = args.child
        print(json.dumps(child(case, mode, int(messages))), flush=True)
        if mode == "py-spy":
            sys.stdin.readline()  # exit once the parent has stopped py-spy
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if bad := set(cases) - set(CASES):
        parser.error(f"unknown cases {sorted(bad)}; choose from {', '.join(CASES)}")
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if args.py_spy and spy is None:
        print("py-spy is not installed (pip install py-spy): cProfile only")
    messages = 5_000 if args.quick else 20_000
    info = harness.machine()
    print(
        f"profile: no-op handler, MemorySQS latency 0, concurrency {CONCURRENCY}, {messages:,} "
        f"messages per case; commit {info['git']}\nload: {info['load']['uptime']}"
    )
    sections = []
    for case in cases:
        plain = _run_child(case, "plain", messages)
        prof = _run_child(case, "cprofile", messages)
        sampled = None
        if args.py_spy and spy is not None:
            try:
                sampled = py_spy_stages(case, messages, spy)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"py-spy failed for {case}: {exc}")
        sections.append((case, plain, prof, sampled))
        print("\n" + report(case, plain, prof, sampled), flush=True)
    document = {
        "machine": info,
        "load_after": harness.load(),
        "messages": messages,
        "concurrency": CONCURRENCY,
        "cases": {
            case: {"plain": plain, "cprofile": prof, "py_spy": sampled}
            for case, plain, prof, sampled in sections
        },
    }
    harness.write_json(harness.RESULTS / "profile.json", document)
    header = f"Profile at commit {info['git']}, {info['date']}; load: {info['load']['uptime']}\n"
    (harness.RESULTS / "profile.md").write_text(header + markdown(sections))
    print(f"\nwritten: {harness.RESULTS / 'profile.json'}, {harness.RESULTS / 'profile.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
