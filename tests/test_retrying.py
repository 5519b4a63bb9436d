"""The one retry engine (sqs_consumer/_retrying.py) behind the SQS adapter, the producer and the
DynamoDB lock store: which errors are retried, how often, with what pauses."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sqs_consumer import _retrying
from sqs_consumer._pipeline import sqs as adapter
from sqs_consumer._retrying import Backoff, drive, drive_async, gave_up, retried
from sqs_consumer.locks import dynamodb
from sqs_consumer.producer import _sending

pytestmark = pytest.mark.anyio


def _error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "SendMessage")


class _Flaky:
    """Fails with each of `errors` in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


NO_WAIT = Backoff(base=0.0)


def test_transient_errors_are_retried_with_a_pause_and_a_notice() -> None:
    call = _Flaky(_error("Throttling"), EndpointConnectionError(endpoint_url="http://127.0.0.1"))
    notices: list[tuple[str, int]] = []
    plan = retried(
        call,
        attempts=3,
        backoff=NO_WAIT,
        on_retry=lambda e, n: notices.append((type(e).__name__, n)),
    )
    assert drive(plan) == "ok"
    assert call.calls == 3
    assert notices == [("ClientError", 1), ("EndpointConnectionError", 2)]


def test_a_fatal_error_is_raised_at_once() -> None:
    call = _Flaky(_error("AccessDenied"))
    with pytest.raises(ClientError) as raised:
        drive(retried(call, attempts=5, backoff=NO_WAIT))
    assert call.calls == 1
    assert gave_up(raised.value, 5) == "failed"


def test_transient_errors_give_up_after_the_attempts() -> None:
    call = _Flaky(*[_error("InternalError", 500)] * 5)
    with pytest.raises(ClientError) as raised:
        drive(retried(call, attempts=3, backoff=NO_WAIT))
    assert call.calls == 3
    assert gave_up(raised.value, 3) == "still failing after 3 attempts"


async def test_the_async_driver_runs_the_same_plan_through_its_runner() -> None:
    call = _Flaky(_error("ServiceUnavailable", 503))
    ran: list[object] = []

    async def run(step: Any) -> Any:
        ran.append(step)
        return step()

    assert await drive_async(retried(call, attempts=2, backoff=NO_WAIT), run) == "ok"
    assert len(ran) == call.calls == 2


def test_pauses_are_full_jitter_capped() -> None:
    backoff = Backoff(base=0.05, cap=0.3)
    draws = [backoff.delay(3) for _ in range(200)]
    assert all(0 <= d <= 0.3 for d in draws) and len(set(draws)) > 100


def test_adapter_producer_and_lock_store_share_the_engine() -> None:
    """One Backoff, one plan: no second retry loop to drift from this one."""
    assert adapter.Backoff is dynamodb.Backoff is _retrying.Backoff
    assert isinstance(_sending.BACKOFF, _retrying.Backoff)
    assert _sending.retried is adapter.adapter.retried is dynamodb.retried is retried


def test_a_floor_keeps_a_share_of_every_step() -> None:
    """With a floor, each pause is at least that share of its step: a run of retries spans a
    known minimum (full jitter alone may add up to nearly nothing)."""
    backoff = Backoff(base=0.1, cap=10.0, floor=0.5)
    draws = [backoff.delay(2) for _ in range(200)]
    assert all(0.2 <= d <= 0.4 for d in draws) and len(set(draws)) > 100


def test_per_entry_retries_outlive_a_throttle_as_long_as_before() -> None:
    """The batch stages' entry rounds wait at least the 0.1 + 0.2 + 0.4 + 0.8 s they waited
    when each had its own loop: a throttle of a second or so is outlived, not given up on."""
    from sqs_consumer._pipeline import batch_call

    for _ in range(500):
        pauses = [batch_call._ENTRY_BACKOFF.delay(r) for r in range(1, 5)]
        assert sum(pauses) >= 1.5
        assert all(0.05 * 2**r <= p for r, p in zip(range(1, 5), pauses, strict=True))


def test_a_plan_may_retry_every_error() -> None:
    """`fatal` decides which errors end a plan: a best-effort call retries them all."""
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not a botocore error")
        return "ok"

    plan = retried(flaky, attempts=4, backoff=Backoff(base=0.0), fatal=lambda exc: False)
    assert drive(plan) == "ok" and len(calls) == 3
    with pytest.raises(RuntimeError):
        drive(retried(flaky_always, attempts=4, backoff=Backoff(base=0.0)))


def flaky_always() -> None:
    raise RuntimeError("fatal by default")


def test_releasing_an_abandoned_polls_messages_retries_any_error() -> None:
    """Best effort after stop: a release that fails with an error classify() calls fatal (a
    user client's own exception) is tried again, so the messages are visible at once."""
    import anyio

    from sqs_consumer._pipeline.threads import DaemonThreads
    from sqs_consumer.stats import Counters
    from sqs_consumer.testing import MemorySQS, SQSCall

    failures = [RuntimeError("the client's own error")]

    def hook(call: SQSCall) -> None:
        if call.operation == "ChangeMessageVisibilityBatch" and failures:
            raise failures.pop()

    memory = MemorySQS(hook=hook)
    url = memory.create_queue(QueueName="release-any")["QueueUrl"]
    memory.send_message(QueueUrl=url, MessageBody="late")
    raw = memory.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"]
    counters = Counters()
    sqs = adapter.Sqs(
        memory, limiter=anyio.CapacityLimiter(1), counters=counters, threads=DaemonThreads()
    )
    sqs.release_now(url, raw)
    assert not failures and counters.released == 1
    assert memory.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "late"
