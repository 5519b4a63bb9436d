"""`sqs-consumer send`: one message per input line, in batches of 10 through `Producer`.

The queue is checked first (a missing queue is a usage error, exit 2, as for run/http/exec).
Lines are sent as they are (a JSON line stays that JSON text); blank lines are skipped.
Lines go out as they are read, so `tail -f log | sqs-consumer send` streams. A progress bar
shows on a terminal (with rich installed); a final count is printed always, and failed
lines are named by number with SQS's reason, with exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from .._pipeline.sqs import describe
from .._retrying import drive
from .._sqs_rules import MAX_BATCH_ENTRIES
from ..errors import SqsError
from ..producer import Producer, SendError
from ..producer._sending import check_queue
from .config import ConfigError, layered, option_settings

__all__ = ["run_send"]

BATCH = MAX_BATCH_ENTRIES  # a SendMessageBatch per chunk of lines
SHOWN_FAILURES = 20  # failed line numbers listed before "..."
SHOWN_REASONS = 3  # distinct reasons given, each with its lines


def _check_queue(producer: Producer) -> None:
    """Check the queue before any line, as run/http/exec do at start-up: a missing queue,
    bad credentials or an unreachable endpoint is then one usage error, not a failed first
    batch (access denied on the check goes on: sending needs only sqs:SendMessage).

    Raises:
        ConfigError: the queue cannot be used; the text names it and SQS's reason.
    """
    try:
        drive(check_queue(producer.client, producer.queue_url))
    except Exception as exc:
        raise ConfigError(f"cannot use queue {producer.queue_url}: {describe(exc)}") from None


def _lines(stream: IO[str]) -> Iterator[list[tuple[int, str]]]:
    """(line number, text) in chunks of BATCH non-blank lines."""
    chunk: list[tuple[int, str]] = []
    for number, raw in enumerate(stream, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        chunk.append((number, text))
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ranges(numbers: list[int]) -> str:
    spans: list[str] = []
    for number in sorted(numbers):
        if spans and spans[-1].split("-")[-1] == str(number - 1):
            spans[-1] = f"{spans[-1].split('-')[0]}-{number}"
        else:
            spans.append(str(number))
    shown = spans[:SHOWN_FAILURES]
    return ", ".join(shown) + (", ..." if len(spans) > SHOWN_FAILURES else "")


class _Sender:
    """Sends chunks and keeps the tally: sent, failed line numbers and why."""

    def __init__(self, producer: Producer, extra: dict[str, Any]) -> None:
        self.producer = producer
        self.extra = extra
        self.sent = 0
        self.failed: dict[int, str] = {}

    def chunk(self, chunk: list[tuple[int, str]]) -> bool:
        """Send one chunk; False when none of it went through (stop: the rest would fail too)."""
        try:
            self.producer.send_many([text for _, text in chunk], **self.extra)
        except SendError as exc:
            reasons = {
                failure.index: f"{failure.code}: {failure.message}" for failure in exc.failures
            }
            for index, (number, _) in enumerate(chunk):
                if exc.message_ids[index] is None:
                    self.failed[number] = reasons.get(index, "not sent")
            self.sent += sum(message_id is not None for message_id in exc.message_ids)
            return any(message_id is not None for message_id in exc.message_ids)
        except (ValueError, TypeError):
            return self._one_by_one(chunk)  # a line SQS would refuse: find which
        self.sent += len(chunk)
        return True

    def _one_by_one(self, chunk: list[tuple[int, str]]) -> bool:
        went = False
        for number, text in chunk:
            try:
                self.producer.send(text, **self.extra)
            except SendError as exc:
                failure = exc.failures[0] if exc.failures else None
                self.failed[number] = (
                    f"{failure.code}: {failure.message}" if failure is not None else str(exc)
                )
            except (ValueError, TypeError, SqsError) as exc:
                # The producer counts messages within its call: a lone send's is "message 0".
                self.failed[number] = re.sub(r"^message 0\b", "the message", str(exc))
            else:
                self.sent += 1
                went = True
        return went


def _reasons(failed: dict[int, str]) -> str:
    """Each reason with the input lines it applies to, in the order of their first line."""
    lines: dict[str, list[int]] = {}
    for number in sorted(failed):
        lines.setdefault(failed[number], []).append(number)
    parts = [
        f"line{'s' * (len(numbers) > 1)} {_ranges(numbers)}: {reason}"
        for reason, numbers in lines.items()
    ]
    return "; ".join(parts[:SHOWN_REASONS]) + ("; ..." if len(parts) > SHOWN_REASONS else "")


def _progress(
    total: int | None,
) -> tuple[Callable[[int], None], contextlib.AbstractContextManager[Any]]:
    """A rich progress bar on stderr when it is a terminal; else nothing."""
    if not sys.stderr.isatty():
        return (lambda _: None), contextlib.nullcontext()
    try:
        from rich.progress import Progress
    except ImportError:
        return (lambda _: None), contextlib.nullcontext()
    from rich.console import Console

    progress = Progress(console=Console(stderr=True), transient=True)
    task = progress.add_task("sending", total=total)
    return (lambda count: progress.advance(task, count)), progress


def _count_lines(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as file:
            return sum(1 for line in file if line.strip())
    except OSError:
        return None


def run_send(args: argparse.Namespace) -> int:
    """The `send` command; exit code 0, 1 (some lines failed) or 2 (usage)."""
    wanted = {"queue_url", "endpoint_url", "region_name"}
    settings = [setting for setting in option_settings() if setting.name in wanted]
    flags = {name[5:]: value for name, value in vars(args).items() if name.startswith("set__")}
    layers = layered(settings, flags=flags, config=args.config, env_file=args.env_file)
    queue_url = layers.get("queue_url")
    if queue_url is None:
        raise ConfigError("no queue: give --queue-url or SQS_CONSUMER_QUEUE_URL")
    try:
        producer = Producer(
            queue_url,
            endpoint_url=layers.get("endpoint_url"),
            region_name=layers.get("region_name"),
        )
        extra: dict[str, Any] = {
            "group_id": args.group_id,
            "delay": args.delay,
            "attributes": dict(args.attribute) or None,
        }
        producer.send_many([], **extra)  # checks the options against the queue before any line
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None
    except Exception as exc:  # e.g. botocore's NoRegionError
        raise ConfigError(f"cannot send to {queue_url}: {exc}") from None
    _check_queue(producer)
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    sender = _Sender(producer, extra)
    advance, bar = _progress(None if args.file == "-" else _count_lines(args.file))
    stopped_at: int | None = None
    with stream, bar:
        for chunk in _lines(stream):
            if not sender.chunk(chunk):
                stopped_at = chunk[0][0]
                break
            advance(len(chunk))
    print(f"sent {sender.sent} message{'s' * (sender.sent != 1)} to {queue_url}", flush=True)
    if not sender.failed:
        return 0
    print(
        f"sqs-consumer send: {len(sender.failed)} line(s) failed: {_ranges(list(sender.failed))} ({_reasons(sender.failed)})",
        file=sys.stderr,
    )
    if stopped_at is not None:
        print(
            f"sqs-consumer send: stopped at line {stopped_at}: nothing in that batch went through; later lines were not sent",
            file=sys.stderr,
        )
    return 1
