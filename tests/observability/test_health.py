"""StatsServer answers /healthz and /stats on 127.0.0.1; HealthState tracks SQS failures."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from sqs_consumer.observability.health import HealthState, StatsServer

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(
    stats: Callable[[], Mapping[str, Any]] = dict,
    healthy: Callable[[], bool] = lambda: True,
    **options: Any,
) -> AsyncIterator[int]:
    """Run a StatsServer on a free port for the block; yield the port."""
    server = StatsServer(0, stats=stats, healthy=healthy, **options)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        yield port
        tg.cancel_scope.cancel()


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; (status, headers, body)."""
    with anyio.fail_after(10):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(raw)
            data = b""
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return await request(port, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())


class TestStatsServer:
    async def test_healthz_follows_healthy(self) -> None:
        """/healthz is 200 `ok` while healthy() is true and 503 `unhealthy` once it is not."""
        state = HealthState()
        async with serving(healthy=state.healthy) as port:
            status, _, body = await get(port, "/healthz")
            assert (status, body) == (200, b"ok\n")
            state.stopping()
            status, headers, body = await get(port, "/healthz")
            assert (status, body) == (503, b"unhealthy\n")
            assert headers["connection"] == "close"

    async def test_stats_is_json(self) -> None:
        """/stats answers the stats() mapping as JSON."""
        figures = {"received": 12, "in_flight": 3, "workers": 2}
        async with serving(stats=lambda: figures) as port:
            status, headers, body = await get(port, "/stats")
        assert status == 200
        assert headers["content-type"].startswith("application/json")
        assert int(headers["content-length"]) == len(body)
        assert json.loads(body) == figures

    async def test_unknown_path_and_method(self) -> None:
        """Other paths are 404; other methods on our paths are 405 with an Allow header."""
        async with serving() as port:
            assert (await get(port, "/metrics"))[0] == 404
            status, headers, _ = await get(port, "/stats", method="POST")
            assert status == 405
            assert headers["allow"] == "GET, HEAD"

    async def test_head_and_query_string(self) -> None:
        """HEAD gets the headers without a body; a query string does not change the path."""
        async with serving() as port:
            status, headers, body = await get(port, "/healthz?verbose=1", method="HEAD")
        assert (status, body) == (200, b"")
        assert headers["content-length"] == "3"

    async def test_malformed_request(self) -> None:
        """A request line that is not HTTP gets 400."""
        async with serving() as port:
            status, _, _ = await request(port, b"hello\r\n\r\n")
        assert status == 400

    async def test_request_head_size_cap(self) -> None:
        """A request head over max_request_bytes gets 431 without reading it all."""
        async with serving(max_request_bytes=256) as port:
            huge = b"GET /stats HTTP/1.1\r\nX-Filler: " + b"a" * 1024 + b"\r\n\r\n"
            status, _, _ = await request(port, huge)
        assert status == 431

    async def test_read_timeout(self) -> None:
        """A client that never finishes its request head gets 408 after read_timeout."""
        async with serving(read_timeout=0.05) as port:
            status, _, _ = await request(port, b"GET /healthz HTTP/1.1\r\n")
        assert status == 408

    async def test_slow_client_does_not_block_others(self) -> None:
        """Each connection is its own task: an idle client does not delay another request."""
        async with (
            serving(read_timeout=30) as port,
            await anyio.connect_tcp("127.0.0.1", port) as idle,
        ):
            await idle.send(b"GET /healthz")  # and nothing more
            assert (await get(port, "/healthz"))[0] == 200

    async def test_failing_callback_is_500_and_server_survives(self) -> None:
        """A stats() that raises gives 500; the server keeps serving."""

        def broken() -> Mapping[str, Any]:
            raise RuntimeError("stats broke")

        async with serving(stats=broken) as port:
            assert (await get(port, "/stats"))[0] == 500
            assert (await get(port, "/healthz"))[0] == 200

    async def test_real_http_client(self) -> None:
        """urllib (in a thread, so the loop keeps serving) reads both endpoints."""

        def fetch(url: str) -> tuple[int, bytes]:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()

        async with serving(stats=lambda: {"received": 1}, healthy=lambda: False) as port:
            base = f"http://127.0.0.1:{port}"
            assert await anyio.to_thread.run_sync(fetch, f"{base}/stats") == (
                200,
                b'{"received": 1}\n',
            )
            assert await anyio.to_thread.run_sync(fetch, f"{base}/healthz") == (503, b"unhealthy\n")

    async def test_port_in_use_fails_start(self) -> None:
        """Binding a port already in use raises OSError from start (a clear failure at start)."""
        async with serving() as port:
            second = StatsServer(port, stats=dict, healthy=lambda: True)
            with pytest.raises(OSError):
                await second.serve()

    async def test_cancelled_server_stops_listening(self) -> None:
        """Once its task is cancelled, the port is closed."""
        async with serving() as port:
            pass
        with pytest.raises(OSError):
            await anyio.connect_tcp("127.0.0.1", port)


class TestHealthState:
    def test_success_resets_the_count(self) -> None:
        """A successful poll restarts the count (the time window: test_health_window.py)."""
        state = HealthState()
        for _ in range(5):
            state.poll_failed()
        state.poll_succeeded()
        assert state.healthy() and state.poll_failures == 0
        state.poll_failed()
        state.poll_failed()
        assert state.healthy() and state.poll_failures == 2

    def test_stopping_is_unhealthy_for_good(self) -> None:
        """Once stopping, it stays unhealthy whatever the polls do."""
        state = HealthState()
        state.stopping()
        state.poll_succeeded()
        assert not state.healthy()
        assert "stopping=True" in repr(state)
