"""An in-memory SQS with real semantics, for tests and benchmarks: `MemorySQS`.

`MemorySQS` stands in for `boto3.client("sqs")`: the same method names, keyword-only PascalCase
parameters, response shapes and error codes, with visibility timeouts, receive counts, delays,
per-entry batch failures, FIFO group locking and deduplication, redrive to a dead-letter queue
and long polling. It is thread-safe and built for speed (a heap of visibility deadlines, so a
receive or delete costs O(batch · log n)). Queue URLs are ``memory://NAME``::

    sqs = MemorySQS()
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]  # "memory://jobs"
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]

Extras for tests: `counts()`, `all_messages()`, `waiting()`, `wait_until_empty()`, injected
`latency` and `inject_faults()`. Not modelled: message retention, PurgeQueueInProgress, tags,
permissions and KMS.

This module is longer than our ~400-line guide because it is one simulator under one lock: the
API methods (validation, then state changes) and the state transitions at the bottom keep shared
invariants (state counts, heap versions, FIFO group locks) that are easier to check in one place.
Each function stays short.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import json
import random
import re
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar

import attrs
import botocore.session
from botocore.errorfactory import ClientExceptionsFactory
from botocore.exceptions import ClientError, EndpointConnectionError

__all__ = ["MemorySQS"]

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
URL_PREFIX = "memory://"
MAX_VISIBILITY = 43200  # seconds a message may stay invisible after one receive
DEDUP_WINDOW = 300.0  # seconds during which FIFO deduplication ids and receive attempt ids hold
_SENDER_ID = "AIDAMEMORYSQSSENDER00"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
# The characters SQS accepts in a body (XML 1.0's Char production).
_BAD_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Numeric queue attributes: (lowest, highest, default).
_NUMERIC = {
    "DelaySeconds": (0, 900, 0),
    "MaximumMessageSize": (1024, 1048576, 1048576),
    "MessageRetentionPeriod": (60, 1209600, 345600),
    "ReceiveMessageWaitTimeSeconds": (0, 20, 0),
    "VisibilityTimeout": (0, MAX_VISIBILITY, 30),
}
# FIFO-only attributes: the allowed values, the default first.
_FIFO_CHOICES = {
    "ContentBasedDeduplication": ("false", "true"),
    "DeduplicationScope": ("queue", "messageGroup"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
# Stored and reported as given.
_OPAQUE = frozenset({"Policy", "RedriveAllowPolicy", "RedrivePolicy", "SqsManagedSseEnabled"}) | {
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
}
_COUNTED = ("ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages")
_QUEUE_ATTRIBUTE_NAMES = frozenset({*_NUMERIC, *_FIFO_CHOICES, *_OPAQUE, *_COUNTED}) | {
    "FifoQueue",
    "All",
    "ApproximateNumberOfMessagesNotVisible",
    "QueueArn",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
}
# Raised errors carry two codes, as botocore reports them from SQS's JSON protocol: `Code` is
# the old query-protocol code, `QueryErrorCode` names the modeled exception class. Batch entries
# carry the plain code (the key here).
_PREFIXED = "EmptyBatchRequest TooManyEntriesInBatchRequest BatchEntryIdsNotDistinct"
_PREFIXED += " InvalidBatchEntryId BatchRequestTooLong MessageNotInflight"
_RAISED_CODES = {name: (f"AWS.SimpleQueueService.{name}", name) for name in _PREFIXED.split()} | {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"),
    "QueueNameExists": ("QueueAlreadyExists", "QueueNameExists"),
    "MissingParameter": ("MissingParameter", "MissingRequiredParameterException"),
}
FAULT_KINDS = ("throttling", "server", "connection")

# Message states. _OUTSIDE: not (or no longer) in the queue; its count slot is scratch.
_DELAYED, _VISIBLE, _INFLIGHT, _OUTSIDE = range(4)

P = ParamSpec("P")
V = TypeVar("V")


class _Fault(Exception):
    """An SQS error answer; raised as a ClientError, or reported in a batch entry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def entry(self, entry_id: str) -> dict[str, Any]:
        return {"Id": entry_id, "SenderFault": True, "Code": self.code, "Message": self.message}

    def client_error(self, operation: str) -> ClientError:
        code, query_code = _RAISED_CODES.get(self.code, (self.code, self.code))
        error = {"Code": code, "Message": self.message, "Type": "Sender"}
        error["QueryErrorCode"] = query_code
        response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}
        error_class: type[ClientError] = _client_exceptions().from_code(query_code)
        return error_class(response, operation)


def _invalid(name: str, value: object, reason: str) -> _Fault:
    reason = f"Value {value} for parameter {name} is invalid. Reason: {reason}"
    return _Fault("InvalidParameterValue", reason)


