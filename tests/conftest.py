"""Shared fixtures: a moto SQS server over HTTP on 127.0.0.1, MemorySQS, and anyio backends."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

# Tests never reach AWS: fake credentials and a region, set before any client is built.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)

REGION = "us-east-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto request drowns failures
_names = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Poll a condition until it holds, failing the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _atomic_dynamodb_writes(patch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB writes atomic, as DynamoDB's are.

    moto checks a ConditionExpression and then writes, in the thread of each request, with
    no lock: two conditional PutItems at once can both pass the check (a lock claimed twice,
    which failed the two-kicker test once). The locks' tests need the atomicity they rely on
    in AWS, so every read and write of moto's DynamoDB backend goes through one lock.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "get_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        patch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free loopback port for the whole session (its DynamoDB atomic)."""
    with pytest.MonkeyPatch.context() as patch:
        _atomic_dynamodb_writes(patch)
        yield from _moto_server()


def _moto_server() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def moto_sqs(moto_endpoint: str) -> Any:
    """A boto3 SQS client talking to the moto server."""
    return boto3.client("sqs", endpoint_url=moto_endpoint, region_name=REGION)


def unique_name(prefix: str = "q") -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture
def moto_queue(moto_sqs: Any) -> Iterator[str]:
    """A fresh standard queue on the moto server; its URL."""
    url = moto_sqs.create_queue(QueueName=unique_name())["QueueUrl"]
    yield url
    moto_sqs.delete_queue(QueueUrl=url)


class QueueEnv:
    """One queue on one SQS implementation, with the few helpers the tests need."""

    def __init__(self, kind: str, client: Any, url: str, extra: dict[str, Any]) -> None:
        self.kind = kind
        self.client = client
        self.url = url
        self._extra = extra

    def options(self, **overrides: Any) -> Any:
        from sqs_consumer import ConsumerOptions

        settings: dict[str, Any] = {"queue_url": self.url, "wait_time_seconds": 1, **self._extra}
        settings.update(overrides)
        return ConsumerOptions(**settings)

    def send(self, bodies: list[str], **entry: Any) -> None:
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(i), "MessageBody": body, **entry}
                for i, body in enumerate(bodies[start : start + 10])
            ]
            response = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            assert not response.get("Failed"), response

    def counts(self) -> tuple[int, int]:
        """(visible, in flight) as the queue reports them."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


@pytest.fixture(params=["memory", "moto"])
def queue(request: pytest.FixtureRequest) -> Iterator[QueueEnv]:
    """A fresh standard queue on MemorySQS and on the moto server (each test runs on both)."""
    if request.param == "memory":
        from sqs_consumer.testing import MemorySQS

        memory = MemorySQS()
        url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
        yield QueueEnv("memory", memory, url, {"client": memory})
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    client = request.getfixturevalue("moto_sqs")
    url = client.create_queue(QueueName=unique_name())["QueueUrl"]
    yield QueueEnv("moto", client, url, {"endpoint_url": endpoint, "region_name": REGION})
    client.delete_queue(QueueUrl=url)
