"""Lock stores for the tests: MemoryLockStore, and DynamoDBLockStore on moto's server over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from sqs_consumer.locks import DynamoDBLockStore, LockStore, MemoryLockStore
from sqs_consumer.locks.dynamodb import KEY_ATTRIBUTE
from tests.cli.conftest import cli, sqs_queue  # noqa: F401 - the CLI fixtures, for kick's tests
from tests.conftest import REGION, QueueEnv, unique_name


@pytest.fixture(scope="session")
def moto_dynamodb(moto_endpoint: str) -> Any:
    """A boto3 DynamoDB client talking to the moto server (the one that serves SQS too)."""
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture
def dynamodb_store(moto_endpoint: str, moto_dynamodb: Any) -> Iterator[DynamoDBLockStore]:
    """A fresh lock table on moto, through a store that builds its own client (as users do)."""
    store = DynamoDBLockStore(unique_name("locks"), endpoint_url=moto_endpoint, region_name=REGION)
    store.create_table()
    yield store
    moto_dynamodb.delete_table(TableName=store.table_name)


class Env:
    """A queue and a lock store on one implementation: memory (MemorySQS) or moto."""

    def __init__(self, queue: QueueEnv, store: LockStore) -> None:
        self.queue = queue
        self.store = store

    def state(self, key: str) -> str | None:
        """'held', 'completed' or None (free or expired) for a stored key."""
        if isinstance(self.store, MemoryLockStore):
            found = self.store.state(key)
            return None if found is None else found.value
        assert isinstance(self.store, DynamoDBLockStore)
        item = self.store.client.get_item(
            TableName=self.store.table_name, Key={KEY_ATTRIBUTE: {"S": key}}, ConsistentRead=True
        ).get("Item")
        if item is None or float(item["expires_at"]["N"]) <= self.store_now():
            return None
        return str(item["state"]["S"])

    def store_now(self) -> float:
        import time

        return time.time()


@pytest.fixture(params=["memory", "moto"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """MemorySQS with MemoryLockStore, and moto's SQS with DynamoDBLockStore on moto."""
    if request.param == "memory":
        from sqs_consumer.testing import MemorySQS

        memory = MemorySQS()
        url = memory.create_queue(QueueName=unique_name())["QueueUrl"]
        yield Env(QueueEnv("memory", memory, url, {"client": memory}), MemoryLockStore())
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    client = request.getfixturevalue("moto_sqs")
    store = request.getfixturevalue("dynamodb_store")
    url = client.create_queue(QueueName=unique_name())["QueueUrl"]
    queue = QueueEnv("moto", client, url, {"endpoint_url": endpoint, "region_name": REGION})
    yield Env(queue, store)
    client.delete_queue(QueueUrl=url)
