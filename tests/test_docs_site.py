"""The checks behind `make docs` (docs/hooks/): they catch what the strict build relies on them for."""

from __future__ import annotations

import importlib.util
import logging
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import griffe
import pytest

HOOKS = Path(__file__).parents[1] / "docs" / "hooks"


def _hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


public_api = _hook("public_api")
attrs_init = _hook("attrs_init")


def test_public_names_are_every_all_of_the_public_modules() -> None:
    package = griffe.load("sqs_consumer", resolve_aliases=True)
    names = public_api._public_names(package)
    assert "sqs_consumer.Consumer" in names
    assert "sqs_consumer.testing.MemorySQS" in names
    assert "sqs_consumer.locks.KeyLock" in names
    # The object behind a public name is where it is defined, so two public paths meet in one.
    assert names["sqs_consumer.Producer"].path == names["sqs_consumer.producer.Producer"].path


def test_a_public_method_or_property_without_a_docstring_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text(
        textwrap.dedent(
            '''
            class Thing:
                """Documented."""

                size: int = 0

                def run(self) -> None:
                    pass

                @property
                def state(self) -> str:
                    return ""

                def _private(self) -> None:
                    pass

            def helper() -> None:
                pass
            '''
        )
    )
    package = griffe.load("pkg", search_paths=[str(tmp_path)])
    assert public_api._undocumented("pkg.Thing", package["Thing"]) == [
        "pkg.Thing.run",
        "pkg.Thing.state",
    ]
    assert public_api._undocumented("pkg.helper", package["helper"]) == ["pkg.helper"]


def _build(shown: dict[str, str], caplog: pytest.LogCaptureFixture) -> list[str]:
    public_api._shown.clear()
    public_api._shown.update(shown)
    config: Any = type("Config", (), {"config_file_path": str(HOOKS.parents[1] / "mkdocs.yml")})
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.public_api"):
        public_api.on_post_build(config)
    return [record.getMessage() for record in caplog.records]


def test_a_page_that_renders_a_module_path_or_leaves_a_name_out_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    complete = {path: "reference/x.md" for path in _all_public_paths()}
    assert _build(complete, caplog) == []
    caplog.clear()
    shown = dict(complete)
    del shown["sqs_consumer.locks.Claim"]
    shown["sqs_consumer.retry.ExponentialBackoff"] = shown.pop("sqs_consumer.ExponentialBackoff")
    warnings = _build(shown, caplog)
    assert any("sqs_consumer.locks.Claim is in no page" in w for w in warnings)
    assert any("renders sqs_consumer.retry.ExponentialBackoff, which is not" in w for w in warnings)


def _all_public_paths() -> list[str]:
    package = griffe.load("sqs_consumer", resolve_aliases=True)
    return list(public_api._public_names(package))


def test_attrs_classes_get_the_init_attrs_generates() -> None:
    package = griffe.load("sqs_consumer", extensions=griffe.load_extensions(attrs_init.AttrsInit()))
    backoff = package["retry.ExponentialBackoff"]
    parameters = backoff.members["__init__"].parameters
    assert [p.name for p in parameters] == ["self", "initial", "multiplier", "max_delay", "jitter"]
    assert parameters["initial"].kind is griffe.ParameterKind.keyword_only
    assert parameters["initial"].default == "1.0"
    # The converter's argument type, not the stored field's: callers pass any iterable.
    failed = package["handlers.batch.BatchResult"].members["__init__"].parameters["failed"]
    assert str(failed.annotation) == "Iterable[str | Message]"
    assert failed.default == "frozenset()"
