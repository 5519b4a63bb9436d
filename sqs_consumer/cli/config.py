"""Settings for run/http/exec from flags, the environment, an env file and a TOML file.

Precedence, highest first: a flag, an `SQS_CONSUMER_<NAME>` environment variable, the env
file (`--env-file`), the TOML file's `[consumer]` table (`--config`), the defaults. Every
value remembers where it came from, so an invalid one is reported with its source
(`--concurrency`, `SQS_CONSUMER_CONCURRENCY`, `.env:3 SQS_CONSUMER_CONCURRENCY`,
`config.toml: consumer.concurrency`) and the range ConsumerOptions allows.

The settings are read off `ConsumerOptions`' own fields, so an option added there becomes a
flag, a variable and a TOML key without a change here.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from ..options import ConsumerOptions

__all__ = [
    "ENV_PREFIX",
    "ConfigError",
    "Layers",
    "Setting",
    "Sourced",
    "add_sqsd",
    "build_options",
    "cli_settings",
    "layered",
    "lock_settings",
    "option_settings",
    "parse_duration",
    "read_env_file",
    "read_toml",
]

ENV_PREFIX = "SQS_CONSUMER_"
NOT_SETTINGS = frozenset({"client", "middleware", "retry"})  # objects, not text
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A setting, file or argument the command cannot use; its text is one line for the user."""


@attrs.frozen
class Sourced:
    """A setting's value and where it came from (a flag, a variable, a file and key)."""

    value: Any
    source: str


@attrs.frozen
class Setting:
    """One setting: its option name, how text becomes a value, and its help."""

    name: str
    parse: Callable[[str], Any]
    help: str
    metavar: str
    is_option: bool = True  # a ConsumerOptions field (else a setting of the command line)
    toml_types: tuple[type, ...] = (str,)  # the TOML value types the key takes, as they are

    @property
    def flag(self) -> str:
        """The kebab-case flag, e.g. `--wait-time-seconds`."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. `SQS_CONSUMER_WAIT_TIME_SECONDS`."""
        return ENV_PREFIX + self.name.upper()


_HELP = {
    "queue_url": "the queue to consume (memory://NAME: the in-memory SQS)",
    "endpoint_url": "SQS endpoint, e.g. http://127.0.0.1:5000 for moto or LocalStack",
    "region_name": "AWS region (default: from the queue URL, else boto3's configuration)",
    "worker": "concurrency strategy: semaphore or pool",
    "concurrency": "most handlers running at once (default 10)",
    "batch_size": "most messages per ReceiveMessage, 1-10 (default 10)",
    "wait_time_seconds": "long-poll seconds, 0-20 (default 20)",
    "pollers": "receive loops: auto or 1-100 (default auto)",
    "prefetch": "messages received ahead of free slots: auto, 0 (strict) or a count",
    "visibility_timeout": "seconds of invisibility asked at receive (default: the queue's)",
    "heartbeat_interval": "seconds between visibility extensions (default: derived)",
    "max_visibility": "cap on a message's total visibility, seconds (default 43200)",
    "handler_timeout": "seconds a handler may run before its message fails",
    "max_receives": "receives before a failure goes to --dead-letter-queue-url",
    "dead_letter_queue_url": "queue that gets messages failing their last receive",
    "delete_batch_size": "most deletes per DeleteMessageBatch, 1-10 (default 10)",
    "delete_flush_interval": "seconds before a partial delete batch is sent (default 0.1)",
    "shutdown_timeout": "seconds running handlers get to finish on stop (default 30)",
    "pool_min_workers": "pool: workers kept alive when idle (default 0)",
    "pool_idle_timeout": "pool: idle seconds before a worker retires (default 10)",
    "waiting_room_size": "pool: waiting room capacity (default: concurrency)",
    "stats_port": "serve /healthz and /stats on this port (0: any free port)",
    "stats_host": "address the stats server binds (default 127.0.0.1)",
    "batch": "the handler takes list[Message] (run only)",
}


