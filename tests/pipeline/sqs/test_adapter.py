"""The boto3 client the consumer builds for itself: per-call costs it leaves out."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ParamValidationError

import sqs_consumer._pipeline.wiring as wiring_module
from sqs_consumer import Consumer, ConsumerOptions
from sqs_consumer._pipeline.sqs import build_client

ENDPOINT = "http://127.0.0.1:1"  # nothing listens there: a request fails at once
URL = f"{ENDPOINT}/123456789012/q"


def _client(**kwargs: Any) -> Any:
    return build_client(
        URL,
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        max_connections=4,
        read_timeout=5,
        **kwargs,
    )


def test_build_client_validates_unless_told_not_to() -> None:
    """Validation stays on by default (the producer sends what users give it); off, a
    request goes out unchecked (here: to a port where nothing listens)."""
    with pytest.raises(ParamValidationError):
        _client().receive_message(QueueUrl=URL, MaxNumberOfMessages="ten")
    with pytest.raises(EndpointConnectionError):
        _client(validate=False).receive_message(QueueUrl=URL, MaxNumberOfMessages="ten")


def test_consumer_client_skips_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request the consumer sends is built from checked options: no re-validation
    per call, and the pool holds a connection for every SQS call that can be in flight."""
    seen: dict[str, Any] = {}

    def spy(queue_url: str, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return build_client(queue_url, **kwargs)

    monkeypatch.setattr(wiring_module, "build_client", spy)
    options = ConsumerOptions(queue_url=URL, endpoint_url=ENDPOINT, region_name="us-east-1")
    Consumer(lambda message: None, options)._wiring().connect()
    assert seen["validate"] is False
    assert seen["max_connections"] >= options.max_pollers() + 2
