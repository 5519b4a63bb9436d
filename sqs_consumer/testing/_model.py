"""The queue model behind MemorySQS: messages, visibility, FIFO groups, redrive.

`Broker` holds the queues of one MemorySQS under one lock. Its methods are the state changes
the client calls make, after validation; call them with `Broker.lock` held. A message is in
one state at a time (delayed, visible, in flight, or outside the queue); per-queue counts, the
heap of visibility deadlines and the FIFO group locks change together, in the transitions at
the bottom, so those invariants are checked in one place.

Speed matters (benchmarks measure our overhead against this fake): a heap of deadlines with
lazy deletion makes a receive or delete cost O(batch · log n).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from .. import _sqs_rules as rules
from ._validation import (
    FIFO_CHOICES,
    NAME,
    NUMERIC,
    Fault,
    check_body,
    check_int,
    digest_attributes,
    invalid,
    trace_header,
)

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
URL_PREFIX = "memory://"
MAX_VISIBILITY = rules.MAX_VISIBILITY
DEDUP_WINDOW = 300.0  # seconds during which FIFO deduplication ids and receive attempt ids hold
_SENDER_ID = "AIDAMEMORYSQSSENDER00"
_NOT_FOR_THIS_QUEUE = "The request include parameter that is not valid for this queue type."

# Message states. OUTSIDE: not (or no longer) in the queue; its count slot is scratch.
DELAYED, VISIBLE, INFLIGHT, OUTSIDE = range(4)

V = TypeVar("V")


@dataclass(slots=True, eq=False)
class StoredMessage:
    serial: int  # position in its queue: send order, and the key in receipt handles
    message_id: str
    body: str
    md5_body: str
    md5_attributes: str | None
    attributes: dict[str, dict[str, Any]]
    system: dict[str, str]  # the system attributes fixed at send time
    group_id: str | None = None  # FIFO queues only
    state: int = OUTSIDE
    version: int = 0  # bumped whenever a pending heap entry becomes stale
    scheduled: bool = False  # whether a live heap entry exists
    receive_count: int = 0
    first_receive_ms: str = ""
    receipt_handle: str | None = None
    received_at: float = 0.0


class Expiring(Generic[V]):
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
class Queue:
    name: str
    fifo: bool
    attributes: dict[str, str]
    cond: threading.Condition
    created: int = field(default_factory=lambda: int(time.time()))
    modified: int = field(default_factory=lambda: int(time.time()))
    token: str = field(default_factory=lambda: uuid.uuid4().hex)  # scopes receipt handles
    redrive: tuple[str, int] | None = None
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_serial: int = 0
    count: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # per state
    pending: list[tuple[float, int, int, StoredMessage]] = field(default_factory=list)
    stale: int = 0  # dead entries in `pending`, compacted when they dominate
    ready: deque[StoredMessage] = field(default_factory=deque)  # visible, standard queues
    groups: dict[str, deque[StoredMessage]] = field(default_factory=dict)  # FIFO, send order
    group_inflight: dict[str, int] = field(default_factory=dict)
    ready_groups: deque[str] = field(default_factory=deque)  # FIFO groups free to deliver
    queued_groups: set[str] = field(default_factory=set)
    dedup: Expiring[tuple[str, str]] = field(default_factory=lambda: Expiring(DEDUP_WINDOW))
    attempts: Expiring[list[tuple[StoredMessage, str]]] = field(
        default_factory=lambda: Expiring(DEDUP_WINDOW)
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
            message.state, message.version = OUTSIDE, message.version + 1
        for container in (self.messages, self.pending, self.ready, self.groups):
            container.clear()
        for other in (self.group_inflight, self.ready_groups, self.queued_groups):
            other.clear()
        self.count[:] = [0, 0, 0, 0]
        self.stale = 0

    def notify(self) -> None:
        if self.waiters:
            self.cond.notify_all()


class Broker:
    """The queues of one MemorySQS and the state changes on them (call with `lock` held)."""

    def __init__(self, clock: Any, auto_create: bool) -> None:
        self.clock = clock
        self.auto_create = auto_create
        self.lock = threading.Lock()
        self.queues: dict[str, Queue] = {}
        self._ids = random.Random()

    def new_id(self) -> str:
        # A random UUID4-shaped id, several times cheaper than uuid.uuid4() on the send path.
        h = f"{self._ids.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"

    # -- queues ---------------------------------------------------------------------------------

    def queue(self, url: str) -> Queue:
        """The queue behind a URL."""
        name = url.removeprefix(URL_PREFIX) if url.startswith(URL_PREFIX) else ""
        if (queue := self.queues.get(name)) is not None:
            return queue
        if self.auto_create and NAME.fullmatch(name.removesuffix(".fifo")):
            return self.add_queue(name, name.endswith(".fifo"), {})
        raise Fault("QueueDoesNotExist", "The specified queue does not exist.")

    def add_queue(self, name: str, fifo: bool, values: Mapping[str, str]) -> Queue:
        defaults = {key: str(default) for key, (_, _, default) in NUMERIC.items()}
        if fifo:
            defaults |= {"FifoQueue": "true"} | {k: v[0] for k, v in FIFO_CHOICES.items()}
        queue = Queue(name, fifo, defaults, threading.Condition(self.lock))
        self.queues[name] = queue
        self.apply(queue, values)
        return queue

    def check_redrive(self, value: str, fifo: bool) -> str:
        if not value:
            return value  # an empty policy removes redrive, as in SQS
        try:
            policy = json.loads(value)
            arn, count = str(policy["deadLetterTargetArn"]), int(policy["maxReceiveCount"])
        except (ValueError, KeyError, TypeError):
            raise invalid("RedrivePolicy", value, "Invalid redrive policy JSON.") from None
        target = self.queues.get(arn.rpartition(":")[2])
        problem = "maxReceiveCount must be 1 to 1000." if not 1 <= count <= 1000 else None
        if target is None or target.arn != arn or target.fifo != fifo:
            problem = "The dead-letter target must exist and be of the same queue type."
        if problem:
            raise invalid("RedrivePolicy", value, problem)
        policy = {"deadLetterTargetArn": arn, "maxReceiveCount": count}
        return json.dumps(policy, separators=(",", ":"))

    def apply(self, queue: Queue, values: Mapping[str, str]) -> None:
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

    # -- sending --------------------------------------------------------------------------------

    def send(self, queue: Queue, entry: Mapping[str, Any]) -> dict[str, Any]:
        body, delay = entry.get("MessageBody", ""), entry.get("DelaySeconds")
        attributes = entry.get("MessageAttributes") or {}
        md5_attributes, size = digest_attributes(attributes) if attributes else (None, 0)
        limit = int(queue.attributes["MaximumMessageSize"])
        md5_body = rules.md5_of_body(check_body(body, size, limit))
        system = {"SenderId": _SENDER_ID, "SentTimestamp": str(time.time_ns() // 1_000_000)}
        if trace := entry.get("MessageSystemAttributes"):
            system["AWSTraceHeader"] = trace_header(trace)
        message_id, now = self.new_id(), self.clock()
        response = {"MD5OfMessageBody": md5_body, "MessageId": message_id}
        if md5_attributes:
            response["MD5OfMessageAttributes"] = md5_attributes
        group_id = entry.get("MessageGroupId")
        if queue.fifo:
            if original := _deduplicate(queue, message_id, entry, system, now):
                return response | {"MessageId": original[0], "SequenceNumber": original[1]}
            response["SequenceNumber"] = system["SequenceNumber"]
        elif entry.get("MessageDeduplicationId") is not None:
            raise invalid(
                "MessageDeduplicationId", entry["MessageDeduplicationId"], _NOT_FOR_THIS_QUEUE
            )
        elif group_id is not None:
            system["MessageGroupId"] = group_id  # fair queuing: a label, not an ordering
        if delay is None:
            delay = int(queue.attributes["DelaySeconds"])
        check_int("DelaySeconds", delay, 0, rules.MAX_DELAY)
        message = StoredMessage(
            _serial(queue), message_id, str(body), md5_body, md5_attributes,
            {name: dict(value) for name, value in attributes.items()}, system,
            group_id if queue.fifo else None,
        )  # fmt: skip
        self.enqueue(queue, message, now + delay if delay else None)
        return response

    def enqueue(self, queue: Queue, message: StoredMessage, due: float | None) -> None:
        queue.messages[message.serial] = message
        if queue.fifo:
            queue.groups.setdefault(str(message.group_id), deque()).append(message)
        if due is None:
            self.make_visible(queue, message)
        else:
            _set_state(queue, message, DELAYED)
            _schedule(queue, message, due)
        queue.notify()

    # -- receiving ------------------------------------------------------------------------------

    def receive(
        self, queue: Queue, limit: int, visibility: int | None, attempt_id: str | None
    ) -> list[tuple[StoredMessage, str]]:
        now = self.clock()
        self.promote(queue, now)
        previous = queue.attempts.get(attempt_id, now) if attempt_id and queue.fifo else None
        if previous and all(m.state == INFLIGHT and m.receipt_handle == h for m, h in previous):
            return previous
        if visibility is None:
            visibility = int(queue.attributes["VisibilityTimeout"])
        taken = self.take_fifo(queue, limit) if queue.fifo else self.take_standard(queue, limit)
        now_ms = str(time.time_ns() // 1_000_000)
        received = [(m, _deliver(queue, m, now, now + visibility, now_ms)) for m in taken]
        if attempt_id and queue.fifo and received:
            queue.attempts.put(attempt_id, received, now)
        if received and not visibility:
            queue.notify()  # visible again at once: another poller may take them
        return received

    def take_standard(self, queue: Queue, limit: int) -> list[StoredMessage]:
        taken: list[StoredMessage] = []
        while len(taken) < limit and queue.ready:
            message = queue.ready.popleft()
            if message.state == VISIBLE and not self.dead_letter(queue, message):
                taken.append(message)
        return taken

    def take_fifo(self, queue: Queue, limit: int) -> list[StoredMessage]:
        """Take messages group by group, in order, stopping at a delayed one in each group."""
        taken: list[StoredMessage] = []
        while len(taken) < limit and queue.ready_groups:
            group_id = queue.ready_groups.popleft()
            queue.queued_groups.discard(group_id)
            group = queue.groups.get(group_id)
            if group is None or group_id in queue.group_inflight:
                continue
            for message in group:
                if len(taken) >= limit or message.state in (DELAYED, INFLIGHT):
                    break
                if message.state == VISIBLE and not self.dead_letter(queue, message):
                    taken.append(message)
            _tidy_group(queue, group_id)
        return taken

    def dead_letter(self, queue: Queue, message: StoredMessage) -> bool:
        """Move a message received maxReceiveCount times to the dead-letter queue, as SQS does."""
        if queue.redrive is None or message.receive_count < queue.redrive[1]:
            return False
        target = self.queues.get(queue.redrive[0].rpartition(":")[2])
        if target is None or target is queue:
            return False  # SQS keeps delivering while the target is missing
        _remove(queue, message)
        # Same id, body, attributes, timestamps and receive count; a new life in `target`.
        moved = replace(
            message,
            serial=_serial(target),
            state=OUTSIDE,
            version=0,
            scheduled=False,
            receipt_handle=None,
            system=message.system | {"DeadLetterQueueSourceArn": queue.arn},
        )
        self.enqueue(target, moved, None)
        return True

    def promote(self, queue: Queue, now: float) -> None:
        """Make visible every delayed or in-flight message whose time has come."""
        pending = queue.pending
        while pending and pending[0][0] <= now:
            _, _, version, message = heapq.heappop(pending)
            if version != message.version:
                queue.stale -= 1
                continue
            message.scheduled = False
            self.make_visible(queue, message)

    def make_visible(self, queue: Queue, message: StoredMessage) -> None:
        was = message.state
        _set_state(queue, message, VISIBLE)
        if not queue.fifo:
            queue.ready.append(message)
            return
        if was == INFLIGHT:
            _release_group(queue, str(message.group_id))
        _offer_group(queue, str(message.group_id))

    def wait(self, queue: Queue, remaining: float) -> None:
        """Block until a change is notified, the next deadline in `pending`, or `remaining`."""
        timeout = remaining
        if queue.pending:
            timeout = min(timeout, max(queue.pending[0][0] - self.clock(), 0.001))
        queue.waiters += 1
        try:
            queue.cond.wait(timeout)
        finally:
            queue.waiters -= 1

    # -- deleting and visibility ----------------------------------------------------------------

    def delete(self, queue: Queue, handle: object) -> None:
        message = _resolve(queue, handle)
        if message is not None:
            _remove(queue, message)
            if queue.fifo:
                _offer_group(queue, str(message.group_id))
            queue.notify()

    def change_visibility(self, queue: Queue, handle: object, seconds: int) -> None:
        message = _resolve(queue, handle)
        if message is None:
            reason = "Message does not exist or is not available for visibility timeout change."
            raise invalid("ReceiptHandle", handle, reason)
        if message.state != INFLIGHT:
            raise Fault("MessageNotInflight", "The message is not in flight.")
        now = self.clock()
        if now - message.received_at + seconds > MAX_VISIBILITY:
            reason = (
                f"Total VisibilityTimeout for the message is beyond the limit [{MAX_VISIBILITY}"
            )
            raise invalid("VisibilityTimeout", seconds, reason + " s]")
        if seconds:
            _schedule(queue, message, now + seconds)
        else:
            self.make_visible(queue, message)
        queue.notify()


def _deduplicate(
    queue: Queue, message_id: str, entry: Mapping[str, Any], system: dict[str, str], now: float
) -> tuple[str, str] | None:
    """FIFO checks; record this send, or return (message id, sequence) of its original."""
    group_id, dedup_id = entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
    if entry.get("DelaySeconds") is not None:
        raise invalid("DelaySeconds", entry["DelaySeconds"], _NOT_FOR_THIS_QUEUE)
    if not group_id:
        reason = "The request must contain the parameter MessageGroupId."
        raise Fault("MissingParameter", reason)
    if dedup_id is None:
        if queue.attributes["ContentBasedDeduplication"] != "true":
            reason = "The queue should either have ContentBasedDeduplication enabled or "
            raise Fault("InvalidParameterValue", reason + "MessageDeduplicationId provided")
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


# -- state transitions (call with the lock held) --------------------------------------------------


def _serial(queue: Queue) -> int:
    queue.next_serial += 1
    return queue.next_serial


def _set_state(queue: Queue, message: StoredMessage, state: int) -> None:
    if message.scheduled:  # the heap entry for the old state is dead
        message.version += 1
        message.scheduled = False
        queue.stale += 1
    queue.count[message.state] -= 1
    queue.count[state] += 1
    message.state = state


def _schedule(queue: Queue, message: StoredMessage, due: float) -> None:
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


def _deliver(queue: Queue, message: StoredMessage, now: float, due: float, now_ms: str) -> str:
    _set_state(queue, message, INFLIGHT)
    message.receive_count += 1
    message.first_receive_ms = message.first_receive_ms or now_ms
    message.receipt_handle = f"{queue.token}:{message.serial}:{message.receive_count}"
    message.received_at = now
    if message.group_id is not None:
        queue.group_inflight[message.group_id] = queue.group_inflight.get(message.group_id, 0) + 1
    _schedule(queue, message, due)
    return message.receipt_handle


def _remove(queue: Queue, message: StoredMessage) -> None:
    if message.state == INFLIGHT and message.group_id is not None:
        _release_group(queue, message.group_id)
    _set_state(queue, message, OUTSIDE)
    del queue.messages[message.serial]


def _resolve(queue: Queue, handle: object) -> StoredMessage | None:
    """The message a receipt handle names; None if it is gone (deleted, purged, moved)."""
    token, _, rest = str(handle).partition(":")
    serial = rest.partition(":")[0]
    if token != queue.token or not (serial.isascii() and serial.isdigit()):
        raise Fault("ReceiptHandleIsInvalid", "The input receipt handle is invalid.")
    message = queue.messages.get(int(serial))
    if message is None and int(serial) <= queue.next_serial:
        return None
    if message is None or message.receipt_handle != handle:
        raise Fault("ReceiptHandleIsInvalid", "The input receipt handle is invalid.")
    return message


def _release_group(queue: Queue, group_id: str) -> None:
    left = queue.group_inflight[group_id] - 1
    if left:
        queue.group_inflight[group_id] = left
    else:
        del queue.group_inflight[group_id]


def _tidy_group(queue: Queue, group_id: str) -> deque[StoredMessage] | None:
    group = queue.groups.get(group_id)
    while group and group[0].state == OUTSIDE:
        group.popleft()
    if group is not None and not group:
        del queue.groups[group_id]
        return None
    return group


def _offer_group(queue: Queue, group_id: str) -> None:
    """Queue a FIFO group for delivery if none of it is in flight and its head is visible."""
    if group_id in queue.group_inflight or group_id in queue.queued_groups:
        return
    group = _tidy_group(queue, group_id)
    if group and group[0].state == VISIBLE:
        queue.queued_groups.add(group_id)
        queue.ready_groups.append(group_id)
