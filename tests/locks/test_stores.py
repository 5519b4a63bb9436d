"""The two LockStores: claims, ownership, expiry; DynamoDB's errors, retries and set-up."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sqs_consumer._pipeline.sqs import Backoff
from sqs_consumer.locks import (
    Claim,
    DynamoDBLockStore,
    LockCheckError,
    LockStore,
    LockStoreError,
    MemoryLockStore,
)

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "dynamodb"])
def store_and_clock(request: pytest.FixtureRequest) -> tuple[LockStore, Clock]:
    clock = Clock()
    if request.param == "memory":
        return MemoryLockStore(clock=clock), clock
    real: DynamoDBLockStore = request.getfixturevalue("dynamodb_store")
    return DynamoDBLockStore(real.table_name, client=real.client, clock=clock), clock


class TestProtocol:
    async def test_claim_is_exclusive_until_released(
        self, store_and_clock: tuple[LockStore, Clock]
    ) -> None:
        """Only one owner claims a key; a release by someone else does nothing."""
        store, _ = store_and_clock
        assert await store.claim("k", "a", 10) is Claim.CLAIMED
        assert await store.claim("k", "b", 10) is Claim.HELD
        assert await store.release("k", "b") is False
        assert await store.renew("k", "b", 10) is False
        assert await store.release("k", "a") is True
        assert await store.claim("k", "b", 10) is Claim.CLAIMED

    async def test_an_expired_claim_can_be_taken(
        self, store_and_clock: tuple[LockStore, Clock]
    ) -> None:
        """Past its ttl a claim is free; a renewal before that keeps it."""
        store, clock = store_and_clock
        assert await store.claim("k", "a", 10) is Claim.CLAIMED
        clock.now += 8
        assert await store.renew("k", "a", 10) is True
        clock.now += 8
        assert await store.claim("k", "b", 10) is Claim.HELD  # renewed: 18 s total
        clock.now += 5
        assert await store.claim("k", "b", 10) is Claim.CLAIMED
        assert await store.renew("k", "a", 10) is False  # lost to b

    async def test_completed_keys_are_remembered_for_their_ttl(
        self, store_and_clock: tuple[LockStore, Clock]
    ) -> None:
        """A completed key answers COMPLETED, cannot be released, and expires after ttl."""
        store, clock = store_and_clock
        await store.claim("k", "a", 10)
        assert await store.complete("k", "b", 100) is False
        assert await store.complete("k", "a", 100) is True
        assert await store.claim("k", "b", 10) is Claim.COMPLETED
        assert await store.release("k", "a") is False
        clock.now += 101
        assert await store.claim("k", "b", 10) is Claim.CLAIMED


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} says no"},
         "ResponseMetadata": {"HTTPStatusCode": status}},
        "Operation",
    )  # fmt: skip


class FakeDynamoDB:
    """A client whose calls raise the listed errors first, then answer `result`."""

    def __init__(self, errors: list[Exception], result: Any = None) -> None:
        self.errors = list(errors)
        self.result = result or {}
        self.calls = 0

    def _call(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result

    put_item = describe_table = update_item = delete_item = get_item = _call


FAST = Backoff(base=0.001, cap=0.01)


class TestDynamoDBErrors:
    async def test_transient_errors_back_off_and_retry(self) -> None:
        """Throttling, a 5xx and a connection error are retried; the claim then succeeds."""
        from botocore.exceptions import EndpointConnectionError

        errors: list[Exception] = [
            client_error("ProvisionedThroughputExceededException"),
            client_error("Whatever", status=503),
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ]
        client = FakeDynamoDB(errors)
        store = DynamoDBLockStore("t", client=client, backoff=FAST)
        assert await store.claim("k", "a", 10) is Claim.CLAIMED
        assert client.calls == 4

    async def test_a_fatal_error_is_not_retried(self) -> None:
        """A validation error fails at once, naming the call and the table."""
        client = FakeDynamoDB([client_error("ValidationException")])
        store = DynamoDBLockStore("t", client=client, backoff=FAST)
        with pytest.raises(LockStoreError, match="DynamoDB put_item on 't' failed: Validation"):
            await store.claim("k", "a", 10)
        assert client.calls == 1

    async def test_denied_access_fails_the_check_naming_the_iam_actions(self) -> None:
        """AccessDenied at start says which actions the role needs."""
        store = DynamoDBLockStore("t", client=FakeDynamoDB([client_error("AccessDeniedException")]))
        with pytest.raises(LockCheckError, match="needs dynamodb:DescribeTable.*PutItem"):
            await store.check()

    async def test_a_table_with_the_wrong_key_fails_the_check(self) -> None:
        """A table keyed otherwise is refused at start, saying what a lock table needs."""
        schema = {"Table": {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]}}
        store = DynamoDBLockStore("t", client=FakeDynamoDB([], schema))
        with pytest.raises(LockCheckError, match="needs only a partition key 'lock_key'"):
            await store.check()

    def test_a_bad_table_name_is_refused(self) -> None:
        """An empty table name is a clear ValueError."""
        with pytest.raises(ValueError, match="table_name must be a table name"):
            DynamoDBLockStore("")


def test_create_table_enables_ttl_and_is_idempotent(
    dynamodb_store: DynamoDBLockStore, moto_dynamodb: Any
) -> None:
    """create_table() twice is fine; the table has TTL on expires_at."""
    dynamodb_store.create_table()
    ttl = moto_dynamodb.describe_time_to_live(TableName=dynamodb_store.table_name)
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED",
                                            "AttributeName": "expires_at"}  # fmt: skip
