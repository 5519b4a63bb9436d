"""`DynamoDBLockStore`: the `LockStore` on a DynamoDB table, with conditional writes.

One item per key: `lock_key` (the partition key, a string), `owner`, `state` ("held" or
"completed") and `expires_at` (epoch seconds, a number: name it as the table's TTL
attribute so DynamoDB deletes old items). DynamoDB's TTL deletion is lazy (up to days
late), so every condition checks `expires_at` itself rather than trusting the deletion.

boto3 is imported only when a client is built, so `import sqs_consumer.locks` stays light.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from .._pipeline.calls import run_sync
from .._pipeline.sqs import describe
from .._retrying import Backoff, drive_async, gave_up, retried
from ..errors import error_code
from .store import Claim, LockCheckError, LockStoreError

__all__ = ["IAM_ACTIONS", "KEY_ATTRIBUTE", "TTL_ATTRIBUTE", "DynamoDBLockStore"]

log = logging.getLogger("sqs_consumer.locks")

KEY_ATTRIBUTE = "lock_key"
"""The table's partition key (type S)."""
TTL_ATTRIBUTE = "expires_at"
"""The expiry, epoch seconds (type N): the attribute to enable DynamoDB TTL on."""
IAM_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
"""What a consumer's role needs on the table (create_table() needs CreateTable and
UpdateTimeToLive too)."""

_ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnrecognizedClientException"})
_CONDITION_FAILED = "ConditionalCheckFailedException"
_ATTEMPTS = 8  # transient failures of one call before it gives up (~ a few seconds)
_HELD, _COMPLETED = "held", "completed"


