"""classify(): which SQS errors are worth retrying, as a table."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from sqs_consumer import Discard, Retry
from sqs_consumer.errors import ErrorKind, classify


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ReceiveMessage",
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("ThrottlingException"), ErrorKind.TRANSIENT),
        (client_error("Throttling"), ErrorKind.TRANSIENT),
        (client_error("RequestThrottled"), ErrorKind.TRANSIENT),
        (client_error("ServiceUnavailable", 503), ErrorKind.TRANSIENT),
        (client_error("InternalFailure", 500), ErrorKind.TRANSIENT),
        (client_error("SomethingNew", 502), ErrorKind.TRANSIENT),
        (client_error("KmsThrottled"), ErrorKind.TRANSIENT),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ErrorKind.TRANSIENT),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), ErrorKind.TRANSIENT),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ErrorKind.TRANSIENT),
        (ConnectionResetError(), ErrorKind.TRANSIENT),
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), ErrorKind.FATAL),
        (client_error("QueueDoesNotExist"), ErrorKind.FATAL),
        (client_error("AccessDenied", 403), ErrorKind.FATAL),
        (client_error("AccessDeniedException", 403), ErrorKind.FATAL),
        (client_error("InvalidClientTokenId", 403), ErrorKind.FATAL),
        (client_error("UnrecognizedClientException"), ErrorKind.FATAL),
        (client_error("SignatureDoesNotMatch", 403), ErrorKind.FATAL),
        (client_error("ExpiredToken"), ErrorKind.FATAL),
        (client_error("InvalidParameterValue"), ErrorKind.FATAL),
        (NoCredentialsError(), ErrorKind.FATAL),
        (ValueError("a bug"), ErrorKind.FATAL),
    ],
)
def test_classify(error: BaseException, kind: ErrorKind) -> None:
    """Throttling, 5xx and connection failures are transient; everything else is fatal."""
    assert classify(error) is kind


def test_retry_validates_and_reads_well() -> None:
    """Retry(delay) refuses delays SQS cannot honour and has a readable repr."""
    assert repr(Retry(delay=3)) == "Retry(delay=3)"
    assert repr(Discard()) == "Discard()"
    with pytest.raises(ValueError, match="43200"):
        Retry(delay=50000)
