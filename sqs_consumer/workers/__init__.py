"""Concurrency strategies: how received messages become running handlers."""

from .base import Job, Worker, WorkerStats
from .pool import ElasticPool
from .semaphore import SemaphoreWorker
from .waiting_room import WaitingRoom

__all__ = ["ElasticPool", "Job", "SemaphoreWorker", "WaitingRoom", "Worker", "WorkerStats"]
