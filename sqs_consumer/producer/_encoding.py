"""The producer's encoding: bodies and attributes in SQS's shape, checked against its rules.

Pure functions, no I/O: what `_sending.py` sends is built here, and every check that SQS
would otherwise only report after a partial send (body type and characters, attribute names,
types and count, FIFO ids, the 1 MiB size) runs before the first call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs
from opentelemetry.propagate import inject

from .. import _sqs_rules as rules
from .._sqs_rules import MAX_ATTRIBUTES, MAX_BATCH_ENTRIES, MAX_MESSAGE_BYTES, message_size

__all__ = [
    "AttributeValue",
    "Outgoing",
    "batches",
    "encode_attributes",
    "encode_body",
    "fifo_id",
    "outgoing",
    "trace_context",
]

AttributeValue = str | int | float | bytes | Mapping[str, Any]


@attrs.frozen
class Outgoing:
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


def trace_context() -> dict[str, str]:
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


def fifo_id(kind: str, value: str) -> str:
    """`value` if SQS accepts it as a MessageGroupId or MessageDeduplicationId; else ValueError."""
    if not rules.FIFO_ID.fullmatch(value):
        raise ValueError(f"{kind} {value!r}: must be 1-128 printable ASCII characters, no spaces")
    return value


def outgoing(
    index: int,
    body: object,
    common: Mapping[str, Any],
    shaped: Mapping[str, dict[str, Any]],
    trace: Mapping[str, str],
) -> Outgoing:
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
    return Outgoing(index=index, params=params, size=size)


def batches(messages: list[Outgoing]) -> Iterable[list[Outgoing]]:
    """Consecutive runs of at most 10 messages whose sizes add up to at most 1 MiB."""
    batch: list[Outgoing] = []
    size = 0
    for message in messages:
        if len(batch) == MAX_BATCH_ENTRIES or size + message.size > MAX_MESSAGE_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += message.size
    if batch:
        yield batch
