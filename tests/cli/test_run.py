"""`sqs-consumer run MODULE:ATTR`, `--help` and usage errors, driven in subprocesses."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sqs_consumer.cli import main
from tests.cli.conftest import Cli, counts, lines, send
from tests.conftest import wait_until

JOBS = """
    from pathlib import Path

    from sqs_consumer import Message, Router, sqs_handler

    def handle(message: Message) -> None:
        with open("handled.txt", "a") as out:
            out.write(message.body + "\\n")

    async def handle_async(message: Message) -> None:
        handle(message)

    router = Router(attribute="kind")

    @router.route("greeting")
    def greet(message: Message) -> None:
        handle(message)

    @sqs_handler(queue_url="memory://never-used", concurrency=3)
    def decorated(message: Message) -> None:
        handle(message)
"""


def _jobs(cli: Cli) -> Path:
    (cli.cwd / "jobs.py").write_text(textwrap.dedent(JOBS))
    return cli.cwd / "handled.txt"


def test_help_lists_the_commands(cli: Cli) -> None:
    """`--help` names every command; exit code 0."""
    done = cli.run("--help")
    assert done.returncode == 0
    for command in ("run", "http", "exec", "send", "demo"):
        assert f"    {command} " in done.stdout


@pytest.mark.parametrize("command", ["run", "http", "exec", "send", "demo"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`COMMAND --help` prints its usage and exits 0."""
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    assert f"usage: sqs-consumer {command}" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["jobs:handle", "jobs:handle_async", "jobs:router"])
def test_run_consumes_with_settings_from_the_environment_and_exits_0_on_sigterm(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str, target: str
) -> None:
    """A sync, an async function or a Router consumes; SIGTERM drains and exits 0."""
    handled = _jobs(cli)
    kind = {"DataType": "String", "StringValue": "greeting"}
    send(moto_sqs, sqs_queue, ["one", "two", "three"], MessageAttributes={"kind": kind})
    process = cli.start(
        "run",
        target,
        env={
            "SQS_CONSUMER_QUEUE_URL": sqs_queue,
            "SQS_CONSUMER_ENDPOINT_URL": moto_endpoint,
            "SQS_CONSUMER_WAIT_TIME_SECONDS": "1",
        },
    )
    wait_until(lambda: len(lines(handled)) == 3, timeout=20)
    wait_until(lambda: counts(moto_sqs, sqs_queue) == (0, 0), timeout=10)
    assert cli.stop(process) == 0, cli.log()
    assert sorted(lines(handled)) == ["one", "three", "two"]
    assert "SIGTERM: shutting down gracefully" in cli.log()


def test_run_reads_an_env_file_over_the_decorators_options(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str
) -> None:
    """An @sqs_handler function runs with the env file's queue (it beats the decorator's)."""
    handled = _jobs(cli)
    (cli.cwd / "worker.env").write_text(
        f"# the consumer's settings\nSQS_CONSUMER_QUEUE_URL={sqs_queue}\n"
        f"export SQS_CONSUMER_ENDPOINT_URL='{moto_endpoint}'\n"
        "SQS_CONSUMER_WAIT_TIME_SECONDS=1  # short polls: a quick exit\n"
    )
    send(moto_sqs, sqs_queue, ["from the env file"])
    process = cli.start("run", "jobs:decorated", "--env-file", "worker.env", "--stats-port", "0")
    wait_until(lambda: lines(handled) == ["from the env file"], timeout=20)
    assert cli.stop(process) == 0, cli.log()
    assert "concurrency 3" in cli.log()  # the decorator's own setting still applies


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "nowhere:handle"], "cannot import 'nowhere': no module named 'nowhere'"),
        (["run", "jobs:missing"], "module 'jobs' has no attribute 'missing'"),
        (["run", "jobs"], "expected MODULE:ATTR"),
        (["run", "jobs:handle", "--concurrency", "0"], "--concurrency: ConsumerOptions"),
        (["run", "jobs:handle", "--wait-time-seconds", "soon"], "expected an integer"),
        (["run", "jobs:handle", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "jobs:handle", "--processes", "2", "--queue-url", "memory://q"], "real queue"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    cli: Cli, sqs_queue: str, args: list[str], expected: str
) -> None:
    """A bad target or value: exit 2 and one line on stderr naming it, no traceback."""
    _jobs(cli)
    done = cli.run(*args, env={"SQS_CONSUMER_QUEUE_URL": sqs_queue})
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_queue_is_a_start_up_error(cli: Cli, moto_endpoint: str) -> None:
    """A queue that does not exist: exit 2 with one line naming it, before any message."""
    _jobs(cli)
    url = f"{moto_endpoint}/123456789012/no-such-queue"
    done = cli.run("run", "jobs:handle", "--queue-url", url, "--endpoint-url", moto_endpoint)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no-such-queue" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_library_import_stays_light(cli: Cli) -> None:
    """`import sqs_consumer` loads no part of the command line, and `--help` loads no rich."""
    probe = (
        "import sys, sqs_consumer; assert 'sqs_consumer.cli' not in sys.modules; "
        "from sqs_consumer.cli import main\n"
        "try: main(['run', '--help'])\n"
        "except SystemExit: pass\n"
        "heavy = {'rich', 'http.server', 'sqs_consumer.cli.http', 'sqs_consumer.cli.demo'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=cli.env
    )
    assert done.returncode == 0, done.stderr
