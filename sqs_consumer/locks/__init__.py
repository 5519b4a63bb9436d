"""Locks and idempotency (SPEC §7): sqsjkr's locker and throttler as middleware.

- `Idempotent(store, key=None, ttl=3600)`: a key's handler runs at most once within ttl.
- `KeyLock(store, key, lease=60, abort_if_locked=False)`: one handler per key at a time.
- Stores: `MemoryLockStore` (one process) and `DynamoDBLockStore` (every process and host
  sharing a table; boto3 is imported only when its client is built).

See docs/exactly-once.md for what this guarantees and what it cannot.
"""

from .dynamodb import DynamoDBLockStore
from .keys import KeySpec, MissingKeyError
from .middleware import Idempotent, KeyLock
from .store import Claim, LockCheckError, LockStore, LockStoreError, MemoryLockStore

__all__ = [
    "Claim",
    "DynamoDBLockStore",
    "Idempotent",
    "KeyLock",
    "KeySpec",
    "LockCheckError",
    "LockStore",
    "LockStoreError",
    "MemoryLockStore",
    "MissingKeyError",
]
