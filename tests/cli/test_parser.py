"""The argument parser: no abbreviated flags, and a wrong flag is one clear line (exit 2)."""

from __future__ import annotations

import argparse

import pytest

from sqs_consumer.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_no_parser_accepts_abbreviations() -> None:
    parsers = _parsers(build_parser())
    assert {parser.prog.split()[-1] for parser in parsers} >= {
        "sqs-consumer", "run", "http", "exec", "kick", "send", "demo",
    }  # fmt: skip
    assert [parser.prog for parser in parsers if parser.allow_abbrev] == []


ABBREVIATED = "flags are not abbreviated"


@pytest.mark.parametrize(
    ("argv", "unrecognized", "hint"),
    [
        (["run", "jobs:handle", "--conc", "3"], "--conc 3", f"did you mean --concurrency? {ABBREVIATED}"),
        (["exec", "--shutdown", "5", "--", "true"], "--shutdown", f"did you mean --shutdown-timeout? {ABBREVIATED}"),
        (["kick", "--conc", "3"], "--conc 3", f"did you mean --concurrency? {ABBREVIATED}"),
        (["send", "--queue", "memory://q"], "--queue", f"did you mean --queue-url? {ABBREVIATED}"),
        (["demo", "--mess", "5"], "--mess 5", f"did you mean --messages? {ABBREVIATED}"),
        (["http", "http://127.0.0.1:8080/", "--batch"], "--batch", "--batch is a flag of run only"),
        (["run", "jobs:handle", "--concurency=3"], "--concurency=3", "did you mean --concurrency?"),
        (["run", "jobs:handle", "--bogus"], "--bogus", None),
        # sqsjkr's single-dash flags are not abbreviated either (Python 3.11's allow_abbrev
        # covers only `--` flags).
        (["kick", "-prof", "nosuch"], "-prof nosuch", None),
        (["kick", "-lock-tab", "T"], "-lock-tab T", None),
    ],
)  # fmt: skip
def test_a_wrong_flag_is_one_clear_line(
    argv: list[str], unrecognized: str, hint: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo or another command's flag: exit 2, one line naming it, a hint when there is one."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    prog = f"sqs-consumer {argv[0]}"
    shown = f" ({hint})" if hint else ""
    expected = f"{prog}: error: unrecognized arguments: {unrecognized}{shown} (see {prog} --help)\n"
    assert capsys.readouterr().err == expected


def test_a_whole_flag_still_takes_its_value_after_an_equals_sign() -> None:
    args = build_parser().parse_args(["run", "jobs:handle", "--concurrency=3", "--batch"])
    assert (args.set__concurrency, args.set__batch) == ("3", "true")


def test_sqsjkr_flags_still_work_whole_and_a_short_flag_takes_an_attached_value() -> None:
    args = build_parser().parse_args(["kick", "-conf", "x.toml", "-region", "eu-west-1"])
    assert "x.toml" in str(vars(args)) and "eu-west-1" in str(vars(args))
    run = build_parser().parse_args(["run", "jobs:handle", "-emy.env"])
    assert "my.env" in str(vars(run))


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "jobs:handle", "--config", ""],
        ["run", "jobs:handle", "--env-file="],
        ["send", "--config="],
        ["kick", "-conf="],
        ["kick", "--config", " "],
    ],
)
def test_an_empty_file_name_is_an_error_not_no_file(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "needs a file name, got an empty one" in line
