"""`run`, `http` and `exec`: settings in layers, a handler, then one consumer or a supervisor."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from .config import (
    ConfigError,
    Layers,
    Setting,
    build_options,
    cli_settings,
    layered,
    option_settings,
)
from .serve import configure_logging, load_target, serve
from .supervisor import CHILD_ENV

__all__ = ["resolve", "run_consumer"]

HTTP_TIMEOUT = 60.0  # sqsd's INVOKER_TIMEOUT default; the library's own is None


def _flags(args: argparse.Namespace) -> dict[str, str]:
    return {name[5:]: value for name, value in vars(args).items() if name.startswith("set__")}


def _settings(command: str) -> list[Setting]:
    from . import URL_SETTING

    settings = option_settings(batch=command == "run") + cli_settings()
    return [*settings, URL_SETTING] if command == "http" else settings


def resolve(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Layers:
    """Every source of settings for this command, the supervisor's word for a child on top."""
    flags = _flags(args)
    if args.command == "http" and args.url is not None:
        flags["url"] = args.url
    layers = layered(
        _settings(args.command),
        flags=flags,
        config=args.config,
        env_file=args.env_file,
        environ=environ,
        sqsd=args.command == "http",
    )
    child = json.loads((os.environ if environ is None else environ).get(CHILD_ENV) or "{}")
    for name, text in child.items():
        layers.put_text(name, str(text), "the --processes supervisor")
    return layers


def run_consumer(args: argparse.Namespace, argv: list[str]) -> int:
    """Run `run`, `http` or `exec` as the settings say; the exit code."""
    layers = resolve(args)
    configure_logging(layers.get("log_level", "info"))
    handler: Callable[..., Any] | None
    after: Callable[[], None] | None = None
    if args.command == "run":
        handler, base = load_target(args.target)
        options = build_options(layers, base=base)
    elif args.command == "http":
        from .http import HttpInvoker

        url = layers.get("url")
        if url is None:
            raise ConfigError("no worker URL: give URL, or INVOKER_URL in the --env-file")
        options = build_options(layers, defaults={"handler_timeout": HTTP_TIMEOUT})
        timeout = options.handler_timeout or HTTP_TIMEOUT
        invoker = HttpInvoker(url, timeout=timeout, pool_size=options.concurrency)
        handler, after = invoker, invoker.close
    else:
        from .exec import ExecHandler

        options = build_options(layers)
        runner = ExecHandler(args.command_line, timeout=options.handler_timeout)
        handler, after = runner, runner.kill_all
    from .locking import with_locks

    options = with_locks(layers, options)
    processes = layers.get("processes", 1)
    if processes > 1 and options.is_memory:
        raise ConfigError(
            f"--processes {processes} needs a real queue: each process would have its own "
            f"in-memory {options.queue_url}"
        )
    if processes > 1:
        from .supervisor import Supervisor

        return Supervisor(argv, processes, options).run()
    return serve(handler, options, after=after)
