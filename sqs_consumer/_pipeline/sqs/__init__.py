"""The SQS adapter: the only code that calls the boto3 client's methods.

`adapter` holds the async adapter (`Sqs`), the client protocol and builder and the queue
check; `lean` the short path for the three per-message calls (`LeanClient`), which signs with
`sigv4` and sends on the keep-alive connections of `connections`.
"""

from .adapter import Backoff, QueueInfo, Sqs, SqsClient, build_client, check_queue, describe

__all__ = ["Backoff", "QueueInfo", "Sqs", "SqsClient", "build_client", "check_queue", "describe"]
