"""One batch call with per-entry retry: DeleteMessageBatch and ChangeMessageVisibilityBatch.

A batch call can fail twice over: the call itself (retried by the adapter, `Sqs.call_or_report`,
with the retry engine of `_retrying.py`), or single entries in its `Failed` list. `batch_call`
sends the entries, sends again those that failed for a reason retrying can fix, after a
jittered backoff, and tells the caller what SQS took and what it refused for good.

Which entry errors are final: the receipt handle is no longer ours (`ReceiptHandleIsInvalid`,
`InvalidParameterValue` for an expired handle, `MessageNotInflight`); retrying cannot fix
those. Every other code (throttling, `InternalError`, `ServiceUnavailable`, ...) is resent,
until the stage's entry attempts run out; then it is final too.

Before this module each stage had its own loop; what they did, all kept here:

- harvester (DeleteMessageBatch): the call with 8 attempts; up to 5 rounds for failed
  entries, 0.1, 0.2, 0.4, 0.8 s apart (no jitter); every round counted the entries SQS
  took as `deleted` (and in the deleted metric); a final entry counted one `delete_errors`
  and logged a warning "delete refused: CODE MESSAGE"; a failed call counted every entry
  still pending as `delete_errors` (the adapter logged it, with their message ids).
- visibility changer (ChangeMessageVisibilityBatch, retry delays and releases): the same
  rounds and call attempts; a final entry counted one `visibility_errors` and logged at
  debug "visibility change refused: CODE"; a failed call counted the pending entries.
- heartbeat (its extensions): the call with 3 attempts and one round: every failed entry
  is final (the next beat is its retry, and a settle of the lease waits for the
  extension, so it must not sleep); each counted one `visibility_errors` and logged a
  warning "heartbeat lost message ID: CODE (another consumer may receive it)"; a failed
  call counted the whole batch; it returned the indexes that failed.

What changed in the merge: the pause between rounds is jittered (full jitter with the same
mean as before), so entries throttled together do not come back together; and an entry's
`Id` is its index in the first call in every round (it was renumbered per round).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import attrs
from anyio.abc import TaskStatus

from .._retrying import Backoff
from .batching import Batcher
from .sqs import Sqs

__all__ = ["FINAL_CODES", "BatchStage", "EntryRetry", "batch_call"]

# Per-entry codes that retrying cannot fix: the receipt handle is no longer ours.
FINAL_CODES = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"})

# U(0.05, 0.075) * 2**round: never less than the fixed 0.05 * 2**round the stages waited
# before they shared this loop (four rounds span at least 1.5 s, so a throttle of a second or
# so is outlived), with jitter above it so that stages refused together spread out.
_ENTRY_BACKOFF = Backoff(base=0.075, cap=2.0, floor=2 / 3)


@attrs.frozen(kw_only=True)
class EntryRetry:
    """How hard one stage tries.

    Args:
        call_attempts: tries of the call itself on transient errors (`Sqs.call`).
        entry_rounds: calls in all for entries that keep failing transiently (1: never resent).
        backoff: the pause between rounds.
    """

    call_attempts: int = attrs.field(validator=attrs.validators.ge(1))
    entry_rounds: int = attrs.field(validator=attrs.validators.ge(1))
    backoff: Backoff = _ENTRY_BACKOFF


Refused = Callable[[int, Mapping[str, Any] | None], None]
"""Told of each entry refused for good: its index and SQS's `Failed` entry (None when the
call itself failed, already logged by the adapter)."""


async def batch_call(
    sqs: Sqs,
    operation: str,
    entries: Sequence[Mapping[str, Any]],
    *,
    queue_url: str,
    retry: EntryRetry,
    on_fatal: Callable[[BaseException], None],
    what: Callable[[Sequence[int]], str],
    on_refused: Refused,
    on_taken: Callable[[int], None] | None = None,
) -> set[int]:
    """Send `entries` (without their `Id`) in one batch call, resending those SQS failed
    for a reason it may not fail for next time; the indexes of the entries refused for good.

    Args:
        sqs: the adapter.
        operation: "delete_message_batch" or "change_message_visibility_batch".
        entries: at most 10; each gets `Id` = its index.
        queue_url: the queue.
        retry: call attempts and entry rounds.
        on_fatal: told of an SqsError that should stop the consumer.
        what: the log line of a failed call, from the indexes it carried.
        on_refused: told of each entry refused for good.
        on_taken: told, each round, how many entries SQS took.
    """
    pending = list(range(len(entries)))
    refused: set[int] = set()
    for round_ in range(1, retry.entry_rounds + 1):
        response = await sqs.call_or_report(
            operation,
            attempts=retry.call_attempts,
            on_fatal=on_fatal,
            what=what(pending),
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), **entries[i]} for i in pending],
        )
        if response is None:
            for index in pending:
                on_refused(index, None)
            return refused | set(pending)
        failed = response.get("Failed") or []
        if on_taken is not None:
            on_taken(len(pending) - len(failed))
        pending = []
        for entry in failed:
            index = int(entry["Id"])
            if entry.get("Code") in FINAL_CODES or round_ == retry.entry_rounds:
                refused.add(index)
                on_refused(index, entry)
            else:
                pending.append(index)
        if not pending:
            return refused
        await anyio.sleep(retry.backoff.delay(round_))
    raise AssertionError("not reached: the last round refuses all that is still pending")


class BatchStage:
    """The task side of a stage that sends its calls through a `Batcher` (the harvester and
    the visibility changer): the consumer runs it, drains it and closes it at shutdown."""

    _batcher: Batcher[Any]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send batches until `aclose()`."""
        await self._batcher.run(task_status=task_status)

    async def drain_here(self) -> None:
        """Send everything queued from the calling task (its own tasks are cancelled)."""
        await self._batcher.drain_here()

    async def aclose(self) -> None:
        """Send everything queued, then stop."""
        await self._batcher.aclose()
