"""batch_call: the one batch call with per-entry retry (harvester, visibility, heartbeat)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from sqs_consumer import Message
from sqs_consumer._pipeline.batch_call import _ENTRY_BACKOFF, EntryRetry, batch_call
from sqs_consumer._pipeline.harvester import Harvester, _Ack
from sqs_consumer._pipeline.heartbeat import Heartbeat
from sqs_consumer._pipeline.leases import Leases
from sqs_consumer._pipeline.sqs import Backoff, Sqs
from sqs_consumer._pipeline.threads import DaemonThreads
from sqs_consumer._pipeline.visibility import VisibilityChanger
from sqs_consumer.observability.telemetry import Telemetry
from sqs_consumer.stats import Counters
from sqs_consumer.testing import MemorySQS, SQSCall

pytestmark = pytest.mark.anyio

URL = "memory://batch-call"


class _Script:
    """A MemorySQS hook that fails entries by receipt handle: `codes[handle]` is the list of
    codes its next tries fail with (then it succeeds); it records each call's entries."""

    def __init__(self, codes: dict[str, list[str]]) -> None:
        self.codes = codes
        self.calls: list[list[dict[str, Any]]] = []

    def __call__(self, call: SQSCall) -> dict[str, Any]:
        entries = list(call.params["Entries"])
        self.calls.append(entries)
        failed, ok = [], []
        for entry in entries:
            left = self.codes.get(entry["ReceiptHandle"], [])
            if left:
                code = left.pop(0)
                failed.append({"Id": entry["Id"], "Code": code, "SenderFault": False})
            else:
                ok.append({"Id": entry["Id"]})
        return {"Successful": ok, "Failed": failed}


class _Recorded(Backoff):
    """The default entry backoff's delays, each one noted."""

    def delay(self, attempt: int) -> float:
        value = Backoff(base=0.001).delay(attempt)
        PAUSES.append((attempt, value))
        return value


PAUSES: list[tuple[int, float]] = []


def _sqs(hook: Any) -> Sqs:
    return Sqs(
        MemorySQS(hook=hook),
        limiter=anyio.CapacityLimiter(4),
        counters=Counters(),
        threads=DaemonThreads(),
    )


async def _send(
    hook: Any, handles: list[str], rounds: int = 5, **kwargs: Any
) -> tuple[set[int], list[tuple[int, str | None]], list[int], list[BaseException]]:
    refused: list[tuple[int, str | None]] = []
    taken: list[int] = []
    fatal: list[BaseException] = []

    def on_refused(index: int, entry: Mapping[str, Any] | None) -> None:
        refused.append((index, None if entry is None else entry["Code"]))

    result = await batch_call(
        _sqs(hook),
        "delete_message_batch",
        [{"ReceiptHandle": h} for h in handles],
        queue_url=URL,
        retry=EntryRetry(call_attempts=2, entry_rounds=rounds, backoff=_Recorded()),
        on_fatal=fatal.append,
        what=lambda pending: f"could not delete {len(pending)}",
        on_refused=on_refused,
        on_taken=taken.append,
        **kwargs,
    )
    return result, refused, taken, fatal


async def test_transient_entries_are_resent_and_final_ones_are_not() -> None:
    """Throttled and InternalError entries go again (only they, under their first Id);
    a receipt handle that is no longer ours is refused at once."""
    PAUSES.clear()
    script = _Script(
        {
            "slow": ["ThrottlingException", "InternalError"],
            "gone": ["ReceiptHandleIsInvalid"],
            "late": ["MessageNotInflight"],
        }
    )
    result, refused, taken, fatal = await _send(script, ["ok", "slow", "gone", "late"])
    assert result == {2, 3}
    assert sorted(refused) == [(2, "ReceiptHandleIsInvalid"), (3, "MessageNotInflight")]
    assert [[e["Id"] for e in call] for call in script.calls] == [
        ["0", "1", "2", "3"],
        ["1"],
        ["1"],
    ]
    assert taken == [1, 0, 1]
    assert [attempt for attempt, _ in PAUSES] == [1, 2]  # a jittered pause before each resend
    assert fatal == []


