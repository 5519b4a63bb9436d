"""Request validation for MemorySQS: SQS's error answers, and the checks that raise them.

Everything here is pure (no queue state): parameter ranges, batch shapes, queue names and
attributes, message bodies and attributes. A failed check raises `Fault`, which the client
surface turns into the `ClientError` boto3 would raise, or into one failed batch entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import botocore.session
from botocore.errorfactory import ClientExceptionsFactory
from botocore.exceptions import ClientError

from .. import _sqs_rules as rules

NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")  # queue names (before .fifo) and batch entry ids
# Numeric queue attributes: (lowest, highest, default).
NUMERIC = {
    "DelaySeconds": (0, rules.MAX_DELAY, 0),
    "MaximumMessageSize": (1024, rules.MAX_MESSAGE_BYTES, rules.MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": (60, 1209600, 345600),
    "ReceiveMessageWaitTimeSeconds": (0, rules.MAX_WAIT, 0),
    "VisibilityTimeout": (0, rules.MAX_VISIBILITY, 30),
}
# FIFO-only attributes: the allowed values, the default first.
FIFO_CHOICES = {
    "ContentBasedDeduplication": ("false", "true"),
    "DeduplicationScope": ("queue", "messageGroup"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
# Stored and reported as given.
OPAQUE = frozenset({"Policy", "RedriveAllowPolicy", "RedrivePolicy", "SqsManagedSseEnabled"}) | {
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
}
COUNTED = ("ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessages")
QUEUE_ATTRIBUTE_NAMES = frozenset({*NUMERIC, *FIFO_CHOICES, *OPAQUE, *COUNTED}) | {
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


class Fault(Exception):
    """An SQS error answer; raised as a ClientError, or reported in a batch entry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def entry(self, entry_id: str) -> dict[str, Any]:
        return {"Id": entry_id, "SenderFault": True, "Code": self.code, "Message": self.message}

    def client_error(self, operation: str, status: int = 400) -> ClientError:
        code, query_code = _RAISED_CODES.get(self.code, (self.code, self.code))
        error = {"Code": code, "Message": self.message}
        error["Type"] = "Sender" if status < 500 else "Receiver"
        error["QueryErrorCode"] = query_code
        response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
        error_class: type[ClientError] = client_exceptions().from_code(query_code)
        return error_class(response, operation)


def invalid(name: str, value: object, reason: str) -> Fault:
    reason = f"Value {value} for parameter {name} is invalid. Reason: {reason}"
    return Fault("InvalidParameterValue", reason)


@functools.cache
def client_exceptions() -> Any:
    # Loaded on first use: the SQS service model costs ~0.1 s to read.
    model = botocore.session.get_session().get_service_model("sqs")
    return ClientExceptionsFactory().create_client_exceptions(model)


def check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(name, value, f"must be between {low} and {high}, if provided.")
    return value


def check_queue_name(name: str, attributes: Mapping[str, str] | None) -> bool:
    """Whether the queue is FIFO; Fault for a bad name or a name/FifoQueue mismatch."""
    fifo = (attributes or {}).get("FifoQueue", "false") == "true"
    if attributes and attributes.get("FifoQueue", "false") not in ("true", "false"):
        raise Fault("InvalidAttributeValue", "Invalid value for the parameter FifoQueue.")
    if not NAME.fullmatch(name.removesuffix(".fifo") if fifo else name):
        reason = "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80"
        raise Fault("InvalidParameterValue", reason + " in length")
    if fifo != name.endswith(".fifo") or len(name) > 80:
        reason = "The name of a FIFO queue must end with the .fifo suffix, and only it."
        raise Fault("InvalidParameterValue", reason)
    return fifo


def check_attributes(
    attributes: Mapping[str, str], *, fifo: bool, redrive: Callable[[str, bool], str]
) -> dict[str, str]:
    """Queue attributes as stored; `redrive` checks a RedrivePolicy against the queues."""
    values: dict[str, str] = {}
    valid = True
    for name, raw in attributes.items():
        value = str(raw)
        if name == "RedrivePolicy":
            value = redrive(value, fifo)
        elif name in NUMERIC:
            low, high, _ = NUMERIC[name]
            valid = value.isdecimal() and low <= int(value) <= high
        elif name in FIFO_CHOICES and fifo:
            valid = value in FIFO_CHOICES[name]
        elif name not in OPAQUE:
            raise Fault("InvalidAttributeName", f"Unknown Attribute {name}.")
        if not valid:
            raise Fault("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
        values[name], valid = value, True
    return values


def check_batch(entries: Collection[Mapping[str, Any]], request: str) -> None:
    if not entries:
        reason = f"There should be at least one {request}RequestEntry in the request."
        raise Fault("EmptyBatchRequest", reason)
    if len(entries) > rules.MAX_BATCH_ENTRIES:
        reason = f"Maximum number of entries per request are 10. You have sent {len(entries)}."
        raise Fault("TooManyEntriesInBatchRequest", reason)
    ids = [str(entry.get("Id", "")) for entry in entries]
    if not all(NAME.fullmatch(entry_id) for entry_id in ids):
        reason = "A batch entry id can only contain alphanumeric characters, hyphens and "
        raise Fault("InvalidBatchEntryId", reason + "underscores. It can be at most 80 long.")
    if len(set(ids)) != len(ids):
        repeated = next(entry_id for entry_id in ids if ids.count(entry_id) > 1)
        raise Fault("BatchEntryIdsNotDistinct", f"Id {repeated} repeated.")


def check_batch_size(entries: Iterable[Mapping[str, Any]]) -> None:
    size = sum(len(str(entry.get("MessageBody", "")).encode()) for entry in entries)
    if size > rules.MAX_MESSAGE_BYTES:
        reason = f"Batch requests cannot be longer than {rules.MAX_MESSAGE_BYTES} bytes. You have sent {size}."
        raise Fault("BatchRequestTooLong", reason)


def digest_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> tuple[str, int]:
    """Validate message attributes; return the MD5 SQS computes over them, and their size."""
    if len(attributes) > rules.MAX_ATTRIBUTES:
        raise Fault("InvalidParameterValue", "Number of message attributes exceeds 10.")
    for name in sorted(attributes):
        value = attributes[name]
        if not rules.attribute_kind(value) or not rules.attribute_payload(value):
            reason = f"The message attribute '{name}' must contain a non-empty value and a type."
            raise Fault("InvalidParameterValue", reason)
    return str(rules.md5_of_attributes(attributes)), rules.message_size("", attributes)


def check_body(body: object, attributes_size: int, limit: int) -> bytes:
    """The body's bytes, checked for presence, SQS's characters and the queue's size limit."""
    if not isinstance(body, str) or not body:
        reason = "The request must contain the parameter MessageBody."
        raise Fault("MissingParameter", reason)
    if (bad := rules.invalid_character(body)) is not None:
        reason = f"Invalid binary character '#x{ord(bad):X}' was found in the message body"
        raise Fault("InvalidMessageContents", reason)
    data = body.encode()
    if len(data) + attributes_size > limit:
        reason = f"Message must be shorter than {limit} bytes."
        raise Fault("InvalidParameterValue", "One or more parameters are invalid. " + reason)
    return data


def trace_header(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    value = attributes.get("AWSTraceHeader", {}).get("StringValue")
    if set(attributes) != {"AWSTraceHeader"} or not value:
        reason = "Only AWSTraceHeader, a String, is supported."
        raise invalid("MessageSystemAttributes", list(attributes), reason)
    return str(value)