@functools.cache
def _client_exceptions() -> Any:
    # Loaded on first use: the SQS service model costs ~0.1 s to read.
    model = botocore.session.get_session().get_service_model("sqs")
    return ClientExceptionsFactory().create_client_exceptions(model)


@dataclass(slots=True, eq=False)
class _Message:
    serial: int  # position in its queue: send order, and the key in receipt handles
    message_id: str
    body: str
    md5_body: str
    md5_attributes: str | None
    attributes: dict[str, dict[str, Any]]
    system: dict[str, str]  # the system attributes fixed at send time
    group_id: str | None = None  # FIFO queues only
    state: int = _OUTSIDE
    version: int = 0  # bumped whenever a pending heap entry becomes stale
    scheduled: bool = False  # whether a live heap entry exists
    receive_count: int = 0
    first_receive_ms: str = ""
    receipt_handle: str | None = None
    received_at: float = 0.0


class _Expiring(Generic[V]):
    """A map whose entries vanish `ttl` seconds after they were stored."""

    __slots__ = ("_items", "_order", "ttl")

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, V]] = {}
        self._order: deque[tuple[float, str]] = deque()

    def get(self, key: str, now: float) -> V | None:
        while self._order and self._order[0][0] <= now:
            expires, old = self._order.popleft()
            if (item := self._items.get(old)) is not None and item[0] == expires:
                del self._items[old]
        item = self._items.get(key)
        return None if item is None else item[1]

    def put(self, key: str, value: V, now: float) -> None:
        self._items[key] = (now + self.ttl, value)
        self._order.append((now + self.ttl, key))


@dataclass(slots=True, eq=False)
class _Queue:
    name: str
    fifo: bool
    attributes: dict[str, str]
    cond: threading.Condition
    created: int = field(default_factory=lambda: int(time.time()))
    modified: int = field(default_factory=lambda: int(time.time()))
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # scopes receipt handles
    redrive: tuple[str, int] | None = None
    messages: dict[int, _Message] = field(default_factory=dict)
    next_serial: int = 0
    count: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # per state
    pending: list[tuple[float, int, int, _Message]] = field(default_factory=list)
    stale: int = 0  # dead entries in `pending`, compacted when they dominate
    ready: deque[_Message] = field(default_factory=deque)  # visible, standard queues
    groups: dict[str, deque[_Message]] = field(default_factory=dict)  # FIFO, in send order
    group_inflight: dict[str, int] = field(default_factory=dict)
    ready_groups: deque[str] = field(default_factory=deque)  # FIFO groups free to deliver
    queued_groups: set[str] = field(default_factory=set)
    dedup: _Expiring[tuple[str, str]] = field(default_factory=lambda: _Expiring(DEDUP_WINDOW))
    attempts: _Expiring[list[tuple[_Message, str]]] = field(
        default_factory=lambda: _Expiring(DEDUP_WINDOW)
    )
    waiters: int = 0
    deleted: bool = False

    @property
    def url(self) -> str:
        return URL_PREFIX + self.name

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{self.name}"

    def clear(self) -> None:
        for message in self.messages.values():
            message.state, message.version = _OUTSIDE, message.version + 1
        for container in (self.messages, self.pending, self.ready, self.groups):
            container.clear()
        for other in (self.group_inflight, self.ready_groups, self.queued_groups):
            other.clear()
        self.count[:] = [0, 0, 0, 0]
        self.stale = 0

    def notify(self) -> None:
        if self.waiters:
            self.cond.notify_all()


@attrs.frozen
class _Meta:
    region_name: str = REGION
    endpoint_url: str = URL_PREFIX


@attrs.frozen
class _FaultPlan:
    rate: float
    kinds: tuple[str, ...]
    operations: frozenset[str] | None


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
    """Wrap a client method: latency, injected faults, and internal errors to ClientError."""
    operation = "".join(part.capitalize() for part in method.__name__.split("_"))

    @functools.wraps(method)
    def call(self: MemorySQS, /, *args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        self._before_call(method.__name__, operation)
        try:
            response = method(self, *args, **kwargs)
        except _Fault as fault:
            raise fault.client_error(operation) from None
        metadata = {"RequestId": self._new_id(), "HTTPStatusCode": 200, "HTTPHeaders": {}}
        response["ResponseMetadata"] = metadata | {"RetryAttempts": 0}
        return response

    call.__dict__["sqs_operation"] = operation
    return call


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(name, value, f"must be between {low} and {high}, if provided.")
    return value


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _digest_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> tuple[str, int]:
    """Validate message attributes; return the MD5 SQS computes over them, and their size."""
    if len(attributes) > 10:
        raise _Fault("InvalidParameterValue", "Number of message attributes exceeds 10.")
    parts: list[bytes] = []
    size = 0
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value.get("DataType", ""))
        binary = data_type.startswith("Binary")
        payload = value.get("BinaryValue" if binary else "StringValue")
        if data_type.split(".")[0] not in ("String", "Number", "Binary") or not payload:
            reason = f"The message attribute '{name}' must contain a non-empty value and a type."
            raise _Fault("InvalidParameterValue", reason)
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        for chunk in (name.encode(), data_type.encode()):
            parts += (struct.pack(">I", len(chunk)), chunk)
        parts += (b"\x02" if binary else b"\x01", struct.pack(">I", len(raw)), raw)
        size += len(name) + len(data_type) + len(raw)
    return _md5(b"".join(parts)), size


