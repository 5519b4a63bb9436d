"""The producer's one logic: check every message, then send, as a plan the drivers run.

A plan (`_retrying.Plan`) yields what it needs done, a call or a sleep; `sync.Producer` runs it
with blocking calls (`_retrying.drive`), `aio.AsyncProducer` on the event loop with the calls
in worker threads (`_retrying.drive_async`). Each SQS call is `_retrying.retried`: the retry
engine the consumer's SQS adapter uses too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, Protocol, cast

import attrs

from .._checks import QUEUE_URL_SCHEMES, missing_methods, queue_url_problem
from .._pipeline.sqs import build_client
from .._retrying import Backoff, Plan, retried
from .._sqs_rules import MAX_DELAY
from ..errors import TRANSIENT_CODES, error_code
from ._encoding import (
    AttributeValue,
    Outgoing,
    batches,
    encode_attributes,
    fifo_id,
    outgoing,
    trace_context,
)
from .failures import SendError, SendFailure

__all__ = [
    "ATTEMPTS",
    "BACKOFF",
    "Options",
    "ProducerClient",
    "Sending",
    "check_arguments",
    "check_queue",
]

ATTEMPTS = 6  # tries per call and per failed entry; with BACKOFF about 3 s at worst
BACKOFF = Backoff(base=0.05, cap=2.0)


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
class Options:
    delay: int | None
    group_id: str | None
    deduplication_id: str | None
    attributes: Mapping[str, AttributeValue] | None


def _call_failure(exc: Exception, index: int) -> SendFailure:
    text = getattr(exc, "response", {}).get("Error", {}).get("Message") or str(exc)
    return SendFailure(index, error_code(exc) or type(exc).__name__, text, sender_fault=True)


def _entry_failure(entry: Mapping[str, Any]) -> SendFailure:
    code, text = str(entry.get("Code", "")), str(entry.get("Message", ""))
    return SendFailure(int(entry["Id"]), code, text, bool(entry.get("SenderFault", True)))


def _transient(entry: Mapping[str, Any]) -> bool:
    return not entry.get("SenderFault", True) or entry.get("Code") in TRANSIENT_CODES


def check_arguments(
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


class Sending:
    """What both producers share: the queue, its client, what was learnt of the queue, and
    the plans that check and send messages.

    Args:
        who: the producer class's name, for error messages.
        queue_url: the queue's URL.
        client: a boto3 SQS client or compatible object; None builds one.
        endpoint_url: passed to boto3 when the client is built here.
        region_name: passed to boto3 when the client is built here.

    Raises:
        TypeError, ValueError: as documented by `Producer`.
    """

    def __init__(
        self,
        who: str,
        queue_url: str,
        *,
        client: ProducerClient | None,
        endpoint_url: str | None,
        region_name: str | None,
    ) -> None:
        check_arguments(who, queue_url, client, endpoint_url, region_name)
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

    def plan(self, bodies: Iterable[object], options: Options, *, single: bool) -> Plan[list[str]]:
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
        for batch in batches(messages):
            yield from self._send_batch(batch, ids)
        return [cast(str, message_id) for message_id in ids]

    def _prepare(self, bodies: Iterable[object], options: Options) -> list[Outgoing]:
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
            common["MessageGroupId"] = fifo_id("group_id", options.group_id)
        elif self.fifo:
            raise ValueError(f"group_id is required for the FIFO queue {self.queue_url}")
        shaped, trace = encode_attributes(options.attributes or {}), trace_context()
        return [outgoing(i, body, common, shaped, trace) for i, body in enumerate(bodies)]

    def _set_dedup_ids(
        self, messages: list[Outgoing], given: str | None, single: bool
    ) -> Plan[None]:
        """Set MessageDeduplicationId: as given (a prefix for batches), derived, or none."""
        if given is not None:
            if not self.fifo:
                raise ValueError("deduplication_id is only for FIFO queues")
            fifo_id("deduplication_id", given if single else f"{given}-{len(messages)}")
            for m in messages:
                m.params["MessageDeduplicationId"] = given if single else f"{given}-{m.index}"
            return
        if not self.fifo or not messages or (yield from self._content_based()):
            return
        token = uuid.uuid4().hex  # one per call: retries within the call dedupe, calls do not
        for m in messages:
            seed = f"{token}\0{m.index}\0{m.params['MessageBody']}".encode()
            m.params["MessageDeduplicationId"] = hashlib.sha256(seed).hexdigest()

    def _content_based(self) -> Plan[bool]:
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

    def _send_batch(self, batch: list[Outgoing], ids: list[str | None]) -> Plan[None]:
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


CHECK_ATTEMPTS = 4  # tries of a queue check while SQS fails transiently, as the consumer's
_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "AuthorizationError"})


def check_queue(client: ProducerClient, queue_url: str) -> Plan[None]:
    """GetQueueAttributes once, so that a missing queue or bad credentials show before a send.

    Access denied passes: a role may be allowed sqs:SendMessage and nothing else, which is all
    sending needs.

    Raises:
        Exception: the client's error, once it is fatal or the tries ran out.
    """
    ask = partial(client.get_queue_attributes, QueueUrl=queue_url, AttributeNames=["QueueArn"])
    try:
        yield from retried(ask, attempts=CHECK_ATTEMPTS, backoff=BACKOFF)
    except Exception as exc:
        if error_code(exc) not in _ACCESS_DENIED:
            raise


def _call(function: Callable[[], Any]) -> Plan[Any]:
    """One SQS call, retried with backoff while it fails transiently; then its error raised."""
    return retried(function, attempts=ATTEMPTS, backoff=BACKOFF)
