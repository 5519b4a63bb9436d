"""The settling stages on a MemorySQS, built and run the way the wiring does, for stage tests.

Tests drive a stage through its constructor and methods and look at the queue: what the
stage did is what SQS (here MemorySQS) saw, not which private helper ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs

from sqs_consumer import Message
from sqs_consumer._pipeline.deadletter import DeadLetters
from sqs_consumer._pipeline.deadlines import ShutdownDeadline
from sqs_consumer._pipeline.dispatch import Pipeline
from sqs_consumer._pipeline.harvester import Harvester
from sqs_consumer._pipeline.leases import Leases
from sqs_consumer._pipeline.settle import Settler
from sqs_consumer._pipeline.sqs import Sqs
from sqs_consumer._pipeline.threads import DaemonThreads
from sqs_consumer._pipeline.visibility import VisibilityChanger
from sqs_consumer.observability.telemetry import Telemetry
from sqs_consumer.retry import RetryPolicy
from sqs_consumer.stats import Counters
from sqs_consumer.testing import CallHook, MemorySQS
from sqs_consumer.workers import Job
from tests.conftest import unique_name


def adapter(client: Any, counters: Counters | None = None, **kwargs: Any) -> Sqs:
    """An SQS adapter over `client`, as the wiring builds one."""
    return Sqs(
        client,
        limiter=anyio.CapacityLimiter(8),
        counters=counters if counters is not None else Counters(),
        threads=DaemonThreads(),
        **kwargs,
    )


def make_queue(memory: MemorySQS, *, fifo: bool = False, **attributes: str) -> str:
    """A fresh queue on `memory` (FIFO with content-based deduplication if `fifo`)."""
    if fifo:
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true", **attributes}
        return str(
            memory.create_queue(QueueName=unique_name() + ".fifo", Attributes=attributes)[
                "QueueUrl"
            ]
        )
    return str(memory.create_queue(QueueName=unique_name(), Attributes=attributes)["QueueUrl"])


def receive(memory: MemorySQS, url: str, count: int = 10, **params: Any) -> list[Message]:
    """Messages as the runner hands them on: received (all attributes) and parsed."""
    response = memory.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=count,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
        WaitTimeSeconds=0,
        **params,
    )
    return [Message.from_sqs(raw, queue_url=url) for raw in response.get("Messages", [])]


class Jobs:
    """A job queue that keeps what is submitted, so the test decides when each job runs."""

    def __init__(self, leases: Leases) -> None:
        self.jobs: list[Job] = []
        self._leases = leases
        self.leased_at_submit: list[int] = []
        """How many leases were held at each submit."""

    async def submit(self, job: Job) -> None:
        self.leased_at_submit.append(len(self._leases))
        self.jobs.append(job)

    async def run_all(self) -> None:
        """Run every job submitted so far, in order, then clear the list."""
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            await job()


@attrs.define
class Kit:
    """One queue and the settling stages over it, running."""

    memory: MemorySQS
    url: str
    counters: Counters
    sqs: Sqs
    harvester: Harvester
    visibility: VisibilityChanger
    settler: Settler
    leases: Leases
    jobs: Jobs
    pipeline: Pipeline
    deadline: ShutdownDeadline
    fatal: list[BaseException]

    def counts(self) -> dict[str, int]:
        return self.memory.counts(self.url)

    async def flush(self) -> None:
        """Send every delete and visibility change queued so far (the stages stop)."""
        await self.harvester.aclose()
        await self.visibility.aclose()


@asynccontextmanager
async def settling_stages(
    *,
    hook: CallHook | None = None,
    fifo: bool = False,
    retry: RetryPolicy | None = None,
    dead_letter: tuple[str, int] | None = None,
    memory: MemorySQS | None = None,
    url: str | None = None,
    lease_seconds: float = 30,
) -> AsyncIterator[Kit]:
    """The harvester, visibility changer and settler over one queue, running for the block.

    `dead_letter` is (DLQ url, max_receives) on the same MemorySQS.
    """
    memory = memory if memory is not None else MemorySQS(hook=hook)
    url = url if url is not None else make_queue(memory, fifo=fifo)
    counters = Counters()
    fatal: list[BaseException] = []
    sqs = adapter(memory, counters)
    telemetry = Telemetry(queue_url=url, queue_name=url.rsplit("/", 1)[-1])
    deadline = ShutdownDeadline()
    harvester = Harvester(
        sqs,
        url,
        size=10,
        interval=0.01,
        counters=counters,
        telemetry=telemetry,
        on_fatal=fatal.append,
        deadline=deadline,
    )
    visibility = VisibilityChanger(
        sqs, url, interval=0.01, counters=counters, on_fatal=fatal.append, deadline=deadline
    )
    dead_letters = None
    if dead_letter is not None:
        dead_letters = DeadLetters(sqs, dead_letter[0], source_url=url, max_receives=dead_letter[1])
    settler = Settler(
        harvester=harvester,
        visibility=visibility,
        retry=retry,
        dead_letters=dead_letters,
        counters=counters,
        telemetry=telemetry,
    )
    leases = Leases()
    jobs = Jobs(leases)
    pipeline = Pipeline(
        worker=jobs,
        leases=leases,
        settler=settler,
        visibility=visibility,
        counters=counters,
        telemetry=telemetry,
        lease_seconds=lease_seconds,
        deadline=deadline,
    )
    kit = Kit(
        memory, url, counters, sqs, harvester, visibility, settler, leases, jobs, pipeline,
        deadline, fatal,
    )  # fmt: skip
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(harvester.run)
            await tg.start(visibility.run)
            yield kit
            await kit.flush()
