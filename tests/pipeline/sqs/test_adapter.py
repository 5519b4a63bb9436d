"""The SQS adapter: the client it builds, the retrying call, the receive a stop can abandon
without losing messages, and the release from a poll's thread."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

import sqs_consumer._pipeline.wiring as wiring_module
from sqs_consumer import Consumer, ConsumerOptions, SqsError
from sqs_consumer._pipeline.sqs import build_client
from sqs_consumer._pipeline.threads import call_soon_threadsafe
from sqs_consumer.stats import Counters
from sqs_consumer.testing import MemorySQS, SQSCall
from tests.conftest import unique_name
from tests.helpers import wait_for
from tests.pipeline.stages import adapter

ENDPOINT = "http://127.0.0.1:1"  # nothing listens there: a request fails at once
URL = f"{ENDPOINT}/123456789012/q"


def _client(**kwargs: Any) -> Any:
    return build_client(
        URL,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        max_connections=4,
        read_timeout=5,
        **kwargs,
    )


def test_build_client_validates_unless_told_not_to() -> None:
    """Validation stays on by default (the producer sends what users give it); off, a
    request goes out unchecked (here: to a port where nothing listens)."""
    with pytest.raises(ParamValidationError):
        _client().receive_message(QueueUrl=URL, MaxNumberOfMessages="ten")
    with pytest.raises(EndpointConnectionError):
        _client(validate=False).receive_message(QueueUrl=URL, MaxNumberOfMessages="ten")


def test_consumer_client_skips_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request the consumer sends is built from checked options: no re-validation
    per call, and the pool holds a connection for every SQS call that can be in flight."""
    seen: dict[str, Any] = {}

    def spy(queue_url: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return build_client(queue_url, **kwargs)

    monkeypatch.setattr(wiring_module, "build_client", spy)
    options = ConsumerOptions(queue_url=URL, endpoint_url=ENDPOINT, region_name="us-east-1")
    Consumer(lambda message: None, options)._wiring().connect()
    assert seen["validate"] is False
    assert seen["max_connections"] >= options.max_pollers() + 2


class Script:
    """A call hook that answers calls of one operation with the errors it is given, in
    turn (None lets a call through), and records every attempt's parameters."""

    def __init__(self, operation: str, *errors: tuple[str, int] | None) -> None:
        self.operation = operation
        self.errors = list(errors)
        self.params: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation != self.operation:
            return None
        with self.lock:
            self.params.append(dict(call.params))
            error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise call.error(error[0], status=error[1])
        return None


def queue_of(memory: MemorySQS, count: int = 0) -> str:
    url = str(memory.create_queue(QueueName=unique_name())["QueueUrl"])
    for i in range(count):
        memory.send_message(QueueUrl=url, MessageBody=str(i))
    return url


@pytest.mark.anyio
async def test_call_retries_transient_errors_and_counts_them() -> None:
    """Two throttles, then the answer: every attempt is reported, the retries counted."""
    script = Script("GetQueueAttributes", ("ThrottlingException", 400), ("InternalError", 500))
    memory = MemorySQS(hook=script)
    url = queue_of(memory)
    counters = Counters()
    attempts: list[tuple[str, str | None]] = []
    sqs = adapter(memory, counters, on_call=lambda op, seconds, code: attempts.append((op, code)))
    response = await sqs.call("get_queue_attributes", QueueUrl=url, AttributeNames=["All"])
    assert "QueueArn" in response["Attributes"]
    assert counters.sqs_retries == 2
    assert attempts == [
        ("get_queue_attributes", "ThrottlingException"),
        ("get_queue_attributes", "InternalError"),
        ("get_queue_attributes", None),
    ]


@pytest.mark.anyio
async def test_call_raises_a_fatal_error_at_once_naming_the_call() -> None:
    script = Script("GetQueueAttributes", ("AccessDenied", 403))
    memory = MemorySQS(hook=script)
    with pytest.raises(SqsError, match="SQS get_queue_attributes failed: AccessDenied") as caught:
        await adapter(memory).call("get_queue_attributes", QueueUrl=queue_of(memory))
    assert len(script.params) == 1
    assert isinstance(caught.value.__cause__, ClientError)


@pytest.mark.anyio
async def test_call_gives_up_after_its_attempts() -> None:
    script = Script("GetQueueAttributes", *[("InternalError", 500)] * 5)
    memory = MemorySQS(hook=script)
    with pytest.raises(SqsError, match="still failing after 2 attempts"):
        await adapter(memory).call("get_queue_attributes", attempts=2, QueueUrl=queue_of(memory))
    assert len(script.params) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("error", "fatal"), [(("AccessDenied", 403), True), (("InternalError", 500), False)]
)
async def test_call_or_report_returns_none_and_reports_only_fatal_errors(
    error: tuple[str, int], fatal: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch stages' call: None on failure (logged with `what`); a fatal error also
    goes to on_fatal, which stops the consumer; a transient one that ran out does not."""
    memory = MemorySQS(hook=Script("GetQueueAttributes", error))
    reported: list[BaseException] = []
    response = await adapter(memory).call_or_report(
        "get_queue_attributes",
        attempts=1,
        on_fatal=reported.append,
        what="could not look",
        QueueUrl=queue_of(memory),
    )
    assert response is None
    assert len(reported) == (1 if fatal else 0)
    assert any("could not look" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_a_fifo_receive_keeps_its_attempt_id_across_retries() -> None:
    """With attempt_id every retry of one receive carries the same ReceiveRequestAttemptId
    (SQS then returns the same messages instead of hiding them a second time)."""
    script = Script("ReceiveMessage", ("InternalError", 500))
    memory = MemorySQS(hook=script)
    url = queue_of(memory, 1)
    raw = await adapter(memory).receive(
        lambda raw: None, on_abandoned=lambda raw: None, attempt_id=True, QueueUrl=url
    )
    assert len(raw) == 1
    first, second = (params["ReceiveRequestAttemptId"] for params in script.params)
    assert first == second


class HeldPoll:
    """A call hook that holds the first ReceiveMessage until `let_go` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.let_go = threading.Event()
        self.returned = threading.Event()

    def __call__(self, call: SQSCall) -> dict[str, Any] | None:
        if call.operation != "ReceiveMessage" or self.entered.is_set():
            return None
        self.entered.set()
        self.let_go.wait(10)
        try:
            return call.proceed()
        finally:
            self.returned.set()


@pytest.mark.anyio
async def test_a_cancelled_receive_releases_what_its_poll_returns_later() -> None:
    """Cancelled mid long poll (a stop): the poll's thread hands what it still gets to
    `release`, which makes the messages visible again at once."""
    held = HeldPoll()
    memory = MemorySQS(hook=held)
    url = queue_of(memory, 3)
    counters = Counters()
    sqs = adapter(memory, counters)
    abandoned: list[Any] = []
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                partial(
                    sqs.receive,
                    partial(sqs.release_now, url),
                    on_abandoned=abandoned.extend,
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=300,
                )
            )
            await wait_for(held.entered.is_set)
            scope.cancel()
    held.let_go.set()
    await wait_for(lambda: counters.released == 3)
    assert abandoned == []
    assert memory.counts(url)["visible"] == 3 and counters.received == 3


