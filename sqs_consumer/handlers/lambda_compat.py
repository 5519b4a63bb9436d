"""`LambdaHandler`: run an unmodified AWS Lambda SQS handler `fn(event, context)`.

The handler gets what Lambda's SQS event source mapping would give it: an event
`{"Records": [...]}` with Lambda's record fields and a context with Lambda's attributes. Its
return value is read as Lambda reads it with `ReportBatchItemFailures` enabled::

    {"batchItemFailures": [{"itemIdentifier": "<messageId>"}, ...]}   -> those messages fail
    {"batchItemFailures": []}, None, or any other value                -> the whole batch succeeded
    an itemIdentifier that is empty, missing or not in the batch       -> the whole batch fails
    a raised exception, or a value that is not JSON                    -> the whole batch fails
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import attrs

from .. import _sqs_rules as rules
from .._pipeline.calls import is_async_callable, resolve, run_sync
from ..message import Message
from .batch import BatchResult, normalize_batch_result

__all__ = [
    "CognitoIdentity",
    "LambdaContext",
    "LambdaHandler",
    "lambda_event",
    "queue_arn_from_url",
    "read_lambda_response",
]

LambdaFunction = Callable[[dict[str, Any], Any], Any]
"""`fn(event, context)`, sync or async, as written for AWS Lambda."""

# The system attributes Lambda puts in a record, in the order its sample events show them.
LAMBDA_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "AWSTraceHeader",
    "SentTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "SenderId",
    "MessageDeduplicationId",
    "ApproximateFirstReceiveTimestamp",
    "DeadLetterQueueSourceArn",
)
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"  # MemorySQS's and moto's: their QueueArn agrees
_AWS_HOST = re.compile(r"(^|\.)(amazonaws\.com(\.cn)?|api\.aws)$")
_REGION_LABEL = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT_PATH = re.compile(r"^/(\d{12})/([^/]+)/?$")
_ARN = re.compile(r"^arn:[a-z-]+:sqs:([a-z0-9-]+):(\d{12}):([^:]+)$")


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@lru_cache(maxsize=256)
def queue_arn_from_url(queue_url: str, region_name: str | None = None) -> str:
    """The queue ARN for a queue URL.

    `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (and the other AWS URL forms) give
    `arn:aws:sqs:REGION:ACCOUNT:NAME`. Any other URL (moto, LocalStack, `memory://NAME`) uses
    `region_name` or "us-east-1", and the 12-digit account in its path or "123456789012"
    (the account of MemorySQS and moto, so that a `memory://` queue's ARN is its QueueArn).

    Args:
        queue_url: the queue URL.
        region_name: the region for URLs that do not name one.
    """
    parts = urlsplit(queue_url)
    host = parts.hostname or ""
    path = _ACCOUNT_PATH.match(parts.path)
    if path is not None and _AWS_HOST.search(host):
        labels = [label for label in host.split(".") if _REGION_LABEL.match(label)]
        region = labels[0] if labels else DEFAULT_REGION
        return f"arn:{_partition(region)}:sqs:{region}:{path.group(1)}:{path.group(2)}"
    region = region_name or DEFAULT_REGION
    if path is not None:
        account, name = path.group(1), path.group(2)
    else:
        account, name = DEFAULT_ACCOUNT, parts.path.strip("/").rsplit("/", 1)[-1] or host
    return f"arn:{_partition(region)}:sqs:{region}:{account}:{name}"


def _b64(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    return str(value)  # a client that already returns base64 text


def _lambda_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": _b64(binary) if binary is not None else None,
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [_b64(item) for item in value.get("BinaryListValues") or []],
        "dataType": value.get("DataType"),
    }


def _record(message: Message, queue_arn: str) -> dict[str, Any]:
    attributes = {
        name: message.attributes[name] for name in LAMBDA_ATTRIBUTES if name in message.attributes
    }
    attributes.setdefault("ApproximateReceiveCount", str(message.receive_count))
    md5_of_body = message.md5_of_body or rules.md5_of_body(message.body)
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": {
            name: _lambda_attribute(value) for name, value in message.message_attributes.items()
        },
        "md5OfMessageAttributes": rules.md5_of_attributes(message.message_attributes),
        "md5OfBody": md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def lambda_event(messages: Sequence[Message], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping would deliver for `messages`.

    Args:
        messages: one batch, in order.
        queue_arn: the ARN of the queue they came from (`eventSourceARN`).
    """
    return {"Records": [_record(message, queue_arn) for message in messages]}


@attrs.frozen(kw_only=True)
class CognitoIdentity:
    """`context.identity`: as on Lambda for an SQS invocation, both ids are None."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@attrs.frozen(kw_only=True)
class LambdaContext:
    """The Lambda context object, with the attributes of the Python runtime's.

    `memory_limit_in_mb` is a str, as the Python runtime gives it (it reads it from the
    environment). `get_remaining_time_in_millis()` counts down from the invocation's timeout.
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    identity: CognitoIdentity = attrs.field(factory=CognitoIdentity)
    client_context: None = None
    tenant_id: str | None = None
    _deadline: float = attrs.field(repr=False)
    _clock: Callable[[], float] = attrs.field(repr=False)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's timeout (0 once it has passed)."""
        return max(0, int((self._deadline - self._clock()) * 1000))


def _json_default(value: object) -> object:
    if isinstance(value, decimal.Decimal):  # the Lambda runtime encodes Decimal as a number
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _as_lambda_sees_it(response: object) -> object:
    """The response after the JSON round trip between the runtime and the event source."""
    try:
        if isinstance(response, bytes | bytearray):
            return json.loads(response)
        return json.loads(json.dumps(response, default=_json_default))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"the Lambda handler's response is not valid JSON ({error}); "
            "Lambda fails the whole batch"
        ) from None