class DynamoDBLockStore:
    """A `LockStore` shared by every consumer (any process, any host) using one table.

    Args:
        table_name: the table; make it with `create_table()` or see docs/exactly-once.md.
        client: a boto3 DynamoDB client; None builds one from `endpoint_url`/`region_name`
            (boto3's own retries are off: this store backs off with jitter itself).
        endpoint_url: e.g. http://127.0.0.1:5000 for moto or DynamoDB Local.
        region_name: the AWS region (default: boto3's configuration).
        clock: wall-clock seconds since the epoch (expiry is shared between hosts).
        backoff: delays between retries of a transient error (default: full jitter from
            50 ms, doubling).

    Raises:
        ValueError: `table_name` is empty or not a string.
    """

    def __init__(
        self,
        table_name: str,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        if not isinstance(table_name, str) or not table_name.strip():
            raise ValueError(
                f"DynamoDBLockStore table_name must be a table name, got {table_name!r}"
            )
        self.table_name = table_name
        self._client = client
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._clock = clock
        self._backoff = backoff if backoff is not None else Backoff()

    def __repr__(self) -> str:
        return f"DynamoDBLockStore({self.table_name!r})"

    @property
    def client(self) -> Any:
        """The boto3 client (built on first use)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10)
            # A session of our own: boto3's default session is not thread-safe.
            self._client = boto3.session.Session().client(
                "dynamodb",
                endpoint_url=self._endpoint_url,
                region_name=self._region_name,
                config=config,
            )
        return self._client

    # -- set-up ------------------------------------------------------------------------------

    def create_table(self, *, wait: bool = True) -> None:
        """Create the table (on-demand billing) with TTL on `expires_at`; a no-op if it exists.

        Blocking (boto3): meant for set-up scripts and tests, not for handlers.

        Args:
            wait: wait until the table is ACTIVE.
        """
        client = self.client
        try:
            client.create_table(
                TableName=self.table_name,
                AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":
                raise
        if wait:
            client.get_waiter("table_exists").wait(
                TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
        try:
            client.update_time_to_live(
                TableName=self.table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        except Exception as exc:
            # Already enabled (or being enabled) is fine: that is what we asked for.
            if error_code(exc) != "ValidationException":
                raise

    async def check(self) -> None:
        """DescribeTable once, so a missing table or denied access fails the consumer's start.

        Raises:
            LockCheckError: no such table, access denied, a wrong key schema, or DynamoDB
                could not be reached after a few attempts.
        """
        from botocore.exceptions import BotoCoreError

        try:
            self.client  # noqa: B018 - built here, so a missing region fails the check, not a call
        except BotoCoreError as exc:  # e.g. NoRegionError
            raise LockCheckError(
                f"cannot use DynamoDB table {self.table_name!r}: {exc} (give the store a "
                "region_name or an endpoint_url; the CLI takes --region or --endpoint-url)"
            ) from exc
        try:
            response = await self._call("describe_table", attempts=4, TableName=self.table_name)
        except LockStoreError as exc:
            cause = exc.__cause__ or exc
            code = error_code(cause)
            if code == "ResourceNotFoundException":
                raise LockCheckError(
                    f"DynamoDB table {self.table_name!r} does not exist: create it with "
                    f"DynamoDBLockStore({self.table_name!r}).create_table() (partition key "
                    f"{KEY_ATTRIBUTE!r}, type S; TTL on {TTL_ATTRIBUTE!r})"
                ) from cause
            if code in _ACCESS_DENIED:
                raise LockCheckError(
                    f"cannot use DynamoDB table {self.table_name!r}: {describe(cause)} (the "
                    f"consumer needs {', '.join(IAM_ACTIONS)})"
                ) from cause
            raise LockCheckError(
                f"cannot use DynamoDB table {self.table_name!r}: {describe(cause)}"
            ) from cause
        schema = response.get("Table", {}).get("KeySchema") or []
        expected = [{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}]
        if schema != expected:
            raise LockCheckError(
                f"DynamoDB table {self.table_name!r} has key schema {schema}: a lock table needs "
                f"only a partition key {KEY_ATTRIBUTE!r} (type S)"
            )

    # -- the protocol ------------------------------------------------------------------------

    async def claim(self, key: str, owner: str, ttl: float) -> Claim:
        """See `LockStore.claim`: a PutItem that wins only if the key is absent or expired."""
        for _ in range(3):  # the holder may let go between our put and our look
            now = self._clock()
            try:
                await self._call(
                    "put_item",
                    TableName=self.table_name,
                    Item=self._item(key, owner, _HELD, now + ttl),
                    ConditionExpression="attribute_not_exists(#k) OR #e <= :now",
                    ExpressionAttributeNames={"#k": KEY_ATTRIBUTE, "#e": TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":now": {"N": _number(now)}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return Claim.CLAIMED
            except _ConditionFailed as failed:
                item = failed.item
            if item is None:  # a DynamoDB (or emulator) that does not return the old item
                response = await self._call(
                    "get_item",
                    TableName=self.table_name,
                    Key={KEY_ATTRIBUTE: {"S": key}},
                    ConsistentRead=True,
                )
                item = response.get("Item")
            if item is not None:
                state = item.get("state", {}).get("S")
                return Claim.COMPLETED if state == _COMPLETED else Claim.HELD
        return Claim.HELD

    async def renew(self, key: str, owner: str, ttl: float) -> bool:
        """See `LockStore.renew`."""
        return await self._update(key, owner, _HELD, self._clock() + ttl)

    async def complete(self, key: str, owner: str, ttl: float) -> bool:
        """See `LockStore.complete`."""
        return await self._update(key, owner, _COMPLETED, self._clock() + ttl)

    async def release(self, key: str, owner: str) -> bool:
        """See `LockStore.release`."""
        try:
            await self._call(
                "delete_item",
                TableName=self.table_name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                ConditionExpression="#o = :owner AND #s = :held",
                ExpressionAttributeNames={"#o": "owner", "#s": "state"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":held": {"S": _HELD}},
            )
        except _ConditionFailed:
            return False
        return True

    async def _update(self, key: str, owner: str, state: str, expires_at: float) -> bool:
        try:
            await self._call(
                "update_item",
                TableName=self.table_name,
                Key={KEY_ATTRIBUTE: {"S": key}},
                UpdateExpression="SET #s = :state, #e = :expires",
                ConditionExpression="#o = :owner AND #s = :held",
                ExpressionAttributeNames={"#o": "owner", "#s": "state", "#e": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":held": {"S": _HELD},
                    ":state": {"S": state},
                    ":expires": {"N": str(math.ceil(expires_at))},
                },
            )
        except _ConditionFailed:
            return False
        return True

    def _item(self, key: str, owner: str, state: str, expires_at: float) -> dict[str, Any]:
        return {
            KEY_ATTRIBUTE: {"S": key},
            "owner": {"S": owner},
            "state": {"S": state},
            # Whole seconds, as DynamoDB TTL expects; rounded up so no claim ends early.
            TTL_ATTRIBUTE: {"N": str(math.ceil(expires_at))},
        }

    async def _call(self, operation: str, *, attempts: int = _ATTEMPTS, **kwargs: Any) -> Any:
        """One DynamoDB call in the consumer's threads, transient errors retried with jitter.

        Raises:
            _ConditionFailed: the condition did not hold (not an error for the caller).
            LockStoreError: a fatal error, or transient ones `attempts` times in a row.
        """
        method = partial(getattr(self.client, operation), **kwargs)

        def on_retry(exc: Exception, attempt: int) -> None:
            level = logging.WARNING if attempt >= 3 else logging.DEBUG
            log.log(level, "DynamoDB %s failed (%s), retry %d", operation, describe(exc), attempt)

        plan = retried(method, attempts=attempts, backoff=self._backoff, on_retry=on_retry)
        try:
            return await drive_async(plan, run_sync)
        except Exception as exc:
            if error_code(exc) == _CONDITION_FAILED:  # fatal to the engine: never retried
                item = getattr(exc, "response", {}).get("Item")
                raise _ConditionFailed(item) from None
            raise LockStoreError(
                f"DynamoDB {operation} on {self.table_name!r} {gave_up(exc, attempts)}: "
                f"{describe(exc)}"
            ) from exc


class _ConditionFailed(Exception):
    """A conditional write lost; `item` is the item as it was, when DynamoDB returned it."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__(item)
        self.item = item


def _number(value: float) -> str:
    return str(Decimal(repr(value)))
