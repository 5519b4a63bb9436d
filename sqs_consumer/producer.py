"""Sending messages: `Producer` (blocking) and its async twin `AsyncProducer`.

Both check every message before the first call (body type and size, attributes, delay, FIFO
ids), send batches of up to 10 entries within the 1 MiB request limit, retry transient failures
with jittered backoff and raise `SendError` for the rest. The sending logic is written once, as
generators ("plans") that yield what they need done: a callable to call (its result or its
exception comes back) or a float to sleep. `_drive` runs a plan with blocking calls;
`_drive_async` runs each call in a worker thread and sleeps on the event loop.

Longer than our ~400-line guide because it holds two public twins with the SPEC's full keyword
signatures and docstrings, plus the checks SQS would otherwise only report after a partial
send; the body/attribute encoding (`encode_body`, `encode_attributes`, `message_size`) is the
part to split out first if it grows.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import anyio.to_thread
import attrs
from opentelemetry.propagate import inject

from . import _sqs_rules as rules
from ._checks import QUEUE_URL_SCHEMES, missing_methods, queue_url_problem
from ._pipeline.sqs import Backoff, build_client
from ._sqs_rules import (
    MAX_ATTRIBUTES,
    MAX_BATCH_ENTRIES,
    MAX_DELAY,
    MAX_MESSAGE_BYTES,
    message_size,
)
from .errors import TRANSIENT_CODES, ErrorKind, SqsError, classify, error_code

__all__ = ["AsyncProducer", "Producer", "SendError", "SendFailure"]

ATTEMPTS = 6  # tries per call and per failed entry; with BACKOFF about 3 s at worst
BACKOFF = Backoff(base=0.05, cap=2.0)

T = TypeVar("T")
AttributeValue = str | int | float | bytes | Mapping[str, Any]
# A plan yields a callable to call (the driver sends back its result or throws its exception
# in) or a float: seconds to sleep.
_Plan = Generator[Callable[[], Any] | float, Any, T]


class ProducerClient(Protocol):
    """Protocol: the boto3 SQS client methods a producer calls (keyword arguments only)."""

    # Read-only callables, as in `sqs.SqsClient`: boto3, its stubs and MemorySQS all fit.
    @property
    def send_message(self) -> Callable[..., Any]: ...
    @property
    def send_message_batch(self) -> Callable[..., Any]: ...
    @property
    def get_queue_attributes(self) -> Callable[..., Any]: ...


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


@attrs.frozen
class _Options:
    delay: int | None
    group_id: str | None
    deduplication_id: str | None
    attributes: Mapping[str, AttributeValue] | None


@attrs.frozen
class _Outgoing:
    index: int
    params: dict[str, Any]  # SendMessage's, but QueueUrl; MessageDeduplicationId set later
    size: int


def encode_body(body: object) -> str:
    """The text SQS gets for `body`: a str as is, a dict or list as compact JSON.

    Raises:
        TypeError: another type, or a dict/list holding values JSON cannot encode.
        ValueError: an empty body, NaN or infinity, or characters SQS does not accept.
    """
    if isinstance(body, dict | list):
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    elif isinstance(body, str):
        text = body
    else:
        raise TypeError(f"message body must be str, dict or list, not {type(body).__name__}")
    if not text:
        raise ValueError("message body must not be empty")
    if (bad := rules.invalid_character(text)) is not None:
        raise ValueError(f"message body contains a character SQS rejects: {bad!r}")
    return text


def encode_attributes(attributes: Mapping[str, AttributeValue]) -> dict[str, dict[str, Any]]:
    """Message attributes in SQS's shape: str→String, int/float→Number, bytes→Binary.

    Raises:
        ValueError: more than 10, an invalid name, an empty value or a non-finite number.
        TypeError: a value of another type.
    """
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"{len(attributes)} message attributes; SQS allows {MAX_ATTRIBUTES}")
    return {_check_name(name): _attribute(name, value) for name, value in attributes.items()}


def _check_name(name: str) -> str:
    if rules.attribute_name_problem(name) is not None:
        raise ValueError(
            f"invalid message attribute name {name!r}: use 1-256 of A-Z a-z 0-9 _ - . with no "
            "leading, trailing or repeated '.' and no 'AWS.' or 'Amazon.' prefix"
        )
    return name


def _attribute(name: str, value: AttributeValue) -> dict[str, Any]:
    if isinstance(value, Mapping):
        kind = rules.attribute_kind(value)
        key = "BinaryValue" if kind == "Binary" else "StringValue"
        if kind and value.get(key):
            return dict(value)
        raise ValueError(f"message attribute {name!r}: needs a DataType (String, Number or "
                         f"Binary) and a non-empty {key}")  # fmt: skip
    if isinstance(value, bool):  # an int, but Number "True" would surprise: say what to pass
        raise TypeError(f"message attribute {name!r}: bool is not supported; pass a str")
    if isinstance(value, bytes):
        shaped: dict[str, Any] = {"DataType": "Binary", "BinaryValue": value}
    elif isinstance(value, int | float):
        if value != value or abs(value) == float("inf"):
            raise ValueError(f"message attribute {name!r}: {value} is not a finite number")
        text = str(value) if isinstance(value, int) else format(Decimal(repr(value)), "f")
        return {"DataType": "Number", "StringValue": text}
    elif isinstance(value, str):
        shaped = {"DataType": "String", "StringValue": value}
    else:
        raise TypeError(f"message attribute {name!r}: unsupported type {type(value).__name__}")
    if not value:
        raise ValueError(f"message attribute {name!r}: SQS rejects empty values")
    return shaped


def _trace_context() -> dict[str, str]:
    """W3C traceparent (and tracestate) of the current span; empty without an SDK or span."""
    carrier: dict[str, str] = {}
    try:
        inject(carrier)
    except Exception:  # tracing must never stop a message from being sent
        return {}
    return {key: carrier[key] for key in ("traceparent", "tracestate") if carrier.get(key)}


def _add_trace(attributes: dict[str, dict[str, Any]], trace: Mapping[str, str], size: int) -> int:
    """Add traceparent, then tracestate, while the attribute count and the size leave room."""
    for name, value in trace.items():
        shaped = {"DataType": "String", "StringValue": value}
        grown = size + message_size("", {name: shaped})
        if len(attributes) >= MAX_ATTRIBUTES or name in attributes or grown > MAX_MESSAGE_BYTES:
            break  # never a tracestate without its traceparent
        attributes[name], size = shaped, grown
    return size


def _fifo_id(kind: str, value: str) -> str:
    if not rules.FIFO_ID.fullmatch(value):
        raise ValueError(f"{kind} {value!r}: must be 1-128 printable ASCII characters, no spaces")
    return value


def _outgoing(
    index: int,
    body: object,
    common: Mapping[str, Any],
    shaped: Mapping[str, dict[str, Any]],
    trace: Mapping[str, str],
) -> _Outgoing:
    """One message's SendMessage parameters, checked against the size limit."""
    text = encode_body(body)
    size = message_size(text, shaped)
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"message {index} is {size} bytes (body and attributes); SQS's limit is "
            f"{MAX_MESSAGE_BYTES} bytes"
        )
    attributes = dict(shaped)
    size = _add_trace(attributes, trace, size)
    params = {"MessageBody": text, **common}
    if attributes:
        params["MessageAttributes"] = attributes
    return _Outgoing(index=index, params=params, size=size)


