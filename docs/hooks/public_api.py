"""mkdocs hook: the API reference shows every public name, by its public path, with a docstring.

mkdocstrings renders what a page asks for and silently leaves out what has no docstring, so on
its own a new public name, or one whose docstring was lost, would just be missing from the site.
Here every public name (each `__all__` of PUBLIC_MODULES) must appear in a `::: path` of some
page, that path must be the public one (`sqs_consumer.Consumer`, not the module that defines it,
which may move), and the name and its public methods, properties and nested classes must have a
docstring. Each problem is a warning, which fails `mkdocs build --strict`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import griffe

# The modules users import from; each one's `__all__` is its public names.
PUBLIC_MODULES = (
    "sqs_consumer",
    "sqs_consumer.middleware",
    "sqs_consumer.producer",
    "sqs_consumer.workers",
    "sqs_consumer.locks",
    "sqs_consumer.testing",
)

_IDENTIFIER = re.compile(r"^:::\s+(\S+)", re.MULTILINE)
_log = logging.getLogger("mkdocs.plugins.public_api")
_shown: dict[str, str] = {}  # identifier of a `:::` block -> the page that has it


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Forget the identifiers of the previous build (`mkdocs serve` rebuilds in one process)."""
    _shown.clear()


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Note which objects the page renders."""
    for identifier in _IDENTIFIER.findall(markdown):
        _shown[identifier] = page.file.src_uri
    return markdown


def on_post_build(config: Any, **kwargs: Any) -> None:
    """Warn about each public name that is missing, shown by another path, or undocumented."""
    root = Path(config.config_file_path).parent
    package = griffe.load("sqs_consumer", search_paths=[str(root)], resolve_aliases=True)
    public = _public_names(package)
    for identifier, page in sorted(_shown.items()):
        if identifier not in public:
            _log.warning(
                "%s renders %s, which is not a public name: use the path users import "
                "(a name in the __all__ of one of %s)",
                page,
                identifier,
                ", ".join(PUBLIC_MODULES),
            )
    shown = {public[identifier].path for identifier in _shown if identifier in public}
    checked: set[str] = set()  # a name exported by two modules is one object: report it once
    for path, obj in sorted(public.items()):
        if obj.path in checked:
            continue
        checked.add(obj.path)
        if obj.path not in shown:
            _log.warning(
                "public name %s is in no page of the API reference (docs/reference/)", path
            )
        for problem in _undocumented(path, obj):
            _log.warning("%s has no docstring", problem)


def _public_names(package: griffe.Module) -> dict[str, griffe.Object]:
    """Public path -> the object it names, for every public name."""
    names: dict[str, griffe.Object] = {}
    for module_path in PUBLIC_MODULES:
        try:
            module = package.modules_collection[module_path]
        except KeyError:  # moved or renamed: PUBLIC_MODULES must follow the package
            _log.warning("public module %s does not exist (see PUBLIC_MODULES)", module_path)
            continue
        if module.exports is None:
            _log.warning("%s has no __all__, so it has no public names", module_path)
            continue
        for name in module.exports:
            target = module[name]
            names[f"{module_path}.{name}"] = target.final_target if target.is_alias else target
    return names


def _undocumented(path: str, obj: griffe.Object) -> list[str]:
    """The public path of `obj` and of each public member of it that lacks a docstring."""
    missing = [] if obj.docstring else [path]
    if not obj.is_class:
        return missing
    for name, member in obj.members.items():
        if name.startswith("_") or member.is_alias:
            continue
        # Plain attributes (attrs fields, instance attributes) are described by their class's
        # docstring and the guides; what users call must say what it does.
        if member.is_attribute and "property" not in member.labels:
            continue
        missing.extend(_undocumented(f"{path}.{name}", member))
    return missing
