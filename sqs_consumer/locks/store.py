"""The `LockStore` protocol, what a claim found, the store errors, and `MemoryLockStore`.

A store keeps one record per key: who owns it, whether its work is still running
("held") or done ("completed"), and when the record expires. Every change is conditional:
a claim wins only if the key is absent or expired, and only the owner may renew, complete
or release it. That is all `Idempotent` and `KeyLock` need, in one process or across many.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import attrs

from ..errors import SqsConsumerError

__all__ = ["Claim", "LockCheckError", "LockStore", "LockStoreError", "MemoryLockStore"]


class LockStoreError(SqsConsumerError):
    """A lock store call failed for good (or kept failing transiently past its attempts)."""


class LockCheckError(LockStoreError):
    """The store cannot be used at start: its table is missing or access to it is denied."""


class Claim(enum.Enum):
    """What `LockStore.claim` found."""

    CLAIMED = "claimed"
    """The key was free (absent or expired): the caller owns it now."""
    HELD = "held"
    """Another owner holds the key and its claim has not expired."""
    COMPLETED = "completed"
    """The key's work completed and the record has not expired."""


@runtime_checkable
class LockStore(Protocol):
    """Protocol: conditional records per key, shared by every consumer that uses the store.

    Times are seconds. Each method is async; a store that talks to a service runs its
    calls in the consumer's threads and retries transient errors itself.
    """

    async def check(self) -> None:
        """Fail now if the store cannot be used (called once when a consumer starts).

        Raises:
            LockCheckError: e.g. the table does not exist or access is denied.
        """
        ...

    async def claim(self, key: str, owner: str, ttl: float) -> Claim:
        """Take `key` for `owner` for `ttl` seconds, only if it is absent or expired."""
        ...

    async def renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend `owner`'s running claim to `ttl` seconds from now; False if not the owner."""
        ...

    async def complete(self, key: str, owner: str, ttl: float) -> bool:
        """Mark `owner`'s claim completed, kept `ttl` seconds; False if not the owner."""
        ...

    async def release(self, key: str, owner: str) -> bool:
        """Remove `owner`'s running claim so others can take the key; False if not the owner."""
        ...


@attrs.frozen(slots=True)
class _Record:
    owner: str
    completed: bool
    expires_at: float


class MemoryLockStore:
    """A `LockStore` in this process's memory: for tests and for single-process consumers.

    Every consumer that should see the same locks must share the one instance; separate
    processes (`--processes N`, several hosts) need `DynamoDBLockStore`.

    Args:
        clock: the time source in seconds (inject one to test expiry without waiting).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # Consumers on other threads' event loops may share one store.
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def __repr__(self) -> str:
        return f"<MemoryLockStore keys={len(self._records)}>"

    async def check(self) -> None:
        """Nothing to check: memory is always there."""

    def _live(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is not None and record.expires_at <= self._clock():
            del self._records[key]
            return None
        return record

    def _owned(self, key: str, owner: str) -> _Record | None:
        record = self._live(key)
        if record is None or record.owner != owner or record.completed:
            return None
        return record

    async def claim(self, key: str, owner: str, ttl: float) -> Claim:
        """See `LockStore.claim`."""
        with self._lock:
            record = self._live(key)
            if record is not None:
                return Claim.COMPLETED if record.completed else Claim.HELD
            self._records[key] = _Record(owner, False, self._clock() + ttl)
            return Claim.CLAIMED

    async def renew(self, key: str, owner: str, ttl: float) -> bool:
        """See `LockStore.renew`."""
        with self._lock:
            if self._owned(key, owner) is None:
                return False
            self._records[key] = _Record(owner, False, self._clock() + ttl)
            return True

    async def complete(self, key: str, owner: str, ttl: float) -> bool:
        """See `LockStore.complete`. An expired claim nobody took since still completes."""
        with self._lock:
            record = self._records.get(key)
            if record is None or record.owner != owner or record.completed:
                return False
            self._records[key] = _Record(owner, True, self._clock() + ttl)
            return True

    async def release(self, key: str, owner: str) -> bool:
        """See `LockStore.release`."""
        with self._lock:
            if self._owned(key, owner) is None:
                return False
            del self._records[key]
            return True

    def state(self, key: str) -> Claim | None:
        """What a claim on `key` would find now (None: free), without changing anything."""
        with self._lock:
            record = self._live(key)
        if record is None:
            return None
        return Claim.COMPLETED if record.completed else Claim.HELD
