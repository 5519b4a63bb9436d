"""The `sqs-consumer` command line (`python -m sqs_consumer` is the same).

Commands: `run MODULE:ATTR`, `http URL`, `exec -- CMD ARGS...`, `kick`, `send`, `demo`. A usage
error (a bad flag or value, an unimportable target, a missing queue) prints one line
naming the problem and exits 2. Only the command that runs imports what it needs, so
`--help` and `import sqs_consumer` stay light.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from .._sqs_rules import MAX_DELAY
from .config import (
    LOCK_SETTINGS,
    ConfigError,
    Setting,
    cli_settings,
    file_name,
    option_settings,
)

__all__ = ["build_parser", "main"]

PROG = "sqs-consumer"
URL_SETTING = Setting(
    "url", str, "the worker URL (sqsd's INVOKER_URL)", "URL", is_option=False
)  # `http` only: a setting so that sqsd's .env can give it


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exit code 2, and a long
    flag is never abbreviated (`--conc 3` is an error, not `--concurrency 3`): a typo must not
    be taken for a guess. Every subparser is one, `kick`'s too (`parser_class`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _get_option_tuples(self, option_string: str) -> list[tuple[Any, ...]]:
        # allow_abbrev=False stops prefixes of `--` flags only (Python 3.11): `-prof` would
        # still be taken for sqsjkr's `-profile`. Keep what a single-dash argument may mean
        # besides an abbreviation: a short flag with its value attached (`-cFILE`).
        found: list[tuple[Any, ...]] = super()._get_option_tuples(option_string)
        chars = self.prefix_chars
        if len(option_string) > 2 and option_string[0] in chars and option_string[1] not in chars:
            found = [match for match in found if match[1] == option_string[:2]]
        return found


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _long_flags(parser: argparse.ArgumentParser) -> list[str]:
    return [
        flag for action in parser._actions for flag in action.option_strings if flag[:2] == "--"
    ]


def _hint(commands: Mapping[str, argparse.ArgumentParser], command: str, argument: str) -> str:
    """What an unrecognized `--flag` may have meant: another command's flag, a whole flag it
    abbreviates, or a flag close to it ("" when nothing fits)."""
    flag = argument.split("=", 1)[0]
    own = _long_flags(commands[command])
    elsewhere = [name for name, parser in commands.items() if flag in _long_flags(parser)]
    if elsewhere:
        return f"{flag} is a flag of {' and '.join(elsewhere)} only"
    longer = [whole for whole in own if whole.startswith(flag)]
    if longer:
        return f"did you mean {' or '.join(longer[:3])}? flags are not abbreviated"
    close = difflib.get_close_matches(flag, own, n=1)
    return f"did you mean {close[0]}?" if close else ""


def _unrecognized(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> NoReturn:
    """One line for arguments no flag took, from the command's own parser, with hints."""
    commands = _commands(parser)
    hints = [_hint(commands, command, extra) for extra in extras if extra[:2] == "--"]
    shown = "; ".join(hint for hint in hints if hint)
    text = "unrecognized arguments: " + " ".join(extras) + (f" ({shown})" if shown else "")
    commands[command].error(text)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, max_help_position=34)


def _add_settings(parser: argparse.ArgumentParser, *, batch: bool) -> None:
    files = parser.add_argument_group(
        "configuration (precedence: flag > environment > env file > TOML)"
    )
    files.add_argument(
        "--config",
        metavar="FILE.toml",
        type=file_name,
        help="read settings from a [consumer] table",
    )
    files.add_argument(
        "-e",
        "--env-file",
        metavar="FILE",
        type=file_name,
        help="read SQS_CONSUMER_* (and, for http, sqsd's names) from a dotenv file",
    )
    locks = parser.add_argument_group(
        "locks and idempotency (docs/exactly-once.md; each also SQS_CONSUMER_<NAME>)"
    )
    for setting in cli_settings():
        group = locks if setting.name in LOCK_SETTINGS else files
        if setting.name in ("no_retry", "abort_if_locked"):
            group.add_argument(
                setting.flag,
                dest=f"set__{setting.name}",
                action="store_const",
                const="true",
                default=argparse.SUPPRESS,
                help=setting.help,
            )
        else:
            _add_setting(group, setting)
    options = parser.add_argument_group("consumer options (each also SQS_CONSUMER_<NAME>)")
    for setting in option_settings(batch=batch):
        if setting.name == "batch":
            options.add_argument(
                "--batch",
                dest="set__batch",
                action="store_const",
                const="true",
                default=argparse.SUPPRESS,
                help=setting.help,
            )
        elif setting.name == "region_name":
            _add_setting(options, setting, "--region")
        else:
            _add_setting(options, setting)


