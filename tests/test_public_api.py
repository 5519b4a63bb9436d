"""The public names are exactly the ones we promise."""

from __future__ import annotations

import pytest

import sqs_consumer
import sqs_consumer.workers

EXPECTED = {
    "BatchResult",
    "LambdaHandler",
    "Router",
    "UnroutedMessage",
    "AsyncProducer",
    "Consumer",
    "ConsumerOptions",
    "ConsumerStateError",
    "Discard",
    "ExponentialBackoff",
    "Message",
    "MessageDecodeError",
    "Producer",
    "SendError",
    "QueueCheckError",
    "Retry",
    "RetryPolicy",
    "SqsConsumerError",
    "SqsError",
    "SqsHandler",
    "Stats",
    "sqs_handler",
}


def test_all_is_exact() -> None:
    """__all__ lists the SPEC's names and they all resolve."""
    assert set(sqs_consumer.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(sqs_consumer, name).__doc__, name


def test_workers_exports() -> None:
    """sqs_consumer.workers exports the strategies and the protocol."""
    assert {"Worker", "SemaphoreWorker", "ElasticPool", "WaitingRoom"} <= set(
        sqs_consumer.workers.__all__
    )


def test_middleware_exports() -> None:
    """sqs_consumer.middleware exports the built-ins and the two types to write one."""
    import sqs_consumer.middleware

    assert set(sqs_consumer.middleware.__all__) == {
        "CallNext",
        "Middleware",
        "NonRetryable",
        "log_failures",
    }
    for name in sqs_consumer.middleware.__all__:
        assert getattr(sqs_consumer.middleware, name) is not None, name


def test_old_internal_paths_are_gone() -> None:
    """The modules that moved into handlers/ and _pipeline/ are not importable by their old
    paths (CHANGELOG lists where each went): nobody keeps relying on them by accident."""
    import importlib

    for old in ("router", "batch", "lambda_compat", "handling", "jobs", "sqs", "fastpath"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"sqs_consumer.{old}")
