"""PNG plots of the benchmark JSON (matplotlib: ``pip install -e '.[bench]'``).

``python benchmarks/plots.py [RESULTS_DIR] [OUT_DIR]`` re-draws the plots from saved results;
``bench.py`` calls `make_all` after a run. Each plot is drawn only if its section's JSON exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import harness
import matplotlib.pyplot as plt

COLORS = {
    "semaphore": "tab:blue",
    "pool": "tab:orange",
    "bare": "tab:gray",
    "bare-threads": "silver",
}
DPI = 110


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    return None if "skipped" in document else document


def _stamp(fig: Any, document: dict[str, Any]) -> None:
    m = document["machine"]
    load = document.get("load_before", m["load"])["loadavg"]
    text = f"{m['date'][:10]}  commit {m['git']}  {m['cpu_count']} CPUs  load {load[0]:.1f}"
    fig.text(0.99, 0.005, text, ha="right", va="bottom", fontsize=7, color="gray")


def overhead(doc: dict[str, Any], out: Path) -> Path:
    rows = doc["overhead"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels, values, colors, notes = [], [], [], []
    for r in rows:
        labels.append(f"{r['style']} {r['strategy']}")
        values.append(r["msgs_per_s"])
        colors.append(COLORS[r["strategy"]])
        note = "bare loop" if r["strategy"] == "bare" else f"{r['ratio_to_bare']:.2f}x bare"
        if "ratio_to_threaded_bare" in r:
            note += f", {r['ratio_to_threaded_bare']:.2f}x bare-threads"
        notes.append(note)
    bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    for bar, note, value in zip(bars, notes[::-1], values[::-1], strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {value:,.0f}  ({note})",
            va="center",
            fontsize=8,
        )
    ax.set_xlabel("messages / s (no-op handler, MemorySQS, no latency)")
    ax.set_xlim(0, max(values) * 1.45)
    ax.set_title("Overhead: ours against a bare loop over the same fake, same run", fontsize=10)
    fig.tight_layout()
    _stamp(fig, doc)
    return _save(fig, out / "overhead.png")


def io_matrix(doc: dict[str, Any], out: Path) -> Path:
    rows = doc["io"]
    latencies = sorted({r["latency"] for r in rows})
    fig, axes = plt.subplots(
        2, len(latencies), figsize=(3.0 * len(latencies), 5.2), squeeze=False, sharey=True
    )
    for i, style in enumerate(harness.STYLES):
        for j, latency in enumerate(latencies):
            ax = axes[i][j]
            for strategy in ("bare", *harness.STRATEGIES):
                pts = sorted(
                    (r["concurrency"], r["ratio_to_bound"])
                    for r in rows
                    if r["style"] == style and r["latency"] == latency and r["strategy"] == strategy
                )
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(
                        xs,
                        ys,
                        marker="o",
                        color=COLORS[strategy],
                        linestyle="--" if strategy == "bare" else "-",
                        label="bare loop" if strategy == "bare" else strategy,
                    )
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
            ax.set_xscale("log")
            ax.set_ylim(0, 1.1)
            ax.set_title(f"{style}, latency {latency * 1000:.0f} ms", fontsize=9)
            if i == 1:
                ax.set_xlabel("concurrency")
            if j == 0:
                ax.set_ylabel("msgs/s ÷ (concurrency / work)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"IO-bound handlers ({doc['work_s'] * 1000:.0f} ms): fraction of the bound", fontsize=10
    )
    fig.tight_layout()
    _stamp(fig, doc)
    return _save(fig, out / "matrix.png")


def scaling(doc: dict[str, Any], out: Path) -> Path:
    latency = doc["scaling_latency_s"]
    rows = [r for r in doc["io"] if r["latency"] == latency]
    if not rows:  # a quick run may not have the scaling latency: use the largest one it has
        latency = max(r["latency"] for r in doc["io"])
        rows = [r for r in doc["io"] if r["latency"] == latency]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    work = doc["work_s"]
    for ax, style in zip(axes, harness.STYLES, strict=True):
        cs = sorted({r["concurrency"] for r in rows})
        ax.plot(cs, [c / work for c in cs], color="black", linestyle=":", label="ideal C / work")
        for strategy in ("bare", *harness.STRATEGIES):
            pts = sorted(
                (r["concurrency"], r["msgs_per_s"])
                for r in rows
                if r["style"] == style and r["strategy"] == strategy
            )
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    color=COLORS[strategy],
                    linestyle="--" if strategy == "bare" else "-",
                    label="bare loop" if strategy == "bare" else strategy,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.set_title(f"{style} handlers", fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("messages / s")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Scaling: {work * 1000:.0f} ms handlers, MemorySQS latency "
        f"{latency * 1000:.0f} ms per call",
        fontsize=10,
    )
    fig.tight_layout()
    _stamp(fig, doc)
    return _save(fig, out / "scaling.png")


def elasticity(doc: dict[str, Any], out: Path) -> Path:
    runs = doc["runs"]
    fig, axes = plt.subplots(
        2, len(runs), figsize=(6.5 * len(runs), 5.5), squeeze=False, sharex="col"
    )
    for j, run in enumerate(runs):
        samples = run["samples"]
        t = [s["t"] for s in samples]
        top, bottom = axes[0][j], axes[1][j]
        top.plot(t, [s["msgs_per_s"] for s in samples], color="tab:green", label="handled msgs/s")
        for send in run["sends"]:
            if send["sent"] > 10:
                top.axvline(send["t"], color="tab:red", linestyle=":", linewidth=1)
                top.text(
                    send["t"],
                    top.get_ylim()[1] * 0.02,
                    f" burst {send['sent']:,}",
                    fontsize=7,
                    color="tab:red",
                    rotation=90,
                    va="bottom",
                )
        top.set_ylabel("messages / s")
        top.set_title(
            f"pool, {run['style']} handlers {run['work'] * 1000:.0f} ms, concurrency "
            f"{run['concurrency']}, idle timeout {run['pool_idle_timeout']} s",
            fontsize=9,
        )
        top.legend(fontsize=7, loc="upper left")
        for key, color in (
            ("workers", "tab:blue"),
            ("busy", "tab:cyan"),
            ("waiting", "tab:purple"),
            ("in_flight", "tab:orange"),
            ("prefetched", "tab:brown"),
        ):
            if all(s.get(key) is None for s in samples):
                continue  # a figure this version of the library does not report
            bottom.plot(
                t,
                [s[key] or 0 for s in samples],
                label=key.replace("_", " "),
                color=color,
                linewidth=1.2,
            )
        bottom.set_xlabel("seconds")
        bottom.set_ylabel("count")
        bottom.legend(fontsize=7, loc="upper left", ncol=5)
    fig.suptitle(
        "Elasticity: a 200 msgs/s trickle, a burst, an idle spell, a second burst", fontsize=10
    )
    fig.tight_layout()
    _stamp(fig, doc)
    return _save(fig, out / "elasticity.png")


def wire(doc: dict[str, Any], out: Path) -> Path:
    rows = doc["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in (
        (axes[0], "msgs_per_s", "messages / s"),
        (axes[1], "cpu_us_per_msg", "consumer-process CPU µs / message"),
    ):
        width = 0.8 / max(1, max(sum(r["case"] == c for r in rows) for c in cases))
        for i, case in enumerate(cases):
            group = [r for r in rows if r["case"] == case]
            for k, r in enumerate(group):
                plain = r["strategy"].startswith("plain")
                x = i + (k - (len(group) - 1) / 2) * width
                ax.bar(
                    x,
                    r[key],
                    width,
                    color="tab:gray" if plain else COLORS[r["strategy"]],
                    hatch="" if plain or r["style"] == "async" else "//",
                    edgecolor="white",
                )
                ax.text(x, r[key], f"{r[key]:,.0f}", ha="center", va="bottom", fontsize=7)
            bound = group[0].get("bound")
            if key == "msgs_per_s" and bound:
                ax.hlines(bound, i - 0.45, i + 0.45, color="black", linestyle=":", linewidth=1)
                ax.text(i + 0.45, bound, "bound", fontsize=7, ha="right", va="bottom")
        ax.set_xticks(range(len(cases)), cases)
        ax.set_ylabel(label, fontsize=9)
    handles = (
        [plt.Rectangle((0, 0), 1, 1, color="tab:gray")]
        + [plt.Rectangle((0, 0), 1, 1, color=COLORS[s]) for s in harness.STRATEGIES]
        + [plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="//")]
    )
    axes[0].legend(
        handles, ["plain boto3 loop", "semaphore", "pool", "sync handler (hatched)"], fontsize=7
    )
    fig.suptitle(f"The wire: {doc['server']}, same run", fontsize=10)
    fig.tight_layout()
    _stamp(fig, doc)
    return _save(fig, out / "wire.png")


def memory(doc: dict[str, Any], out: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    held = doc["in_flight"]
    labels = [f"{r['style']}\n{r['strategy']}" for r in held]
    xs = range(len(held))
    left.bar(
        [x - 0.2 for x in xs],
        [r["rss_before_mib"] for r in held],
        0.4,
        label="before",
        color="tab:gray",
    )
    left.bar(
        [x + 0.2 for x in xs],
        [r["rss_held_mib"] for r in held],
        0.4,
        label=f"{held[0]['in_flight']:,} held",
        color="tab:blue",
    )
    for x, r in zip(xs, held, strict=True):
        left.text(
            x + 0.2,
            r["rss_held_mib"],
            f"{r['kib_per_message_held']:.1f} KiB/msg",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    left.set_xticks(list(xs), labels, fontsize=8)
    left.set_ylabel("RSS MiB")
    left.legend(fontsize=7, loc="lower right")
    left.set_title("RSS with 1,000 messages in flight", fontsize=9)
    long = doc["long_run"]
    trace = long["trace"]
    right.plot([s["handled"] for s in trace], [s["rss_mib"] for s in trace], color="tab:blue")
    right.set_xlabel("messages handled")
    right.set_ylabel("RSS MiB")
    right.set_ylim(0, max(s["rss_mib"] for s in trace) * 1.2)
    right.set_title(f"RSS over {long['messages']:,} messages (no-op async, semaphore)", fontsize=9)
    fig.tight_layout()
    _stamp(fig, doc)
    return _save(fig, out / "memory.png")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def make_all(results: Path, out: Path) -> list[Path]:
    """Draw every plot whose results exist; return the files written."""
    written = []
    if doc := _load(results, "matrix"):
        written += [overhead(doc, out), io_matrix(doc, out), scaling(doc, out)]
    if doc := _load(results, "elasticity"):
        written.append(elasticity(doc, out))
    if doc := _load(results, "wire"):
        written.append(wire(doc, out))
    if doc := _load(results, "memory"):
        written.append(memory(doc, out))
    return written


if __name__ == "__main__":
    results = Path(sys.argv[1]) if len(sys.argv) > 1 else harness.RESULTS
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else harness.RESULTS / "plots"
    for written in make_all(results, out):
        print(written)
