"""Key specs (message id, attr:NAME, json:FIELD, callables) and middleware arguments."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sqs_consumer import Message
from sqs_consumer.locks import Idempotent, KeyLock, MemoryLockStore, MissingKeyError
from sqs_consumer.locks.keys import key_function


def message(body: Any = None, **attributes: str) -> Message:
    return Message(
        message_id="m-1",
        receipt_handle="r",
        body=json.dumps(body) if body is not None else "not json",
        message_attributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )


class TestKeySpecs:
    def test_default_is_the_message_id(self) -> None:
        """None (and 'message_id') key on the message id."""
        assert key_function(None, what="k")(message()) == "m-1"
        assert key_function("message_id", what="k")(message()) == "m-1"

    def test_attributes(self) -> None:
        """'attr:NAME' and a bare name read a string message attribute."""
        assert key_function("attr:job", what="k")(message(job="a")) == "a"
        assert key_function("job", what="k")(message(job="b")) == "b"

    def test_json_fields_nested_and_numbers(self) -> None:
        """'json:a.b' reaches into objects; numbers become strings."""
        assert key_function("json:a.b", what="k")(message({"a": {"b": "x"}})) == "x"
        assert key_function("json:n", what="k")(message({"n": 7})) == "7"

    def test_callables(self) -> None:
        """A callable's string result is the key; anything else is a clear failure."""
        assert key_function(lambda m: "z", what="k")(message()) == "z"
        with pytest.raises(MissingKeyError, match="returned None, not a non-empty string"):
            key_function(lambda m: None, what="KeyLock key")(message())

    def test_missing_key_names_the_attribute_or_field(self) -> None:
        """A message without the key fails naming what was looked for."""
        with pytest.raises(MissingKeyError, match="message attribute 'job'.*does not have"):
            key_function("attr:job", what="KeyLock key")(message())
        with pytest.raises(MissingKeyError, match="JSON body field 'event_id'"):
            key_function("json:event_id", what="k")(message({"other": 1}))

    @pytest.mark.parametrize("spec", ["attr:", "json:", "xml:a"])
    def test_bad_specs(self, spec: str) -> None:
        """A spec that names nothing is refused when the middleware is built."""
        with pytest.raises(ValueError, match="'message_id', 'attr:NAME' or 'json:FIELD'"):
            key_function(spec, what="k")


class TestArguments:
    def test_keylock_needs_a_key(self) -> None:
        """KeyLock without a key says why a message-id lock is useless."""
        with pytest.raises(TypeError, match="KeyLock needs a key"):
            KeyLock(MemoryLockStore(), None)

    def test_bad_store(self) -> None:
        """A store without the protocol's methods is a TypeError naming LockStore."""
        with pytest.raises(TypeError, match="store must be a LockStore"):
            Idempotent(object())  # type: ignore[arg-type]

    @pytest.mark.parametrize("ttl", [0, -1, float("nan"), "60", True])
    def test_bad_ttl(self, ttl: Any) -> None:
        """ttl must be a positive number of seconds."""
        with pytest.raises((TypeError, ValueError), match="Idempotent ttl must be"):
            Idempotent(MemoryLockStore(), ttl=ttl)

    def test_repr(self) -> None:
        """The reprs say what each middleware does."""
        lock = KeyLock(MemoryLockStore(), "json:lock_id", lease=30)
        assert "key='json:lock_id', lease=30" in repr(lock)
        assert "ttl=3600" in repr(Idempotent(MemoryLockStore()))
