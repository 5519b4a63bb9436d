"""`Idempotent` and `KeyLock`: sqsjkr's throttler and locker as middleware over a LockStore.

Both take a claim on the message's key before the handler runs and keep it renewed while
it runs (a third of the lease, the heartbeat's rhythm), so a crashed consumer's claim
simply expires. What they do after the handler differs: `Idempotent` marks the key
completed on success (later deliveries are acknowledged unhandled) and releases it on
failure, so the retry runs; `KeyLock` always releases.

`run_once` and `run_exclusive` are the same logic for callers with a key of their own
(`sqs-consumer kick` takes its keys from the job definition).
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from .._sqs_rules import MAX_VISIBILITY
from ..errors import Discard, Retry
from ..handlers.middleware import CallNext
from ..message import Message
from ..stats import count_duplicate
from .keys import KeySpec, key_function
from .store import Claim, LockStore

__all__ = ["Idempotent", "KeyLock", "new_owner", "run_exclusive", "run_once"]

log = logging.getLogger("sqs_consumer.locks")

T = TypeVar("T")

_LET_GO_TIMEOUT = 10.0  # seconds a final release/complete may take, even during shutdown


def new_owner() -> str:
    """A unique owner id that says where the claim came from (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _jittered(delay: float) -> float:
    # Consumers that found one key held should not all come back in the same second.
    return delay * random.uniform(0.5, 1.0)


async def _renew(store: LockStore, key: str, owner: str, lease: float) -> None:
    """Renew the claim every third of the lease until cancelled; never raises."""
    interval = max(0.2, lease / 3)
    while True:
        await anyio.sleep(interval)
        try:
            still_ours = await store.renew(key, owner, lease)
        except Exception as exc:  # transient trouble already retried: try again next beat
            log.warning("could not renew the claim on %r: %s", key, exc)
            continue
        if not still_ours:
            log.warning(
                "lost the claim on %r while its handler runs (it expired and another consumer "
                "took it?): raise the lease", key,
            )  # fmt: skip
            return


async def _holding(
    store: LockStore, key: str, owner: str, lease: float, call: Callable[[], Awaitable[T]]
) -> T:
    """Run `call` while renewing the claim; its result or its exception, unwrapped."""
    error: Exception | None = None
    result: Any = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_renew, store, key, owner, lease)
        try:
            result = await call()
        except Exception as exc:  # kept out of the task group, so it is raised as itself
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result  # type: ignore[no-any-return]


async def _let_go(what: str, key: str, action: Callable[[], Awaitable[bool]]) -> bool:
    """Release or complete a claim even while cancelled (timeout, shutdown), for a while."""
    with anyio.move_on_after(_LET_GO_TIMEOUT, shield=True):
        try:
            return await action()
        except Exception as exc:
            log.warning("could not %s %r (it expires with its lease): %s", what, key, exc)
            return False
    log.warning("could not %s %r within %g s (it expires with its lease)", what, key,
                _LET_GO_TIMEOUT)  # fmt: skip
    return False


async def run_once(
    store: LockStore,
    key: str,
    call: Callable[[], Awaitable[T]],
    *,
    ttl: float,
    lease: float,
    retry_delay: float,
    message_id: str = "",
) -> T | None:
    """Run `call` unless `key` completed within `ttl` (then return None, a duplicate).

    Raises:
        Retry: another consumer is running the key's work now (not expired).
        LockStoreError: the store failed (the message fails and is retried).
        Exception: whatever `call` raised (the key is released first).
    """
    owner = new_owner()
    claim = await store.claim(key, owner, lease)
    if claim is Claim.COMPLETED:
        count_duplicate()
        log.info("message %s: %r already completed; acknowledged without running the handler",
                 message_id, key)  # fmt: skip
        return None
    if claim is Claim.HELD:
        log.debug("message %s: %r is in progress elsewhere; retrying later", message_id, key)
        raise Retry(delay=_jittered(retry_delay))
    try:
        result = await _holding(store, key, owner, lease, call)
    except BaseException:
        await _let_go("release", key, lambda: store.release(key, owner))
        raise
    if not await _let_go("complete", key, lambda: store.complete(key, owner, ttl)):
        log.warning(
            "message %s: %r ran but could not be marked completed (its claim was lost): a "
            "redelivery may run it again", message_id, key,
        )  # fmt: skip
    return result


async def run_exclusive(
    store: LockStore,
    key: str,
    call: Callable[[], Awaitable[T]],
    *,
    lease: float,
    abort_if_locked: bool,
    retry_delay: float,
    message_id: str = "",
) -> T:
    """Run `call` holding the lock on `key`, released afterwards whatever happens.

    Raises:
        Retry: the key is locked by another owner (not expired).
        Discard: the key is locked and `abort_if_locked`.
        LockStoreError: the store failed (the message fails and is retried).
        Exception: whatever `call` raised.
    """
    owner = new_owner()
    claim = await store.claim(key, owner, lease)
    if claim is not Claim.CLAIMED:
        if abort_if_locked:
            log.info("message %s: %r is locked; discarded (abort_if_locked)", message_id, key)
            raise Discard()
        log.debug("message %s: %r is locked; retrying later", message_id, key)
        raise Retry(delay=_jittered(retry_delay))
    try:
        return await _holding(store, key, owner, lease, call)
    finally:
        await _let_go("release", key, lambda: store.release(key, owner))


def _seconds(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner} {name} must be a number of seconds, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{owner} {name} must be > 0 seconds, got {value!r}")
    return float(value)


