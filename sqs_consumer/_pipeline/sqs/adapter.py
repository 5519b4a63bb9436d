"""The SQS adapter: async access to a boto3-style client, the only code that calls it.

Every call runs in a (daemon) worker thread through one dedicated `anyio.CapacityLimiter`,
so SQS calls never compete with sync handlers for threads. Transient errors are retried here,
by the retry engine the producer uses too (`sqs_consumer/_retrying.py`: jittered exponential
backoff, `errors.classify`); fatal ones raise `SqsError` naming the call.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import anyio
import attrs

from ..._retrying import Backoff, drive, drive_async, gave_up, retried
from ..._sqs_rules import MAX_BATCH_ENTRIES
from ...errors import ErrorKind, QueueCheckError, SqsError, classify, error_code
from ...stats import Counters
from ..deadlines import CALL_TIMEOUT
from ..threads import DaemonThreads

__all__ = ["Backoff", "QueueInfo", "Sqs", "SqsClient", "build_client", "check_queue"]

log = logging.getLogger("sqs_consumer")

_RELEASE_ATTEMPTS = 4  # an abandoned poll's messages: released from its thread, retried
_BACKOFF = Backoff()  # full jitter from 50 ms, doubling, at most 10 s
_RELEASE_BACKOFF = Backoff(base=0.15, cap=1.0, floor=1 / 3)  # 0.1 * 2**n * U(0.5, 1.5), as before
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "AuthorizationError"})
_REGION_IN_URL = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


class SqsClient(Protocol):
    """Protocol: the boto3 SQS client methods the consumer calls (keyword arguments only)."""

    # Read-only callables rather than methods: boto3's client, its stubs and MemorySQS
    # spell out different keyword signatures, and any of them must fit.
    @property
    def get_queue_attributes(self) -> Callable[..., Any]:
        """GetQueueAttributes."""
        ...

    @property
    def receive_message(self) -> Callable[..., Any]:
        """ReceiveMessage."""
        ...

    @property
    def delete_message_batch(self) -> Callable[..., Any]:
        """DeleteMessageBatch."""
        ...

    @property
    def change_message_visibility_batch(self) -> Callable[..., Any]:
        """ChangeMessageVisibilityBatch."""
        ...

    @property
    def send_message(self) -> Callable[..., Any]:
        """SendMessage."""
        ...


def build_client(
    queue_url: str,
    *,
    endpoint_url: str | None,
    region_name: str | None,
    max_connections: int,
    read_timeout: float,
    validate: bool = True,
    lean: bool = False,
) -> SqsClient:
    """A boto3 SQS client for `queue_url` (or the shared MemorySQS for `memory://` URLs).

    boto3's own retries are switched off: `Sqs.call` retries with the consumer's policy.
    `validate=False` skips botocore's check of every request against the service model
    (CPU on every call) for callers whose requests are all built from checked options.
    `lean=True` puts the per-message calls on the short path of `lean.LeanClient`.
    """
    if queue_url.startswith("memory://"):
        from ...testing import MemorySQS

        shared: SqsClient = MemorySQS.shared()
        return shared
    import boto3
    from botocore.config import Config

    if region_name is None and endpoint_url is None:
        match = _REGION_IN_URL.match(queue_url)
        region_name = match.group(1) if match else None
    config = Config(
        max_pool_connections=max_connections,
        retries={"total_max_attempts": 1},
        parameter_validation=validate,
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    # A session per consumer: boto3's default session is not thread-safe.
    session = boto3.session.Session()
    client: SqsClient = session.client(
        "sqs", endpoint_url=endpoint_url, region_name=region_name, config=config
    )
    if lean:
        from .lean import lean as short_path

        shortened: SqsClient = short_path(client)
        return shortened
    return client


class Sqs:
    """Async access to one SQS client: threads through a dedicated limiter, retries, errors.

    Args:
        client: a boto3 SQS client or compatible object.
        limiter: the CapacityLimiter every call goes through.
        counters: where retries are counted.
        threads: the daemon threads the calls run in.
        on_call: told of every attempt: (operation, seconds, error code or None).
        backoff: delays between retries of transient errors.
    """

    def __init__(
        self,
        client: SqsClient,
        *,
        limiter: anyio.CapacityLimiter,
        counters: Counters,
        threads: DaemonThreads,
        on_call: Callable[[str, float, str | None], None] | None = None,
        backoff: Backoff = _BACKOFF,
    ) -> None:
        self.client = client
        self._limiter = limiter
        self._threads = threads
        self._on_call = on_call
        self._counters = counters
        self._backoff = backoff

    async def call(self, operation: str, *, attempts: int | None = None, **kwargs: Any) -> Any:
        """Call `operation` (a client method name), retrying transient errors.

        Args:
            operation: e.g. "delete_message_batch".
            attempts: give up after this many transient failures (None: never).
            kwargs: the call's parameters.

        Raises:
            SqsError: a fatal error, or the last transient one once `attempts` ran out.
        """
        method = partial(getattr(self.client, operation), **kwargs)
        return await self._retrying(operation, attempts, method, timeout=CALL_TIMEOUT)

    async def call_or_report(
        self,
        operation: str,
        *,
        attempts: int,
        on_fatal: Callable[[BaseException], None],
        what: str,
        **kwargs: Any,
    ) -> Any | None:
        """`call()` for the batch stages: on failure log `what`, report a fatal error to
        `on_fatal` (it stops the consumer), and return None for the caller to count."""
        try:
            return await self.call(operation, attempts=attempts, **kwargs)
        except SqsError as exc:
            log.warning("%s: %s", what, exc)
            if classify(exc.__cause__ or exc) is ErrorKind.FATAL:
                on_fatal(exc)
            return None

    async def receive(
        self,
        release: Callable[[list[Any]], None],
        *,
        on_abandoned: Callable[[list[Any]], None],
        attempt_id: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        """ReceiveMessage that can be cancelled mid long poll without losing what it returns.

        A cancelled call leaves its thread to finish the long poll; whatever that poll
        still returns is handed to `release` (in the thread) so other consumers get it
        now instead of after the visibility timeout. Messages that had already come back
        when the cancellation arrived go to `on_abandoned` (on the loop, without waiting).
        With `attempt_id` (FIFO queues) every retry of this receive carries the same
        ReceiveRequestAttemptId.
        """
        if attempt_id:
            kwargs["ReceiveRequestAttemptId"] = uuid.uuid4().hex
        box = _ReceiveBox(release)
        receive = partial(box.run, self.client.receive_message, kwargs)
        try:
            messages: list[Any] = await self._retrying("receive_message", None, receive)
        except anyio.get_cancelled_exc_class():
            pending = box.abandon()
            if pending:
                on_abandoned(pending)
            raise
        box.taken()
        return messages

    def release_now(self, queue_url: str, raw: list[Any]) -> None:
        """Hand back messages a cancelled long poll returned (visibility 0), at once.

        Runs in that poll's thread (the loop may be gone): it calls the client itself, and
        may sleep between its few attempts, as the thread is its alone.
        """
        self._counters.received += len(raw)  # received, then released: the counts add up
        for start in range(0, len(raw), MAX_BATCH_ENTRIES):
            chunk = raw[start : start + MAX_BATCH_ENTRIES]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ]
            release = partial(
                self.client.change_message_visibility_batch, QueueUrl=queue_url, Entries=entries
            )
            try:  # blocking sleeps between the tries: this thread is ours alone, it may wait
                # Best effort, so every error is tried again (not only transient ones):
                # whatever does not get through waits out its visibility timeout.
                plan = retried(
                    release,
                    attempts=_RELEASE_ATTEMPTS,
                    backoff=_RELEASE_BACKOFF,
                    fatal=lambda exc: False,
                )
                drive(plan)
            except Exception as exc:  # they come back after their visibility timeout
                ids = ", ".join(str(m.get("MessageId")) for m in chunk)
                log.warning("could not release messages %s after stop: %s", ids, exc)
            else:
                self._counters.released += len(chunk)

    async def _retrying(
        self,
        operation: str,
        attempts: int | None,
        function: Callable[[], Any],
        *,
        timeout: float | None = None,
    ) -> Any:
        def on_retry(exc: Exception, attempt: int) -> None:
            self._counters.sqs_retries += 1
            level = logging.WARNING if attempt >= 3 else logging.DEBUG
            log.log(level, "SQS %s failed (%s), retry %d", operation, describe(exc), attempt)

        async def observed(call: Callable[[], Any]) -> Any:
            started = anyio.current_time()
            try:
                result = await self._attempt(call, timeout)
            except Exception as exc:
                self._observe(operation, started, error_code(exc) or type(exc).__name__)
                raise
            self._observe(operation, started, None)
            return result

        plan = retried(function, attempts=attempts, backoff=self._backoff, on_retry=on_retry)
        try:
            return await drive_async(plan, observed)
        except Exception as exc:
            raise SqsError(f"SQS {operation} {gave_up(exc, attempts)}: {describe(exc)}") from exc

    async def _attempt(self, function: Callable[[], Any], timeout: float | None) -> Any:
        """One call in a thread; past `timeout` it is abandoned as a (transient) timeout, so a
        client that hangs cannot hold a delete, a release or a shutdown."""
        if timeout is None:
            return await self._threads.run_sync(function, limiter=self._limiter)
        with anyio.move_on_after(timeout):
            return await self._threads.run_sync(function, limiter=self._limiter)
        raise TimeoutError(f"no answer within {timeout:g} s (the call is abandoned)")

    def _observe(self, operation: str, started: float, error: str | None) -> None:
        if self._on_call is None:
            return
        try:
            self._on_call(operation, anyio.current_time() - started, error)
        except Exception:
            # Our own observer (telemetry, health): its bug must not turn a call that
            # succeeded into a retry (a receive retried would drop what it received).
            log.exception("recording SQS %s failed", operation)


class _ReceiveBox:
    """Hands a receive's messages either to the waiting task or, once abandoned, to release."""

    __slots__ = ("_abandoned", "_lock", "_pending", "_release")

    def __init__(self, release: Callable[[list[Any]], None]) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._pending: list[Any] = []
        self._release = release

    def run(self, receive: Callable[..., Any], kwargs: Mapping[str, Any]) -> list[Any]:
        messages = list(receive(**kwargs).get("Messages") or ())
        with self._lock:
            if not self._abandoned:
                # Kept until the task picks the result up: if it is cancelled in between,
                # abandon() still sees them and releases them.
                self._pending = messages
                return messages
        if messages:
            self._release(messages)
        return []

    def abandon(self) -> list[Any]:
        """From now on the thread releases what it receives; returns what it already had."""
        with self._lock:
            self._abandoned = True
            pending, self._pending = self._pending, []
        return pending

    def taken(self) -> None:
        with self._lock:
            self._pending = []