@pytest.mark.anyio
async def test_a_receive_cancelled_as_it_returns_loses_nothing() -> None:
    """Cancelled in the same turn as its answer: each message goes to on_abandoned or to
    release, exactly once, whichever side of the hand-over the cancellation fell."""
    memory = MemorySQS()
    url = queue_of(memory, 3)
    sqs = adapter(memory)
    released: list[Any] = []
    abandoned: list[Any] = []
    token = anyio.lowlevel.current_token()

    with anyio.CancelScope() as scope:

        def cancel_as_it_returns(call: SQSCall) -> dict[str, Any] | None:
            if call.operation != "ReceiveMessage":
                return None
            response = call.proceed()
            call_soon_threadsafe(token, scope.cancel)
            return response

        memory.hook = cancel_as_it_returns
        await sqs.receive(released.extend, on_abandoned=abandoned.extend, QueueUrl=url,
                          MaxNumberOfMessages=10)  # fmt: skip
    await wait_for(lambda: len(released) + len(abandoned) >= 3)
    ids = sorted(m["MessageId"] for m in released + abandoned)
    assert len(ids) == len(set(ids)) == 3


@pytest.mark.anyio
async def test_release_now_retries_and_goes_ten_per_call() -> None:
    """25 messages a stopped poll returned: released in calls of 10, 10 and 5, a failed
    call tried again, and every one counted as received and released."""
    script = Script("ChangeMessageVisibilityBatch", ("ThrottlingException", 400))
    memory = MemorySQS(hook=script)
    url = queue_of(memory, 25)
    raw = []
    for _ in range(3):
        raw += memory.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300)[
            "Messages"
        ]
    counters = Counters()
    await anyio.to_thread.run_sync(adapter(memory, counters).release_now, url, raw)
    assert [len(p["Entries"]) for p in script.params] == [10, 10, 10, 5]  # the first twice
    assert counters.received == counters.released == 25
    assert memory.counts(url)["visible"] == 25