def _toml_types(annotation: str) -> tuple[type, ...]:
    """The TOML value types an option takes, from its annotation (a float option takes an int)."""
    rest = re.sub(r"Literal\[[^\]]*\]", "", annotation)
    types: list[type] = [str] if _literals(annotation) or re.search(r"\bstr\b", rest) else []
    if re.search(r"\bbool\b", rest):
        types.append(bool)
    if re.search(r"\b(int|float)\b", rest):
        types.append(int)
    if re.search(r"\bfloat\b", rest):
        types.append(float)
    return tuple(types)


_TOML_NAMES: Mapping[type, str] = {
    str: "string", bool: "boolean", int: "integer", float: "float", list: "array", dict: "table"
}  # fmt: skip


def _toml_problem(value: Any, types: tuple[type, ...]) -> str | None:
    """Why a TOML value is not of the types a key takes (None: it is)."""
    kind = type(value)
    if kind in types or (kind is int and float in types):
        return None
    wanted = [
        {str: "a string", bool: "a boolean (true or false)", int: "an integer"}.get(t, "a number")
        for t in types
        if not (t is int and float in types)
    ]
    name = _TOML_NAMES.get(kind, kind.__name__.replace("datetime", "date-time"))
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"expected {' or '.join(wanted)}, got the {name} {shown} (TOML values keep their types)"


def _literals(annotation: str) -> list[str]:
    match = re.search(r"Literal\[([^\]]*)\]", annotation)
    return re.findall(r"['\"]([^'\"]*)['\"]", match.group(1)) if match else []


def _text_parser(annotation: str) -> tuple[Callable[[str], Any], str]:
    """How to read one option's text, from its type annotation; and a metavar for --help."""
    literals = _literals(annotation)
    rest = re.sub(r"Literal\[[^\]]*\]", "", annotation)
    optional = re.search(r"\bNone\b", rest) is not None
    kinds = [kind for kind in ("bool", "int", "float", "str") if re.search(rf"\b{kind}\b", rest)]
    kind = kinds[0] if kinds else None

    def parse(text: str) -> Any:
        text = text.strip()
        # An empty text is None for a number (an unset variable), but a string option
        # must be named: `--region ""` is an error, not "no region".
        if optional and (text.lower() in ("none", "null") or (not text and kind != "str")):
            return None
        if text in literals:
            return text
        if kind == "bool":
            return _bool(text)
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(
                    f"expected {_expected(literals, 'an integer', optional)}"
                ) from None
        if kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"expected {_expected(literals, 'a number', optional)}") from None
        if kind == "str":
            if optional and not text:
                raise ValueError("expected a non-empty string (or none)")
            return text
        raise ValueError(f"expected {_expected(literals, None, optional)}")

    metavar = "|".join(literals) if literals and kind is None else (kind or "VALUE").upper()
    if literals and kind is not None:
        metavar = "|".join([*literals, kind.upper()])
    return parse, metavar


def _expected(literals: list[str], kind: str | None, optional: bool) -> str:
    choices = (
        [repr(value) for value in literals]
        + ([kind] if kind else [])
        + (["none"] if optional else [])
    )
    return (
        " or ".join(choices) if len(choices) < 3 else ", ".join(choices[:-1]) + " or " + choices[-1]
    )


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("expected a positive integer") from None
    if value < 1:
        raise ValueError("expected a positive integer")
    return value


def _log_level(text: str) -> str:
    lowered = text.strip().lower()
    lowered = {"warn": "warning", "fatal": "error", "panic": "error"}.get(lowered, lowered)
    if lowered not in LOG_LEVELS:
        raise ValueError("expected one of " + ", ".join(LOG_LEVELS))
    return lowered


