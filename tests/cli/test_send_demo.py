"""`sqs-consumer send` (lines from stdin or a file) and `sqs-consumer demo`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from sqs_consumer.cli import live, main
from sqs_consumer.cli.send import _check_queue, _ranges
from tests.cli.conftest import Cli


def _receive_all(client: Any, url: str, expected: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        if len(messages) >= expected:
            break
        messages += client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            MessageAttributeNames=["All"], AttributeNames=["All"],
        ).get("Messages", [])  # fmt: skip
    return messages


def test_send_reads_json_lines_from_stdin(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str
) -> None:
    """Each line is one message, sent as it is (JSON text unchanged); blank lines skipped."""
    lines = ['{"order": 1,  "note": "two spaces"}', "", "plain text"] + [
        f'{{"n": {i}}}' for i in range(12)
    ]
    done = cli.run(
        "send", "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint,
        "--attribute", "source=cli", "--attribute", "kind=test",
        input="\n".join(lines) + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sent 14 messages to {sqs_queue}"
    received = _receive_all(moto_sqs, sqs_queue, 14)
    assert sorted(m["Body"] for m in received) == sorted(line for line in lines if line)
    attributes = received[0]["MessageAttributes"]
    assert attributes["source"]["StringValue"] == "cli"
    assert attributes["kind"] == {"DataType": "String", "StringValue": "test"}


def test_send_names_the_lines_that_failed(
    cli: Cli, moto_endpoint: str, moto_sqs: Any, sqs_queue: str
) -> None:
    """A line SQS cannot take (over 1 MiB): the others are sent, exit 1 naming that line."""
    too_big = "x" * (1024 * 1024 + 1)
    path = cli.cwd / "bodies.txt"
    path.write_text(f"fine\n{too_big}\nalso fine\n")
    done = cli.run("send", str(path), "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint)
    assert done.returncode == 1
    assert done.stdout.strip() == f"sent 2 messages to {sqs_queue}"
    assert "1 line(s) failed: 2 (" in done.stderr


def test_failures_are_reported_by_input_line_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each reason names the input lines it applies to (never "message 0", the index within
    one call), in line order."""
    lines = ["ok"] * 8
    lines[1] = "bad \x01 character"  # refused by the producer before any call
    lines[5] = "x" * (1024 * 1024 + 1)  # over SQS's limit
    lines[6] = "also bad \x01"
    path = tmp_path / "bodies.txt"
    path.write_text("\n".join(lines) + "\n")
    assert main(["send", str(path), "--queue-url", "memory://send-lines"]) == 1
    out, err = capsys.readouterr()
    assert out == "sent 5 messages to memory://send-lines\n"
    assert err == (
        "sqs-consumer send: 3 line(s) failed: 2, 6-7 (lines 2, 7: message body contains a "
        "character SQS rejects: '\\x01'; line 6: the message is 1048577 bytes (body and "
        "attributes); SQS's limit is 1048576 bytes)\n"
    )


def test_send_without_a_queue_is_a_usage_error(cli: Cli) -> None:
    done = cli.run("send", input="x\n")
    assert done.returncode == 2
    assert "no queue" in done.stderr


def test_send_to_a_missing_queue_is_a_usage_error(cli: Cli, moto_endpoint: str) -> None:
    """A queue that does not exist: one line naming it and exit 2, as run/http/exec do."""
    url = f"{moto_endpoint}/123456789012/no-such-queue"
    path = cli.cwd / "bodies.txt"
    path.write_text("one\ntwo\n")
    done = cli.run("send", str(path), "--queue-url", url, "--endpoint-url", moto_endpoint)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # no "sent 0 messages"
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no-such-queue" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_send_only_role_may_not_ask_about_the_queue() -> None:
    """Access denied on the check is not an error: sending needs only sqs:SendMessage."""
    from botocore.exceptions import ClientError

    from sqs_consumer.producer import Producer
    from sqs_consumer.testing import MemorySQS

    class SendOnly(MemorySQS):
        def get_queue_attributes(self, **kwargs: Any) -> Any:
            error = {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}
            raise ClientError(error, "GetQueueAttributes")  # type: ignore[arg-type]

    _check_queue(Producer("memory://send-only", client=SendOnly()))


def test_ranges_compress_line_numbers() -> None:
    assert _ranges([7, 1, 2, 3, 9, 10]) == "1-3, 7, 9-10"


def test_demo_exits_0_with_plain_lines_in_ci(cli: Cli) -> None:
    """With CI=true the demo prints plain lines and the summary table, and exits 0."""
    done = cli.run("demo", "--messages", "200", "--concurrency", "20")
    assert done.returncode == 0, done.stderr
    assert "semaphore: 200 messages sent to memory://demo" in done.stdout
    assert "pool: done, queue now holds 0 messages" in done.stdout
    header = next(line for line in done.stdout.splitlines() if "strategy" in line)
    assert header.split() == ["strategy", "msgs/s", "received", "succeeded", "failed",
                              "deleted", "peak", "secs"]  # fmt: skip
    assert "\x1b[" not in done.stdout  # no terminal codes in plain mode


FIGURES = {
    "done": 40, "total": 100, "in_flight": 12, "busy": 10, "workers": 11, "idle_workers": 1,
    "waiting": 2, "prefetched": 3, "pollers": 2, "received": 52, "succeeded": 40, "failed": 1,
    "deleted": 39,
}  # fmt: skip


def test_the_live_view_shows_the_figures() -> None:
    """The rich panel shows in flight, workers, waiting room, prefetch and a throughput line."""
    from rich.console import Console

    view = live.RichView()
    view.console = Console(file=io.StringIO(), width=100, force_terminal=True, record=True)
    view.begin("pool", 100)
    view.update(0.5, {**FIGURES, "done": 20})
    view.update(1.0, FIGURES)
    view.end(1.0, FIGURES)
    screen = view.console.export_text()
    for text in ("pool strategy", "in flight", "12", "11 (1 idle)", "waiting room",
                 "prefetched", "40/100 done", "40 msgs/s"):  # fmt: skip
        assert text in screen, text
    assert any(bar in screen for bar in live.BARS)


def test_plain_view_prints_a_line_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    view = live.PlainView()
    view.begin("semaphore", 100)
    for tenth in range(1, 26):
        view.update(tenth / 10, {**FIGURES, "done": tenth * 4})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2  # at 1 s and 2 s
    assert printed[0].startswith("semaphore: 40/100 done at 1.0 s, 40 msgs/s; in flight 12")
    assert "prefetched 3" in printed[0]


def test_the_demo_falls_back_to_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=true, --plain or a pipe: plain; and without rich there is no live view."""
    from sqs_consumer.cli import demo

    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.setenv("CI", "true")
    assert demo._wants_plain(False)
    monkeypatch.delenv("CI")
    assert demo._wants_plain(True)
    monkeypatch.setitem(__import__("sys").modules, "rich", None)  # import rich fails
    assert live.rich_view() is None


def test_sparkline_scales_to_the_largest() -> None:
    assert live.sparkline([0, 5, 10]) == "▁▅█"
    assert live.sparkline([0, 0]) == "▁▁"
