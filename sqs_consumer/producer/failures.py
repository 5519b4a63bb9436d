"""`SendError` and `SendFailure`: what a send that SQS did not fully take raises."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..errors import SqsError

__all__ = ["SendError", "SendFailure"]


@attrs.frozen
class SendFailure:
    """One message SQS did not take: its position in the input, SQS's error code and text."""

    index: int
    code: str
    message: str
    sender_fault: bool


class SendError(SqsError):
    """Some messages were not sent.

    Attributes:
        failures: the messages that failed, in input order, with SQS's code and text.
        message_ids: one entry per input message: its id if it was sent, else None.
    """

    def __init__(self, failures: Iterable[SendFailure], message_ids: Iterable[str | None]) -> None:
        self.failures = tuple(sorted(failures, key=lambda failure: failure.index))
        self.message_ids = tuple(message_ids)
        total, sent = len(self.message_ids), sum(i is not None for i in self.message_ids)
        reasons: dict[tuple[str, str], list[int]] = {}
        for failure in self.failures:
            reasons.setdefault((failure.code, failure.message), []).append(failure.index)
        why = "; ".join(f"{code}: {text} ({_which(at)})" for (code, text), at in reasons.items())
        untried = total - sent - len(self.failures)
        later = f"; {untried} more not tried after that" if untried else ""
        super().__init__(f"{total - sent} of {total} messages not sent: {why}{later}")


def _which(indexes: list[int]) -> str:
    shown = ", ".join(map(str, indexes[:10])) + (", ..." if len(indexes) > 10 else "")
    return f"message {shown}" if len(indexes) == 1 else f"messages {shown}"
