"""A custom Worker: wrap a built-in strategy and pause intake until the application is ready.

Run it with `python docs/examples/custom_worker.py`; it uses the in-memory queue.
"""

import anyio
import attrs
from anyio.abc import TaskStatus

from sqs_consumer import Consumer, ConsumerOptions, Message
from sqs_consumer.testing import MemorySQS
from sqs_consumer.workers import Job, SemaphoreWorker, Worker, WorkerStats

QUEUE_URL = "memory://custom-worker"
COUNT = 20


class PausableWorker:
    """Delegates to another Worker; while paused its capacity is 0, so nothing is received."""

    def __init__(self, inner: Worker) -> None:
        self._inner = inner
        self._resumed = anyio.Event()

    def resume(self) -> None:
        self._resumed.set()

    def capacity(self) -> int:
        return self._inner.capacity() if self._resumed.is_set() else 0

    async def wait_for_capacity(self) -> None:
        await self._resumed.wait()
        await self._inner.wait_for_capacity()

    async def submit(self, job: Job) -> None:
        await self._inner.submit(job)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self._inner.serve(task_status=task_status)

    async def aclose(self, timeout: float) -> None:
        await self._inner.aclose(timeout)

    def stats(self) -> WorkerStats:
        return attrs.evolve(self._inner.stats(), capacity=self.capacity())


async def main() -> None:
    sqs = MemorySQS.shared()
    for n in range(COUNT):
        sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=str(n))
    worker = PausableWorker(SemaphoreWorker(4))
    handled: list[str] = []
    all_done = anyio.Event()

    async def handle(message: Message) -> None:
        handled.append(message.body)
        if len(handled) == COUNT:
            all_done.set()

    consumer = Consumer(handle, ConsumerOptions(queue_url=QUEUE_URL, worker=worker))
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.run)
        await anyio.sleep(0.2)  # stands in for start-up work, e.g. warming a cache
        print(f"received while paused: {consumer.stats().received}")  # 0
        worker.resume()
        await all_done.wait()
        consumer.stop()  # run() returns after the graceful drain
    print(f"succeeded={consumer.stats().succeeded}")


if __name__ == "__main__":
    anyio.run(main)
