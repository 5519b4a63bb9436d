"""docs/cli.md is checked against the parser: every flag documented, no flag made up."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sqs_consumer.cli import build_parser

DOC = Path(__file__).parents[2] / "docs" / "cli.md"


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **sub.choices}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_flag_of_every_command_is_documented() -> None:
    text = DOC.read_text()
    for name, parser in _commands().items():
        missing = {flag for flag in _flags(parser) if f"`{flag}" not in text and flag != "-h"}
        assert not missing, f"{name or 'sqs-consumer'}: {sorted(missing)} not in docs/cli.md"
        if name:
            assert f"\n## {name}\n" in text, f"no section for {name}"


def test_every_documented_flag_exists() -> None:
    known = set().union(*map(_flags, _commands().values()))
    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", DOC.read_text())):
        assert flag in known, f"docs/cli.md documents {flag}, which no command has"


def test_every_sqsd_variable_is_in_the_mapping_table() -> None:
    from sqs_consumer.cli.config import SQSD_IGNORED, SQSD_NAMES

    text = DOC.read_text()
    for variable in [*SQSD_NAMES, *SQSD_IGNORED]:
        assert f"`{variable}`" in text, variable