async def test_an_entry_failing_every_round_is_refused_after_the_last() -> None:
    script = _Script({"slow": ["ServiceUnavailable"] * 10})
    result, refused, _, _ = await _send(script, ["slow"], rounds=3)
    assert (result, refused, len(script.calls)) == ({0}, [(0, "ServiceUnavailable")], 3)


async def test_one_round_never_resends() -> None:
    """The heartbeat's setting: a failed extension waits for the next beat."""
    script = _Script({"slow": ["ThrottlingException"]})
    result, refused, _, _ = await _send(script, ["ok", "slow"], rounds=1)
    assert (result, refused, len(script.calls)) == ({1}, [(1, "ThrottlingException")], 1)


async def test_a_failed_call_refuses_every_pending_entry_and_reports_a_fatal_error() -> None:
    def denied(call: SQSCall) -> dict[str, Any]:
        raise call.error("AccessDenied", "no")

    result, refused, taken, fatal = await _send(denied, ["a", "b"])
    assert result == {0, 1}
    assert refused == [(0, None), (1, None)]
    assert taken == []
    assert len(fatal) == 1


def test_entry_backoff_is_jittered_around_the_old_fixed_pauses() -> None:
    """Full jitter up to 0.1 * 2**round: the mean is the old 0.05 * 2**round."""
    for round_ in (1, 2, 3, 4):
        draws = [_ENTRY_BACKOFF.delay(round_) for _ in range(200)]
        assert all(0 <= d <= 0.1 * 2**round_ for d in draws)
        assert len(set(draws)) > 100
        assert 0.5 * 0.05 * 2**round_ < sum(draws) / len(draws) < 1.5 * 0.05 * 2**round_


# What each stage counts and logs of the refusals batch_call reports (its docstring's list).


def _message(handle: str) -> Message:
    return Message.from_sqs(
        {"MessageId": f"id-{handle}", "ReceiptHandle": handle, "Body": "x"}, queue_url=URL
    )


async def test_harvester_counts_deleted_and_refused(caplog: pytest.LogCaptureFixture) -> None:
    script = _Script({"slow": ["ThrottlingException"], "gone": ["ReceiptHandleIsInvalid"]})
    counters = Counters()
    harvester = Harvester(
        _sqs(script),
        URL,
        size=10,
        interval=1,
        counters=counters,
        telemetry=Telemetry(queue_url=URL, queue_name="q"),
        on_fatal=pytest.fail,
    )
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        await harvester._delete(
            [_Ack(handle, mid) for handle, mid in [("ok", "a"), ("slow", "b"), ("gone", "c")]]
        )
    assert (counters.deleted, counters.delete_errors, len(script.calls)) == (2, 1, 2)
    assert "delete refused: ReceiptHandleIsInvalid" in caplog.text


async def test_visibility_changer_counts_refused(caplog: pytest.LogCaptureFixture) -> None:
    script = _Script({"slow": ["InternalError"], "late": ["MessageNotInflight"]})
    counters = Counters()
    changer = VisibilityChanger(
        _sqs(script), URL, interval=1, counters=counters, on_fatal=pytest.fail
    )
    with caplog.at_level(logging.DEBUG, logger="sqs_consumer"):
        await changer._change([("slow", 5, "a"), ("late", 5, "b")])
    assert (counters.visibility_errors, len(script.calls)) == (1, 2)
    assert "visibility change refused: MessageNotInflight" in caplog.text


async def test_heartbeat_never_resends_and_names_the_lost_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = _Script({"slow": ["ThrottlingException"]})
    counters = Counters()
    leases = Leases()
    batch = [(leases.add(_message(h), 30, received_at=0.0), 30) for h in ("ok", "slow")]
    heartbeat = Heartbeat(
        _sqs(script),
        URL,
        leases,
        visibility=30,
        interval=10,
        max_visibility=3600,
        counters=counters,
        on_fatal=pytest.fail,
    )
    with caplog.at_level(logging.WARNING, logger="sqs_consumer"):
        assert await heartbeat._call(batch) == {1}
    assert (counters.visibility_errors, len(script.calls)) == (1, 1)
    assert "heartbeat lost message id-slow: ThrottlingException" in caplog.text
