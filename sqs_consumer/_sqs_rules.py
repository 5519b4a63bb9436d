"""SQS's own rules, written once: limits, the characters it accepts and its MD5 digests.

The producer checks messages against these before sending, `MemorySQS` enforces them as SQS
does, and the Lambda event reports the digests SQS would have computed. Keeping them here means
the three cannot drift apart (they once had three copies of the attribute MD5).

Sources: the SQS developer guide ("Amazon SQS message quotas", "Amazon SQS message
attributes", "Calculating the MD5 message digest for message attributes") and the API reference
(ReceiveMessage, ChangeMessageVisibility, SendMessage's note on allowed characters).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping
from typing import Any

MAX_VISIBILITY = 43_200  # seconds: the most a message may stay invisible (12 h from its receive)
MAX_BATCH_ENTRIES = 10  # entries in one batch request, and messages in one ReceiveMessage
MAX_MESSAGE_BYTES = 1_048_576  # 1 MiB: one message (body plus attributes) and one batch request
MAX_DELAY = 900  # seconds of DelaySeconds, per message or per queue
MAX_WAIT = 20  # seconds of WaitTimeSeconds (long polling)
MAX_ATTRIBUTES = 10  # message attributes on one message
MAX_ATTRIBUTE_NAME = 256  # characters in a message attribute name
ATTRIBUTE_TYPES = ("String", "Number", "Binary")  # a DataType is one of these, or "Type.label"

# XML 1.0's Char production: what SQS accepts in a body (#x9 | #xA | #xD | #x20-#xD7FF |
# #xE000-#xFFFD | #x10000-#x10FFFF). Lone surrogates and the other C0 controls are refused.
_INVALID_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_ATTRIBUTE_NAME}}}")
FIFO_ID = re.compile(r"[!-~]{1,128}")  # MessageGroupId and MessageDeduplicationId


def invalid_character(text: str) -> str | None:
    """The first character of `text` that SQS refuses in a message body; None if there is none."""
    bad = _INVALID_CHARACTER.search(text)
    return None if bad is None else bad.group()


def attribute_name_problem(name: str) -> str | None:
    """Why SQS refuses `name` as a message attribute name; None when it accepts it."""
    if not _ATTRIBUTE_NAME.fullmatch(name):
        return f"use 1-{MAX_ATTRIBUTE_NAME} of A-Z a-z 0-9 _ - ."
    if name.lower().startswith(("aws.", "amazon.")):
        return "no 'AWS.' or 'Amazon.' prefix"
    if name.startswith(".") or name.endswith(".") or ".." in name:
        return "no leading, trailing or repeated '.'"
    return None


def attribute_kind(value: Mapping[str, Any]) -> str:
    """ "String", "Number" or "Binary" for an SQS-shaped attribute value; "" for another type."""
    kind = str(value.get("DataType", "")).split(".")[0]
    return kind if kind in ATTRIBUTE_TYPES else ""


def attribute_payload(value: Mapping[str, Any]) -> bytes:
    """The bytes of an attribute's value: its BinaryValue for Binary types, else StringValue."""
    binary = str(value.get("DataType", "")).startswith("Binary")
    payload = value.get("BinaryValue" if binary else "StringValue") or b""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    return str(payload).encode()


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes SQS counts against its limit: the body plus each attribute's name, type and value."""
    size = len(body.encode())
    for name, value in attributes.items():
        data_type = str(value.get("DataType", ""))
        size += len(name.encode()) + len(data_type.encode()) + len(attribute_payload(value))
    return size


def md5_of_body(body: str | bytes) -> str:
    """MD5OfMessageBody: the hex MD5 of the body's UTF-8 bytes (or of `body` if it is bytes)."""
    data = body.encode() if isinstance(body, str) else body
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str | None:
    """MD5OfMessageAttributes as SQS computes it; None when there are no attributes.

    Per attribute, in name order: the name, the DataType and the value, each as a 4-byte
    big-endian length and its bytes, with a transport byte (1 string, 2 binary) before the value.
    """
    if not attributes:
        return None
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value.get("DataType", ""))
        raw = attribute_payload(value)
        for chunk in (name.encode(), data_type.encode()):
            digest.update(struct.pack(">I", len(chunk)) + chunk)
        transport = b"\x02" if data_type.startswith("Binary") else b"\x01"
        digest.update(transport + struct.pack(">I", len(raw)) + raw)
    return digest.hexdigest()
