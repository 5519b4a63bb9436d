"""`sqs-consumer http URL`: POST each message to a local worker, as Elastic Beanstalk's sqsd does.

The handler is sync: it runs in the consumer's threads, at most `concurrency` at once, each
taking a keep-alive connection from a pool of that size (stdlib `http.client`, no extra
dependency). 2xx means success; any other status, a refused connection or a timeout fails
the message, which the retry policy brings back later.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import queue
import urllib.parse
from collections.abc import Mapping

from ..message import Message
from .config import ConfigError

__all__ = ["HttpInvoker", "WorkerError", "sqsd_headers"]

log = logging.getLogger("sqs_consumer.http")

USER_AGENT = "aws-sqsd"
SHOWN_BODY = 200  # characters of a worker's answer kept in a failure's text
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class WorkerError(Exception):
    """The worker did not answer 2xx: its status (None: no answer) and what it said."""

    def __init__(self, text: str, status: int | None = None) -> None:
        super().__init__(text)
        self.status = status


def _is_json(body: str) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _header_value(value: str) -> bytes | None:
    # CR/LF would let a message attribute add headers of its own: such a value is left out.
    if any(char in value for char in "\r\n\0"):
        return None
    return value.encode("utf-8")


def sqsd_headers(message: Message) -> dict[str, str | bytes]:
    """The headers Elastic Beanstalk's sqsd sends with a message."""
    attributes = message.attributes
    headers: dict[str, str | bytes] = {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json"
        if _is_json(message.body)
        else "text/plain; charset=utf-8",
        "X-Aws-Sqsd-Msgid": message.message_id,
        "X-Aws-Sqsd-Queue": message.queue_url.rstrip("/").rsplit("/", 1)[-1],
        "X-Aws-Sqsd-Receive-Count": str(message.receive_count),
    }
    first = attributes.get("ApproximateFirstReceiveTimestamp")
    if first is not None and first.isdigit():
        moment = dt.datetime.fromtimestamp(int(first) / 1000, dt.UTC)
        headers["X-Aws-Sqsd-First-Received-At"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if (sender := attributes.get("SenderId")) is not None:
        headers["X-Aws-Sqsd-Sender-Id"] = sender
    for name, attribute in message.message_attributes.items():
        kind = str(attribute.get("DataType", ""))
        text = attribute.get("StringValue")
        # As sqsd does: String and Number attributes become headers, Binary ones do not.
        if not kind.startswith(("String", "Number")) or not isinstance(text, str):
            continue
        value = _header_value(text)
        if value is None:
            log.warning("message %s: the value of attribute %s has a line break or NUL; "
                        "not sent as a header", message.message_id, name)  # fmt: skip
            continue
        headers[f"X-Aws-Sqsd-Attr-{name}"] = value
    return headers


class HttpInvoker:
    """A sync handler that POSTs each message body to `url` with sqsd's headers.

    Args:
        url: the worker's http:// or https:// URL.
        timeout: seconds to connect and for each read of the answer.
        pool_size: keep-alive connections kept (the consumer's concurrency).

    Raises:
        ConfigError: the URL is not http(s) with a host.
    """

    def __init__(self, url: str, *, timeout: float, pool_size: int) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"expected an http:// or https:// URL with a host, got {url!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(f"bad port in {url!r}: {exc}") from None
        self.url = url
        self.timeout = timeout
        self._parts = parts
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._pool: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue(pool_size)

    def __repr__(self) -> str:
        return f"<HttpInvoker POST {self.url}>"

    def __call__(self, message: Message) -> None:
        """POST the message; return on 2xx, raise WorkerError otherwise."""
        status, reason, answer = self.post(message.body.encode("utf-8"), sqsd_headers(message))
        if not 200 <= status < 300:
            shown = answer[:SHOWN_BODY].decode("utf-8", "replace")
            more = "..." if len(answer) > SHOWN_BODY else ""
            raise WorkerError(
                f"POST {self.url} answered {status} {reason}: {shown!r}{more}", status
            )

    def post(self, body: bytes, headers: Mapping[str, str | bytes]) -> tuple[int, str, bytes]:
        """One POST on a pooled connection: (status, reason, body of the answer).

        A pooled connection the worker has closed meanwhile is retried once on a new one.

        Raises:
            WorkerError: no answer (refused, reset, timed out).
        """
        connection, reused = self._take()
        try:
            try:
                return self._exchange(connection, body, headers)
            except _STALE:
                if not reused:
                    raise
                connection.close()
                return self._exchange(connection, body, headers)  # reconnects on its own
        except TimeoutError:
            connection.close()
            raise WorkerError(f"POST {self.url}: no answer within {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            text = str(exc)[:SHOWN_BODY]  # e.g. BadStatusLine quotes what the worker sent
            raise WorkerError(f"POST {self.url} failed: {type(exc).__name__}: {text}") from None
        except BaseException:
            connection.close()
            raise

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        body: bytes,
        headers: Mapping[str, str | bytes],
    ) -> tuple[int, str, bytes]:
        connection.request("POST", self._target, body=body, headers=dict(headers))
        response = connection.getresponse()
        answer = response.read()  # all of it, or the connection cannot be reused
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return response.status, response.reason, answer

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        try:
            return self._pool.get_nowait(), True
        except queue.Empty:
            pass
        kind = (
            http.client.HTTPSConnection
            if self._parts.scheme == "https"
            else http.client.HTTPConnection
        )
        connection = kind(self._parts.hostname or "", self._parts.port, timeout=self.timeout)
        return connection, False

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        try:
            self._pool.put_nowait(connection)
        except queue.Full:
            connection.close()

    def close(self) -> None:
        """Close the pooled connections."""
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return