def option_settings(*, batch: bool = False) -> list[Setting]:
    """A setting per scalar ConsumerOptions field (`batch` only when asked: `run` has it)."""
    settings = []
    for field in attrs.fields(ConsumerOptions):
        if field.name in NOT_SETTINGS or (field.name == "batch" and not batch):
            continue
        parse, metavar = _text_parser(str(field.type))
        if field.name == "worker":
            metavar = "semaphore|pool"
        if field.name.endswith("_url"):
            metavar = "URL"
        elif field.name in ("region_name", "stats_host"):
            metavar = "REGION" if field.name == "region_name" else "HOST"
        elif metavar.startswith("FLOAT"):
            metavar = "SECONDS"  # every float option is a number of seconds
        help_text = _HELP.get(field.name, f"ConsumerOptions.{field.name}")
        toml_types = _toml_types(str(field.type))
        settings.append(Setting(field.name, parse, help_text, metavar, toml_types=toml_types))
    return settings


def cli_settings() -> list[Setting]:
    """Settings of the command line itself, layered like the options."""
    return [
        Setting("log_level", _log_level, "debug, info, warning or error (default info)",
                "LEVEL", is_option=False),
        Setting("processes", _positive_int, "run N consumer processes under one supervisor",
                "N", is_option=False, toml_types=(int,)),
        Setting("no_retry", _bool, "leave retries to the queue's visibility timeout "
                "(retry=None)", "BOOL", is_option=False, toml_types=(bool,)),
        *lock_settings(),
    ]  # fmt: skip


def _key_spec(text: str) -> str:
    from ..locks.keys import key_function

    text = text.strip()
    key_function(text, what="the key")  # raises ValueError naming the accepted forms
    return text


def _seconds(text: str) -> float:
    seconds = parse_duration(text)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError("expected a finite duration > 0 (seconds, or e.g. 90s, 10m, 24h)")
    return seconds


DURATION = (int, float, str)  # in TOML, seconds or a duration string such as "1h"

LOCK_SETTINGS = (
    "idempotency_table", "idempotency_key", "idempotency_ttl",
    "lock_table", "lock_key", "lock_lease", "abort_if_locked",
)  # fmt: skip


def lock_settings() -> list[Setting]:
    """Settings that switch on `Idempotent` and `KeyLock` (sqs_consumer.locks) without code."""
    return [
        Setting("idempotency_table", str, "DynamoDB table for Idempotent (default: in memory, "
                "one process)", "TABLE", is_option=False),
        Setting("idempotency_key", _key_spec, "run once per key: message_id (default), "
                "attr:NAME or json:FIELD", "KEY", is_option=False),
        Setting("idempotency_ttl", _seconds, "how long a completed key is remembered "
                "(default 1h; sqsd's LOCK_EXPIRE)", "SECONDS", is_option=False,
                toml_types=DURATION),
        Setting("lock_table", str, "DynamoDB table for KeyLock (default: in memory, one "
                "process)", "TABLE", is_option=False),
        Setting("lock_key", _key_spec, "one handler at a time per key: attr:NAME or "
                "json:FIELD", "KEY", is_option=False),
        Setting("lock_lease", _seconds, "seconds a lock lasts unrenewed, i.e. after a crash "
                "(default 60)", "SECONDS", is_option=False, toml_types=DURATION),
        Setting("abort_if_locked", _bool, "discard a message whose lock key is held instead "
                "of retrying it", "BOOL", is_option=False, toml_types=(bool,)),
    ]  # fmt: skip


# -- sources ---------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (`60s`, `1m30s`, `500ms`) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError("expected a duration such as 60s, 1m30s or 500ms")
    return sum(float(number) * units[unit] for number, unit in parts)


def read_env_file(path: str) -> list[tuple[int, str, str]]:
    """(line number, name, value) of each `NAME=VALUE` line in a dotenv file.

    Blank lines and `#` comments are skipped, `export ` is allowed, values may be quoted
    (single: literal; double: `\\n`, `\\"`, `\\\\` escapes); an unquoted value ends at ` #`.

    Raises:
        ConfigError: the file cannot be read or a line is not NAME=VALUE.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"--env-file {path}: {exc.strerror or exc}") from None
    entries = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected NAME=VALUE, got {raw.strip()!r}")
        name, value = match.groups()
        entries.append((number, name, _unquote(value, f"{path}:{number}")))
    return entries


def _unquote(value: str, where: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while (
            quote == '"' and end > 0 and value[end - 1] == "\\" and value[end - 2 : end] != "\\\\"
        ):
            end = value.find(quote, end + 1)
        if end < 0:
            raise ConfigError(f"{where}: unterminated {quote} quote")
        inner = value[1:end]
        if quote == '"':
            inner = re.sub(r"\\([n\"\\])", lambda m: "\n" if m[1] == "n" else m[1], inner)
        return inner
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def read_toml(path: str) -> dict[str, Any]:
    """The `[consumer]` table of a TOML file, keys in snake_case (kebab-case accepted).

    Raises:
        ConfigError: the file cannot be read or parsed, or has no [consumer] table.
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = document.get("consumer")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [consumer] table (settings go under [consumer])")
    return {key.replace("-", "_"): value for key, value in table.items()}


