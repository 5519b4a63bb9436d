"""`sqs-consumer exec -- CMD`: body on stdin, message in the environment, never a shell."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sqs_consumer import Message
from sqs_consumer.cli.config import ConfigError
from sqs_consumer.cli.exec import ExecError, ExecHandler, message_environment
from tests.cli.conftest import Cli, counts, lines, send
from tests.conftest import wait_until

RECORD = """
    import json, os, sys
    body = sys.stdin.read()
    keys = ("SQS_MESSAGE_ID", "SQS_RECEIVE_COUNT", "SQS_QUEUE_URL", "SQS_ATTR_KIND")
    record = {"body": body, **{key: os.environ.get(key) for key in keys}}
    with open(sys.argv[1], "a") as out:
        out.write(json.dumps(record) + "\\n")
    print("handled", record["SQS_MESSAGE_ID"])
"""


def test_exec_passes_the_body_on_stdin_and_the_message_in_the_environment(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str
) -> None:
    """Each body reaches the command's stdin as text: `$(touch x)` creates nothing."""
    (cli.cwd / "record.py").write_text(textwrap.dedent(RECORD))
    kind = {"DataType": "String", "StringValue": "report"}
    send(moto_sqs, sqs_queue, ["$(touch pwned)", "`touch pwned`; touch pwned"],
         MessageAttributes={"kind": kind})  # fmt: skip
    process = cli.start(
        "exec", "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint,
        "--wait-time-seconds", "1", "--", sys.executable, "record.py", "out.jsonl",
    )  # fmt: skip
    out = cli.cwd / "out.jsonl"
    wait_until(lambda: len(lines(out)) == 2, timeout=20)
    wait_until(lambda: counts(moto_sqs, sqs_queue) == (0, 0), timeout=10)
    assert cli.stop(process) == 0, cli.log()
    records = sorted((json.loads(line) for line in lines(out)), key=lambda r: r["body"])
    assert [r["body"] for r in records] == ["$(touch pwned)", "`touch pwned`; touch pwned"]
    assert not (cli.cwd / "pwned").exists()
    for record in records:
        assert record["SQS_RECEIVE_COUNT"] == "1"
        assert record["SQS_QUEUE_URL"] == sqs_queue
        assert record["SQS_ATTR_KIND"] == "report"
        # The command's output is logged line by line with the message id in front.
        message_id = record["SQS_MESSAGE_ID"]
        assert f"{message_id} stdout: handled {message_id}" in cli.log()


def test_a_command_not_on_path_is_a_start_up_error(cli: Cli, sqs_queue: str) -> None:
    done = cli.run("exec", "--queue-url", sqs_queue, "--", "no-such-command-anywhere", "-x")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "sqs-consumer exec: error: command not found on PATH: no-such-command-anywhere"
    )


def _message(body: str = "hi", group: str | None = None, **attributes: str) -> Message:
    system = {"ApproximateReceiveCount": "2"}
    if group is not None:
        system["MessageGroupId"] = group
    return Message.from_sqs(
        {
            "MessageId": "m-1",
            "ReceiptHandle": "r",
            "Body": body,
            "Attributes": system,
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
            },
        },
        queue_url="https://sqs.us-east-1.amazonaws.com/1/jobs.fifo",
    )


class TestExecHandler:
    def test_environment(self) -> None:
        env = message_environment(_message(group="g1", **{"trace-id": "t", "Kind": "k"}))
        assert env == {
            "SQS_MESSAGE_ID": "m-1",
            "SQS_RECEIVE_COUNT": "2",
            "SQS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/jobs.fifo",
            "SQS_MESSAGE_GROUP_ID": "g1",
            "SQS_ATTR_TRACE_ID": "t",
            "SQS_ATTR_KIND": "k",
        }

    def test_a_non_zero_exit_fails(self) -> None:
        handler = ExecHandler([sys.executable, "-c", "import sys; sys.exit(3)"], timeout=10)
        with pytest.raises(ExecError, match="exited with status 3"):
            handler(_message())

    def test_on_timeout_the_whole_process_group_is_killed(self, tmp_path: Path) -> None:
        """A grandchild that ignores SIGTERM is killed too: nothing outlives the message."""
        script = textwrap.dedent(f"""
            import signal, subprocess, sys, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            child = subprocess.Popen([sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
            open({str(tmp_path / "pid")!r}, "w").write(str(child.pid))
            time.sleep(60)  # both outlive the timeout unless the group is killed
        """)  # fmt: skip
        handler = ExecHandler([sys.executable, "-c", script], timeout=1.0)
        with pytest.raises(ExecError, match="its process group was killed"):
            handler(_message())
        grandchild = int((tmp_path / "pid").read_text())

        def gone() -> bool:
            try:
                os.kill(grandchild, 0)
            except ProcessLookupError:
                return True
            # A zombie is dead but not yet reaped by init: read its state.
            with open(f"/proc/{grandchild}/stat") as stat:
                return stat.read().split(")")[-1].split()[0] == "Z"

        wait_until(gone, timeout=5)

    def test_missing_and_not_executable_commands(self, tmp_path: Path) -> None:
        script = tmp_path / "job.sh"
        script.write_text("#!/bin/sh\n")
        with pytest.raises(ConfigError, match="not executable"):
            ExecHandler([str(script)], timeout=None)
        with pytest.raises(ConfigError, match="no command"):
            ExecHandler([], timeout=None)
        script.chmod(0o755)
        assert ExecHandler([str(script)], timeout=None).argv == [str(script)]
