"""Graceful shutdown: finish what runs, flush acks, hand everything else back at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from sqs_consumer import Consumer, Message
from tests.conftest import QueueEnv, unique_name, wait_until
from tests.helpers import wait_for

SCRIPT = Path(__file__).parent / "scripts" / "consume.py"


@pytest.mark.anyio
@pytest.mark.parametrize("worker", ["semaphore", "pool"])
async def test_stop_lets_running_handlers_finish_and_releases_the_rest(
    queue: QueueEnv, worker: str
) -> None:
    """Running handlers finish and are deleted; no other message stays invisible."""
    queue.send([f"m{i}" for i in range(20)])
    gate = anyio.Event()
    running: list[str] = []
    finished: list[str] = []

    async def handle(message: Message) -> None:
        running.append(message.body)
        await gate.wait()
        finished.append(message.body)

    consumer = Consumer(handle, queue.options(worker=worker, concurrency=4, shutdown_timeout=10))
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await wait_for(lambda: len(running) == 4)
        started = time.monotonic()
        consumer.stop()
        await wait_for(lambda: consumer.state.value == "stopping")
        gate.set()
    elapsed = time.monotonic() - started
    assert sorted(finished) == sorted(running) and len(finished) == 4
    assert consumer.stats().deleted == 4
    # Visible at once, not after the 30 s visibility timeout. A prefetch receive in flight at
    # stop is abandoned, and what it still returns is released from its thread a moment
    # after run() has returned: hence a wait, bounded far below the visibility timeout.
    await wait_for(lambda: queue.counts() == (16, 0), timeout=5)
    assert elapsed < 3


@pytest.mark.anyio
async def test_handlers_past_shutdown_timeout_are_cancelled_and_released(queue: QueueEnv) -> None:
    """Handlers still running at shutdown_timeout are cancelled; their messages come back now."""
    queue.send(["a", "b"])
    running: list[str] = []

    async def handle(message: Message) -> None:
        running.append(message.body)
        await anyio.sleep_forever()

    consumer = Consumer(handle, queue.options(concurrency=2, shutdown_timeout=0.2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await wait_for(lambda: len(running) == 2)
        consumer.stop()
    stats = consumer.stats()
    # A prefetching long poll abandoned at stop may receive the two again as they are
    # released; it hands them back at once, and counts them as received and released.
    assert (stats.deleted, stats.in_flight) == (0, 0)
    assert stats.released == stats.received in (2, 4)
    assert queue.counts() == (2, 0)


@pytest.mark.anyio
async def test_messages_from_an_abandoned_long_poll_are_released(queue: QueueEnv) -> None:
    """A message that a long poll returns after stop() is made visible again at once."""
    consumer = Consumer(lambda m: None, queue.options(wait_time_seconds=5))
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await wait_for(lambda: consumer.stats().receives == 0 and consumer.stats().pollers == 1)
        await anyio.sleep(0.3)  # let the long poll reach the server before stopping
        consumer.stop()
    queue.send(["late"])  # the abandoned poll, still waiting, receives it...
    # ...and its thread hands it back: visible long before the 30 s visibility timeout.
    await wait_for(lambda: consumer.stats().released == 1, timeout=10)
    await wait_for(lambda: queue.counts() == (1, 0), timeout=5)


def _spawn(endpoint: str, url: str, out: Path, seconds: float, shutdown: float = 30) -> Any:
    command = [sys.executable, str(SCRIPT), endpoint, url, str(out), str(seconds), str(shutdown)]
    with open(str(out) + ".log", "a") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, stderr=log)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_sigterm_drains_and_exits_zero(moto_endpoint: str, moto_sqs: Any, tmp_path: Path) -> None:
    """SIGTERM lets the running handlers finish, deletes them, and exits 0."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("moto", moto_sqs, url, {})
    env.send([f"m{i}" for i in range(10)])
    out = tmp_path / "done"
    process = _spawn(moto_endpoint, url, out, 1.0)
    wait_until(lambda: len(_lines(Path(str(out) + ".started"))) >= 5, timeout=20)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, Path(str(out) + ".log").read_text()
    started = _lines(Path(str(out) + ".started"))
    assert sorted(_lines(out)) == sorted(started)  # all that started, finished
    wait_until(lambda: env.counts() == (10 - len(started), 0), timeout=5)


def test_second_signal_forces_a_fast_exit(
    moto_endpoint: str, moto_sqs: Any, tmp_path: Path
) -> None:
    """A second SIGTERM cancels the drain: the process exits at once, messages come back."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("moto", moto_sqs, url, {})
    env.send(["slow"])
    out = tmp_path / "done"
    process = _spawn(moto_endpoint, url, out, 60.0, shutdown=60)
    wait_until(lambda: len(_lines(Path(str(out) + ".started"))) == 1, timeout=20)
    process.send_signal(signal.SIGTERM)
    # The first must be handled before the second is sent: two pending SIGTERMs are one.
    log = Path(str(out) + ".log")
    wait_until(lambda: "shutting down gracefully" in log.read_text(), timeout=10)
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    assert time.monotonic() - began < 5
    assert _lines(out) == []
    wait_until(lambda: env.counts() == (1, 0), timeout=5)  # released, not held 60 s


def test_kill_nine_loses_nothing(moto_endpoint: str, moto_sqs: Any, tmp_path: Path) -> None:
    """SIGKILL mid-run, three times, then a clean run: every message handled, queue empty."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    env = QueueEnv("moto", moto_sqs, url, {})
    bodies = [f"m{i}" for i in range(60)]
    env.send(bodies)
    out = tmp_path / "done"
    for _ in range(3):
        before = len(_lines(out))
        process = _spawn(moto_endpoint, url, out, 0.1)
        wait_until(lambda before=before: len(_lines(out)) >= before + 5, timeout=30)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
    process = _spawn(moto_endpoint, url, out, 0.1)
    wait_until(lambda: set(_lines(out)) == set(bodies), timeout=60)
    wait_until(lambda: env.counts() == (0, 0), timeout=10)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert set(_lines(out)) == set(bodies)


def test_an_abandoned_polls_messages_are_released_despite_a_throttle() -> None:
    """A long poll abandoned at stop that still gets messages releases them from its thread,
    retrying a throttled ChangeMessageVisibilityBatch: they are visible again at once."""
    import threading

    from sqs_consumer import ConsumerOptions
    from sqs_consumer.testing import MemorySQS

    sqs = MemorySQS()
    url = sqs.create_queue(QueueName="abandoned", Attributes={"VisibilityTimeout": "60"})[
        "QueueUrl"
    ]
    options = ConsumerOptions(queue_url=url, client=sqs, wait_time_seconds=5, shutdown_timeout=1)
    consumer = Consumer(lambda m: None, options)
    threading.Thread(
        target=lambda: (wait_until(lambda: sqs.waiting(url) >= 1), consumer.stop()), daemon=True
    ).start()
    consumer.start()
    assert sqs.waiting(url) >= 1  # still parked on the queue after start() returned
    sqs.inject_faults(1.0, kinds=["throttling"], operations=["change_message_visibility_batch"])
    threading.Timer(0.2, sqs.clear_faults).start()  # the first tries fail, later ones pass
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(k), "MessageBody": f"m{k}"} for k in range(5)]
    )
    wait_until(lambda: consumer.stats().released == 5, timeout=10)
    assert sqs.counts(url)["visible"] == 5
