"""sqs-consumer: turn one handler function into a production Amazon SQS consumer."""

from .consumer import Consumer
from .decorator import SqsHandler, sqs_handler
from .errors import (
    ConsumerStateError,
    Discard,
    MessageDecodeError,
    QueueCheckError,
    Retry,
    SqsConsumerError,
    SqsError,
)
from .message import Message
from .options import ConsumerOptions
from .retry import ExponentialBackoff, RetryPolicy
from .stats import Stats

__all__ = [
    "Consumer",
    "ConsumerOptions",
    "ConsumerStateError",
    "Discard",
    "ExponentialBackoff",
    "Message",
    "MessageDecodeError",
    "QueueCheckError",
    "Retry",
    "RetryPolicy",
    "SqsConsumerError",
    "SqsError",
    "SqsHandler",
    "Stats",
    "sqs_handler",
]
