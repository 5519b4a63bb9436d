"""Import a `MODULE:ATTR` handler, set up logging, and run one consumer to a clean exit."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..consumer import Consumer
from ..decorator import SqsHandler
from ..errors import QueueCheckError, SqsConsumerError
from ..locks.store import LockCheckError
from ..options import ConsumerOptions
from .config import ConfigError

__all__ = ["SUPERVISOR_ENV", "configure_logging", "load_target", "serve"]

log = logging.getLogger("sqs_consumer.cli")

SUPERVISOR_ENV = "SQS_CONSUMER_SUPERVISOR_PID"
"""Set by `--processes` in each child: the child stops gracefully if that process goes away."""


def configure_logging(level: str) -> None:
    """One line per record on stderr; `level` applies to sqs_consumer's loggers only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # botocore's and others' chatter stays out below WARNING
    logging.getLogger("sqs_consumer").setLevel(level.upper())


def load_target(spec: str) -> tuple[Callable[..., Any], ConsumerOptions | None]:
    """Import `MODULE:ATTR` with the current directory on sys.path.

    Returns the handler, and the options it carries when it is an `@sqs_handler` function
    or a Consumer (they sit below every other source of settings).

    Raises:
        ConfigError: the spec is malformed, the module cannot be imported, the attribute is
            missing, or it is not callable.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"expected MODULE:ATTR (e.g. jobs:handle), got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import {module_name!r}: no module named {exc.name!r} "
                              f"(looked in {cwd} and sys.path)") from None  # fmt: skip
        raise ConfigError(f"cannot import {module_name!r}: {_where(exc)}") from None
    except BaseException as exc:  # the module's own code failed: say where, in one line
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ConfigError(f"cannot import {module_name!r}: {_where(exc)}") from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(target, SqsHandler):
        return target.consumer.handler, target.consumer.options
    if isinstance(target, Consumer):
        return target.handler, target.options
    if not callable(target):
        raise ConfigError(f"{spec} is a {type(target).__name__}, not a handler")
    return target, None


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SyntaxError) and exc.filename:
        place = f" ({exc.filename}:{exc.lineno})"
    return f"{type(exc).__name__}: {exc}{place}"


def serve(
    handler: Callable[..., Any],
    options: ConsumerOptions,
    *,
    after: Callable[[], None] | None = None,
    before: Callable[[Consumer], None] | None = None,
) -> int:
    """Run a consumer until SIGTERM/SIGINT and its drain; the exit code.

    0 after a clean drain; 2 when the queue or a lock table cannot be used or the stats port is taken
    (start-up problems an operator fixes); 1 when SQS failed fatally while running.
    `before` gets the consumer before it starts (`kick` serves its stats from it); `after`
    runs once the consumer has stopped, whatever happened.
    """
    try:
        consumer = Consumer(handler, options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    _watch_supervisor(consumer)
    try:
        if before is not None:
            before(consumer)
        consumer.start()
    except (QueueCheckError, LockCheckError) as exc:
        _say(str(exc))
        return 2
    except OSError as exc:  # the stats server could not bind
        _say(f"cannot serve /healthz and /stats on port {options.stats_port}: {exc}")
        return 2
    except SqsConsumerError as exc:
        _say(f"stopped: {exc}")
        return 1
    finally:
        if after is not None:
            after()
    return 0


def _say(line: str) -> None:
    print(f"sqs-consumer: error: {line}", file=sys.stderr, flush=True)


def _watch_supervisor(consumer: Consumer) -> None:
    """Under `--processes`, stop gracefully if the supervisor dies (no orphaned consumer)."""
    parent = os.environ.get(SUPERVISOR_ENV)
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)  # a parent's death has no event to wait on; once a second is enough
        log.warning("supervisor %s is gone: shutting down", parent)
        consumer.stop()

    threading.Thread(target=watch, name="sqs-consumer-parent-watch", daemon=True).start()
