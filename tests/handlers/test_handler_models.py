"""Handler models end to end through a Consumer: unmodified Lambda handlers, Router, middleware."""

from __future__ import annotations

import json
import runpy
import threading
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from sqs_consumer import Consumer, ExponentialBackoff, LambdaHandler, Message, Router
from tests.conftest import QueueEnv
from tests.helpers import running, wait_for

FAST_RETRY = ExponentialBackoff(initial=1, jitter=0)
EXAMPLES = sorted((Path(__file__).parents[2] / "docs" / "examples").glob("*.py"))


@pytest.mark.anyio
async def test_unmodified_powertools_handler_with_partial_failures(queue: QueueEnv) -> None:
    """30 messages, some failing once: all end handled; no succeeded record runs twice."""
    queue.send([json.dumps({"n": i}) for i in range(30)])
    runs: dict[int, int] = {}
    successes: dict[int, int] = {}
    lock = threading.Lock()
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: Any) -> None:
        n = json.loads(record.body)["n"]
        with lock:
            runs[n] = runs.get(n, 0) + 1
            first = runs[n] == 1
        if n % 3 == 0 and first:
            raise ValueError(f"job {n} fails its first try")
        with lock:
            successes[n] = successes.get(n, 0) + 1

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return process_partial_response(  # type: ignore[no-any-return]
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    # One receive loop on moto: its ReceiveMessage is not locked (see test_consumer).
    pollers: int | str = 1 if queue.kind == "moto" else "auto"
    options = queue.options(concurrency=10, retry=FAST_RETRY, pollers=pollers)
    consumer = Consumer(LambdaHandler(lambda_handler), options)
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 30, timeout=30)
    assert successes == dict.fromkeys(range(30), 1)
    assert consumer.stats().failed == 10


@pytest.mark.anyio
async def test_router_with_two_middleware_in_order(queue: QueueEnv) -> None:
    """Every type reaches its route, through both middleware, outermost first."""
    router = Router(attribute="type")
    seen: list[tuple[str, str]] = []
    trail: list[str] = []

    @router.route("created")
    async def created(message: Message) -> None:
        seen.append(("created", message.body))

    @router.route("deleted")
    def deleted(message: Message) -> None:  # a sync route runs in a thread
        seen.append(("deleted", message.body))

    async def outer(message: Message, call_next: Any) -> Any:
        trail.append(f"outer>{message.body}")
        result = await call_next(message)
        trail.append(f"outer<{message.body}")
        return result

    async def inner(message: Message, call_next: Any) -> Any:
        trail.append(f"inner>{message.body}")
        return await call_next(message)

    for body, kind in [("a", "created"), ("b", "deleted"), ("c", "created")]:
        attributes = {"type": {"DataType": "String", "StringValue": kind}}
        queue.send([body], MessageAttributes=attributes)
    consumer = Consumer(router, queue.options(middleware=[outer, inner], concurrency=1))
    async with running(consumer):
        await wait_for(lambda: consumer.stats().deleted == 3)
    assert sorted(seen) == [("created", "a"), ("created", "c"), ("deleted", "b")]
    for body in "abc":
        assert trail.index(f"outer>{body}") < trail.index(f"inner>{body}")
        assert trail.index(f"inner>{body}") < trail.index(f"outer<{body}")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_docs_example_runs(example: Path) -> None:
    """Every example in docs/examples runs to completion on its own."""
    runpy.run_path(str(example), run_name="__main__")


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["router", "lambda"])
async def test_handler_timeout_applies_to_sync_routes_and_lambda_functions(
    queue: QueueEnv, model: str
) -> None:
    """A stuck sync route or Lambda function times out instead of holding the message."""
    import threading as _threading

    release = _threading.Event()
    queue.send(["stuck"], MessageAttributes={"type": {"DataType": "String", "StringValue": "t"}})
    handler: Any
    if model == "router":
        router = Router()
        router.route("t")(lambda message: release.wait(10))
        handler = router
    else:
        handler = LambdaHandler(lambda event, context: release.wait(10))
    options = queue.options(handler_timeout=0.3, retry=ExponentialBackoff(initial=600))
    consumer = Consumer(handler, options)
    try:
        async with running(consumer):
            await wait_for(lambda: consumer.stats().failed == 1, timeout=5)
            release.set()  # the abandoned thread ends: its slot, and the drain, free up
        assert consumer.stats().timed_out == 1 and consumer.stats().deleted == 0
    finally:
        release.set()