def _batches(messages: list[_Outgoing]) -> Iterable[list[_Outgoing]]:
    """Consecutive runs of at most 10 messages whose sizes add up to at most 1 MiB."""
    batch: list[_Outgoing] = []
    size = 0
    for message in messages:
        if len(batch) == MAX_BATCH_ENTRIES or size + message.size > MAX_MESSAGE_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message.size
    if batch:
        yield batch


def _call(function: Callable[[], Any]) -> _Plan[Any]:
    """One SQS call, retried with backoff while it fails transiently; then its error raised."""
    attempt = 0
    while True:
        try:
            return (yield function)
        except Exception as exc:
            attempt += 1
            if classify(exc) is ErrorKind.FATAL or attempt >= ATTEMPTS:
                raise
            yield BACKOFF.delay(attempt)


def _call_failure(exc: Exception, index: int) -> SendFailure:
    text = getattr(exc, "response", {}).get("Error", {}).get("Message") or str(exc)
    return SendFailure(index, error_code(exc) or type(exc).__name__, text, sender_fault=True)


def _entry_failure(entry: Mapping[str, Any]) -> SendFailure:
    code, text = str(entry.get("Code", "")), str(entry.get("Message", ""))
    return SendFailure(int(entry["Id"]), code, text, bool(entry.get("SenderFault", True)))


