"""The layout keeps its two rules (docs/architecture.md): what a leading underscore means, and
that only the SQS adapter calls the client."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import botocore.session
from botocore import xform_name

import sqs_consumer

PACKAGE = Path(sqs_consumer.__file__).parent


def _public_paths() -> tuple[str, ...]:
    """The public paths: PUBLIC_MODULES of the docs hook that checks the API reference."""
    hook = PACKAGE.parent / "docs" / "hooks" / "public_api.py"
    spec = importlib.util.spec_from_file_location("docs_hooks_public_api_layout", hook)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.PUBLIC_MODULES)


PUBLIC_PATHS = _public_paths()
# Plain-named, yet no public Python name: their public surface is the `sqs-consumer` command
# line (cli/), and /healthz, /stats and the metric and span names (observability/).
NOT_PYTHON = ("sqs_consumer.cli", "sqs_consumer.observability")


def _modules() -> dict[str, bool]:
    """Every module of the package -> whether it is a package (`__init__`)."""
    return {
        info.name: info.ispkg
        for info in pkgutil.walk_packages([str(PACKAGE)], prefix="sqs_consumer.")
    }


def _private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split("."))


def _defining_modules() -> dict[str, str]:
    """Public path of each public class and function -> the module that defines it."""
    found = {}
    for path in PUBLIC_PATHS:
        module = importlib.import_module(path)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[f"{path}.{name}"] = obj.__module__
    return found


def test_public_names_are_defined_outside_underscored_modules() -> None:
    """A leading underscore marks code that defines no public name (the engine in
    _pipeline/, _sqs_rules.py, _checks.py, testing/_model.py ...)."""
    defined = _defining_modules()
    assert defined["sqs_consumer.Consumer"] == "sqs_consumer.consumer"
    assert {name: m for name, m in defined.items() if _private(m)} == {}


def test_plain_modules_define_public_names() -> None:
    """And the converse: a module without one defines public names (the packages' __init__
    re-export them), unless its public surface is not Python (cli/, observability/)."""
    defining = set(_defining_modules().values())
    plain = [
        name
        for name, is_package in _modules().items()
        if not is_package
        and not _private(name)
        and name not in ("sqs_consumer.__main__", *PUBLIC_PATHS)  # paths re-export
        and not name.startswith(NOT_PYTHON)
    ]
    assert "sqs_consumer.handlers.router" in plain
    assert [name for name in plain if name not in defining] == []


def test_only_the_sqs_adapter_calls_the_client() -> None:
    """No code outside _pipeline/sqs/ names an SQS client method: the engine, the consumer
    and the handlers all go through `Sqs` (retries, the call timeout, the limiter, metrics).

    Outside the consumer: MemorySQS implements them (testing/), the producer has its own
    client (producer/), `kick` resolves a queue name with its own client before
    any consumer exists, and the demo fills its in-memory queue.
    """
    operations = {
        xform_name(name)
        for name in botocore.session.get_session().get_service_model("sqs").operation_names
    }
    allowed = ("_pipeline/sqs/", "testing/", "producer/", "cli/kick.py", "cli/demo.py")
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in operations:
                calls.append(f"{relative}:{node.lineno} .{node.attr}")
    assert calls == []
