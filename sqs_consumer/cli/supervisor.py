"""`--processes N`: N consumer processes under one supervisor, for CPU-bound handlers.

Each child is this same command line run again (`python -m sqs_consumer ...`) with
`processes=1`. Children start in sessions of their own, so a terminal's Ctrl-C reaches
only the supervisor, which forwards SIGTERM/SIGINT once to each child: every child then
drains as a single consumer does (a second signal is forwarded too and forces it). A child
that exits on its own is restarted with exponential backoff; one that keeps crashing
stops the whole group with exit code 1, and a child's start-up error (exit 2: a missing
queue, say) stops it with exit code 2. With a stats port, the supervisor serves
`/healthz` and `/stats` itself, from the children's own servers on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import attrs

from ..options import ConsumerOptions
from .serve import SUPERVISOR_ENV

CHILD_ENV = "SQS_CONSUMER__CHILD"
"""JSON of settings the supervisor gives one child (they beat every other source)."""

__all__ = ["Supervisor"]

log = logging.getLogger("sqs_consumer.cli")

BACKOFF_FIRST = 0.5  # seconds before the first restart of a crashed child
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a child that ran this long before crashing starts its backoff afresh
MAX_CRASHES = 5  # crashes in a row (each within STABLE_AFTER of its start) before giving up
POLL = 0.2  # seconds between checks of the children; a signal wakes the loop at once
_CLEAN_SIGNALS = (-signal.SIGTERM, -signal.SIGINT)  # a child stopped before its handlers were set


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class _Child:
    index: int
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None
    started: float = 0.0
    crashes: int = 0
    restart_at: float | None = None
    exit_code: int | None = None


class Supervisor:
    """Run `argv` (this command line) as `processes` children until a signal and their drain.

    Args:
        argv: the command line arguments, as given (the children parse them again).
        processes: how many children.
        options: the resolved options (the stats port and host are the supervisor's).
        command: the child's command line; None: `python -m sqs_consumer *argv`.
        backoff_first: seconds before the first restart of a crashed child (doubling).
        max_crashes: crashes in a row of one child before the supervisor gives up.
    """

    def __init__(
        self,
        argv: list[str],
        processes: int,
        options: ConsumerOptions,
        *,
        command: list[str] | None = None,
        backoff_first: float = BACKOFF_FIRST,
        max_crashes: int = MAX_CRASHES,
    ) -> None:
        self.command = command or [sys.executable, "-m", "sqs_consumer", *argv]
        self.children = [_Child(index) for index in range(processes)]
        self.stats_port = options.stats_port
        self.stats_host = str(getattr(options, "stats_host", "127.0.0.1"))
        self.backoff_first = backoff_first
        self.max_crashes = max_crashes
        self.restarts = 0
        self.bound_port: int | None = None
        self._wake = threading.Event()
        self._signals = 0
        self._stopping = False
        self._result: int | None = None

    def run(self) -> int:
        """Start the children and supervise them; 0 after a clean drain of every child."""
        server = self._serve() if self.stats_port is not None else None
        if server is False:
            return 2
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        log.info("supervising %d processes", len(self.children))
        try:
            for child in self.children:
                self._spawn(child)
            while any(child.exit_code is None for child in self.children):
                self._wake.wait(POLL)
                self._wake.clear()
                self._check()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if isinstance(server, http.server.ThreadingHTTPServer):
                server.shutdown()
                server.server_close()
        if self._result is not None:
            return self._result
        clean = all(child.exit_code in (0, *_CLEAN_SIGNALS) for child in self.children)
        return 0 if clean else 1

    # -- children ---------------------------------------------------------------------------

    def _spawn(self, child: _Child) -> None:
        overrides: dict[str, Any] = {"processes": 1}
        if self.stats_port is not None:
            child.port = _free_port()
            overrides["stats_port"] = child.port
            if "stats_host" in attrs.fields_dict(ConsumerOptions):
                overrides["stats_host"] = "127.0.0.1"  # only the supervisor faces the network
        env = {**os.environ, SUPERVISOR_ENV: str(os.getpid()), CHILD_ENV: json.dumps(overrides)}
        if child.started:
            self.restarts += 1
        child.process = subprocess.Popen(
            self.command,
            env=env,
            start_new_session=True,  # terminal signals reach the supervisor only; it forwards them
        )
        child.started = time.monotonic()
        child.restart_at = None
        log.info("child %d started (pid %d)", child.index, child.process.pid)

    def _check(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.exit_code is not None:
                continue
            if child.process is None:
                if self._stopping:
                    child.exit_code = 0  # waiting for a restart: nothing to drain
                elif child.restart_at is not None and now >= child.restart_at:
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is None:
                continue
            child.process = None
            if self._stopping:
                child.exit_code = code
                log.info("child %d exited with %d", child.index, code)
            elif code == 2:
                log.error("child %d could not start (exit 2): stopping", child.index)
                self._give_up(child, 2)
            else:
                self._crashed(child, code, now)

    def _crashed(self, child: _Child, code: int, now: float) -> None:
        child.crashes = 1 if now - child.started >= STABLE_AFTER else child.crashes + 1
        if child.crashes >= self.max_crashes:
            log.error("child %d crashed %d times in a row (last exit %d): stopping",
                      child.index, child.crashes, code)  # fmt: skip
            self._give_up(child, 1)
            return
        delay = min(BACKOFF_MAX, self.backoff_first * 2 ** (child.crashes - 1))
        log.warning("child %d exited with %d; restarting in %.1f s", child.index, code, delay)
        child.restart_at = now + delay

    def _give_up(self, child: _Child, result: int) -> None:
        child.exit_code = result
        self._result = result
        self._stop(signal.SIGTERM)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals += 1
        log.info("%s: %s", signal.Signals(signum).name,
                 "stopping children" if self._signals == 1 else "forcing children")  # fmt: skip
        self._stop(signal.Signals(signum))

    def _stop(self, signum: signal.Signals) -> None:
        self._stopping = True
        for child in self.children:
            process = child.process  # read once: the loop may clear it meanwhile
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)
        self._wake.set()

    def stop(self) -> None:
        """Stop the children gracefully, as SIGTERM does (safe from another thread)."""
        self._stop(signal.SIGTERM)

    # -- /healthz and /stats ------------------------------------------------------------------

    def _serve(self) -> http.server.ThreadingHTTPServer | bool:
        supervisor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    healthy = supervisor.healthy()
                    self._answer(
                        200 if healthy else 503,
                        b"ok\n" if healthy else b"unhealthy\n",
                        "text/plain",
                    )
                elif self.path == "/stats":
                    self._answer(200, json.dumps(supervisor.stats()).encode(), "application/json")
                else:
                    self._answer(404, b"not found\n", "text/plain")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the log

        assert self.stats_port is not None
        try:
            server = http.server.ThreadingHTTPServer((self.stats_host, self.stats_port), Handler)
        except OSError as exc:
            print(f"sqs-consumer: error: cannot serve /healthz and /stats on port "
                  f"{self.stats_port}: {exc}", file=sys.stderr)  # fmt: skip
            return False
        server.daemon_threads = True
        self.bound_port = int(server.server_address[1])
        threading.Thread(
            target=server.serve_forever, name="sqs-consumer-stats", daemon=True
        ).start()
        log.info(
            "serving /healthz and /stats on http://%s:%d", self.stats_host, server.server_address[1]
        )
        return server

    def _fetch(self, port: int, path: str) -> tuple[int, bytes] | None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    def healthy(self) -> bool:
        """Every child is running and answers 200 on its own /healthz."""
        if self._stopping:
            return False
        for child in self.children:
            if child.process is None or child.port is None:
                return False
            answer = self._fetch(child.port, "/healthz")
            if answer is None or answer[0] != 200:
                return False
        return True

    def stats(self) -> dict[str, Any]:
        """The children's /stats summed field by field, plus how many are up."""
        total: dict[str, Any] = {}
        up = 0
        for child in self.children:
            if child.process is None or child.port is None:
                continue
            answer = self._fetch(child.port, "/stats")
            if answer is None or answer[0] != 200:
                continue
            up += 1
            for name, value in json.loads(answer[1]).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    total[name] = total.get(name, 0) + value
        total["processes"] = len(self.children)
        total["processes_up"] = up
        return total
