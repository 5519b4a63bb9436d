"""Drive `sqs-consumer` in subprocesses, as an operator would, against the moto server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_name

CLI = [sys.executable, "-m", "sqs_consumer"]


class Cli:
    """Runs the command line in `cwd` with a clean environment (AWS test credentials only)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self._started: list[subprocess.Popen[str]] = []

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run to completion (30 s at most); stdout and stderr captured as text."""
        return subprocess.run(
            [*CLI, *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start in the background; stdout and stderr go to files in `cwd` (out.log, err.log)."""
        with (
            open(self.cwd / "out.log", "a") as out,
            open(self.cwd / "err.log", "a") as err,
        ):
            process = subprocess.Popen(
                [*CLI, *args],
                cwd=self.cwd,
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=err,
                text=True,
            )
        self._started.append(process)
        return process

    def stop(self, process: subprocess.Popen[str], timeout: float = 20) -> int:
        """SIGTERM, then the exit code once it has drained."""
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def log(self) -> str:
        """What the background processes wrote to stderr."""
        path = self.cwd / "err.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        for process in self._started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    """The command line, run in a fresh directory with fake AWS credentials."""
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
        CI="true",
    )
    runner = Cli(tmp_path, env)
    yield runner
    runner.close()


@pytest.fixture
def sqs_queue(moto_sqs: Any) -> Iterator[str]:
    """A fresh standard queue on the moto server."""
    url = moto_sqs.create_queue(QueueName=unique_name("cli"))["QueueUrl"]
    yield url
    moto_sqs.delete_queue(QueueUrl=url)


def counts(client: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) on the queue."""
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def send(client: Any, url: str, bodies: list[str], **entry: Any) -> None:
    """Send bodies in batches of 10 straight through boto3."""
    for start in range(0, len(bodies), 10):
        entries = [
            {"Id": str(i), "MessageBody": body, **entry}
            for i, body in enumerate(bodies[start : start + 10])
        ]
        assert not client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def lines(path: Path) -> list[str]:
    """The lines of a file a handler appends to (none before it exists)."""
    return path.read_text().splitlines() if path.exists() else []
