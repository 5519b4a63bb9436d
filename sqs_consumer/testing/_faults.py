"""Faults and latency for MemorySQS: what a network and a busy SQS would add to each call.

`Faults.before_call` runs at the start of every client call, before any state changes: it
sleeps the latency, then draws an injected fault (throttling, a server error or a broken
connection) at the configured rate.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Collection
from typing import Any

import attrs
from botocore.exceptions import ClientError, EndpointConnectionError

from ._model import URL_PREFIX

FAULT_KINDS = ("throttling", "server", "connection")


@attrs.frozen
class FaultPlan:
    rate: float
    kinds: tuple[str, ...]
    operations: frozenset[str] | None


class Faults:
    """The latency and the fault plan of one MemorySQS, and how many faults it injected."""

    __slots__ = ("_lock", "_random", "injected", "latency", "plan")

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.plan: FaultPlan | None = None
        self.injected = 0
        self._random = random.Random()  # fault draws; seeded by inject(seed=...)
        self._lock = threading.Lock()

    def inject(
        self,
        rate: float,
        kinds: Collection[str],
        operations: Collection[str] | None,
        seed: int | None,
        known: Collection[str],
    ) -> None:
        """Start drawing faults; ValueError for a bad rate, kind or operation (not in `known`)."""
        unknown = set(kinds) - set(FAULT_KINDS) or set(operations or ()) - set(known)
        if not 0.0 <= rate <= 1.0 or unknown or not kinds:
            raise ValueError(f"inject_faults: invalid rate {rate!r} or names {sorted(unknown)}")
        with self._lock:
            self._random.seed(seed)
            ops = None if operations is None else frozenset(operations)
            self.plan = FaultPlan(rate, tuple(kinds), ops)

    def before_call(self, operation: str, operation_name: str) -> None:
        """Sleep the latency; raise an injected fault if one is drawn for `operation`."""
        if self.latency:
            time.sleep(self.latency)
        plan = self.plan
        if plan is None or (plan.operations is not None and operation not in plan.operations):
            return
        with self._lock:
            if self._random.random() >= plan.rate:
                return
            kind = self._random.choice(plan.kinds)
            self.injected += 1
        if kind == "connection":
            raise EndpointConnectionError(endpoint_url=URL_PREFIX)
        throttled = kind == "throttling"
        code, status = ("ThrottlingException", 400) if throttled else ("InternalFailure", 500)
        error = {"Code": code, "Message": f"injected {kind} fault"}
        error["Type"] = "Sender" if throttled else "Receiver"
        response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
        raise ClientError(response, operation_name)
