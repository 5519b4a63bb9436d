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
from .producer import AsyncProducer, Producer, SendError
from .retry import ExponentialBackoff, RetryPolicy
from .stats import Stats

__all__ = [
    "AsyncProducer",
    "Consumer",
    "ConsumerOptions",
    "ConsumerStateError",
    "Discard",
    "ExponentialBackoff",
    "Message",
    "MessageDecodeError",
    "Producer",
    "QueueCheckError",
    "Retry",
    "RetryPolicy",
    "SendError",
    "SqsConsumerError",
    "SqsError",
    "SqsHandler",
    "Stats",
    "sqs_handler",
]
