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
from .handlers.batch import BatchResult
from .handlers.lambda_compat import LambdaHandler
from .handlers.router import Router, UnroutedMessage
from .message import Message
from .options import ConsumerOptions
from .producer import AsyncProducer, Producer, SendError
from .retry import ExponentialBackoff, RetryPolicy
from .stats import Stats

__all__ = [
    "AsyncProducer",
    "BatchResult",
    "Consumer",
    "ConsumerOptions",
    "ConsumerStateError",
    "Discard",
    "ExponentialBackoff",
    "LambdaHandler",
    "Message",
    "MessageDecodeError",
    "Producer",
    "QueueCheckError",
    "Retry",
    "RetryPolicy",
    "Router",
    "SendError",
    "SqsConsumerError",
    "SqsError",
    "SqsHandler",
    "Stats",
    "UnroutedMessage",
    "sqs_handler",
]