def _store(owner: str, store: object) -> LockStore:
    if not isinstance(store, LockStore):
        raise TypeError(
            f"{owner} store must be a LockStore (MemoryLockStore, DynamoDBLockStore, or an "
            f"object with async check/claim/renew/complete/release), got {store!r}"
        )
    return store


def _retry_delay(owner: str, value: object) -> float:
    delay = _seconds(owner, "retry_delay", value)
    if delay > MAX_VISIBILITY:  # it becomes a Retry delay: a visibility timeout
        raise ValueError(
            f"{owner} retry_delay must be at most {MAX_VISIBILITY} seconds, got {value!r}"
        )
    return delay


class Idempotent:
    """Middleware: run the handler at most once per key within `ttl` (sqsjkr's event_id).

    A message whose key completed is acknowledged without calling the handler and counted
    in `stats().duplicates`; one whose key is being handled elsewhere (claim not expired)
    raises `Retry(delay≈retry_delay)`; success marks the key completed for `ttl` seconds;
    failure (an exception, `Retry`, `Discard`, a timeout, a forced stop) releases it, so
    the next delivery runs the handler. While the handler runs, its claim lasts `lease`
    seconds and is renewed every third of that: a crashed consumer's claim expires.

    What it cannot do: undo side effects of a handler that crashed half-way, or see a
    completion that was never recorded (a crash between the handler and the store write).
    See docs/exactly-once.md.

    Args:
        store: where the keys live (`MemoryLockStore` for one process, else
            `DynamoDBLockStore`).
        key: None (the message id), `"attr:NAME"`, `"json:FIELD"` or `(message) -> str`.
        ttl: seconds a completed key is remembered.
        lease: seconds a running claim lasts without renewal.
        retry_delay: about how long before a message whose key is in progress comes back.
        namespace: prefix of the stored keys, so one table can serve several uses.

    Raises:
        TypeError / ValueError: a bad store, key spec or number of seconds.
    """

    def __init__(
        self,
        store: LockStore,
        key: KeySpec = None,
        ttl: float = 3600,
        *,
        lease: float = 60,
        retry_delay: float = 5.0,
        namespace: str = "idempotent",
    ) -> None:
        self.store = _store("Idempotent", store)
        self._key = key_function(key, what="Idempotent key")
        self.ttl = _seconds("Idempotent", "ttl", ttl)
        self.lease = _seconds("Idempotent", "lease", lease)
        self.retry_delay = _retry_delay("Idempotent", retry_delay)
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"Idempotent({self.store!r}, key={self._key!r}, ttl={self.ttl:g})"

    async def __sqs_check__(self) -> None:
        """Called once when the consumer starts: fail now if the store cannot be used."""
        await self.store.check()

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        """Run the rest of the chain at most once for the message's key."""
        key = f"{self.namespace}:{self._key(message)}"
        return await run_once(
            self.store,
            key,
            lambda: call_next(message),
            ttl=self.ttl,
            lease=self.lease,
            retry_delay=self.retry_delay,
            message_id=message.message_id,
        )


class KeyLock:
    """Middleware: one handler at a time per key, across every consumer of the store.

    sqsjkr's `lock_id`. A message whose key is locked by another owner raises
    `Retry(delay≈retry_delay)`, or `Discard` with `abort_if_locked`. The lock lasts
    `lease` seconds, is renewed every third of that while the handler runs, and is
    released afterwards: on success, on failure, on a timeout and at shutdown. A crashed
    holder's lock expires after its lease and the work goes on.

    Args:
        store: where the locks live (`MemoryLockStore` for one process, else
            `DynamoDBLockStore`).
        key: `"attr:NAME"` (or a bare attribute name), `"json:FIELD"` or `(message) -> str`.
        lease: seconds a lock lasts without renewal (how long a crashed holder blocks).
        abort_if_locked: discard a message whose key is locked instead of retrying it.
        retry_delay: about how long before a message whose key is locked comes back.
        namespace: prefix of the stored keys, so one table can serve several uses.

    Raises:
        TypeError / ValueError: a bad store, key spec or number of seconds.
    """

    def __init__(
        self,
        store: LockStore,
        key: KeySpec,
        lease: float = 60,
        abort_if_locked: bool = False,
        *,
        retry_delay: float = 5.0,
        namespace: str = "lock",
    ) -> None:
        self.store = _store("KeyLock", store)
        if key is None:
            raise TypeError(
                "KeyLock needs a key ('attr:NAME', 'json:FIELD' or a callable): a lock per "
                "message id would never be contended"
            )
        self._key = key_function(key, what="KeyLock key")
        self.lease = _seconds("KeyLock", "lease", lease)
        if not isinstance(abort_if_locked, bool):
            raise TypeError(
                f"KeyLock abort_if_locked must be True or False, got {abort_if_locked!r}"
            )
        self.abort_if_locked = abort_if_locked
        self.retry_delay = _retry_delay("KeyLock", retry_delay)
        self.namespace = namespace

    def __repr__(self) -> str:
        return (
            f"KeyLock({self.store!r}, key={self._key!r}, lease={self.lease:g}, "
            f"abort_if_locked={self.abort_if_locked})"
        )

    async def __sqs_check__(self) -> None:
        """Called once when the consumer starts: fail now if the store cannot be used."""
        await self.store.check()

    async def __call__(self, message: Message, call_next: CallNext) -> Any:
        """Run the rest of the chain holding the lock on the message's key."""
        key = f"{self.namespace}:{self._key(message)}"
        return await run_exclusive(
            self.store,
            key,
            lambda: call_next(message),
            lease=self.lease,
            abort_if_locked=self.abort_if_locked,
            retry_delay=self.retry_delay,
            message_id=message.message_id,
        )
