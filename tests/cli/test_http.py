"""`sqs-consumer http URL`: sqsd's headers and semantics, against a local worker server."""

from __future__ import annotations

import http.server
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sqs_consumer import Message
from sqs_consumer.cli.http import HttpInvoker, WorkerError, sqsd_headers
from tests.cli.conftest import Cli, counts, send
from tests.conftest import wait_until


class Worker:
    """A local HTTP/1.1 worker: records each POST, answers with `answer(request_number)`."""

    def __init__(self, answer: Callable[[dict[str, Any]], tuple[int, bytes]]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        worker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real worker does

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = {
                    "path": self.path,
                    "body": body.decode(),
                    "headers": dict(self.headers),
                    "peer": self.client_address,
                }
                with worker.lock:
                    worker.requests.append(request)
                status, answer = worker.answer(request)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.answer = answer
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/work?src=sqs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def worker_factory() -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(answer: Callable[[dict[str, Any]], tuple[int, bytes]]) -> Worker:
        made.append(Worker(answer))
        return made[-1]

    yield make
    for worker in made:
        worker.close()


def test_http_posts_with_sqsd_headers_and_retries_a_500(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str, worker_factory: Any
) -> None:
    """taiyoh/sqsd's .env as it is: each body POSTed with sqsd's headers; a 500 comes back."""
    seen: dict[str, int] = {}

    def answer(request: dict[str, Any]) -> tuple[int, bytes]:
        message_id = request["headers"]["X-Aws-Sqsd-Msgid"]
        seen[message_id] = seen.get(message_id, 0) + 1
        return (500, b"database down") if seen[message_id] == 1 else (200, b"ok")

    worker = worker_factory(answer)
    (cli.cwd / ".env").write_text(
        f"INVOKER_URL={worker.url}\nQUEUE_URL={sqs_queue}\nINVOKER_TIMEOUT=10s\n"
        "INVOKER_PARALLEL_COUNT=1\nMONITORING_PORT=0\nLOG_LEVEL=info\n"
        f"SQS_CONSUMER_ENDPOINT_URL={moto_endpoint}\nSQS_CONSUMER_WAIT_TIME_SECONDS=1\n"
    )
    kind = {"DataType": "String", "StringValue": "order"}
    send(moto_sqs, sqs_queue, ['{"order": 7}'], MessageAttributes={"kind": kind})
    send(moto_sqs, sqs_queue, ["plain text"])
    process = cli.start("http", "-e", ".env")
    wait_until(lambda: len(worker.requests) == 4, timeout=30)  # 2 failures, 2 retries
    wait_until(lambda: counts(moto_sqs, sqs_queue) == (0, 0), timeout=10)
    assert cli.stop(process) == 0, cli.log()

    by_body = {(r["body"], r["headers"]["X-Aws-Sqsd-Receive-Count"]): r for r in worker.requests}
    assert set(by_body) == {('{"order": 7}', "1"), ('{"order": 7}', "2"), ("plain text", "1"),
                            ("plain text", "2")}  # fmt: skip
    json_request = by_body[('{"order": 7}', "1")]
    headers = json_request["headers"]
    assert json_request["path"] == "/work?src=sqs"
    assert headers["User-Agent"] == "aws-sqsd"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Aws-Sqsd-Queue"] == sqs_queue.rsplit("/", 1)[-1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", headers["X-Aws-Sqsd-First-Received-At"])
    assert headers["X-Aws-Sqsd-Sender-Id"]
    assert headers["X-Aws-Sqsd-Attr-kind"] == "order"
    assert by_body[("plain text", "1")]["headers"]["Content-Type"].startswith("text/plain")
    # One invoker (INVOKER_PARALLEL_COUNT=1): every POST went over one kept-alive connection.
    assert len({r["peer"] for r in worker.requests}) == 1
    assert "answered 500 Internal Server Error: 'database down'" in cli.log()


