"""DaemonThreads: blocking calls that a cancelled caller can leave behind."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from sqs_consumer._pipeline.threads import DaemonThreads
from tests.helpers import wait_for

pytestmark = pytest.mark.anyio


async def test_returns_the_value_and_reuses_threads() -> None:
    """Results come back; sequential calls reuse one parked thread."""
    pool = DaemonThreads()
    limiter = anyio.CapacityLimiter(4)
    names = [await pool.run_sync(lambda: threading.current_thread().name, limiter=limiter)]
    idents = {await pool.run_sync(threading.get_ident, limiter=limiter) for _ in range(20)}
    assert names == ["sqs-consumer worker"]
    assert len(idents) == 1


async def test_exceptions_reach_the_caller() -> None:
    """An exception raised in the thread is raised by run_sync."""

    def boom() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        await DaemonThreads().run_sync(boom, limiter=anyio.CapacityLimiter(1))


async def test_cancelled_caller_abandons_a_daemon_thread() -> None:
    """Cancelling the caller returns at once; the thread, a daemon, runs on by itself."""
    release = threading.Event()
    seen: list[threading.Thread] = []

    def block() -> None:
        seen.append(threading.current_thread())
        release.wait(10)

    started = time.monotonic()
    with anyio.move_on_after(0.1):
        await DaemonThreads().run_sync(block, limiter=anyio.CapacityLimiter(1))
    assert time.monotonic() - started < 1
    assert seen and seen[0].daemon and seen[0].is_alive()
    release.set()


async def test_limiter_bounds_concurrent_calls() -> None:
    """No more calls run at once than the limiter allows."""
    pool = DaemonThreads()
    limiter = anyio.CapacityLimiter(2)
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)  # the call's work: long enough for the others to pile up on the limit
        with lock:
            running -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(lambda: pool.run_sync(work, limiter=limiter))
    assert peak == 2


async def test_threads_take_queued_calls_and_retire_when_idle() -> None:
    """Many calls finishing together all come back (their hand-overs are batched); no
    more threads start than calls ran at once, and idle ones exit after idle_timeout."""
    pool = DaemonThreads(idle_timeout=0.05)
    limiter = anyio.CapacityLimiter(8)
    release = threading.Event()
    results: list[int] = []

    async def call(i: int) -> None:
        results.append(await pool.run_sync(lambda: release.wait(10) and i, limiter=limiter))

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(call, i)
        await wait_for(lambda: pool.threads == 8)
        release.set()
    assert sorted(results) == list(range(40))
    assert pool.threads <= 8
    await wait_for(lambda: pool.threads == 0)


async def test_a_finished_thread_is_reused_for_the_next_call() -> None:
    """Back-to-back calls from many tasks run on the threads already started."""
    pool = DaemonThreads()
    limiter = anyio.CapacityLimiter(4)
    idents: set[int] = set()

    async def calls() -> None:
        for _ in range(25):
            idents.add(await pool.run_sync(threading.get_ident, limiter=limiter))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(calls)
    assert len(idents) <= 4 and pool.threads <= 4
