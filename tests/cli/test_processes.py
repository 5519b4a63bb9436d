"""`--processes N`: a supervisor that forwards signals, restarts crashes and sums /stats."""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from sqs_consumer import ConsumerOptions
from sqs_consumer.cli.supervisor import Supervisor, _free_port
from tests.cli.conftest import Cli, counts, lines, send
from tests.conftest import wait_until

JOBS = """
    import os

    def handle(message):
        with open("handled.txt", "a") as out:
            out.write(f"{os.getpid()} {message.body}\\n")
"""


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_two_processes_consume_aggregate_stats_and_drain_on_sigterm(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str
) -> None:
    """Both children consume; /stats sums them; SIGTERM drains each child; exit 0."""
    (cli.cwd / "jobs.py").write_text(textwrap.dedent(JOBS))
    port = _free_port()
    process = cli.start(
        "run", "jobs:handle", "--processes", "2", "--stats-port", str(port),
        "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint, "--wait-time-seconds", "1",
        "--concurrency", "2",
    )  # fmt: skip

    def healthy() -> bool:
        try:
            return _get(port, "/healthz")[0] == 200
        except OSError:
            return False

    wait_until(healthy, timeout=20)  # every child is up and polling
    send(moto_sqs, sqs_queue, [f"m{i}" for i in range(40)])
    handled = cli.cwd / "handled.txt"
    wait_until(lambda: len(lines(handled)) == 40, timeout=20)
    wait_until(lambda: json.loads(_get(port, "/stats")[1])["deleted"] == 40, timeout=10)
    stats = json.loads(_get(port, "/stats")[1])
    assert (stats["processes"], stats["processes_up"], stats["succeeded"]) == (2, 2, 40)
    assert len({line.split()[0] for line in lines(handled)}) == 2  # both children took work
    assert cli.stop(process) == 0, cli.log()
    assert cli.log().count("SIGTERM: shutting down gracefully") == 2
    assert counts(moto_sqs, sqs_queue) == (0, 0)


OPTIONS = ConsumerOptions(queue_url="memory://unused")


def _stop_later(supervisor: Supervisor, when: Any) -> threading.Thread:
    def watch() -> None:
        wait_until(when, timeout=20)
        supervisor.stop()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_child_that_keeps_crashing_stops_the_supervisor_with_1() -> None:
    crash = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor = Supervisor([], 1, OPTIONS, command=crash, backoff_first=0.01, max_crashes=3)
    assert supervisor.run() == 1
    assert supervisor.restarts == 2  # started, restarted twice, then given up


def test_a_crashed_child_is_restarted_and_a_clean_drain_exits_0(tmp_path: Path) -> None:
    """The first run crashes; the restart runs until SIGTERM, exits 0; so does the supervisor."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        marker = {str(tmp_path / "ran")!r}
        first = not os.path.exists(marker)
        open(marker, "a").write("run\\n")
        if first:
            sys.exit(1)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        open({str(tmp_path / "ready")!r}, "w").close()
        while True:
            signal.pause()  # until SIGTERM
    """)
    command = [sys.executable, "-c", script]
    supervisor = Supervisor([], 1, OPTIONS, command=command, backoff_first=0.01)
    _stop_later(supervisor, lambda: (tmp_path / "ready").exists())
    assert supervisor.run() == 0
    assert (tmp_path / "ran").read_text().count("run") == 2
    assert supervisor.restarts == 1


def test_a_child_start_up_error_stops_all_with_2(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; sys.exit(2)"]
    assert Supervisor([], 2, OPTIONS, command=command, backoff_first=0.01).run() == 2


def test_signals_are_forwarded_to_every_child(tmp_path: Path) -> None:
    """SIGTERM to the supervisor reaches each child once (they run in their own sessions)."""
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        def on_term(*_):
            open({str(tmp_path)!r} + f"/term-{{os.getpid()}}", "a").write("x")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        open({str(tmp_path)!r} + f"/ready-{{os.getpid()}}", "w").close()
        while True:
            signal.pause()  # until SIGTERM
    """)
    supervisor = Supervisor([], 3, OPTIONS, command=[sys.executable, "-c", script])
    before = signal.getsignal(signal.SIGTERM)

    def send_sigterm() -> None:
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 3, timeout=20)
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's handler runs in this thread

    threading.Thread(target=send_sigterm, daemon=True).start()
    assert supervisor.run() == 0
    terms = list(tmp_path.glob("term-*"))
    assert len(terms) == 3
    assert all(path.read_text() == "x" for path in terms)
    assert signal.getsignal(signal.SIGTERM) is before  # the supervisor put it back
