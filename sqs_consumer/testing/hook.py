"""The call hook: one function that sees every MemorySQS client call and may answer it.

The idea is httpx's `MockTransport`: instead of subclassing the fake to change one method, a
test passes ``MemorySQS(hook=fn)``. `fn` gets an `SQSCall` (the operation name and its
parameters) and decides: return a response, raise, wait, or let the call through to the
in-memory queues (return None, or call `SQSCall.proceed` to see the real answer first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from ._validation import Fault


class SQSCall:
    """One client call, as a MemorySQS hook sees it.

    Attributes:
        operation: the SQS API name, e.g. ``"ReceiveMessage"`` or ``"DeleteMessageBatch"``
            (as in botocore's errors and events).
        method: the client method called, e.g. ``"receive_message"``.
        params: the keyword arguments of the call, as given (e.g. ``params["QueueUrl"]``).
    """

    __slots__ = ("_response", "_run", "method", "operation", "params")

    def __init__(
        self,
        operation: str,
        method: str,
        params: Mapping[str, Any],
        run: Callable[..., dict[str, Any]],
    ) -> None:
        self.operation = operation
        self.method = method
        self.params = params
        self._run = run
        self._response: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<SQSCall {self.operation} {sorted(self.params)}>"

    @property
    def proceeded(self) -> bool:
        """Whether `proceed` already ran the call on the in-memory queues."""
        return self._response is not None

    def proceed(self, **changes: Any) -> dict[str, Any]:
        """Run the call on the in-memory queues now, and return its response.

        Latency and injected faults apply as without a hook. A hook that calls this and then
        returns None answers with this response; it may also return another one.

        Args:
            changes: parameters to use instead of the call's (e.g. fewer ``Entries``).

        Raises:
            ClientError: what MemorySQS answers (e.g. QueueDoesNotExist), or an injected fault.
            RuntimeError: the call already proceeded: a call reaches the queues at most once.
        """
        if self._response is not None:
            raise RuntimeError(f"{self.operation} already proceeded; a call runs at most once")
        response = self._run(**(dict(self.params) | changes))
        self._response = response
        return response

    def _answer(self, answer: Mapping[str, Any] | None) -> dict[str, Any]:
        """The call's response once the hook returned `answer`."""
        if answer is None:
            return self.proceed() if self._response is None else self._response
        if answer is self._response:
            return self._response
        return dict(answer)

    def error(self, code: str, message: str = "", *, status: int = 400) -> ClientError:
        """A `ClientError` as SQS would answer this call with `code`, for the hook to raise.

        Modeled codes (e.g. ``"QueueDoesNotExist"``) get their class from ``client.exceptions``;
        a `status` of 500 and above makes it a server-side (Receiver) fault.
        """
        return Fault(code, message or code).client_error(self.operation, status)


CallHook = Callable[[SQSCall], Mapping[str, Any] | None]
"""`hook(call) -> response | None`: a response answers the call, None lets it through.

It runs in the calling thread (boto3's calls block, and so do MemorySQS's), outside
MemorySQS's lock and possibly in several threads at once; it may sleep or wait to delay a call.
An exception it raises is what the caller gets.
"""
