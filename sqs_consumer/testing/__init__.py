"""An in-memory SQS with real semantics, for tests and benchmarks: `MemorySQS`.

`MemorySQS` stands in for `boto3.client("sqs")`: the same method names, keyword-only PascalCase
parameters, response shapes and error codes, with visibility timeouts, receive counts, delays,
per-entry batch failures, FIFO group locking and deduplication, redrive to a dead-letter queue
and long polling. It is thread-safe and built for speed (a heap of visibility deadlines, so a
receive or delete costs O(batch · log n)). Queue URLs are ``memory://NAME``::

    sqs = MemorySQS()
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]  # "memory://jobs"
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]

Extras for tests: `counts()`, `all_messages()`, `waiting()`, `wait_until_empty()`, injected
`latency` and `inject_faults()`, and a call hook (`MemorySQS(hook=fn)`, see `SQSCall`) that
sees every call and may answer it, raise, delay it or let it through. Not modelled: message
retention, PurgeQueueInProgress, tags, permissions and KMS.

The package is split by job: `client` (`MemorySQS`, the boto3-shaped methods) and `hook` (the
call hook: `SQSCall`, `CallHook`) define the public names; the private `_model` (messages,
visibility, FIFO groups, redrive), `_validation` (request checks and SQS's error answers) and
`_faults` (latency and injected faults) define none (docs/architecture.md has the rule).
"""

from .client import MemorySQS
from .hook import CallHook, SQSCall

# The module constants `sqs_consumer.testing` had before it became a package stay importable
# from it, as before outside `__all__`.
from ._faults import FAULT_KINDS as FAULT_KINDS  # isort: skip
from ._model import (  # isort: skip
    ACCOUNT_ID as ACCOUNT_ID,
    DEDUP_WINDOW as DEDUP_WINDOW,
    MAX_VISIBILITY as MAX_VISIBILITY,
    REGION as REGION,
    URL_PREFIX as URL_PREFIX,
)

__all__ = ["CallHook", "MemorySQS", "SQSCall"]
