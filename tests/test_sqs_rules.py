"""SQS's rules in one place (sqs_consumer/_sqs_rules.py): digests, characters, names, sizes."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any

import pytest

import sqs_consumer
from sqs_consumer import _sqs_rules as rules
from sqs_consumer.testing import MemorySQS
from tests.conftest import unique_name

PACKAGE = Path(sqs_consumer.__file__).parent

# Every kind SQS has: the three types, custom labels on each, and a multi-byte value.
MIXED: dict[str, dict[str, Any]] = {
    "text": {"DataType": "String", "StringValue": "héllo wörld"},
    "count": {"DataType": "Number", "StringValue": "-12.5e3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff"},
    "label": {"DataType": "String.custom", "StringValue": "x"},
    "image": {"DataType": "Binary.jpeg", "BinaryValue": b"\xff\xd8"},
    "price": {"DataType": "Number.float", "StringValue": "0.1"},
}


class TestAttributeMd5:
    def test_known_digest_of_one_number(self) -> None:
        """The value LocalStack's SQS tests check (a Number attribute named timestamp)."""
        one = {"timestamp": {"DataType": "Number", "StringValue": "1493147359900"}}
        assert rules.md5_of_attributes(one) == "235c5c510d26fb653d073faed50ae77c"

    def test_known_digest_of_two_attributes_in_name_order(self) -> None:
        """A digest other SQS emulators check; names are sorted, whatever the given order."""
        two = {
            "ordinal": {"DataType": "Number", "StringValue": "1"},
            "category": {"DataType": "String", "StringValue": "test"},
        }
        assert rules.md5_of_attributes(two) == "d21ae90c49061e927f57df5f5d72be1f"
        assert rules.md5_of_attributes(dict(reversed(two.items()))) == (
            "d21ae90c49061e927f57df5f5d72be1f"
        )

    def test_the_encoding_is_lengths_and_transport_bytes(self) -> None:
        """Name, type and value each length-prefixed; 1 before a string, 2 before bytes."""
        attributes = {"b": {"DataType": "Binary", "BinaryValue": b"\x00"}}
        encoded = b"\0\0\0\x01b" + b"\0\0\0\x06Binary" + b"\x02" + b"\0\0\0\x01\x00"
        assert rules.md5_of_attributes(attributes) == hashlib.md5(encoded).hexdigest()

    def test_no_attributes_no_digest(self) -> None:
        assert rules.md5_of_attributes({}) is None

    def test_bytearray_and_memoryview_values_hash_as_bytes(self) -> None:
        """A client may hand back binary values as any bytes-like object."""
        expected = rules.md5_of_attributes(
            {"b": {"DataType": "Binary", "BinaryValue": b"\x01\x02"}}
        )
        for value in (bytearray(b"\x01\x02"), memoryview(b"\x01\x02")):
            assert rules.md5_of_attributes({"b": {"DataType": "Binary", "BinaryValue": value}}) == (
                expected
            )

    def test_digest_matches_moto(self, moto_sqs: Any) -> None:
        """moto's server computes the same MD5OfMessageAttributes for every attribute kind."""
        url = moto_sqs.create_queue(QueueName=unique_name("md5"))["QueueUrl"]
        try:
            sent = moto_sqs.send_message(QueueUrl=url, MessageBody="b", MessageAttributes=MIXED)
        finally:
            moto_sqs.delete_queue(QueueUrl=url)
        assert sent["MD5OfMessageAttributes"] == rules.md5_of_attributes(MIXED)

    def test_memory_sqs_reports_the_same_digest(self) -> None:
        """MemorySQS answers with the shared digest, on send and on receive."""
        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="md5")["QueueUrl"]
        sent = sqs.send_message(QueueUrl=url, MessageBody="héllo", MessageAttributes=MIXED)
        got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"][0]
        assert sent["MD5OfMessageAttributes"] == got["MD5OfMessageAttributes"]
        assert sent["MD5OfMessageAttributes"] == rules.md5_of_attributes(MIXED)
        assert sent["MD5OfMessageBody"] == rules.md5_of_body("héllo")
        assert rules.md5_of_body("héllo") == hashlib.md5("héllo".encode()).hexdigest()