@attrs.define
class Layers:
    """Collects settings from each source, lowest precedence first; later ones win."""

    settings: Mapping[str, Setting]
    values: dict[str, Sourced] = attrs.field(factory=dict)

    def put_text(self, name: str, text: str, source: str) -> None:
        """A value given as text (flag, variable, env file): parsed now, errors name the source."""
        setting = self.settings[name]
        try:
            value = setting.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}, got {text!r}") from None
        self.values[name] = Sourced(value, source)

    def add_toml(self, path: str, table: Mapping[str, Any]) -> None:
        """TOML values keep their TOML types; keys must exist.

        A value of a type the key does not take (`concurrency = "5"`, `batch = "yes"`) is an
        error naming the file and key, whatever the layers above say: strings stay strings
        and are never parsed into numbers or booleans. ConsumerOptions then checks the range
        of an option's value; a setting of the command line (log level, durations) is read
        as its flag would be.
        """
        label = os.path.basename(path)
        for key, value in table.items():
            if key not in self.settings and key in _every_setting_name():
                continue  # another command's setting (send shares the file with run)
            if key not in self.settings:
                raise ConfigError(
                    f"{label}: consumer.{key} is not a setting (known: {', '.join(self.settings)})"
                )
            setting = self.settings[key]
            source = f"{label}: consumer.{key}"
            problem = _toml_problem(value, setting.toml_types)
            if problem is not None:
                raise ConfigError(f"{source}: {problem}")
            if setting.is_option:
                self.values[key] = Sourced(value, source)
            else:
                self.put_text(key, str(value).lower() if isinstance(value, bool) else str(value),
                              source)  # fmt: skip

    def add_env(self, environ: Mapping[str, str], label: str = "") -> None:
        """`SQS_CONSUMER_<NAME>` variables; `label` prefixes the source (an env file's path)."""
        for name, setting in self.settings.items():
            for variable in _variables(setting):
                if variable in environ:
                    self.put_text(name, environ[variable], f"{label}{variable}")

    def add_flags(self, given: Mapping[str, str]) -> None:
        """Flags given on the command line (name -> text)."""
        for name, text in given.items():
            self.put_text(name, text, self.settings[name].flag)

    def get(self, name: str, default: Any = None) -> Any:
        """The winning value of a setting, or `default`."""
        found = self.values.get(name)
        return default if found is None else found.value


def _every_setting_name() -> set[str]:
    names = {setting.name for setting in option_settings(batch=True) + cli_settings()}
    return names | {"url"}


def _variables(setting: Setting) -> Iterable[str]:
    yield setting.env
    if setting.name == "region_name":
        yield ENV_PREFIX + "REGION"