class MemorySQS:
    """An in-memory, thread-safe stand-in for a boto3 SQS client, with real SQS semantics.

    Calls may block (long polling), so callers run them in threads, as with boto3.

    Args:
        latency: seconds slept at the start of every call, to simulate the network.
        clock: monotonic seconds used for visibility timeouts, delays and the deduplication
            window. Long polls still end on real time, so they terminate with a fake clock.
        auto_create: create a missing ``memory://NAME`` queue on first use instead of
            raising `QueueDoesNotExist` (``NAME.fifo`` becomes a FIFO queue).
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
    ) -> None:
        self._latency = latency
        self._clock = clock
        self._auto_create = auto_create
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self._faults: _FaultPlan | None = None
        self._random = random.Random()  # fault draws; seeded by inject_faults(seed=...)
        self._ids = random.Random()
        self._faults_injected = 0

    @classmethod
    def shared(cls) -> MemorySQS:
        """The process-wide instance (auto_create=True) used for ``memory://`` URLs."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls(auto_create=True)
            return cls._shared

    def __repr__(self) -> str:
        return f"<MemorySQS queues={len(self._queues)} faults_injected={self._faults_injected}>"

    @property
    def exceptions(self) -> Any:  # Any: botocore types the modeled classes as attributes of None
        """The modeled SQS exception classes, as ``client.exceptions`` (e.g. QueueDoesNotExist)."""
        return _client_exceptions()

    @property
    def faults_injected(self) -> int:
        """How many calls failed because of `inject_faults`."""
        return self._faults_injected

    def _new_id(self) -> str:
        # A random UUID4-shaped id, several times cheaper than uuid.uuid4() on the send path.
        h = f"{self._ids.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"

    def close(self) -> None:
        """Do nothing: there is no connection pool to release."""

    # -- faults and latency -------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds slept at the start of every call; settable (fill fast, then slow down)."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"MemorySQS latency must be >= 0 seconds, got {seconds!r}")
        self._latency = float(seconds)

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
        unknown = set(kinds) - set(FAULT_KINDS) or set(operations or ()) - _OPERATIONS
        if not 0.0 <= rate <= 1.0 or unknown or not kinds:
            raise ValueError(f"inject_faults: invalid rate {rate!r} or names {sorted(unknown)}")
        with self._lock:
            self._random.seed(seed)
            ops = None if operations is None else frozenset(operations)
            self._faults = _FaultPlan(rate, tuple(kinds), ops)

    def clear_faults(self) -> None:
        """Stop injecting faults (the `faults_injected` count is kept)."""
        with self._lock:
            self._faults = None

    def _before_call(self, operation: str, operation_name: str) -> None:
        if self._latency:
            time.sleep(self._latency)
        plan = self._faults
        if plan is None or (plan.operations is not None and operation not in plan.operations):
            return
        with self._lock:
            if self._random.random() >= plan.rate:
                return
            kind = self._random.choice(plan.kinds)
            self._faults_injected += 1
        if kind == "connection":
            raise EndpointConnectionError(endpoint_url=URL_PREFIX)
        throttled = kind == "throttling"
        code, status = ("ThrottlingException", 400) if throttled else ("InternalFailure", 500)
        error = {"Code": code, "Message": f"injected {kind} fault"}
        error["Type"] = "Sender" if throttled else "Receiver"
        response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
        raise ClientError(response, operation_name)

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
        attributes = dict(Attributes or {})
        fifo = attributes.pop("FifoQueue", "false") == "true"
        if Attributes and Attributes.get("FifoQueue", "false") not in ("true", "false"):
            raise _Fault("InvalidAttributeValue", "Invalid value for the parameter FifoQueue.")
        if not _NAME.fullmatch(QueueName.removesuffix(".fifo") if fifo else QueueName):
            reason = "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80"
            raise _Fault("InvalidParameterValue", reason + " in length")
        if fifo != QueueName.endswith(".fifo") or len(QueueName) > 80:
            reason = "The name of a FIFO queue must end with the .fifo suffix, and only it."
            raise _Fault("InvalidParameterValue", reason)
        with self._lock:
            values = self._check_attributes(attributes, fifo=fifo)
            queue = self._queues.get(QueueName)
            if queue is None:
                self._add_queue(QueueName, fifo, values)
            elif any(queue.attributes.get(k, "") != v for k, v in values.items()):
                raise _Fault("QueueNameExists", f"A queue named {QueueName} already exists.")
        return {"QueueUrl": URL_PREFIX + QueueName}

    def _add_queue(self, name: str, fifo: bool, values: Mapping[str, str]) -> _Queue:
        defaults = {key: str(default) for key, (_, _, default) in _NUMERIC.items()}
        if fifo:
            defaults |= {"FifoQueue": "true"} | {k: v[0] for k, v in _FIFO_CHOICES.items()}
        queue = _Queue(name, fifo, defaults, threading.Condition(self._lock))
        self._queues[name] = queue
        self._apply(queue, values)
        return queue

    def _check_attributes(self, attributes: Mapping[str, str], *, fifo: bool) -> dict[str, str]:
        values: dict[str, str] = {}
        valid = True
        for name, raw in attributes.items():
            value = str(raw)
            if name == "RedrivePolicy":
                value = self._check_redrive(value, fifo)
            elif name in _NUMERIC:
                low, high, _ = _NUMERIC[name]
                valid = value.isdecimal() and low <= int(value) <= high
            elif name in _FIFO_CHOICES and fifo:
                valid = value in _FIFO_CHOICES[name]
            elif name not in _OPAQUE:
                raise _Fault("InvalidAttributeName", f"Unknown Attribute {name}.")
            if not valid:
                raise _Fault("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            values[name], valid = value, True
        return values

    def _check_redrive(self, value: str, fifo: bool) -> str:
        if not value:
            return value  # an empty policy removes redrive, as in SQS
        try:
            policy = json.loads(value)
            arn, count = str(policy["deadLetterTargetArn"]), int(policy["maxReceiveCount"])
        except (ValueError, KeyError, TypeError):
            raise _invalid("RedrivePolicy", value, "Invalid redrive policy JSON.") from None
        target = self._queues.get(arn.rpartition(":")[2])
        problem = "maxReceiveCount must be 1 to 1000." if not 1 <= count <= 1000 else None
        if target is None or target.arn != arn or target.fifo != fifo:
            problem = "The dead-letter target must exist and be of the same queue type."
        if problem:
            raise _invalid("RedrivePolicy", value, problem)
        policy = {"deadLetterTargetArn": arn, "maxReceiveCount": count}
        return json.dumps(policy, separators=(",", ":"))

    def _apply(self, queue: _Queue, values: Mapping[str, str]) -> None:
        queue.attributes.update(values)
        if queue.attributes.get("RedrivePolicy") == "":
            del queue.attributes["RedrivePolicy"]
        policy = queue.attributes.get("RedrivePolicy")
        if policy is None:
            queue.redrive = None
        else:
            parsed = json.loads(policy)
            queue.redrive = (parsed["deadLetterTargetArn"], parsed["maxReceiveCount"])
        queue.modified = int(time.time())

    def _queue(self, url: str) -> _Queue:
        """The queue behind a URL; call with the lock held."""
        name = url.removeprefix(URL_PREFIX) if url.startswith(URL_PREFIX) else ""
        if (queue := self._queues.get(name)) is not None:
            return queue
        if self._auto_create and _NAME.fullmatch(name.removesuffix(".fifo")):
            return self._add_queue(name, name.endswith(".fifo"), {})
        raise _Fault("QueueDoesNotExist", "The specified queue does not exist.")

    @_api
    def get_queue_url(
        self, *, QueueName: str, QueueOwnerAWSAccountId: str | None = None
    ) -> dict[str, Any]:
        """Return ``{"QueueUrl": "memory://NAME"}``; QueueDoesNotExist when there is none."""
        with self._lock:
            if QueueName not in self._queues:
                raise _Fault("QueueDoesNotExist", "The specified queue does not exist.")
        return {"QueueUrl": URL_PREFIX + QueueName}

    @_api
    def delete_queue(self, *, QueueUrl: str) -> dict[str, Any]:
        """Delete a queue; its blocked long polls return empty."""
        with self._lock:
            queue = self._queue(QueueUrl)
            del self._queues[queue.name]
            queue.deleted = True
            queue.notify()
        return {}

    @_api
    def purge_queue(self, *, QueueUrl: str) -> dict[str, Any]:
        """Delete every message of a queue at once (no 60-second purge cooldown)."""
        with self._lock:
            queue = self._queue(QueueUrl)
            queue.clear()
            queue.notify()
        return {}

    @_api
    def list_queues(self, *, QueueNamePrefix: str = "") -> dict[str, Any]:
        """Return the URLs of the queues whose names start with `QueueNamePrefix`."""
        with self._lock:
            names = sorted(n for n in self._queues if n.startswith(QueueNamePrefix))
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
        if unknown := names - _QUEUE_ATTRIBUTE_NAMES:
            raise _Fault("InvalidAttributeName", f"Unknown Attribute {sorted(unknown)[0]}.")
        with self._lock:
            queue = self._queue(QueueUrl)
            self._promote(queue, self._clock())
            values = queue.attributes | dict(zip(_COUNTED, map(str, queue.count[:2]), strict=True))
            values |= {
                "ApproximateNumberOfMessagesNotVisible": str(queue.count[_INFLIGHT]),
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
        with self._lock:
            queue = self._queue(QueueUrl)
            self._apply(queue, self._check_attributes(Attributes, fifo=queue.fifo))
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
            queue = self._queue(QueueUrl)
            return self._send(
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
        _check_batch(Entries, "SendMessageBatch")
        size = sum(len(str(entry.get("MessageBody", "")).encode()) for entry in Entries)
        if size > _NUMERIC["MaximumMessageSize"][1]:
            reason = f"Batch requests cannot be longer than 1048576 bytes. You have sent {size}."
            raise _Fault("BatchRequestTooLong", reason)
        with self._lock:
            queue = self._queue(QueueUrl)
            return _batch(Entries, lambda entry: self._send(queue, entry))

    def _send(self, queue: _Queue, entry: Mapping[str, Any]) -> dict[str, Any]:
        body, delay = entry.get("MessageBody", ""), entry.get("DelaySeconds")
        attributes = entry.get("MessageAttributes") or {}
        md5_attributes, size = _digest_attributes(attributes) if attributes else (None, 0)
        md5_body = _md5(_check_body(queue, body, size))
        system = {"SenderId": _SENDER_ID, "SentTimestamp": str(time.time_ns() // 1_000_000)}
        if trace := entry.get("MessageSystemAttributes"):
            system["AWSTraceHeader"] = _trace_header(trace)
        message_id, now = self._new_id(), self._clock()
        response = {"MD5OfMessageBody": md5_body, "MessageId": message_id}
        if md5_attributes:
            response["MD5OfMessageAttributes"] = md5_attributes
        group_id = entry.get("MessageGroupId")
        if queue.fifo:
            if original := self._deduplicate(queue, message_id, entry, system, now):
                return response | {"MessageId": original[0], "SequenceNumber": original[1]}
            response["SequenceNumber"] = system["SequenceNumber"]
        elif entry.get("MessageDeduplicationId") is not None:
            reason = "The request include parameter that is not valid for this queue type."
            raise _invalid("MessageDeduplicationId", entry["MessageDeduplicationId"], reason)
        elif group_id is not None:
            system["MessageGroupId"] = group_id  # fair queuing: a label, not an ordering
        if delay is None:
            delay = int(queue.attributes["DelaySeconds"])
        _int("DelaySeconds", delay, 0, _NUMERIC["DelaySeconds"][1])
        message = _Message(
            _serial(queue), message_id, body, md5_body, md5_attributes,
            {name: dict(value) for name, value in attributes.items()}, system,
            group_id if queue.fifo else None,
        )  # fmt: skip
        self._enqueue(queue, message, now + delay if delay else None)
        return response

    def _deduplicate(
        self, queue: _Queue, message_id: str, entry: Mapping[str, Any], system: dict[str, str],
        now: float,
    ) -> tuple[str, str] | None:  # fmt: skip
        """FIFO checks; record this send, or return (message id, sequence) of its original."""
        group_id, dedup_id = entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
        if entry.get("DelaySeconds") is not None:
            reason = "The request include parameter that is not valid for this queue type."
            raise _invalid("DelaySeconds", entry["DelaySeconds"], reason)
        if not group_id:
            reason = "The request must contain the parameter MessageGroupId."
            raise _Fault("MissingParameter", reason)
        if dedup_id is None:
            if queue.attributes["ContentBasedDeduplication"] != "true":
                reason = "The queue should either have ContentBasedDeduplication enabled or "
                raise _Fault("InvalidParameterValue", reason + "MessageDeduplicationId provided")
            dedup_id = hashlib.sha256(entry["MessageBody"].encode()).hexdigest()
        key = dedup_id
        if queue.attributes["DeduplicationScope"] == "messageGroup":
            key = f"{group_id}\0{dedup_id}"
        if (original := queue.dedup.get(key, now)) is not None:
            return original
        sequence = f"{queue.next_serial + 1:020d}"
        queue.dedup.put(key, (message_id, sequence), now)
        system |= {"MessageGroupId": group_id, "MessageDeduplicationId": dedup_id}
        system["SequenceNumber"] = sequence
        return None

    def _enqueue(self, queue: _Queue, message: _Message, due: float | None) -> None:
        queue.messages[message.serial] = message
        if queue.fifo:
            queue.groups.setdefault(str(message.group_id), deque()).append(message)
        if due is None:
            self._make_visible(queue, message)
        else:
            _set_state(queue, message, _DELAYED)
            _schedule(queue, message, due)
        queue.notify()

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
        _int("MaxNumberOfMessages", MaxNumberOfMessages, 1, 10)
        if VisibilityTimeout is not None:
            _int("VisibilityTimeout", VisibilityTimeout, 0, MAX_VISIBILITY)
        if WaitTimeSeconds is not None:
            _int("WaitTimeSeconds", WaitTimeSeconds, 0, 20)
        system = _Select.of(AttributeNames, MessageSystemAttributeNames)
        custom = _Select.of(MessageAttributeNames)
        with self._lock:
            queue = self._queue(QueueUrl)
            wait = WaitTimeSeconds
            if wait is None:
                wait = int(queue.attributes["ReceiveMessageWaitTimeSeconds"])
            deadline = time.monotonic() + wait
            while True:
                received = self._receive(
                    queue, MaxNumberOfMessages, VisibilityTimeout, ReceiveRequestAttemptId
                )
                remaining = deadline - time.monotonic()
                if received or remaining <= 0 or queue.deleted:
                    break
                self._wait(queue, remaining)
            if not received:
                return {}
            return {"Messages": [_render(m, handle, system, custom) for m, handle in received]}

    def _receive(
        self, queue: _Queue, limit: int, visibility: int | None, attempt_id: str | None
    ) -> list[tuple[_Message, str]]:
        now = self._clock()
        self._promote(queue, now)
        previous = queue.attempts.get(attempt_id, now) if attempt_id and queue.fifo else None
        if previous and all(m.state == _INFLIGHT and m.receipt_handle == h for m, h in previous):
            return previous
        if visibility is None:
            visibility = int(queue.attributes["VisibilityTimeout"])
        taken = self._take_fifo(queue, limit) if queue.fifo else self._take_standard(queue, limit)
        now_ms = str(time.time_ns() // 1_000_000)
        received = [(m, _deliver(queue, m, now, now + visibility, now_ms)) for m in taken]
        if attempt_id and queue.fifo and received:
            queue.attempts.put(attempt_id, received, now)
        if received and not visibility:
            queue.notify()  # visible again at once: another poller may take them
        return received

    def _take_standard(self, queue: _Queue, limit: int) -> list[_Message]:
        taken: list[_Message] = []
        while len(taken) < limit and queue.ready:
            message = queue.ready.popleft()
            if message.state == _VISIBLE and not self._dead_letter(queue, message):
                taken.append(message)
        return taken

    def _take_fifo(self, queue: _Queue, limit: int) -> list[_Message]:
        """Take messages group by group, in order, stopping at a delayed one in each group."""
        taken: list[_Message] = []
        while len(taken) < limit and queue.ready_groups:
            group_id = queue.ready_groups.popleft()
            queue.queued_groups.discard(group_id)
            group = queue.groups.get(group_id)
            if group is None or group_id in queue.group_inflight:
                continue
            for message in group:
                if len(taken) >= limit or message.state in (_DELAYED, _INFLIGHT):
                    break
                if message.state == _VISIBLE and not self._dead_letter(queue, message):
                    taken.append(message)
            _tidy_group(queue, group_id)
        return taken

    def _dead_letter(self, queue: _Queue, message: _Message) -> bool:
        """Move a message received maxReceiveCount times to the dead-letter queue, as SQS does."""
        if queue.redrive is None or message.receive_count < queue.redrive[1]:
            return False
        target = self._queues.get(queue.redrive[0].rpartition(":")[2])
        if target is None or target is queue:
            return False  # SQS keeps delivering while the target is missing
        _remove(queue, message)
        # Same id, body, attributes, timestamps and receive count; a new life in `target`.
        moved = replace(
            message,
            serial=_serial(target),
            state=_OUTSIDE,
            version=0,
            scheduled=False,
            receipt_handle=None,
            system=message.system | {"DeadLetterQueueSourceArn": queue.arn},
        )
        self._enqueue(target, moved, None)
        return True

    def _promote(self, queue: _Queue, now: float) -> None:
        """Make visible every delayed or in-flight message whose time has come."""
        pending = queue.pending
        while pending and pending[0][0] <= now:
            _, _, version, message = heapq.heappop(pending)
            if version != message.version:
                queue.stale -= 1
                continue
            message.scheduled = False
            self._make_visible(queue, message)

    def _make_visible(self, queue: _Queue, message: _Message) -> None:
        was = message.state
        _set_state(queue, message, _VISIBLE)
        if not queue.fifo:
            queue.ready.append(message)
            return
        if was == _INFLIGHT:
            _release_group(queue, str(message.group_id))
        _offer_group(queue, str(message.group_id))

    def _wait(self, queue: _Queue, remaining: float) -> None:
        """Block until a change is notified, the next deadline in `pending`, or `remaining`."""
        timeout = remaining
        if queue.pending:
            timeout = min(timeout, max(queue.pending[0][0] - self._clock(), 0.001))
        queue.waiters += 1
        try:
            queue.cond.wait(timeout)
        finally:
            queue.waiters -= 1

    # -- deleting and visibility ----------------------------------------------------------------

    @_api
    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        """Delete a message by its latest receipt handle (again: a no-op success).

        Raises:
            ClientError: ReceiptHandleIsInvalid for an unknown or superseded handle.
        """
        with self._lock:
            self._delete(self._queue(QueueUrl), ReceiptHandle)
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
        _check_batch(Entries, "DeleteMessageBatch")
        with self._lock:
            queue = self._queue(QueueUrl)
            return _batch(Entries, lambda entry: self._delete(queue, entry.get("ReceiptHandle")))

    def _delete(self, queue: _Queue, handle: object) -> None:
        message = _resolve(queue, handle)
        if message is not None:
            _remove(queue, message)
            if queue.fifo:
                _offer_group(queue, str(message.group_id))
            queue.notify()

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
            queue = self._queue(QueueUrl)
            self._promote(queue, self._clock())
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
        _check_batch(Entries, "ChangeMessageVisibilityBatch")
        with self._lock:
            queue = self._queue(QueueUrl)
            self._promote(queue, self._clock())
            return _batch(Entries, functools.partial(self._change_visibility, queue))

    def _change_visibility(self, queue: _Queue, entry: Mapping[str, Any]) -> None:
        handle = entry.get("ReceiptHandle")
        seconds = _int("VisibilityTimeout", entry.get("VisibilityTimeout"), 0, MAX_VISIBILITY)
        message = _resolve(queue, handle)
        if message is None:
            reason = "Message does not exist or is not available for visibility timeout change."
            raise _invalid("ReceiptHandle", handle, reason)
        if message.state != _INFLIGHT:
            raise _Fault("MessageNotInflight", "The message is not in flight.")
        now = self._clock()
        if now - message.received_at + seconds > MAX_VISIBILITY:
            reason = (
                f"Total VisibilityTimeout for the message is beyond the limit [{MAX_VISIBILITY}"
            )
            raise _invalid("VisibilityTimeout", seconds, reason + " s]")
        if seconds:
            _schedule(queue, message, now + seconds)
        else:
            self._make_visible(queue, message)
        queue.notify()

    # -- helpers for tests ----------------------------------------------------------------------

    def _known_queue(self, url: str) -> _Queue:
        try:
            return self._queue(url)
        except _Fault as fault:
            raise fault.client_error("GetQueueAttributes") from None

    def counts(self, queue_url: str) -> dict[str, int]:
        """Return how many messages are ``visible``, ``in_flight`` and ``delayed`` now.

        Raises:
            ClientError: QueueDoesNotExist.
        """
        with self._lock:
            queue = self._known_queue(queue_url)
            self._promote(queue, self._clock())
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
                self._promote(queue, self._clock())
                if not any(queue.count[:3]) or queue.deleted:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    delayed, visible, in_flight, _ = queue.count
                    raise TimeoutError(
                        f"{queue.url} not empty after {timeout} s: visible={visible} "
                        f"in_flight={in_flight} delayed={delayed}"
                    )
                self._wait(queue, remaining)


_OPERATIONS = frozenset(
    name for name, value in vars(MemorySQS).items() if hasattr(value, "sqs_operation")
)


# -- state transitions (call with the lock held) --------------------------------------------------


def _serial(queue: _Queue) -> int:
    queue.next_serial += 1
    return queue.next_serial


def _set_state(queue: _Queue, message: _Message, state: int) -> None:
    if message.scheduled:  # the heap entry for the old state is dead
        message.version += 1
        message.scheduled = False
        queue.stale += 1
    queue.count[message.state] -= 1
    queue.count[state] += 1
    message.state = state


def _schedule(queue: _Queue, message: _Message, due: float) -> None:
    if message.scheduled:
        queue.stale += 1
    message.version += 1
    message.scheduled = True
    heapq.heappush(queue.pending, (due, message.serial, message.version, message))
    if queue.stale > 1024 and queue.stale * 2 > len(queue.pending):
        # Deleted and re-timed messages leave dead entries; drop them once they dominate.
        queue.pending = [entry for entry in queue.pending if entry[2] == entry[3].version]
        heapq.heapify(queue.pending)
        queue.stale = 0


def _deliver(queue: _Queue, message: _Message, now: float, due: float, now_ms: str) -> str:
    _set_state(queue, message, _INFLIGHT)
    message.receive_count += 1
    message.first_receive_ms = message.first_receive_ms or now_ms
    message.receipt_handle = f"{queue.token}:{message.serial}:{message.receive_count}"
    message.received_at = now
    if message.group_id is not None:
        queue.group_inflight[message.group_id] = queue.group_inflight.get(message.group_id, 0) + 1
    _schedule(queue, message, due)
    return message.receipt_handle


def _remove(queue: _Queue, message: _Message) -> None:
    if message.state == _INFLIGHT and message.group_id is not None:
        _release_group(queue, message.group_id)
    _set_state(queue, message, _OUTSIDE)
    del queue.messages[message.serial]


def _resolve(queue: _Queue, handle: object) -> _Message | None:
    """The message a receipt handle names; None if it is gone (deleted, purged, moved)."""
    token, _, rest = str(handle).partition(":")
    serial = rest.partition(":")[0]
    if token != queue.token or not (serial.isascii() and serial.isdigit()):
        raise _Fault("ReceiptHandleIsInvalid", "The input receipt handle is invalid.")
    message = queue.messages.get(int(serial))
    if message is None and int(serial) <= queue.next_serial:
        return None
    if message is None or message.receipt_handle != handle:
        raise _Fault("ReceiptHandleIsInvalid", "The input receipt handle is invalid.")
    return message


def _release_group(queue: _Queue, group_id: str) -> None:
    left = queue.group_inflight[group_id] - 1
    if left:
        queue.group_inflight[group_id] = left
    else:
        del queue.group_inflight[group_id]


def _tidy_group(queue: _Queue, group_id: str) -> deque[_Message] | None:
    group = queue.groups.get(group_id)
    while group and group[0].state == _OUTSIDE:
        group.popleft()
    if group is not None and not group:
        del queue.groups[group_id]
        return None
    return group


def _offer_group(queue: _Queue, group_id: str) -> None:
    """Queue a FIFO group for delivery if none of it is in flight and its head is visible."""
    if group_id in queue.group_inflight or group_id in queue.queued_groups:
        return
    group = _tidy_group(queue, group_id)
    if group and group[0].state == _VISIBLE:
        queue.queued_groups.add(group_id)
        queue.ready_groups.append(group_id)


# -- request validation and rendering -------------------------------------------------------------


def _check_batch(entries: Collection[Mapping[str, Any]], request: str) -> None:
    if not entries:
        reason = f"There should be at least one {request}RequestEntry in the request."
        raise _Fault("EmptyBatchRequest", reason)
    if len(entries) > 10:
        reason = f"Maximum number of entries per request are 10. You have sent {len(entries)}."
        raise _Fault("TooManyEntriesInBatchRequest", reason)
    ids = [str(entry.get("Id", "")) for entry in entries]
    if not all(_NAME.fullmatch(entry_id) for entry_id in ids):
        reason = "A batch entry id can only contain alphanumeric characters, hyphens and "
        raise _Fault("InvalidBatchEntryId", reason + "underscores. It can be at most 80 long.")
    if len(set(ids)) != len(ids):
        repeated = next(entry_id for entry_id in ids if ids.count(entry_id) > 1)
        raise _Fault("BatchEntryIdsNotDistinct", f"Id {repeated} repeated.")


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
        except _Fault as fault:
            failed.append(fault.entry(str(entry["Id"])))
        else:
            successful.append({"Id": entry["Id"], **(result or {})})
    return {"Successful": successful, "Failed": failed}


def _check_body(queue: _Queue, body: object, attributes_size: int) -> bytes:
    if not isinstance(body, str) or not body:
        reason = "The request must contain the parameter MessageBody."
        raise _Fault("MissingParameter", reason)
    if bad := _BAD_CHAR.search(body):
        reason = f"Invalid binary character '#x{ord(bad.group()):X}' was found in the message body"
        raise _Fault("InvalidMessageContents", reason)
    data = body.encode()
    limit = int(queue.attributes["MaximumMessageSize"])
    if len(data) + attributes_size > limit:
        reason = f"Message must be shorter than {limit} bytes."
        raise _Fault("InvalidParameterValue", "One or more parameters are invalid. " + reason)
    return data


def _trace_header(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    value = attributes.get("AWSTraceHeader", {}).get("StringValue")
    if set(attributes) != {"AWSTraceHeader"} or not value:
        reason = "Only AWSTraceHeader, a String, is supported."
        raise _invalid("MessageSystemAttributes", list(attributes), reason)
    return str(value)


def _render(message: _Message, handle: str, system: _Select, custom: _Select) -> dict[str, Any]:
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