def _add_setting(group: argparse._ArgumentGroup, setting: Setting, *aliases: str) -> None:
    group.add_argument(
        *aliases,
        setting.flag,
        dest=f"set__{setting.name}",
        metavar=setting.metavar,
        default=argparse.SUPPRESS,  # absent flags stay absent: lower layers then apply
        help=setting.help,
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command, flag and help text."""
    parser = _Parser(
        prog=PROG,
        description="Turn one handler function into a production Amazon SQS consumer.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    run = commands.add_parser(
        "run",
        help="consume a queue with a Python handler (MODULE:ATTR)",
        description="Import MODULE (the current directory is on sys.path) and consume the queue with ATTR: a function (sync or async), a Router, a LambdaHandler or an @sqs_handler function.",
        formatter_class=_formatter,
    )
    run.add_argument("target", metavar="MODULE:ATTR", help="e.g. jobs:handle")
    _add_settings(run, batch=True)

    http = commands.add_parser(
        "http",
        help="POST each message to a worker URL (Elastic Beanstalk sqsd)",
        description="POST each message body to a worker URL with Elastic Beanstalk sqsd's headers; 2xx acknowledges, anything else fails the message. Reads taiyoh/sqsd's .env with -e.",
        formatter_class=_formatter,
    )
    http.add_argument(
        "url",
        metavar="URL",
        nargs="?",
        help="the worker, e.g. http://127.0.0.1:8080/jobs (or INVOKER_URL)",
    )
    _add_settings(http, batch=False)

    exec_ = commands.add_parser(
        "exec",
        help="run a command per message (body on stdin)",
        usage=f"{PROG} exec [options] -- CMD [ARGS...]",
        description="Run CMD once per message, without a shell: the body on stdin, SQS_MESSAGE_ID, SQS_RECEIVE_COUNT, SQS_QUEUE_URL, SQS_MESSAGE_GROUP_ID and SQS_ATTR_<NAME> in its environment; exit 0 acknowledges.",
        formatter_class=_formatter,
    )
    exec_.add_argument(
        "command_line", metavar="CMD", nargs="+", help="the command and its arguments (after --)"
    )
    _add_settings(exec_, batch=False)

    from .kick import add_kick_parser

    add_kick_parser(commands, _formatter, _add_setting)

    send = commands.add_parser(
        "send",
        help="send one message per input line",
        description="Send one message per line of FILE (or stdin), in batches of 10; JSON lines are sent as they are.",
        formatter_class=_formatter,
    )
    send.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="input file (default: stdin)"
    )
    send.add_argument(
        "--queue-url",
        dest="set__queue_url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the queue (or SQS_CONSUMER_QUEUE_URL)",
    )
    send.add_argument(
        "--endpoint-url",
        dest="set__endpoint_url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="SQS endpoint (or SQS_CONSUMER_ENDPOINT_URL)",
    )
    send.add_argument(
        "--region",
        "--region-name",
        dest="set__region_name",
        metavar="REGION",
        default=argparse.SUPPRESS,
        help="AWS region (or SQS_CONSUMER_REGION_NAME)",
    )
    send.add_argument("--group-id", metavar="ID", help="MessageGroupId (FIFO queues)")
    send.add_argument("--delay", metavar="SECONDS", type=_delay, help="delay each message, 0-900 s")
    send.add_argument(
        "--attribute",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        type=_attribute,
        help="a string attribute on every message (repeatable)",
    )
    send.add_argument(
        "--config",
        metavar="FILE.toml",
        type=file_name,
        help="read queue_url etc. from a [consumer] table",
    )
    send.add_argument(
        "-e",
        "--env-file",
        metavar="FILE",
        type=file_name,
        help="read SQS_CONSUMER_* from a dotenv file",
    )

    demo = commands.add_parser(
        "demo",
        help="both strategies on the embedded in-memory queue",
        description="Send messages to memory://demo and consume them with each worker strategy, with a live view on a terminal.",
        formatter_class=_formatter,
    )
    demo.add_argument(
        "--messages", type=_positive_int, default=2000, help="messages per strategy (default 2000)"
    )
    demo.add_argument(
        "--concurrency", type=_positive_int, default=50, help="handlers at once (default 50)"
    )
    demo.add_argument(
        "--plain",
        action="store_true",
        help="plain lines, no live view (also with CI=true or no terminal)",
    )
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sqs-consumer")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _delay(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_DELAY:
        raise argparse.ArgumentTypeError(
            f"expected whole seconds from 0 to {MAX_DELAY}, got {text!r}"
        )
    return value


def _attribute(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for usage errors)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extras = parser.parse_known_args(arguments)
    if extras:
        _unrecognized(parser, args.command, extras)
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(messages=args.messages, concurrency=args.concurrency, plain=args.plain)
        if args.command == "kick":
            from .kick import run_kick

            return run_kick(args)
        if args.command == "send":
            from .send import run_send

            return run_send(args)
        from .commands import run_consumer

        return run_consumer(args, arguments)
    except ConfigError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # e.g. Ctrl-C during start-up, before signals are handled
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
