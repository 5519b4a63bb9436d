"""The `sqs-consumer` command line (`python -m sqs_consumer` is the same)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqs-consumer",
        description="Turn one handler function into a production Amazon SQS consumer.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="consume messages from the embedded in-memory queue with both strategies",
        description="Send messages to memory://demo and consume them with each worker strategy.",
    )
    demo.add_argument("--messages", type=_positive_int, default=2000, help="messages to send")
    demo.add_argument("--concurrency", type=_positive_int, default=50, help="handlers at once")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors)."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(messages=args.messages, concurrency=args.concurrency)
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
