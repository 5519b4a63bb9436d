"""`sqs-consumer run --processes N` with a CPU-bound handler: N=1 against N=2 (and more).

A moto server on 127.0.0.1 holds the queue (MemorySQS lives in one process, the children are
several). Each case fills the queue, starts the command line, times until the queue is empty,
then sends SIGTERM and checks the exit code. `msgs/s` counts the start-up of the processes;
`steady` is the rate from the first tenth handled to the last message, and the speed-up is
taken on it. The handler burns CPU in pure Python (the GIL
holds it to one core per process), so one process tops out near one core.

Usage: python benchmarks/processes.py [--messages 400] [--burn-ms 20] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

HANDLER = """
    import time

    BURN = {burn}

    def handle(message):
        deadline = time.thread_time() + BURN  # this thread's CPU: the GIL is held all along
        n = 0
        while time.thread_time() < deadline:
            n += 1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _visible(client: object, url: str) -> int:
    attributes = client.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _case(
    client: object, endpoint: str, work: Path, processes: int, messages: int
) -> tuple[float, float]:
    url = client.create_queue(QueueName=f"bench-{processes}-{time.time_ns()}")["QueueUrl"]  # type: ignore[attr-defined]
    for start in range(0, messages, 10):
        entries = [{"Id": str(i), "MessageBody": str(start + i)} for i in range(10)]
        client.send_message_batch(QueueUrl=url, Entries=entries)  # type: ignore[attr-defined]
    command = [
        sys.executable, "-m", "sqs_consumer", "run", "cpu:handle",
        "--processes", str(processes), "--queue-url", url, "--endpoint-url", endpoint,
        "--concurrency", "4", "--wait-time-seconds", "1", "--log-level", "warning",
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work)
    warm: float | None = None  # when a tenth is done: every child has started by then
    while (left := _visible(client, url)) > 0:
        if warm is None and left <= messages * 0.9:
            warm = time.perf_counter()
        time.sleep(0.05)
    finished = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=60)
    if code != 0:
        raise SystemExit(f"--processes {processes} exited with {code}")
    steady = messages * 0.9 / (finished - (warm or started))
    return finished - started, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--burn-ms", type=float, default=20.0)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = _free_port()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("sqs", endpoint_url=endpoint)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "cpu.py").write_text(textwrap.dedent(HANDLER.format(burn=args.burn_ms / 1000)))
        print(f"{os.cpu_count()} CPUs; {args.messages} messages of {args.burn_ms:g} ms CPU each")
        print(f"{'processes':>9}  {'secs':>6}  {'msgs/s':>7}  {'steady':>7}  {'speed-up':>8}")
        first = None
        for count in (int(n) for n in args.processes.split(",")):
            elapsed, steady = _case(client, endpoint, work, count, args.messages)
            first = first or steady
            print(
                f"{count:>9}  {elapsed:>6.2f}  {args.messages / elapsed:>7.1f}  {steady:>7.1f}  "
                f"{steady / first:>7.2f}x",
                flush=True,
            )
    server.stop()


if __name__ == "__main__":
    main()