def _message(body: str = "hi", **attributes: str) -> Message:
    return Message.from_sqs(
        {
            "MessageId": "m-1",
            "ReceiptHandle": "r",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": "3", "SenderId": "AIDA"},
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
            },
        },
        queue_url="https://sqs.us-east-1.amazonaws.com/1/jobs",
    )


@pytest.fixture
def invoker() -> Iterator[Callable[..., HttpInvoker]]:
    """Builds HttpInvokers and closes their pooled connections after the test."""
    made: list[HttpInvoker] = []

    def make(url: str, *, timeout: float = 5, pool_size: int = 1) -> HttpInvoker:
        made.append(HttpInvoker(url, timeout=timeout, pool_size=pool_size))
        return made[-1]

    yield make
    for one in made:
        one.close()


class TestHttpInvoker:
    def test_2xx_succeeds_and_other_statuses_fail_with_the_answer(
        self, worker_factory: Any, invoker: Any
    ) -> None:
        statuses = iter([201, 404, 503])
        worker = worker_factory(lambda _: (next(statuses), b"x" * 500))
        post = invoker(worker.url, pool_size=2)
        post(_message())
        with pytest.raises(WorkerError, match=r"answered 404 Not Found: 'x{200}'\.\.\.$"):
            post(_message())
        with pytest.raises(WorkerError) as error:
            post(_message())
        assert error.value.status == 503

    def test_a_refused_connection_fails(self, invoker: Any) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, never listening: connections are refused
            post = invoker(f"http://127.0.0.1:{port}/")
            with pytest.raises(WorkerError, match="ConnectionRefusedError"):
                post(_message())

    def test_a_worker_that_does_not_answer_times_out(self, invoker: Any) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()  # accepts (in the backlog), never answers
            post = invoker(f"http://127.0.0.1:{sock.getsockname()[1]}/", timeout=0.3)
            with pytest.raises(WorkerError, match=r"no answer within 0.3 s"):
                post(_message())

    def test_a_connection_the_worker_closed_is_replaced(
        self, worker_factory: Any, invoker: Any
    ) -> None:
        """A kept-alive connection closed by the worker while idle: the POST still goes through."""
        worker = worker_factory(lambda _: (200, b""))
        post = invoker(worker.url)
        post(_message())
        pooled = post._pool.queue[0]
        assert pooled.sock is not None
        pooled.sock.shutdown(socket.SHUT_RDWR)  # as if the worker's idle timeout closed it
        post(_message())
        assert len(worker.requests) == 2

    def test_the_pool_keeps_at_most_pool_size_connections(
        self, worker_factory: Any, invoker: Any
    ) -> None:
        worker = worker_factory(lambda _: (200, b""))
        post = invoker(worker.url, pool_size=2)
        barrier = threading.Barrier(4)

        def one() -> None:
            barrier.wait()
            post(_message())

        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(worker.requests) == 4
        assert post._pool.qsize() <= 2
        post.close()
        assert post._pool.qsize() == 0

    def test_bad_urls_are_usage_errors(self) -> None:
        from sqs_consumer.cli.config import ConfigError

        for url in ("ftp://host/", "http:///path", "http://host:port/"):
            with pytest.raises(ConfigError):
                HttpInvoker(url, timeout=1, pool_size=1)


def test_an_attribute_with_a_line_break_is_not_a_header(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CR/LF in an attribute would let a sender add headers: that attribute is left out,
    with a warning that says it is the value that has the line break."""
    with caplog.at_level(logging.WARNING, logger="sqs_consumer.http"):
        headers = sqsd_headers(_message(ok="fine", evil="x\r\nX-Admin: 1"))
    assert [record.getMessage() for record in caplog.records] == [
        "message m-1: the value of attribute evil has a line break or NUL; not sent as a header"
    ]
    assert headers["X-Aws-Sqsd-Attr-ok"] == b"fine"
    assert "X-Aws-Sqsd-Attr-evil" not in headers
    assert headers["X-Aws-Sqsd-Receive-Count"] == "3"
    assert headers["X-Aws-Sqsd-Queue"] == "jobs"