class TestInvalidCharacter:
    @pytest.mark.parametrize(
        "char",
        ["\t", "\n", "\r", "\x20", "~", "\x7f", "\u00e9", "\ud7ff", "\ue000", "\ufffd"]
        + ["\U00010000", "\U0010ffff"],
    )
    def test_xml_chars_are_accepted(self, char: str) -> None:
        """Tab, newline, CR and every range of XML 1.0's Char production, at its ends."""
        assert rules.invalid_character(f"a{char}b") is None

    @pytest.mark.parametrize(
        "char", ["\x00", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\ud800", "\udfff"]
        + ["\ufffe", "\uffff"],
    )  # fmt: skip
    def test_the_chars_just_outside_are_refused(self, char: str) -> None:
        """The other C0 controls, lone surrogates, U+FFFE and U+FFFF: the first is named."""
        assert rules.invalid_character(f"ok{char}then\x01") == char

    def test_producer_and_memory_sqs_refuse_the_same_character(self) -> None:
        """Both apply the one rule: the producer before sending, MemorySQS as SQS answers."""
        from sqs_consumer import Producer

        sqs = MemorySQS()
        url = sqs.create_queue(QueueName="chars")["QueueUrl"]
        with pytest.raises(ValueError, match=r"character SQS rejects: '\\x0b'"):
            Producer(url, client=sqs).send("a\x0bb")
        with pytest.raises(sqs.exceptions.ClientError, match=r"'#xB' was found"):
            sqs.send_message(QueueUrl=url, MessageBody="a\x0bb")
        assert Producer(url, client=sqs).send("a\ufffdb")  # the last BMP character allowed


class TestAttributeNames:
    @pytest.mark.parametrize("name", ["a", "A-b_c.d", "x" * 256, "awsome", "my.aws.thing"])
    def test_accepted(self, name: str) -> None:
        assert rules.attribute_name_problem(name) is None

    @pytest.mark.parametrize(
        ("name", "why"),
        [
            ("", "1-256"),
            ("x" * 257, "1-256"),
            ("sp ace", "1-256"),
            ("AWS.trace", "prefix"),
            ("amazon.x", "prefix"),
            (".lead", "'.'"),
            ("trail.", "'.'"),
            ("two..dots", "'.'"),
        ],
    )
    def test_refused_with_the_reason(self, name: str, why: str) -> None:
        problem = rules.attribute_name_problem(name)
        assert problem is not None and why in problem


class TestSizesAndKinds:
    def test_message_size_counts_utf8_bytes_of_body_names_types_and_values(self) -> None:
        attributes = {"né": {"DataType": "Binary", "BinaryValue": b"123"}}
        assert rules.message_size("é", attributes) == 2 + 3 + 6 + 3

    def test_attribute_kind_reads_the_base_type(self) -> None:
        assert rules.attribute_kind({"DataType": "Number.int"}) == "Number"
        assert rules.attribute_kind({"DataType": "Integer"}) == ""
        assert rules.attribute_kind({}) == ""

    def test_limits_are_sqs_documented_quotas(self) -> None:
        """12 h visibility, 10 per batch and attributes, 1 MiB, 15 min delay, 20 s wait."""
        assert rules.MAX_VISIBILITY == 12 * 3600
        assert rules.MAX_BATCH_ENTRIES == rules.MAX_ATTRIBUTES == 10
        assert rules.MAX_MESSAGE_BYTES == 1024 * 1024
        assert (rules.MAX_DELAY, rules.MAX_WAIT) == (900, 20)


class TestWrittenOnce:
    """The limits are written in _sqs_rules.py only: a second copy could drift from it."""

    # 12 h of visibility, 1 MiB, 256 KiB: numbers no other code has a reason to write.
    LIMITS = {43_200, 1_048_576, 262_144}
    # Code that batches for SQS or checks attribute counts: a literal 10 there is SQS's.
    BATCHING = (
        "cli/send.py",
        "_pipeline/harvester.py",
        "_pipeline/visibility.py",
        "_pipeline/heartbeat.py",
        "_pipeline/deadletter.py",
        "_pipeline/sqs/adapter.py",
    )

    @staticmethod
    def _numbers(relative: str) -> list[tuple[int, object]]:
        path = PACKAGE / relative
        return [
            (node.lineno, node.value)
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and type(node.value) in (int, float)
        ]

    def test_no_other_module_writes_the_12_hour_or_size_limits(self) -> None:
        found = [
            f"{path.relative_to(PACKAGE)}:{line} {value}"
            for path in sorted(PACKAGE.rglob("*.py"))
            if path.name != "_sqs_rules.py"
            for line, value in self._numbers(str(path.relative_to(PACKAGE)))
            if value in self.LIMITS
        ]
        assert found == []

    @pytest.mark.parametrize("relative", BATCHING)
    def test_batching_code_takes_the_batch_limit_from_the_rules(self, relative: str) -> None:
        assert [
            line for line, value in self._numbers(relative) if value == 10 and type(value) is int
        ] == []
