"""Sending messages: `Producer` (blocking) and its async twin `AsyncProducer`.

Both check every message before the first call (body type and size, attributes, delay, FIFO
ids), send batches of up to 10 entries within the 1 MiB request limit, retry transient failures
with jittered backoff and raise `SendError` for the rest. Users import from here; the files:

- `_encoding.py`: bodies and attributes in SQS's shape, checked (pure, no I/O);
- `_sending.py`: the one logic, check then send, as plans that yield a call or a sleep (each
  call retried by the retry engine the consumer uses too, `sqs_consumer/_retrying.py`);
- `sync.py` (`Producer`) and `aio.py` (`AsyncProducer`): the drivers, blocking and async;
- `failures.py`: `SendError`, `SendFailure`.
"""

from __future__ import annotations

# Importable from here as before the split, though not public names (not in __all__).
from ._encoding import AttributeValue as AttributeValue
from ._encoding import encode_attributes as encode_attributes
from ._encoding import encode_body as encode_body
from ._sending import ATTEMPTS as ATTEMPTS
from ._sending import BACKOFF as BACKOFF
from ._sending import ProducerClient as ProducerClient
from .aio import AsyncProducer
from .failures import SendError, SendFailure
from .sync import Producer

__all__ = ["AsyncProducer", "Producer", "SendError", "SendFailure"]
