"""Both Worker strategies, driven directly (no SQS)."""

from __future__ import annotations

import math

import anyio
import pytest

from sqs_consumer.workers import ElasticPool, SemaphoreWorker, Worker
from tests.helpers import FakeClock, wait_for

pytestmark = pytest.mark.anyio


def make(kind: str, limit: int) -> Worker:
    if kind == "semaphore":
        return SemaphoreWorker(limit)
    return ElasticPool(limit, idle_timeout=0.05)


class Gate:
    """Jobs that block until opened, counting how many run at once."""

    def __init__(self) -> None:
        self.open = anyio.Event()
        self.running = 0
        self.peak = 0
        self.done = 0

    async def job(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await self.open.wait()
        finally:
            self.running -= 1
            self.done += 1


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
class TestProtocol:
    async def test_is_a_worker(self, kind: str) -> None:
        """Both strategies satisfy the Worker protocol."""
        assert isinstance(make(kind, 1), Worker)

    async def test_capacity_counts_down_and_back(self, kind: str) -> None:
        """capacity() drops by one per running job and recovers when jobs end."""
        worker = make(kind, 3)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            await tg.start(worker.serve)
            assert worker.capacity() == 3
            for _ in range(3):
                await worker.submit(gate.job)
            await wait_for(lambda: gate.running == 3)
            assert worker.capacity() == 0
            gate.open.set()
            await wait_for(lambda: gate.done == 3)
            assert worker.capacity() == 3
            await worker.aclose(1)

    async def test_wait_for_capacity_blocks_until_a_job_ends(self, kind: str) -> None:
        """wait_for_capacity() returns only once a slot frees up."""
        worker = make(kind, 1)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            await tg.start(worker.serve)
            await worker.submit(gate.job)
            await wait_for(lambda: gate.running == 1)
            with anyio.move_on_after(0.05) as scope:
                await worker.wait_for_capacity()
            assert scope.cancelled_caught
            gate.open.set()
            with anyio.fail_after(2):
                await worker.wait_for_capacity()
            await worker.aclose(1)

    async def test_aclose_waits_for_running_jobs(self, kind: str) -> None:
        """aclose(timeout) lets running jobs finish when they do so in time."""
        worker = make(kind, 2)
        finished = []

        async def job() -> None:
            await anyio.sleep(0.05)  # the job's own work, which aclose() must wait out
            finished.append(1)

        async with anyio.create_task_group() as tg:
            await tg.start(worker.serve)
            await worker.submit(job)
            await worker.submit(job)
            await worker.aclose(5)
        assert finished == [1, 1]
        assert worker.capacity() == 0  # closed: takes nothing more

    async def test_aclose_cancels_jobs_past_the_timeout(self, kind: str) -> None:
        """Jobs still running after the timeout are cancelled and aclose() returns."""
        worker = make(kind, 1)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            await tg.start(worker.serve)
            await worker.submit(gate.job)
            await wait_for(lambda: gate.running == 1)
            with anyio.fail_after(2):
                await worker.aclose(0.05)
        assert gate.done == 1 and not gate.open.is_set()


async def test_pool_spawns_only_when_no_worker_is_idle() -> None:
    """Sequential jobs reuse one idle worker instead of spawning new ones."""
    pool = ElasticPool(5, idle_timeout=10)
    done = []

    async def job() -> None:
        done.append(1)

    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        for i in range(10):
            await pool.submit(job)
            await wait_for(lambda i=i: len(done) == i + 1 and pool.stats().idle_workers == 1)
        assert pool.stats().workers == 1
        await pool.aclose(1)


async def test_pool_retires_idle_workers_one_by_one_down_to_min() -> None:
    """Idle workers retire one per idle_timeout tick of the pool's clock, never below
    min_workers (the clock and the janitor's sleep are injected: no real waiting)."""
    clock = FakeClock()
    pool = ElasticPool(4, min_workers=1, idle_timeout=10, clock=clock, sleep=clock.sleep)
    gate = Gate()
    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        for _ in range(4):
            await pool.submit(gate.job)
        await wait_for(lambda: gate.running == 4)
        assert pool.stats().workers == 4
        gate.open.set()
        await wait_for(lambda: pool.stats().idle_workers == 4 and clock.next_wake() == 10)
        seen = [pool.stats().workers]
        for tick in range(1, 7):
            clock.advance(10)
            await wait_for(lambda tick=tick: clock.next_wake() == 10 * (tick + 1))
            seen.append(pool.stats().workers)
        assert seen == [4, 3, 2, 1, 1, 1, 1]  # one a tick, then min_workers stays
        await pool.aclose(1)


async def test_pool_retires_only_after_idle_timeout_of_clock_time() -> None:
    """A worker that went idle mid-tick survives that tick and retires at the next: the
    janitor compares the injected clock, and sleeps on it."""
    clock = FakeClock()
    pool = ElasticPool(2, idle_timeout=10, clock=clock, sleep=clock.sleep)
    gate = Gate()
    gate.open.set()
    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        await wait_for(lambda: clock.next_wake() == 10)  # the janitor's first round is set
        clock.advance(5)
        await pool.submit(gate.job)
        await wait_for(lambda: pool.stats().idle_workers == 1)  # idle since 5
        clock.advance(5)  # the janitor's round at 10: idle 5 s only
        await wait_for(lambda: clock.next_wake() == 20)
        assert pool.stats().workers == 1
        clock.advance(10)  # the round at 20: idle 15 s
        await wait_for(lambda: pool.stats().workers == 0, timeout=2)
        await pool.aclose(1)


async def test_pool_waiting_room_full_means_wait() -> None:
    """submit() waits while the waiting room is full instead of dropping the job."""
    pool = ElasticPool(1, waiting_room_size=1, idle_timeout=10)
    gate = Gate()
    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        await pool.submit(gate.job)
        await wait_for(lambda: gate.running == 1)
        await pool.submit(gate.job)  # waits in the room: the only worker is busy
        assert pool.stats().waiting == 1
        assert pool.capacity() == 0
        with anyio.move_on_after(0.05) as scope:
            await pool.submit(gate.job)
        assert scope.cancelled_caught
        gate.open.set()
        await wait_for(lambda: gate.done == 2)
        await pool.aclose(1)


def test_bad_arguments_are_named() -> None:
    """Constructor errors name the argument and the bad value."""
    with pytest.raises(ValueError, match="concurrency.*got 0"):
        SemaphoreWorker(0)
    with pytest.raises(ValueError, match="max_workers.*got -1"):
        ElasticPool(-1)
    with pytest.raises(ValueError, match="min_workers.*got 3"):
        ElasticPool(2, min_workers=3)


async def test_job_submitted_as_the_last_idle_worker_retires_still_runs() -> None:
    """A job arriving in the same turn as a retirement is run, not stranded in the room."""
    pool = ElasticPool(1, idle_timeout=1000)
    ran: list[int] = []

    async def job() -> None:
        ran.append(len(ran) + 1)

    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        await pool.submit(job)
        await wait_for(lambda: pool.stats().idle_workers == 1)
        # Exactly what the janitor does in one step, then a submit in the same turn.
        oldest = pool._idle.popleft()
        oldest.retire = True
        oldest.wake.set()
        await pool.submit(job)
        await wait_for(lambda: ran == [1, 2], timeout=2)
        with anyio.fail_after(1):
            await pool.wait_for_capacity()
        await pool.aclose(1)


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
async def test_cancelled_jobs_see_our_cancellation(kind: str) -> None:
    """A job cancelled by aclose() sees a cancel scope of ours cancelled (deadline -inf),
    so the handler path does not mistake it for a foreign cancellation."""
    worker = make(kind, 1)
    seen: list[float] = []

    async def job() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            seen.append(anyio.current_effective_deadline())

    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        await worker.submit(job)
        await wait_for(lambda: worker.stats().busy == 1)
        with anyio.fail_after(2):
            await worker.aclose(0.01)
    assert seen == [-math.inf]


async def test_semaphore_job_error_ends_serve() -> None:
    """An exception escaping a job ends serve() with it and cancels the other jobs, as a
    task group would (on asyncio the jobs are plain tasks in scopes of ours)."""
    worker = SemaphoreWorker(2)
    gate = Gate()

    async def boom() -> None:
        await wait_for(lambda: gate.running == 1)
        raise LookupError("job broke")

    with pytest.raises((LookupError, BaseExceptionGroup)) as caught:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                await tg.start(worker.serve)
                await worker.submit(gate.job)
                await worker.submit(boom)
    assert "job broke" in repr(caught.value)
    assert gate.done == 1 and not gate.open.is_set()  # cancelled, not finished


async def test_pool_runs_a_burst_of_quick_jobs_on_few_workers() -> None:
    """Jobs that finish without waiting are run by the worker already awake: a burst of
    20 does not wake or spawn a worker per job (slow jobs still get one each: see
    test_pool_spawns_only_when_no_worker_is_idle)."""
    pool = ElasticPool(50, idle_timeout=10)
    done = 0

    async def quick() -> None:
        nonlocal done
        done += 1

    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        for _ in range(20):
            await pool.submit(quick)
        await wait_for(lambda: done == 20)
        assert pool.stats().workers <= 2
        await pool.aclose(1)


async def test_pool_fans_slow_jobs_out_to_a_worker_each() -> None:
    """Submitted together, blocking jobs each get a worker: one wakes the next."""
    pool = ElasticPool(8, idle_timeout=10)
    gate = Gate()
    async with anyio.create_task_group() as tg:
        await tg.start(pool.serve)
        for _ in range(8):
            await pool.submit(gate.job)
        await wait_for(lambda: gate.running == 8)
        assert pool.stats().workers == 8
        gate.open.set()
        await wait_for(lambda: gate.done == 8)
        # Idle now: a second burst reuses them rather than spawning more.
        gate.open = anyio.Event()
        for _ in range(8):
            await pool.submit(gate.job)
        await wait_for(lambda: gate.running == 8)
        assert pool.stats().workers == 8
        gate.open.set()
        await pool.aclose(1)


class Backlog:
    """A queue in front of a worker, as the consumer's Feed is: jobs taken in order."""

    def __init__(self) -> None:
        self.jobs: list[object] = []
        self.taken = 0
        self.ran_in: list[object] = []  # the task each job ran in, in order

    def add(self, count: int, job: object = None) -> None:
        self.jobs.extend([job] * count)

    def take(self) -> object:
        if not self.jobs:
            return None
        self.taken += 1
        job = self.jobs.pop(0)
        return job if job is not None else self.quick

    async def quick(self) -> None:
        self.ran_in.append(anyio.get_current_task().id)


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
async def test_a_task_whose_job_ends_runs_the_next_queued_job_itself(kind: str) -> None:
    """The slot of a job that ends goes straight to the oldest queued job, in the same task.

    Without it, the slot would sit empty until the queue's own task noticed the room and a
    new task started: one or two event-loop turns per message."""
    worker = make(kind, 1)
    backlog = Backlog()
    worker.take_from(backlog.take)  # type: ignore[attr-defined]
    backlog.add(40)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        await worker.submit(backlog.quick)
        await wait_for(lambda: len(backlog.ran_in) == 41)
        assert backlog.taken == 40
        assert len(set(backlog.ran_in)) == 1  # one task ran them all
        await worker.aclose(1.0)


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
async def test_a_run_of_jobs_that_never_suspend_still_lets_others_run(kind: str) -> None:
    """Jobs taken back to back give the event loop a turn now and then: a sibling task runs
    while the backlog lasts rather than after it (a no-op handler must not starve receives)."""
    worker = make(kind, 1)
    backlog = Backlog()
    worker.take_from(backlog.take)  # type: ignore[attr-defined]
    backlog.add(200)
    sibling_ran_at: list[int] = []

    async def sibling() -> None:
        sibling_ran_at.append(backlog.taken)

    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        await worker.submit(backlog.quick)
        tg.start_soon(sibling)
        await wait_for(lambda: len(backlog.ran_in) == 201)
        assert sibling_ran_at and sibling_ran_at[0] < 200
        await worker.aclose(1.0)


@pytest.mark.parametrize("kind", ["semaphore", "pool"])
async def test_a_closing_worker_takes_nothing_more_from_the_backlog(kind: str) -> None:
    """Once aclose() has begun, a job that ends does not start a queued one: those stay
    queued (their messages are released by the shutdown)."""
    worker = make(kind, 1)
    backlog = Backlog()
    worker.take_from(backlog.take)  # type: ignore[attr-defined]
    gate = Gate()
    backlog.add(5)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        await worker.submit(gate.job)
        await wait_for(lambda: gate.running == 1)
        closing = anyio.Event()

        async def close() -> None:
            closing.set()  # aclose() takes its decision before it first waits, in this step
            await worker.aclose(5.0)

        tg.start_soon(close)
        await closing.wait()
        gate.open.set()
        await wait_for(lambda: gate.done == 1)
    assert backlog.taken == 0
    assert len(backlog.jobs) == 5
