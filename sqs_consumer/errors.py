"""Exceptions raised by sqs-consumer, and the fatal/transient split of SQS errors.

Hierarchy::

    Exception
     ├── SqsConsumerError                 base of everything raised by the library
     │    ├── ConsumerStateError          start()/run() called in the wrong lifecycle state
     │    └── SqsError                    an SQS call failed for good
     │         └── QueueCheckError        the queue could not be used at start (missing, denied, ...)
     ├── ValueError
     │    ├── MessageDecodeError          Message.json() on a body that is not JSON
     │    └── OptionTypeError             a ConsumerOptions value of the wrong type (a TypeError too)
     ├── HandlerFailure                   how a handler failed without raising an error itself
     │    ├── HandlerResultError          (a TypeError) its result means the work never ran
     │    └── HandlerCancelled            a cancellation no stop or timeout of ours caused
     └── HandlerSignal                    raised by handlers on purpose (control flow, not failures)
          ├── Retry(delay)                fail now, come back after `delay` seconds
          └── Discard                     delete the message without counting a failure

`classify()` decides whether an exception from an SQS call is worth retrying.
"""

from __future__ import annotations

import enum

from ._sqs_rules import MAX_VISIBILITY

__all__ = [
    "ConsumerStateError",
    "Discard",
    "ErrorKind",
    "HandlerCancelled",
    "HandlerFailure",
    "HandlerResultError",
    "HandlerSignal",
    "MessageDecodeError",
    "OptionTypeError",
    "QueueCheckError",
    "Retry",
    "SqsConsumerError",
    "SqsError",
    "classify",
    "error_code",
]


class SqsConsumerError(Exception):
    """Base class of the errors raised by sqs-consumer."""


class ConsumerStateError(SqsConsumerError, RuntimeError):
    """A Consumer method was called in a lifecycle state that does not allow it."""


class SqsError(SqsConsumerError):
    """An SQS call failed with an error that retrying will not fix."""


class QueueCheckError(SqsError):
    """The queue cannot be used: it does not exist, or access to it is denied."""


class MessageDecodeError(ValueError):
    """A message body is not valid JSON; the text names the message id."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"message {message_id}: body is not valid JSON ({reason})")
        self.message_id = message_id


class OptionTypeError(ValueError, TypeError):
    """A ConsumerOptions value of the wrong type (`batch="yes"`, a client without the SQS methods).

    A ValueError like every other bad option, so one `except ValueError` catches them all,
    and a TypeError, as Python code expects of a wrong type.
    """


class HandlerFailure(Exception):
    """A message failed because of how its handler behaved, not because it raised."""


class HandlerResultError(HandlerFailure, TypeError):
    """The handler returned something that means its work did not run (a generator, ...)."""


class HandlerCancelled(HandlerFailure):
    """A cancellation escaped the handler that the consumer did not cause; `__cause__` is it."""


class HandlerSignal(Exception):
    """Base of the exceptions a handler raises on purpose to steer what happens to its message."""


class Retry(HandlerSignal):
    """Fail this delivery and make the message visible again after `delay` seconds.

    Args:
        delay: seconds until the message is received again (0 to 43200); None uses the
            consumer's retry policy.
    """

    def __init__(self, delay: float | None = None) -> None:
        if delay is not None and not 0 <= delay <= MAX_VISIBILITY:
            raise ValueError(
                f"Retry(delay={delay!r}): delay must be between 0 and {MAX_VISIBILITY} seconds"
            )
        super().__init__(delay)
        self.delay = delay

    def __repr__(self) -> str:
        return f"Retry(delay={self.delay!r})"

    def __str__(self) -> str:
        return repr(self)


class Discard(HandlerSignal):
    """Delete this message without handling it further and without counting a failure."""

    def __repr__(self) -> str:
        return "Discard()"


class ErrorKind(enum.Enum):
    """What to do about a failed SQS call."""

    TRANSIENT = "transient"  # back off with jitter and try again
    FATAL = "fatal"  # retrying cannot help: surface the error


# Codes that mean "try again later". Everything else is fatal: retrying a missing queue or
# a denied permission only hides the problem behind a log line in a loop.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "KMS.ThrottlingException",
        "KmsThrottled",
        "AWS.SimpleQueueService.KmsThrottled",
        "IDPCommunicationError",
    }
)

_TRANSIENT_BOTOCORE = (
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyConnectionError",
    "HTTPClientError",
    "ConnectionError",
    "ResponseStreamingError",
    "IncompleteReadError",
)


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (or lookalike), else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def _http_status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def classify(error: BaseException) -> ErrorKind:
    """Decide whether an exception raised by an SQS call is transient or fatal.

    Transient: throttling, 5xx answers, and connection-level failures (refused, reset,
    timed out). Fatal: everything else, notably a missing queue, denied access and
    invalid or missing credentials.
    """
    code = error_code(error)
    if code is not None:
        if code in TRANSIENT_CODES:
            return ErrorKind.TRANSIENT
        status = _http_status(error)
        if status is not None and status >= 500:
            return ErrorKind.TRANSIENT
        return ErrorKind.FATAL
    names = {cls.__name__ for cls in type(error).__mro__}
    if names.intersection(_TRANSIENT_BOTOCORE) or isinstance(error, ConnectionError | TimeoutError):
        return ErrorKind.TRANSIENT
    return ErrorKind.FATAL