def build_options(
    layers: Layers, *, base: ConsumerOptions | None = None, defaults: Mapping[str, Any] = {}
) -> ConsumerOptions:
    """ConsumerOptions from the layered settings over `base` (e.g. an @sqs_handler's options).

    Raises:
        ConfigError: a missing queue URL, or a value ConsumerOptions refuses; the text names
            the value's source and what is allowed.
    """
    kwargs: dict[str, Any] = dict(defaults)
    if base is not None:
        kwargs.update(
            {field.name: getattr(base, field.name) for field in attrs.fields(ConsumerOptions)}
        )
    chosen = {
        name: found for name, found in layers.values.items() if layers.settings[name].is_option
    }
    kwargs.update({name: found.value for name, found in chosen.items()})
    if layers.get("no_retry"):
        kwargs["retry"] = None
    if "queue_url" not in kwargs:
        raise ConfigError(
            "no queue: give --queue-url, SQS_CONSUMER_QUEUE_URL, or queue_url under [consumer] "
            "in --config"
        )
    try:
        return ConsumerOptions(**kwargs)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        names = [name for name in re.findall(r"ConsumerOptions\.(\w+)", text) if name in chosen]
        names += [name for name in chosen if name not in names and re.search(rf"\b{name}\b", text)]
        sources = ", ".join(chosen[name].source for name in names)
        raise ConfigError(f"{sources}: {text}" if sources else text) from None


# -- taiyoh/sqsd's .env ----------------------------------------------------------------------

SQSD_NAMES: Mapping[str, str] = {
    "QUEUE_URL": "queue_url",
    "INVOKER_URL": "url",
    "INVOKER_TIMEOUT": "handler_timeout",
    "FETCHER_PARALLEL_COUNT": "pollers",
    "INVOKER_PARALLEL_COUNT": "concurrency",
    "MONITORING_PORT": "stats_port",
    "LOG_LEVEL": "log_level",
    "LOCK_EXPIRE": "idempotency_ttl",
}
"""taiyoh/sqsd's variables and the setting each one sets (read by `http` only)."""

SQSD_IGNORED = ("UNLOCK_INTERVAL",)
"""sqsd's sweep interval of its duplicate lock: expired keys are simply ignored here."""

SQSD_DEFAULTS: Mapping[str, str] = {
    "concurrency": "1",
    "pollers": "1",
    "stats_port": "6969",
}
"""sqsd's own defaults, applied when an sqsd variable is seen, so its .env behaves the same."""


def add_sqsd(layers: Layers, environ: Mapping[str, str], label: str = "") -> bool:
    """Read sqsd's variable names; True if any was there."""
    seen = False
    for variable, name in SQSD_NAMES.items():
        if variable not in environ:
            continue
        seen = True
        text = environ[variable]
        if name in ("handler_timeout", "idempotency_ttl"):
            try:
                text = repr(parse_duration(text))
            except ValueError as exc:
                raise ConfigError(f"{label}{variable}: {exc}, got {text!r}") from None
        layers.put_text(name, text, f"{label}{variable}")
    return seen


def layered(
    settings: Iterable[Setting],
    *,
    flags: Mapping[str, str],
    config: str | None = None,
    env_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    sqsd: bool = False,
    export: bool = True,
) -> Layers:
    """Every source, in precedence order: defaults < TOML < env file < environment < flags.

    With `sqsd`, taiyoh/sqsd's names count too, just below `SQS_CONSUMER_*` in the same
    source, and sqsd's defaults apply below everything when any of its names is present.
    The env file's variables are also exported to this process (without overriding the
    environment), as sqsd and dotenv do, so AWS_* credentials in it reach boto3.
    """
    environ = dict(os.environ if environ is None else environ)
    layers = Layers({setting.name: setting for setting in settings})
    file_env: dict[str, str] = {}
    if env_file is not None:
        file_env = {name: value for _, name, value in read_env_file(env_file)}
    if config is not None:
        layers.add_toml(config, read_toml(config))
    label = f"{env_file}: "
    seen = sqsd and add_sqsd(layers, file_env, label)
    layers.add_env(file_env, label)
    seen = (sqsd and add_sqsd(layers, environ)) or seen
    layers.add_env(environ)
    layers.add_flags(flags)
    if seen:
        for name, text in SQSD_DEFAULTS.items():
            if name not in layers.values:
                layers.put_text(name, text, f"sqsd's default {name}={text}")
    if export:
        for name, value in file_env.items():
            os.environ.setdefault(name, value)
    return layers


def file_name(value: str) -> str:
    """argparse `type` of --config and --env-file: an empty name is an error, not "no file"."""
    if not value.strip():
        raise argparse.ArgumentTypeError("needs a file name, got an empty one")
    return value
