"""The client surface of MemorySQS: boto3's SQS method names, parameters and response shapes.

Each method validates its request (`_validation`), then changes state through the queue model
(`_model.Broker`) under its lock, and renders the answer as boto3 returns it. The `_api`
wrapper around every method adds latency and injected faults (`_faults`), the call hook
(`hook`), ResponseMetadata, and turns SQS error answers into `ClientError`.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import attrs

from .. import _sqs_rules as rules
from ._faults import FAULT_KINDS, Faults
from ._model import INFLIGHT, REGION, URL_PREFIX, Broker, Queue, StoredMessage
from ._validation import (
    COUNTED,
    QUEUE_ATTRIBUTE_NAMES,
    Fault,
    check_attributes,
    check_batch,
    check_batch_size,
    check_int,
    check_queue_name,
    client_exceptions,
)
from .hook import CallHook, SQSCall

P = ParamSpec("P")
V = TypeVar("V")


@attrs.frozen
class _Meta:
    region_name: str = REGION
    endpoint_url: str = URL_PREFIX


@attrs.frozen
class _Select:
    """Which names a receive asked for: all of them, exact names, or `prefix.*` families."""

    everything: bool
    names: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, *lists: Iterable[str] | None) -> _Select:
        names = frozenset(itertools.chain.from_iterable(filter(None, lists)))
        prefixes = tuple(name[:-1] for name in names if name.endswith(".*"))
        return cls("All" in names or ".*" in names, names, prefixes)

    def pick(self, values: Mapping[str, V]) -> dict[str, V]:
        if self.everything:
            return dict(values)
        return {k: v for k, v in values.items() if k in self.names or k.startswith(self.prefixes)}


def _api(
    method: Callable[Concatenate[MemorySQS, P], dict[str, Any]],
) -> Callable[Concatenate[MemorySQS, P], dict[str, Any]]:
    """Wrap a client method: the hook, latency, injected faults, errors to ClientError."""
    name = method.__name__
    operation = "".join(part.capitalize() for part in name.split("_"))

    def run(self: MemorySQS, /, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        self._faults.before_call(name, operation)
        try:
            response = method(self, *args, **kwargs)
        except Fault as fault:
            raise fault.client_error(operation) from None
        return _with_metadata(self, response)

    @functools.wraps(method)
    def call(self: MemorySQS, /, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        if self._hook is not None:  # all that the hook costs while none is set
            sqs_call = SQSCall(operation, name, kwargs, functools.partial(run, self, *args))
            answer = sqs_call._answer(self._hook(sqs_call))
            if "ResponseMetadata" not in answer:  # a hook's own answer looks like any other
                answer = _with_metadata(self, answer)
            return answer
        # `run`, inlined: benchmarks measure our overhead against this path.
        self._faults.before_call(name, operation)
        try:
            response = method(self, *args, **kwargs)
        except Fault as fault:
            raise fault.client_error(operation) from None
        metadata = {"RequestId": self._broker.new_id(), "HTTPStatusCode": 200, "HTTPHeaders": {}}
        response["ResponseMetadata"] = metadata | {"RetryAttempts": 0}
        return response

    call.__dict__["sqs_operation"] = operation
    return call


def _with_metadata(sqs: MemorySQS, response: dict[str, Any]) -> dict[str, Any]:
    metadata = {"RequestId": sqs._broker.new_id(), "HTTPStatusCode": 200, "HTTPHeaders": {}}
    response["ResponseMetadata"] = metadata | {"RetryAttempts": 0}
    return response


class MemorySQS:
    """An in-memory, thread-safe stand-in for a boto3 SQS client, with real SQS semantics.

    Calls may block (long polling), so callers run them in threads, as with boto3.

    Args:
        latency: seconds slept at the start of every call, to simulate the network.
        clock: monotonic seconds used for visibility timeouts, delays and the deduplication
            window. Long polls still end on real time, so they terminate with a fake clock.
        auto_create: create a missing ``memory://NAME`` queue on first use instead of
            raising `QueueDoesNotExist` (``NAME.fifo`` becomes a FIFO queue).
        hook: a function that sees every client call and may answer it, raise, delay it or
            let it through (see `SQSCall` and `CallHook`); settable later as `hook`.

    Raises:
        TypeError: `hook` is neither None nor callable.
    """

    meta = _Meta()
    _shared: ClassVar[MemorySQS | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        latency: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        auto_create: bool = False,
        hook: CallHook | None = None,
    ) -> None:
        self._broker = Broker(clock, auto_create)
        self._lock = self._broker.lock
        self._faults = Faults(latency)
        self._hook: CallHook | None = None
        self.hook = hook

    @classmethod
    def shared(cls) -> MemorySQS:
        """The process-wide instance (auto_create=True) used for ``memory://`` URLs."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls(auto_create=True)
            return cls._shared

    def __repr__(self) -> str:
        queues, faults = len(self._broker.queues), self._faults.injected
        return f"<MemorySQS queues={queues} faults_injected={faults}>"

    @property
    def exceptions(self) -> Any:  # Any: botocore types the modeled classes as attributes of None
        """The modeled SQS exception classes, as ``client.exceptions`` (e.g. QueueDoesNotExist)."""
        return client_exceptions()

    @property
    def faults_injected(self) -> int:
        """How many calls failed because of `inject_faults`."""
        return self._faults.injected

    @property
    def hook(self) -> CallHook | None:
        """The call hook (None: none); set it to start or stop intercepting calls."""
        return self._hook

    @hook.setter
    def hook(self, hook: CallHook | None) -> None:
        if hook is not None and not callable(hook):
            raise TypeError(f"MemorySQS hook must be None or a callable(call), got {hook!r}")
        self._hook = hook

    def close(self) -> None:
        """Do nothing: there is no connection pool to release."""

    # -- faults and latency -------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds slept at the start of every call; settable (fill fast, then slow down)."""
        return self._faults.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"MemorySQS latency must be >= 0 seconds, got {seconds!r}")
        self._faults.latency = float(seconds)

    def inject_faults(
        self,
        rate: float,
        *,
        kinds: Collection[str] = FAULT_KINDS,
        operations: Collection[str] | None = None,
        seed: int | None = None,
    ) -> None:
        """Make calls fail at random, before they change any state.

        Args:
            rate: probability (0 to 1) that a call fails.
            kinds: which failures to draw from: "throttling" (ThrottlingException, HTTP 400),
                "server" (InternalFailure, HTTP 500), "connection" (EndpointConnectionError).
            operations: snake_case method names to affect (e.g. "receive_message"); None: all.
            seed: seed for a reproducible sequence of faults.

        Raises:
            ValueError: rate outside 0..1, an unknown kind or an unknown operation.
        """
        self._faults.inject(rate, kinds, operations, seed, known=_OPERATIONS)

    def clear_faults(self) -> None:
        """Stop injecting faults (the `faults_injected` count is kept)."""
        self._faults.plan = None

    # -- queues ---------------------------------------------------------------------------------

    @_api
    def create_queue(
        self,
        *,
        QueueName: str,
        Attributes: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a queue, or return the URL of an identical existing one.

        Raises:
            ClientError: InvalidParameterValue (bad name, `.fifo` suffix without
                FifoQueue=true or the reverse), InvalidAttributeName/Value, QueueNameExists.
        """
        fifo = check_queue_name(QueueName, Attributes)
        attributes = dict(Attributes or {})
        attributes.pop("FifoQueue", None)
        broker = self._broker
        with self._lock:
            values = check_attributes(attributes, fifo=fifo, redrive=broker.check_redrive)
            queue = broker.queues.get(QueueName)
            if queue is None:
                broker.add_queue(QueueName, fifo, values)
            elif any(queue.attributes.get(k, "") != v for k, v in values.items()):
                raise Fault("QueueNameExists", f"A queue named {QueueName} already exists.")
        return {"QueueUrl": URL_PREFIX + QueueName}

    @_api
    def get_queue_url(
        self, *, QueueName: str, QueueOwnerAWSAccountId: str | None = None
    ) -> dict[str, Any]:
        """Return ``{"QueueUrl": "memory://NAME"}``; QueueDoesNotExist when there is none."""
        with self._lock:
            if QueueName not in self._broker.queues:
                raise Fault("QueueDoesNotExist", "The specified queue does not exist.")
        return {"QueueUrl": URL_PREFIX + QueueName}

    @_api
    def delete_queue(self, *, QueueUrl: str) -> dict[str, Any]:
        """Delete a queue; its blocked long polls return empty."""
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            del self._broker.queues[queue.name]
            queue.deleted = True
            queue.notify()
        return {}

    @_api
    def purge_queue(self, *, QueueUrl: str) -> dict[str, Any]:
        """Delete every message of a queue at once (no 60-second purge cooldown)."""
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            queue.clear()
            queue.notify()
        return {}

    @_api
    def list_queues(self, *, QueueNamePrefix: str = "") -> dict[str, Any]:
        """Return the URLs of the queues whose names start with `QueueNamePrefix`."""
        with self._lock:
            names = sorted(n for n in self._broker.queues if n.startswith(QueueNamePrefix))
        return {"QueueUrls": [URL_PREFIX + name for name in names]} if names else {}

    @_api
    def get_queue_attributes(
        self, *, QueueUrl: str, AttributeNames: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Return the named attributes ("All" for every one); none when no names are given.

        Raises:
            ClientError: InvalidAttributeName for an unknown name, QueueDoesNotExist.
        """
        names = set(AttributeNames or ())
        if unknown := names - QUEUE_ATTRIBUTE_NAMES:
            raise Fault("InvalidAttributeName", f"Unknown Attribute {sorted(unknown)[0]}.")
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            self._broker.promote(queue, self._broker.clock())
            values = queue.attributes | dict(zip(COUNTED, map(str, queue.count[:2]), strict=True))
            values |= {
                "ApproximateNumberOfMessagesNotVisible": str(queue.count[INFLIGHT]),
                "QueueArn": queue.arn,
                "CreatedTimestamp": str(queue.created),
                "LastModifiedTimestamp": str(queue.modified),
            }
        if "All" not in names:
            values = {k: v for k, v in values.items() if k in names}
        return {"Attributes": values} if values else {}

    @_api
    def set_queue_attributes(
        self, *, QueueUrl: str, Attributes: Mapping[str, str]
    ) -> dict[str, Any]:
        """Change queue attributes (FifoQueue cannot change); an empty RedrivePolicy removes it."""
        broker = self._broker
        with self._lock:
            queue = broker.queue(QueueUrl)
            values = check_attributes(Attributes, fifo=queue.fifo, redrive=broker.check_redrive)
            broker.apply(queue, values)
            queue.notify()  # a shorter wait or delay may change what pollers wait for
        return {}

    # -- sending --------------------------------------------------------------------------------

    @_api
    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        DelaySeconds: int | None = None,
        MessageAttributes: Mapping[str, Mapping[str, Any]] | None = None,
        MessageSystemAttributes: Mapping[str, Mapping[str, Any]] | None = None,
        MessageGroupId: str | None = None,
        MessageDeduplicationId: str | None = None,
    ) -> dict[str, Any]:
        """Send one message; a FIFO duplicate within 5 minutes returns the original's ids.

        Raises:
            ClientError: MissingParameter (empty body, no MessageGroupId on FIFO),
                InvalidParameterValue (too big, bad delay or attributes), InvalidMessageContents.
        """
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            return self._broker.send(
                queue,
                {
                    "MessageBody": MessageBody,
                    "DelaySeconds": DelaySeconds,
                    "MessageAttributes": MessageAttributes,
                    "MessageSystemAttributes": MessageSystemAttributes,
                    "MessageGroupId": MessageGroupId,
                    "MessageDeduplicationId": MessageDeduplicationId,
                },
            )

    @_api
    def send_message_batch(
        self, *, QueueUrl: str, Entries: Collection[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Send 1 to 10 messages; each entry succeeds or fails on its own, as `send_message`.

        Raises:
            ClientError: EmptyBatchRequest, TooManyEntriesInBatchRequest, InvalidBatchEntryId,
                BatchEntryIdsNotDistinct, BatchRequestTooLong, QueueDoesNotExist.
        """
        check_batch(Entries, "SendMessageBatch")
        check_batch_size(Entries)
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            return _batch(Entries, functools.partial(self._broker.send, queue))

    # -- receiving ------------------------------------------------------------------------------

    @_api
    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int | None = None,
        VisibilityTimeout: int | None = None,
        AttributeNames: Collection[str] | None = None,
        MessageSystemAttributeNames: Collection[str] | None = None,
        MessageAttributeNames: Collection[str] | None = None,
        ReceiveRequestAttemptId: str | None = None,
    ) -> dict[str, Any]:
        """Receive up to 10 messages, long polling up to `WaitTimeSeconds` for the first one.

        Each message gets a new receipt handle and is invisible for `VisibilityTimeout` (or the
        queue's) seconds. A FIFO receive retried with the same `ReceiveRequestAttemptId` within
        5 minutes returns the same messages and handles while they are still in flight.

        Raises:
            ClientError: InvalidParameterValue for an out-of-range number, QueueDoesNotExist.
        """
        check_int("MaxNumberOfMessages", MaxNumberOfMessages, 1, rules.MAX_BATCH_ENTRIES)
        if VisibilityTimeout is not None:
            check_int("VisibilityTimeout", VisibilityTimeout, 0, rules.MAX_VISIBILITY)
        if WaitTimeSeconds is not None:
            check_int("WaitTimeSeconds", WaitTimeSeconds, 0, rules.MAX_WAIT)
        system = _Select.of(AttributeNames, MessageSystemAttributeNames)
        custom = _Select.of(MessageAttributeNames)
        broker = self._broker
        with self._lock:
            queue = broker.queue(QueueUrl)
            wait = WaitTimeSeconds
            if wait is None:
                wait = int(queue.attributes["ReceiveMessageWaitTimeSeconds"])
            deadline = time.monotonic() + wait
            while True:
                received = broker.receive(
                    queue, MaxNumberOfMessages, VisibilityTimeout, ReceiveRequestAttemptId
                )
                remaining = deadline - time.monotonic()
                if received or remaining <= 0 or queue.deleted:
                    break
                broker.wait(queue, remaining)
            if not received:
                return {}
            return {"Messages": [_render(m, handle, system, custom) for m, handle in received]}

    # -- deleting and visibility ----------------------------------------------------------------

    @_api
    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        """Delete a message by its latest receipt handle (again: a no-op success).

        Raises:
            ClientError: ReceiptHandleIsInvalid for an unknown or superseded handle.
        """
        with self._lock:
            self._broker.delete(self._broker.queue(QueueUrl), ReceiptHandle)
        return {}

    @_api
    def delete_message_batch(
        self, *, QueueUrl: str, Entries: Collection[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Delete 1 to 10 messages; a bad handle fails its entry only (ReceiptHandleIsInvalid).

        Raises:
            ClientError: EmptyBatchRequest, TooManyEntriesInBatchRequest, InvalidBatchEntryId,
                BatchEntryIdsNotDistinct, QueueDoesNotExist.
        """
        check_batch(Entries, "DeleteMessageBatch")
        broker = self._broker
        with self._lock:
            queue = broker.queue(QueueUrl)
            return _batch(Entries, lambda entry: broker.delete(queue, entry.get("ReceiptHandle")))

    @_api
    def change_message_visibility(
        self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int
    ) -> dict[str, Any]:
        """Make an in-flight message visible `VisibilityTimeout` seconds from now (0: at once).

        Raises:
            ClientError: ReceiptHandleIsInvalid; MessageNotInflight; InvalidParameterValue for
                a timeout outside 0..43200, past 43200 s since the receive, or a deleted message.
        """
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            self._broker.promote(queue, self._broker.clock())
            entry = {"ReceiptHandle": ReceiptHandle, "VisibilityTimeout": VisibilityTimeout}
            self._change_visibility(queue, entry)
        return {}

    @_api
    def change_message_visibility_batch(
        self, *, QueueUrl: str, Entries: Collection[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Change the visibility of 1 to 10 messages; each entry fails on its own.

        Raises:
            ClientError: EmptyBatchRequest, TooManyEntriesInBatchRequest, InvalidBatchEntryId,
                BatchEntryIdsNotDistinct, QueueDoesNotExist.
        """
        check_batch(Entries, "ChangeMessageVisibilityBatch")
        with self._lock:
            queue = self._broker.queue(QueueUrl)
            self._broker.promote(queue, self._broker.clock())
            return _batch(Entries, functools.partial(self._change_visibility, queue))

    def _change_visibility(self, queue: Queue, entry: Mapping[str, Any]) -> None:
        timeout = entry.get("VisibilityTimeout")
        seconds = check_int("VisibilityTimeout", timeout, 0, rules.MAX_VISIBILITY)
        self._broker.change_visibility(queue, entry.get("ReceiptHandle"), seconds)

    # -- helpers for tests ----------------------------------------------------------------------

    def _known_queue(self, url: str) -> Queue:
        try:
            return self._broker.queue(url)
        except Fault as fault:
            raise fault.client_error("GetQueueAttributes") from None

    def counts(self, queue_url: str) -> dict[str, int]:
        """Return how many messages are ``visible``, ``in_flight`` and ``delayed`` now.

        Raises:
            ClientError: QueueDoesNotExist.
        """
        with self._lock:
            queue = self._known_queue(queue_url)
            self._broker.promote(queue, self._broker.clock())
            delayed, visible, in_flight, _ = queue.count
        return {"visible": visible, "in_flight": in_flight, "delayed": delayed}

    def all_messages(self, queue_url: str) -> list[str]:
        """Return the bodies of all messages in the queue, in any state, in send order.

        Raises:
            ClientError: QueueDoesNotExist.
        """
        with self._lock:
            return [message.body for message in self._known_queue(queue_url).messages.values()]

    def waiting(self, queue_url: str) -> int:
        """Return how many calls are blocked on the queue (long polls, `wait_until_empty`).

        Tests use it to know that a consumer is parked in a long poll before acting.
        """
        with self._lock:
            return self._known_queue(queue_url).waiters

    def wait_until_empty(self, queue_url: str, timeout: float = 10.0) -> None:
        """Block until the queue holds no visible, in-flight or delayed message.

        Args:
            queue_url: the queue to watch.
            timeout: seconds (real time) to wait at most.

        Raises:
            TimeoutError: the queue still holds messages after `timeout`; the text has counts.
            ClientError: QueueDoesNotExist.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            queue = self._known_queue(queue_url)
            while True:
                self._broker.promote(queue, self._broker.clock())
                if not any(queue.count[:3]) or queue.deleted:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    delayed, visible, in_flight, _ = queue.count
                    raise TimeoutError(
                        f"{queue.url} not empty after {timeout} s: visible={visible} "
                        f"in_flight={in_flight} delayed={delayed}"
                    )
                self._broker.wait(queue, remaining)


_OPERATIONS = frozenset(
    name for name, value in vars(MemorySQS).items() if hasattr(value, "sqs_operation")
)


def _batch(
    entries: Iterable[Mapping[str, Any]],
    action: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
) -> dict[str, Any]:
    """Run `action` per entry; collect results and per-entry failures as SQS reports them."""
    successful: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for entry in entries:
        try:
            result = action(entry)
        except Fault as fault:
            failed.append(fault.entry(str(entry["Id"])))
        else:
            successful.append({"Id": entry["Id"], **(result or {})})
    return {"Successful": successful, "Failed": failed}


def _render(
    message: StoredMessage, handle: str, system: _Select, custom: _Select
) -> dict[str, Any]:
    """A message as ReceiveMessage returns it, with only the attributes asked for."""
    rendered: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": handle,
        "MD5OfBody": message.md5_body,
        "Body": message.body,
    }
    if system.names:
        values = message.system | {
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": message.first_receive_ms,
        }
        if picked := system.pick(values):
            rendered["Attributes"] = picked
    if message.attributes and custom.names and (chosen := custom.pick(message.attributes)):
        rendered["MD5OfMessageAttributes"] = message.md5_attributes
        rendered["MessageAttributes"] = {name: dict(value) for name, value in chosen.items()}
    return rendered
