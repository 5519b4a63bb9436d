"""The public names are exactly the ones we promise."""

from __future__ import annotations

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