def _transient(entry: Mapping[str, Any]) -> bool:
    return not entry.get("SenderFault", True) or entry.get("Code") in TRANSIENT_CODES


def _drive(plan: _Plan[T]) -> T:
    """Run a plan with blocking calls and sleeps."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            step = plan.send(reply) if error is None else plan.throw(error)
            reply, error = None, None
            if isinstance(step, float):
                time.sleep(step)
                continue
            try:
                reply = step()
            except Exception as exc:
                error = exc
    except StopIteration as stop:
        return cast(T, stop.value)
    finally:
        plan.close()


async def _drive_async(plan: _Plan[T]) -> T:
    """Run a plan in an event loop: each call in a worker thread, sleeps on the loop."""
    reply: Any = None
    error: Exception | None = None
    try:
        while True:
            step = plan.send(reply) if error is None else plan.throw(error)
            reply, error = None, None
            if isinstance(step, float):
                await anyio.sleep(step)
                continue
            try:
                reply = await anyio.to_thread.run_sync(step)
            except Exception as exc:
                error = exc
    except StopIteration as stop:
        return cast(T, stop.value)
    finally:
        plan.close()


class Producer:
    """Sends messages to one SQS queue, blocking until SQS has them. Safe to share by threads.

    Args:
        queue_url: the queue's URL; a ``.fifo`` URL is a FIFO queue, ``memory://NAME`` the
            shared in-memory SQS.
        client: a boto3 SQS client or compatible object; None builds one.
        endpoint_url: passed to boto3 when the client is built here.
        region_name: passed to boto3 when the client is built here.

    Raises:
        TypeError: `queue_url` is not a string (e.g. None), or `client` lacks the SQS
            methods a producer calls.
        ValueError: `queue_url` is not a queue URL (no known scheme, whitespace), or
            `endpoint_url`/`region_name` is not a non-empty string.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: ProducerClient | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        _check_arguments(type(self).__name__, queue_url, client, endpoint_url, region_name)
        if client is None:
            built = build_client(
                queue_url,
                endpoint_url=endpoint_url,
                region_name=region_name,
                max_connections=10,
                read_timeout=30,
            )
            client = cast(ProducerClient, built)
        self.queue_url = queue_url
        self.client = client
        self.fifo = queue_url.endswith(".fifo")
        self._content_dedup: bool | None = None  # learnt on the first FIFO send that needs it

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.queue_url}>"

    def send(
        self,
        body: object,
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> str:
        """Send one message; return its message id.

        Args:
            body: a str (sent as is), or a dict or list (sent as compact JSON).
            delay: seconds (0 to 900) before the message can be received; not on FIFO queues.
            group_id: MessageGroupId; required on FIFO queues.
            deduplication_id: MessageDeduplicationId (FIFO only). None: SQS deduplicates by
                content if the queue is set up so, else an id unique to this call is derived.
            attributes: name → str, int, float, bytes or an SQS-shaped value (at most 10).

        Raises:
            TypeError: a body or attribute value of an unsupported type.
            ValueError: a body over 1 MiB (body plus attributes) or an invalid option; raised
                before any call.
            SendError: SQS refused the message, or kept failing for `ATTEMPTS` tries.
        """
        options = _Options(delay, group_id, deduplication_id, attributes)
        return _drive(self._plan([body], options, single=True))[0]

    def send_many(
        self,
        bodies: Iterable[object],
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> list[str]:
        """Send messages in batches of up to 10 and 1 MiB; return their ids in input order.

        Every message is checked before the first call. Batches go one after the other, so a
        FIFO group keeps the input order. Transient failures (of a call or of single entries)
        are retried; sending stops at the first batch that does not go through.

        Args:
            bodies: str, dict or list bodies, as for `send`.
            delay: as for `send`, for every message.
            group_id: as for `send`, for every message.
            deduplication_id: FIFO only: a prefix; message i gets ``f"{prefix}-{i}"``, so the
                same call repeated within 5 minutes sends nothing twice.
            attributes: as for `send`, for every message.

        Raises:
            TypeError: a body or attribute value of an unsupported type.
            ValueError: a body over 1 MiB or an invalid option; raised before any call.
            SendError: messages SQS refused; its `message_ids` has the ids of those sent.
        """
        options = _Options(delay, group_id, deduplication_id, attributes)
        return _drive(self._plan(bodies, options, single=False))

    def _plan(self, bodies: Iterable[object], options: _Options, single: bool) -> _Plan[list[str]]:
        """Check everything, then send: SendMessage for `single`, else batch after batch."""
        messages = self._prepare(bodies, options)
        yield from self._set_dedup_ids(messages, options.deduplication_id, single)
        ids: list[str | None] = [None] * len(messages)
        if single:
            send = partial(self.client.send_message, QueueUrl=self.queue_url)
            try:
                response = yield from _call(partial(send, **messages[0].params))
            except Exception as exc:
                raise SendError([_call_failure(exc, 0)], ids) from exc
            return [str(response["MessageId"])]
        for batch in _batches(messages):
            yield from self._send_batch(batch, ids)
        return [cast(str, message_id) for message_id in ids]

    def _prepare(self, bodies: Iterable[object], options: _Options) -> list[_Outgoing]:
        """Encode and check every message; ValueError or TypeError before any call."""
        if isinstance(bodies, str | bytes | dict):  # would be iterated char by char, or by key
            raise TypeError(f"send_many takes an iterable of bodies, not {type(bodies).__name__}")
        common: dict[str, Any] = {}
        if (delay := options.delay) is not None:
            if self.fifo:
                raise ValueError("FIFO queues do not support a per-message delay")
            if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY:
                raise ValueError(f"delay must be an int from 0 to {MAX_DELAY} s, not {delay!r}")
            common["DelaySeconds"] = delay
        if options.group_id is not None:
            common["MessageGroupId"] = _fifo_id("group_id", options.group_id)
        elif self.fifo:
            raise ValueError(f"group_id is required for the FIFO queue {self.queue_url}")
        shaped, trace = encode_attributes(options.attributes or {}), _trace_context()
        return [_outgoing(i, body, common, shaped, trace) for i, body in enumerate(bodies)]

    def _set_dedup_ids(
        self, messages: list[_Outgoing], given: str | None, single: bool
    ) -> _Plan[None]:
        """Set MessageDeduplicationId: as given (a prefix for batches), derived, or none."""
        if given is not None:
            if not self.fifo:
                raise ValueError("deduplication_id is only for FIFO queues")
            _fifo_id("deduplication_id", given if single else f"{given}-{len(messages)}")
            for m in messages:
                m.params["MessageDeduplicationId"] = given if single else f"{given}-{m.index}"
            return
        if not self.fifo or not messages or (yield from self._content_based()):
            return
        token = uuid.uuid4().hex  # one per call: retries within the call dedupe, calls do not
        for m in messages:
            seed = f"{token}\0{m.index}\0{m.params['MessageBody']}".encode()
            m.params["MessageDeduplicationId"] = hashlib.sha256(seed).hexdigest()

    def _content_based(self) -> _Plan[bool]:
        """Whether the FIFO queue has ContentBasedDeduplication (asked once)."""
        if self._content_dedup is None:
            attribute = "ContentBasedDeduplication"
            get = self.client.get_queue_attributes
            try:
                answer = yield from _call(
                    partial(get, QueueUrl=self.queue_url, AttributeNames=[attribute])
                )
            except Exception:  # e.g. no permission to ask: explicit ids work on any FIFO queue
                answer = {}
            self._content_dedup = answer.get("Attributes", {}).get(attribute) == "true"
        return self._content_dedup

    def _send_batch(self, batch: list[_Outgoing], ids: list[str | None]) -> _Plan[None]:
        """SendMessageBatch, resending entries that failed transiently; SendError otherwise."""
        pending = {str(m.index): m for m in batch}  # entry Id = input index
        send = partial(self.client.send_message_batch, QueueUrl=self.queue_url)
        for attempt in range(1, ATTEMPTS + 1):
            entries = [{"Id": key, **m.params} for key, m in pending.items()]
            try:
                response = yield from _call(partial(send, Entries=entries))
            except Exception as exc:
                raise SendError(
                    [_call_failure(exc, m.index) for m in pending.values()], ids
                ) from exc
            for done in response.get("Successful") or ():
                ids[int(done["Id"])] = str(done["MessageId"])
                pending.pop(str(done["Id"]), None)
            failed = response.get("Failed") or []
            if not pending:
                return
            if attempt == ATTEMPTS or not failed or not all(map(_transient, failed)):
                unanswered = pending.keys() - {str(entry["Id"]) for entry in failed}
                failed += [{"Id": key, "Code": "NoResult", "Message": ""} for key in unanswered]
                raise SendError(map(_entry_failure, failed), ids)
            yield BACKOFF.delay(attempt)


def _check_arguments(
    who: str, queue_url: object, client: object, endpoint_url: object, region_name: object
) -> None:
    """Refuse what could only fail at the first send, naming the argument."""
    problem = queue_url_problem(queue_url)
    if problem is not None:
        error = ValueError if isinstance(queue_url, str) else TypeError
        raise error(
            f"{who} queue_url must be a queue URL starting with {', '.join(QUEUE_URL_SCHEMES)}, "
            f"got {queue_url!r}: {problem}"
        )
    for name, value in (("endpoint_url", endpoint_url), ("region_name", region_name)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{who} {name} must be None or a non-empty string, got {value!r}")
    if client is not None:
        needed = ["send_message", "send_message_batch"]
        if str(queue_url).endswith(".fifo"):
            needed.append("get_queue_attributes")  # to learn about content-based dedup
        missing = missing_methods(client, needed)
        if missing:
            text = repr(client)
            text = text if len(text) <= 80 else text[:77] + "..."
            raise TypeError(
                f'{who} client must be None or an SQS client such as boto3.client("sqs") '
                f"(an object with {', '.join(needed)}), got {text}, which lacks "
                f"{', '.join(missing)}"
            )


class AsyncProducer:
    """`Producer` for async code: the SQS calls run in worker threads, never on the event loop.

    Args:
        queue_url: as for `Producer`.
        client: as for `Producer`.
        endpoint_url: as for `Producer`.
        region_name: as for `Producer`.

    Raises:
        TypeError, ValueError: as for `Producer`.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: ProducerClient | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        _check_arguments("AsyncProducer", queue_url, client, endpoint_url, region_name)
        self._producer = Producer(
            queue_url, client=client, endpoint_url=endpoint_url, region_name=region_name
        )
        self.queue_url, self.client = queue_url, self._producer.client

    def __repr__(self) -> str:
        return f"<AsyncProducer {self.queue_url}>"

    async def send(
        self,
        body: object,
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> str:
        """Send one message; return its message id (as `Producer.send`).

        Takes the arguments of `Producer.send`.

        Raises:
            TypeError, ValueError, SendError: as for `Producer.send`.
        """
        options = _Options(delay, group_id, deduplication_id, attributes)
        return (await _drive_async(self._producer._plan([body], options, single=True)))[0]

    async def send_many(
        self,
        bodies: Iterable[object],
        *,
        delay: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> list[str]:
        """Send messages in batches, in order; return their ids in input order (as `send_many`).

        Takes the arguments of `Producer.send_many`.

        Raises:
            TypeError, ValueError, SendError: as for `Producer.send_many`.
        """
        options = _Options(delay, group_id, deduplication_id, attributes)
        return await _drive_async(self._producer._plan(bodies, options, single=False))