def describe(exc: BaseException) -> str:
    """A one-line description of an SQS error: its code and message when it has them."""
    code = error_code(exc)
    if code is None:
        return f"{type(exc).__name__}: {exc}"
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
    return f"{code}: {message}" if message else code


@attrs.frozen(kw_only=True)
class QueueInfo:
    """What the start-up check learnt about the queue."""

    url: str
    arn: str
    visibility_timeout: int
    fifo: bool
    attributes: Mapping[str, str]


async def check_queue(sqs: Sqs, queue_url: str, *, option: str = "queue_url") -> QueueInfo:
    """GetQueueAttributes once, so a missing queue or bad credentials fail start() at once.

    Args:
        sqs: the adapter to call through.
        queue_url: the queue to check.
        option: the ConsumerOptions field that named it. For `dead_letter_queue_url`, a
            denied GetQueueAttributes is only logged: a least-privilege role may be allowed
            sqs:SendMessage there and nothing else, which is all dead-lettering needs.

    Raises:
        QueueCheckError: the queue does not exist, access is denied, the credentials are
            invalid, or SQS could not be reached after a few attempts.
    """
    try:
        response = await sqs.call(
            "get_queue_attributes", attempts=4, QueueUrl=queue_url, AttributeNames=["All"]
        )
    except SqsError as exc:
        cause = exc.__cause__ or exc
        if option != "queue_url" and error_code(cause) in _ACCESS_DENIED:
            log.warning(
                "cannot check %s %s (%s); going on: sending dead letters needs only "
                "sqs:SendMessage",
                option,
                queue_url,
                describe(cause),
            )
            return QueueInfo(
                url=queue_url, arn="", visibility_timeout=30, fifo=False, attributes={}
            )
        what = "queue" if option == "queue_url" else f"{option} queue"
        raise QueueCheckError(f"cannot use {what} {queue_url}: {describe(cause)}") from cause
    attributes: dict[str, str] = dict(response.get("Attributes") or {})
    return QueueInfo(
        url=queue_url,
        arn=attributes.get("QueueArn", ""),
        visibility_timeout=int(attributes.get("VisibilityTimeout", "30")),
        fifo=attributes.get("FifoQueue", "false").lower() == "true",
        attributes=attributes,
    )