def _item_identifier(index: int, entry: object) -> str:
    identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
    if not isinstance(identifier, str) or not identifier:
        raise ValueError(
            f"batchItemFailures[{index}] = {entry!r} has no valid itemIdentifier; "
            "Lambda fails the whole batch"
        )
    return identifier


def read_lambda_response(response: object, messages: Sequence[Message]) -> BatchResult:
    """Read a Lambda handler's return value as Lambda does with ReportBatchItemFailures.

    Args:
        response: what the handler returned.
        messages: the batch it was given.

    Raises:
        ValueError: the whole batch fails: the response is not JSON, `batchItemFailures` is
            not a list, or an itemIdentifier is empty, missing or not in the batch.
    """
    seen = _as_lambda_sees_it(response)
    failures = seen.get("batchItemFailures") if isinstance(seen, dict) else None
    if failures is None:
        return BatchResult.all_ok()
    if not isinstance(failures, list):
        raise ValueError(
            f"batchItemFailures must be a list, got {failures!r}; Lambda fails the whole batch"
        )
    ids = [_item_identifier(index, entry) for index, entry in enumerate(failures)]
    return normalize_batch_result(ids, messages)


class LambdaHandler:
    """A batch handler that runs an AWS Lambda SQS handler `fn(event, context)` unchanged.

    Each batch becomes one invocation: the event holds one record per message, the context
    is a fresh `LambdaContext` (new aws_request_id, remaining time counting down from
    `timeout`). A sync `fn` runs in a worker thread, an async one on the event loop.

    Args:
        fn: the Lambda handler.
        queue_arn: `eventSourceARN`; None derives it from each message's queue URL.
        region_name: the region for queue URLs that do not name one (moto, `memory://`).
        timeout: seconds `get_remaining_time_in_millis()` counts down from (Lambda's
            function timeout; pass the consumer's handler_timeout to match it).
        function_name: `context.function_name`; None uses "sqs-consumer".
        function_version: `context.function_version`.
        memory_limit_in_mb: `context.memory_limit_in_mb` (given to fn as a str).
        clock: seconds on a monotonic clock, for the remaining time.

    Raises:
        TypeError: `fn` is not callable.
        ValueError: `timeout` is not positive, or `queue_arn` is not an SQS queue ARN.
    """

    __sqs_batch__ = True

    def __init__(
        self,
        fn: LambdaFunction,
        *,
        queue_arn: str | None = None,
        region_name: str | None = None,
        timeout: float = 900.0,
        function_name: str | None = None,
        function_version: str = "$LATEST",
        memory_limit_in_mb: int = 128,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"LambdaHandler needs a callable fn(event, context), got {fn!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(
                f"LambdaHandler timeout must be a positive number of seconds, got {timeout!r}"
            )
        if queue_arn is not None and not _ARN.match(queue_arn):
            raise ValueError(f"LambdaHandler queue_arn is not an SQS queue ARN: {queue_arn!r}")
        self.fn = fn
        self._queue_arn = queue_arn
        self._region_name = region_name
        self._timeout = float(timeout)
        self._function_name = function_name or "sqs-consumer"
        self._function_version = function_version
        self._memory = str(memory_limit_in_mb)
        self._clock = clock
        self._async = is_async_callable(fn)
        day = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
        self._log_stream = f"{day}/[{function_version}]{uuid.uuid4().hex}"

    def __repr__(self) -> str:
        return f"LambdaHandler({getattr(self.fn, '__qualname__', self.fn)!r})"

    def context_for(self, queue_arn: str) -> LambdaContext:
        """A fresh context for one invocation on the queue `queue_arn`."""
        _, partition, _, region, account, _ = queue_arn.split(":", 5)
        name = self._function_name
        return LambdaContext(
            function_name=name,
            function_version=self._function_version,
            invoked_function_arn=f"arn:{partition}:lambda:{region}:{account}:function:{name}",
            memory_limit_in_mb=self._memory,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=self._log_stream,
            deadline=self._clock() + self._timeout,
            clock=self._clock,
        )

    async def __call__(self, messages: Sequence[Message]) -> BatchResult:
        """Invoke fn once with the batch and read its response.

        An empty batch succeeds without an invocation (Lambda never sends one).

        Raises:
            ValueError: the response makes Lambda fail the whole batch.
            Exception: whatever fn raised (the whole batch fails).
        """
        if not messages:
            return BatchResult.all_ok()
        queue_arn = self._queue_arn or queue_arn_from_url(messages[0].queue_url, self._region_name)
        event = lambda_event(messages, queue_arn)
        context = self.context_for(queue_arn)
        if self._async:
            response = await resolve(self.fn(event, context), self.fn)
        else:
            # In the consumer's threads, under its limit (anyio's outside a consumer).
            response = await resolve(await run_sync(self.fn, event, context), self.fn)
        return read_lambda_response(response, messages)
