"""Build the lock stores and middleware the `--idempotency-*` and `--lock-*` settings ask for."""

from __future__ import annotations

import logging
import re

import attrs

from ..handlers.middleware import Middleware
from ..locks import DynamoDBLockStore, Idempotent, KeyLock, LockStore, MemoryLockStore
from ..options import ConsumerOptions
from .config import ConfigError, Layers

__all__ = ["DEFAULT_LEASE", "DEFAULT_TTL", "lock_middleware", "store_for", "with_locks"]

log = logging.getLogger("sqs_consumer.cli")

DEFAULT_TTL = 3600.0
DEFAULT_LEASE = 60.0
_REGION_IN_URL = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com")


def store_for(table: str | None, options: ConsumerOptions, *, what: str) -> LockStore:
    """A DynamoDB store for `table` (reached like the queue), or memory when no table is named.

    DynamoDB gets the queue's `--endpoint-url` (moto and LocalStack serve both) and region.
    """
    if table is None:
        return MemoryLockStore()
    region = options.region_name
    if region is None and options.endpoint_url is None:
        match = _REGION_IN_URL.match(options.queue_url)
        region = match.group(1) if match else None
    try:
        return DynamoDBLockStore(table, endpoint_url=options.endpoint_url, region_name=region)
    except ValueError as exc:
        raise ConfigError(f"--{what}-table: {exc}") from None


def lock_middleware(layers: Layers, options: ConsumerOptions) -> list[Middleware]:
    """`Idempotent` when any --idempotency-* setting is given, `KeyLock` for --lock-key.

    Raises:
        ConfigError: a lock setting without --lock-key.
    """
    middleware: list[Middleware] = []
    if any(name in layers.values for name in ("idempotency_table", "idempotency_key",
                                              "idempotency_ttl")):  # fmt: skip
        store = store_for(layers.get("idempotency_table"), options, what="idempotency")
        middleware.append(
            Idempotent(store, layers.get("idempotency_key"), layers.get("idempotency_ttl",
                                                                        DEFAULT_TTL))
        )  # fmt: skip
    locking = [name for name in ("lock_table", "lock_lease", "abort_if_locked")
               if name in layers.values]  # fmt: skip
    if "lock_key" in layers.values:
        store = store_for(layers.get("lock_table"), options, what="lock")
        middleware.append(
            KeyLock(
                store,
                layers.get("lock_key"),
                layers.get("lock_lease", DEFAULT_LEASE),
                bool(layers.get("abort_if_locked", False)),
            )
        )
    elif locking:
        source = layers.values[locking[0]].source
        raise ConfigError(f"{source} needs --lock-key (attr:NAME or json:FIELD): what to lock on")
    in_memory = any(isinstance(getattr(mw, "store", None), MemoryLockStore) for mw in middleware)
    if in_memory and layers.get("processes", 1) > 1:
        log.warning("in-memory locks and idempotency keys are per process: with --processes, "
                    "name a DynamoDB table to share them")  # fmt: skip
    return middleware


def with_locks(layers: Layers, options: ConsumerOptions) -> ConsumerOptions:
    """`options` with the lock middleware outermost (before any the handler brought)."""
    middleware = lock_middleware(layers, options)
    if not middleware:
        return options
    if options.batch:
        raise ConfigError("--idempotency-* and --lock-* apply to per-message handlers, not --batch")
    return attrs.evolve(options, middleware=[*middleware, *options.middleware])
