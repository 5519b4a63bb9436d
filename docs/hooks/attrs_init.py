"""Griffe extension for the API reference: attrs classes get the `__init__` attrs generates.

Griffe reads the source without running it, so it sees no `__init__` on an `@attrs.frozen` class:
the reference would show `ConsumerOptions()` and reject the class docstring's `Args:` as naming
parameters that do not exist. This rebuilds the signature from the class attrs built at import
time, converters and aliases included, so a stale `Args:` entry still fails the strict build.
"""

from __future__ import annotations

import inspect
from typing import Any

import attrs
import griffe

_NO_DEFAULT = (inspect.Parameter.empty, attrs.NOTHING)
_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _decorated_by_attrs(cls: griffe.Class) -> bool:
    return any(d.callable_path.split(".")[0] in ("attr", "attrs") for d in cls.decorators)


def _default(field: attrs.Attribute[Any] | None, parameter: inspect.Parameter) -> str | None:
    default = field.default if field is not None else parameter.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        factory = default.factory
        name = getattr(factory, "__qualname__", "")
        return f"{name}()" if name and "<" not in name else "..."
    return None if any(default is missing for missing in _NO_DEFAULT) else repr(default)


def _annotation(parameter: inspect.Parameter, cls: griffe.Class) -> str | griffe.Expr | None:
    if parameter.annotation is inspect.Parameter.empty:
        return None
    text = parameter.annotation
    if not isinstance(text, str):
        text = inspect.formatannotation(text)
    # Parsed in the class's scope, so the names link to their own reference entries.
    parsed = griffe.parse_docstring_annotation(text, griffe.Docstring("", parent=cls))
    return parsed


def _set_init(cls: griffe.Class) -> None:
    try:
        runtime = griffe.dynamic_import(cls.path)
    except ImportError:
        return
    if not (isinstance(runtime, type) and attrs.has(runtime)):
        return
    fields = {field.alias: field for field in attrs.fields(runtime)}
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for name, parameter in inspect.signature(runtime).parameters.items():
        parameters.append(
            griffe.Parameter(
                name,
                annotation=_annotation(parameter, cls),
                kind=_KINDS[parameter.kind],
                default=_default(fields.get(name), parameter),
            )
        )
    init = griffe.Function(
        "__init__",
        lineno=0,
        endlineno=0,
        parent=cls,
        parameters=griffe.Parameters(*parameters),
        returns="None",
    )
    cls.set_member("__init__", init)


class AttrsInit(griffe.Extension):
    """Give each attrs class without an `__init__` of its own the one attrs generates."""

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        """Add the generated `__init__` once the class and its members are loaded."""
        if "__init__" not in cls.members and _decorated_by_attrs(cls):
            _set_init(cls)
