"""`/healthz` and `/stats` over a minimal HTTP/1.1 server (127.0.0.1 unless told otherwise), and `HealthState`.

The server is a task in the consumer's task group, written on anyio streams (no
third-party server, no threads): it reads one request head under a size cap and a read
timeout, answers, and closes the connection. It runs until cancelled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

__all__ = ["HealthState", "StatsServer"]

log = logging.getLogger("sqs_consumer")

_END_OF_HEAD: Final = re.compile(rb"\r?\n\r?\n")  # LF alone tolerated, as RFC 9112 allows
_LINGER_SECONDS: Final = 1.0
_LINGER_READS: Final = 16
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HealthState:
    """Whether the consumer is healthy: SQS works for it and it is not shutting down.

    Pure bookkeeping; the consumer reports each ReceiveMessage and DeleteMessageBatch
    attempt and the start of its shutdown. One failure, or a few quick retries, is not an
    outage (throttling, a dropped connection): the consumer turns unhealthy only once
    receives, or deletes, have failed for `unhealthy_after` seconds with no success in
    between. A success ends that streak at once.

    Args:
        unhealthy_after: seconds of failing receives (or deletes) after which it is
            unhealthy (> 0).
        clock: seconds on a monotonic clock (tests inject one).
    """

    def __init__(
        self, unhealthy_after: float = 30.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        number = isinstance(unhealthy_after, int | float) and not isinstance(unhealthy_after, bool)
        if not number or not unhealthy_after > 0:  # `not >`: NaN too
            raise ValueError(
                f"HealthState unhealthy_after must be a number of seconds > 0, "
                f"got {unhealthy_after!r}"
            )
        self.unhealthy_after = float(unhealthy_after)
        self._clock = clock
        self.poll_failures = 0
        """Consecutive failed receives since the last success."""
        self.delete_failures = 0
        """Consecutive failed deletes since the last success."""
        self._polls_failing_since: float | None = None
        self._deletes_failing_since: float | None = None
        self.is_stopping = False

    def poll_succeeded(self) -> None:
        """A ReceiveMessage call returned (with or without messages)."""
        self.poll_failures = 0
        self._polls_failing_since = None

    def poll_failed(self) -> None:
        """A ReceiveMessage call failed (each attempt of the SQS adapter's retries counts)."""
        self.poll_failures += 1
        if self._polls_failing_since is None:
            self._polls_failing_since = self._clock()

    def delete_succeeded(self) -> None:
        """A DeleteMessageBatch call returned (its per-entry results are not an outage)."""
        self.delete_failures = 0
        self._deletes_failing_since = None

    def delete_failed(self) -> None:
        """A DeleteMessageBatch call failed."""
        self.delete_failures += 1
        if self._deletes_failing_since is None:
            self._deletes_failing_since = self._clock()

    def stopping(self) -> None:
        """The graceful shutdown has begun: unhealthy from now on."""
        self.is_stopping = True

    def problem(self) -> str | None:
        """Why it is unhealthy, or None when it is healthy."""
        if self.is_stopping:
            return "stopping"
        now = self._clock()
        for what, since in (
            ("receives", self._polls_failing_since),
            ("deletes", self._deletes_failing_since),
        ):
            if since is not None and now - since >= self.unhealthy_after:
                return f"{what} failing for {now - since:.0f} s"
        return None

    def healthy(self) -> bool:
        """False once stopping, or once receives or deletes have failed, with no success in
        between, for `unhealthy_after` seconds."""
        return self.problem() is None

    def __repr__(self) -> str:
        return (
            f"<HealthState healthy={self.healthy()} poll_failures={self.poll_failures} "
            f"delete_failures={self.delete_failures} stopping={self.is_stopping}>"
        )


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class StatsServer:
    """Serve `GET /healthz` and `GET /stats` on `host` (127.0.0.1 by default; HEAD too).

    `/healthz` answers 200 `ok` while `healthy()` is true, else 503 `unhealthy`;
    `/stats` answers 200 with `stats()` as JSON. Other paths get 404, other methods 405.

    Args:
        port: the TCP port; 0 picks a free one (`serve()` reports which).
        stats: returns the figures for `/stats` (e.g. `lambda: consumer.stats().as_dict()`).
        healthy: returns whether `/healthz` says 200.
        host: the address to listen on ("0.0.0.0" in a container, for the kubelet's probes).
        routes: more JSON paths, each with the callable that returns its figures (e.g.
            `kick`'s sqsjkr-shaped `/stats/metrics/v2`).
        read_timeout: seconds a client has to send its request head.
        max_request_bytes: the largest request head accepted (431 beyond).
    """

    def __init__(
        self,
        port: int,
        *,
        stats: Callable[[], Mapping[str, Any]],
        healthy: Callable[[], bool],
        host: str = "127.0.0.1",
        routes: Mapping[str, Callable[[], Mapping[str, Any]]] | None = None,
        read_timeout: float = 5.0,
        max_request_bytes: int = 8192,
    ) -> None:
        self.port = port
        self.host = host
        self._stats = stats
        self._healthy = healthy
        self._routes = {"/stats": stats, **(routes or {})}
        self._read_timeout = read_timeout
        self._max_request_bytes = max_request_bytes

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on `host` and answer requests until cancelled.

        Args:
            task_status: receives the bound port once the server listens.

        Raises:
            OSError: the port cannot be bound (e.g. it is in use).
        """
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            port = listener.extra(SocketAttribute.local_port)
            log.info("serving /healthz and /stats on http://%s:%d", self.host, port)
            task_status.started(port)
            await listener.serve(self._answer)

    async def _answer(self, stream: SocketStream) -> None:
        """One connection: read a request head, send one response, close."""
        async with stream:
            try:
                try:
                    method, path = await self._read_request(stream)
                    status, content_type, body = self._respond(method, path)
                except _BadRequest as bad:
                    method, status, content_type = "GET", bad.status, "text/plain"
                    body = f"{_REASONS[bad.status].lower()}\n".encode()
                await stream.send(_response(status, content_type, body, head=method == "HEAD"))
                await _linger(stream)
            except (anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
                log.debug("stats client went away: %r", exc)
            except Exception:  # a bug here must not end the consumer's task group
                log.exception("stats server failed to answer")

    async def _read_request(self, stream: SocketStream) -> tuple[str, str]:
        data = b""
        with anyio.move_on_after(self._read_timeout):
            while (end := _END_OF_HEAD.search(data)) is None:
                if len(data) > self._max_request_bytes:  # checked before reading more
                    raise _BadRequest(431)
                data += await stream.receive(4096)
            if end.start() > self._max_request_bytes:
                raise _BadRequest(431)
            request_line = data.split(b"\n", 1)[0].decode("latin-1").strip()
            parts = request_line.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                raise _BadRequest(400)
            return parts[0], parts[1].split("?", 1)[0]
        raise _BadRequest(408)

    def _respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        if path != "/healthz" and path not in self._routes:
            return 404, "text/plain", b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        try:
            if path == "/healthz":
                if self._healthy():
                    return 200, "text/plain", b"ok\n"
                return 503, "text/plain", b"unhealthy\n"
            body = json.dumps(dict(self._routes[path]()), sort_keys=True, default=str)
            return 200, "application/json", body.encode() + b"\n"
        except Exception:  # a broken callback must not take the consumer down with it
            log.exception("%s failed", path)
            return 500, "text/plain", b"internal server error\n"


async def _linger(stream: SocketStream) -> None:
    """Half-close, then discard what the client still sends until it closes (bounded).

    Closing a socket with unread input makes the kernel send a reset, which can destroy
    the response before the client reads it (e.g. after a 431 or a 408).
    """
    await stream.send_eof()
    with anyio.move_on_after(_LINGER_SECONDS), contextlib.suppress(anyio.EndOfStream):
        for _ in range(_LINGER_READS):
            await stream.receive()


def _response(status: int, content_type: str, body: bytes, *, head: bool) -> bytes:
    allow = "Allow: GET, HEAD\r\n" if status == 405 else ""
    lines = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return lines.encode("latin-1") + (b"" if head else body)
