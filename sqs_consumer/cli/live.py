"""The demo's two views: a live terminal panel (rich) and plain lines (CI, pipes, no rich)."""

from __future__ import annotations

import collections
from typing import Any, Protocol

__all__ = ["PlainView", "RichView", "View", "rich_view", "sparkline"]

BARS = "▁▂▃▄▅▆▇█"
HISTORY = 48  # throughput samples in the sparkline
PLAIN_EVERY = 1.0  # seconds between two plain progress lines


class View(Protocol):
    """Protocol: what the demo tells its view, in order: note*, (begin, update*, end)*, summary."""

    def note(self, text: str) -> None: ...
    def begin(self, strategy: str, total: int) -> None: ...
    def update(self, elapsed: float, figures: dict[str, int]) -> None: ...
    def end(self, elapsed: float, figures: dict[str, int]) -> None: ...
    def summary(self, header: list[str], rows: list[list[str]], footer: str) -> None: ...


def sparkline(values: list[float]) -> str:
    """One block character per value, scaled to the largest."""
    top = max(values, default=0.0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(
        BARS[min(len(BARS) - 1, int(value / top * (len(BARS) - 1) + 0.5))] for value in values
    )


class _Rate:
    """Messages per second between samples, and a short history of it."""

    def __init__(self) -> None:
        self.history: collections.deque[float] = collections.deque(maxlen=HISTORY)
        self._last: tuple[float, int] | None = None
        self.now = 0.0

    def add(self, elapsed: float, done: int) -> float:
        if self._last is not None and elapsed > self._last[0]:
            self.now = (done - self._last[1]) / (elapsed - self._last[0])
            self.history.append(self.now)
        self._last = (elapsed, done)
        return self.now


def _line(strategy: str, elapsed: float, f: dict[str, int], rate: float) -> str:
    return (
        f"{strategy}: {f['done']}/{f['total']} done at {elapsed:.1f} s, {rate:,.0f} msgs/s; "
        f"in flight {f['in_flight']}, busy {f['busy']}, workers {f['workers']} "
        f"(idle {f['idle_workers']}), waiting room {f['waiting']}, prefetched {f['prefetched']}, "
        f"pollers {f['pollers']}"
    )


class PlainView:
    """A line per second while a strategy runs, then a plain summary table."""

    def __init__(self) -> None:
        self._strategy = ""
        self._next = 0.0
        self._rate = _Rate()

    def note(self, text: str) -> None:
        print(text, flush=True)

    def begin(self, strategy: str, total: int) -> None:
        self._strategy, self._next, self._rate = strategy, PLAIN_EVERY, _Rate()

    def update(self, elapsed: float, figures: dict[str, int]) -> None:
        rate = self._rate.add(elapsed, figures["done"])
        if elapsed >= self._next:
            self._next = elapsed + PLAIN_EVERY
            print(_line(self._strategy, elapsed, figures, rate), flush=True)

    def end(self, elapsed: float, figures: dict[str, int]) -> None:
        pass

    def summary(self, header: list[str], rows: list[list[str]], footer: str) -> None:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        print()
        for row in [header, *rows]:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        print(f"\n{footer}", flush=True)


class RichView:
    """A live panel per strategy (figures, a progress bar, a throughput sparkline)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console()
        self._live: Any = None
        self._strategy = ""
        self._rate = _Rate()

    def note(self, text: str) -> None:
        self.console.print(f"[dim]{text}[/dim]")

    def begin(self, strategy: str, total: int) -> None:
        from rich.live import Live

        self._strategy, self._rate = strategy, _Rate()
        self._live = Live(console=self.console, refresh_per_second=10, transient=False)
        self._live.start()

    def update(self, elapsed: float, figures: dict[str, int]) -> None:
        self._rate.add(elapsed, figures["done"])
        if self._live is not None:
            self._live.update(self._panel(elapsed, figures))

    def end(self, elapsed: float, figures: dict[str, int]) -> None:
        if self._live is not None:
            self._live.update(self._panel(elapsed, figures), refresh=True)
            self._live.stop()
            self._live = None

    def _panel(self, elapsed: float, f: dict[str, int]) -> Any:
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan", justify="right")
        grid.add_column(min_width=12)
        grid.add_column(style="bold cyan", justify="right")
        grid.add_column(min_width=12)
        grid.add_row("in flight", str(f["in_flight"]), "received", str(f["received"]))
        grid.add_row("busy", str(f["busy"]), "succeeded", str(f["succeeded"]))
        grid.add_row(
            "workers", f"{f['workers']} ({f['idle_workers']} idle)", "failed", str(f["failed"])
        )
        grid.add_row("waiting room", str(f["waiting"]), "deleted", str(f["deleted"]))
        grid.add_row("prefetched", str(f["prefetched"]), "pollers", str(f["pollers"]))
        done = Table.grid(padding=(0, 1))
        done.add_row(ProgressBar(total=max(1, f["total"]), completed=f["done"], width=40),
                     f"{f['done']}/{f['total']} done")  # fmt: skip
        outer = Table.grid()
        outer.add_row(grid)
        outer.add_row("")
        outer.add_row(done)
        line = sparkline(list(self._rate.history)).ljust(HISTORY)  # a fixed width: no jitter
        outer.add_row(f"[green]{line}[/green] {self._rate.now:>6,.0f} msgs/s")
        return Panel(outer, title=f"[b]{self._strategy}[/b] strategy · {elapsed:.1f} s",
                     border_style="blue", expand=False)  # fmt: skip

    def summary(self, header: list[str], rows: list[list[str]], footer: str) -> None:
        from rich.table import Table

        table = Table(title="summary")
        for name in header:
            table.add_column(name, justify="left" if name == "strategy" else "right")
        for row in rows:
            table.add_row(*row)
        self.console.print(table)
        self.console.print(footer)


def rich_view() -> RichView | None:
    """A RichView, or None when rich is not installed (the `cli` extra)."""
    try:
        import rich  # noqa: F401
    except ImportError:
        return None
    return RichView()
