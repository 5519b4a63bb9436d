"""`sqs-consumer kick`: a drop-in for kayac's sqsjkr (SQS Job Kicker).

Each message body is sqsjkr's job definition:

    {"command": "echo hi", "env": {"NAME": "value"}, "event_id": "...", "lock_id": "...",
     "life_time": "1m", "abort_if_locked": false, "disable_life_time_trigger": false}

(`envs` is accepted for `env`: sqsjkr's README says `env`, its code reads `envs`.)

`command` runs through `/bin/sh -c`, because that is sqsjkr's contract: whoever can send to
the queue can run commands on this host, so `kick` refuses to start without `--allow-shell`.
`event_id` runs the job at most once within the idempotency ttl (`run_once`, sqsjkr's
throttler), `lock_id` runs one job per id at a time across every kicker sharing the lock
table (`run_exclusive`, sqsjkr's locker).

`life_time` counts from when the job was sent (the message's SentTimestamp, as sqsjkr
measures it; from when this kicker first saw it when SQS does not say). A job already past
it is not run, as in sqsjkr: it is checked before each try of its lock and just before it
starts; the `--life-time-trigger` command fires and the message is discarded. A job still
running when its life_time passes fires the trigger then, and goes on. The trigger fires at
most once per message per kicker, with the job definition (the message body) on its stdin.

sqsjkr's TOML (`[account]`, `[sqs]`, `[kicker]`) is read as it is, below every other source
of settings; `/stats/metrics/v2` answers sqsjkr's JSON on the stats port. sqsjkr's own
single-dash flags (`-conf`, `-region`, `-profile`, `-lock-table`, `-stats-port`,
`-log-level`) are accepted; its Unix-socket stats (`-stats-socket`, `stats_socket`) are not,
with an error that says to use the stats port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs

from .._pipeline.calls import run_sync
from ..consumer import Consumer
from ..errors import Discard
from ..locks.middleware import run_exclusive, run_once
from ..locks.store import LockCheckError, LockStore
from ..message import Message
from ..observability.health import StatsServer
from ..options import ConsumerOptions
from .config import (
    ConfigError,
    Layers,
    Setting,
    _bool,
    build_options,
    cli_settings,
    file_name,
    layered,
    option_settings,
    parse_duration,
)
from .exec import ExecError, _kill_group, _log_lines, _thread
from .locking import DEFAULT_LEASE, DEFAULT_TTL, store_for
from .serve import configure_logging, serve

__all__ = ["JobDefinition", "JobDefinitionError", "Kicker", "kick_settings", "run_kick"]

log = logging.getLogger("sqs_consumer.kick")

SHELL = "/bin/sh"
LOCK_RETRY_DELAY = 2.0  # about how long a job whose lock_id is held waits before it comes back
_NOT_FOR_KICK = frozenset({"idempotency_key", "lock_key", "processes"})  # keys come from jobs
_DRAIN_AFTER_EXIT = 1.0
REMEMBERED = 10_000  # message ids a kicker remembers for its life-time bookkeeping


def _forget_oldest(memory: OrderedDict[str, Any]) -> None:
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)


class JobDefinitionError(ValueError):
    """A message body that is not a valid sqsjkr job definition; the text names the field."""


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise JobDefinitionError(f"field {name!r} is required (a non-empty string)")
        return None
    if not isinstance(value, str):
        raise JobDefinitionError(f"field {name!r} must be a string, got {value!r}")
    return value


def _flag(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise JobDefinitionError(f"field {name!r} must be true or false, got {value!r}")


def _life_time(value: Any) -> float | None:
    if value is None or value == "" or value == 0:
        return None  # sqsjkr's zero value: no life time
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            seconds = parse_duration(value)
            if seconds > 0:
                return seconds
    raise JobDefinitionError(
        f"field 'life_time' must be seconds (an integer) or a duration such as 90s, 1m or 1h, "
        f"got {value!r}"
    )


def _environment(body: Mapping[str, Any]) -> dict[str, str]:
    # sqsjkr's README says "env", its code reads "envs": either is accepted, not both.
    if "env" in body and "envs" in body:
        raise JobDefinitionError(
            "fields 'env' and 'envs' are both given: they are the same field (sqsjkr's README "
            "says 'env', its code reads 'envs'), give one"
        )
    field = "envs" if "envs" in body else "env"
    value = body.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JobDefinitionError(f"field {field!r} must be an object of strings, got {value!r}")
    for name, text in value.items():
        if not isinstance(text, str):
            raise JobDefinitionError(f"field '{field}.{name}' must be a string, got {text!r}")
        if not name or "=" in name or "\0" in name or "\0" in text:
            raise JobDefinitionError(f"field {field!r} has an invalid variable {name!r}")
    return dict(value)


@attrs.frozen(kw_only=True)
class JobDefinition:
    """One sqsjkr job, as its message body defines it (build it with `from_message`)."""

    command: str
    env: Mapping[str, str] = attrs.field(factory=dict)
    event_id: str | None = None
    lock_id: str | None = None
    life_time: float | None = None
    """Seconds after which the life-time trigger fires (None: never)."""
    abort_if_locked: bool | None = None
    """None: the kicker's --abort-if-locked decides."""
    disable_life_time_trigger: bool = False

    @classmethod
    def from_message(cls, message: Message) -> JobDefinition:
        """Read the job from a message body.

        Raises:
            JobDefinitionError: the body is not a JSON object, or a field is missing or of
                the wrong type; the text names the message and the field.
        """
        try:
            body = json.loads(message.body)
        except ValueError as exc:
            raise JobDefinitionError(
                f"message {message.message_id}: the body is not an sqsjkr job definition "
                f"(not JSON: {exc})"
            ) from None
        if not isinstance(body, dict):
            raise JobDefinitionError(
                f"message {message.message_id}: the body is not an sqsjkr job definition "
                f"(a JSON object with 'command'), got {type(body).__name__}"
            )
        try:
            command = _text(body, "command", required=True)
            assert command is not None
            return cls(
                command=command,
                env=_environment(body),
                event_id=_text(body, "event_id"),
                lock_id=_text(body, "lock_id"),
                life_time=_life_time(body.get("life_time")),
                abort_if_locked=_flag(body, "abort_if_locked"),
                disable_life_time_trigger=bool(_flag(body, "disable_life_time_trigger")),
            )
        except JobDefinitionError as exc:
            raise JobDefinitionError(
                f"message {message.message_id}: invalid job definition: {exc}"
            ) from None


class Kicker:
    """The `kick` handler: run each message's job through /bin/sh, under its locks.

    Args:
        idempotency: the store of completed `event_id`s.
        locks: the store of `lock_id` locks.
        ttl: seconds a completed event_id is remembered.
        lease: seconds a lock (or a running event) lasts without renewal.
        abort_if_locked: the default for jobs that do not say.
        life_time_trigger: the shell command fired once for a job past its life_time.
        timeout: seconds before a job's process group is killed (None: no limit).
        concurrency: the most jobs at once (for the idle count of /stats/metrics/v2).
        retry_delay: about how long before a job whose lock_id (or event_id) is busy
            elsewhere comes back.
        clock: the wall clock (seconds since the epoch) that a job's age is measured on,
            against its SentTimestamp.

    A job's life_time counts from when it was sent (`Message.sent_at`; when SQS does not
    say, from when this kicker first saw it). A job past it is not run: the trigger fires
    and the message is discarded (sqsjkr's rule), checked before each try of its lock and
    again just before it starts. A job still running when its life_time passes fires the
    trigger then. The trigger fires at most once per message per kicker (the last
    `REMEMBERED` message ids are kept), whatever the number of deliveries.
    """

    def __init__(
        self,
        *,
        idempotency: LockStore,
        locks: LockStore,
        ttl: float = DEFAULT_TTL,
        lease: float = DEFAULT_LEASE,
        abort_if_locked: bool = False,
        life_time_trigger: str | None = None,
        timeout: float | None = None,
        concurrency: int = 10,
        retry_delay: float = LOCK_RETRY_DELAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idempotency = idempotency
        self.locks = locks
        self.ttl = ttl
        self.lease = lease
        self.abort_if_locked = abort_if_locked
        self.life_time_trigger = life_time_trigger
        self.timeout = timeout
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.clock = clock
        self.busy = 0
        self.succeeded = 0
        self.failed = 0
        self.errored = 0
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._fired: OrderedDict[str, None] = OrderedDict()  # message ids whose trigger fired
        self._first_seen: OrderedDict[str, float] = OrderedDict()  # ids without SentTimestamp

    def __repr__(self) -> str:
        return f"<Kicker busy={self.busy} trigger={self.life_time_trigger!r}>"

    def metrics(self) -> dict[str, Any]:
        """sqsjkr's `/stats/metrics/v2` figures."""
        busy = self.busy
        return {
            "workers": {"busy": busy, "idle": max(0, self.concurrency - busy)},
            "invocations": {
                "succeeded": self.succeeded,
                "failed": self.failed,
                "errored": self.errored,
            },
        }

    async def __call__(self, message: Message) -> None:
        """Run one job: parse it, take its event and lock, run the command."""
        try:
            job = JobDefinition.from_message(message)
        except JobDefinitionError:
            self.failed += 1  # sqsjkr's meaning: the command could not be invoked
            raise

        async def kick() -> None:
            await self._kick(job, message)

        call: Callable[[], Awaitable[Any]] = kick
        if job.lock_id is not None:
            inner_lock = call
            lock_key = f"lock:{job.lock_id}"
            abort = self.abort_if_locked if job.abort_if_locked is None else job.abort_if_locked

            async def locked() -> Any:
                # sqsjkr checks the life time before each try of the lock: a job that
                # waits on a held lock past its life_time is dropped, not run late.
                await self._check_life_time(job, message)
                return await run_exclusive(
                    self.locks, lock_key, inner_lock, lease=self.lease, abort_if_locked=abort,
                    retry_delay=self.retry_delay, message_id=message.message_id,
                )  # fmt: skip

            call = locked
        if job.event_id is not None:
            inner_once = call
            event_key = f"idempotent:{job.event_id}"

            async def once() -> Any:
                return await run_once(
                    self.idempotency, event_key, inner_once, ttl=self.ttl, lease=self.lease,
                    retry_delay=self.retry_delay, message_id=message.message_id,
                )  # fmt: skip

            call = once
        try:
            await call()
        except Discard:  # past its life_time, or locked with abort_if_locked: not invoked
            self.failed += 1
            raise

    async def _kick(self, job: JobDefinition, message: Message) -> None:
        await self._check_life_time(job, message)
        self.busy += 1
        status: int | None = None
        failure: OSError | None = None
        try:
            async with anyio.create_task_group() as tg:
                if (
                    job.life_time is not None
                    and self.life_time_trigger
                    and not job.disable_life_time_trigger
                    and message.message_id not in self._fired
                ):
                    tg.start_soon(self._watch_life_time, job, message)
                try:
                    status = await run_sync(self._execute, job, message.message_id)
                except OSError as exc:  # the shell could not even start
                    failure = exc
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self.busy -= 1
        if failure is not None:  # raised out here, not wrapped in the task group's group
            self.failed += 1  # sqsjkr's meaning: the command could not be invoked
            raise ExecError(
                f"cannot run the job of message {message.message_id}: {failure}"
            ) from failure
        if status == 0:
            self.succeeded += 1
            return
        self.errored += 1  # sqsjkr's meaning: the command ran and returned an error
        if status is None:
            raise ExecError(f"the job ran over {self.timeout:g} s: its process group was killed")
        if status < 0:
            raise ExecError(f"the job was killed by signal {-status}")
        raise ExecError(f"the job exited with status {status}")

    def _age(self, message: Message) -> float:
        """Seconds since the job was sent (SentTimestamp), else since this kicker first saw it."""
        sent = message.sent_at
        if sent is not None:
            return self.clock() - sent.timestamp()
        with self._lock:
            first = self._first_seen.get(message.message_id)
            if first is None:
                first = self._first_seen[message.message_id] = self.clock()
                _forget_oldest(self._first_seen)
        return self.clock() - first

    def _take_trigger(self, job: JobDefinition, message: Message) -> str | None:
        """The trigger to fire for this job now, or None: none configured, disabled for the
        job, or already fired for this message (at most once per message per kicker)."""
        trigger = self.life_time_trigger
        if not trigger or job.disable_life_time_trigger:
            return None
        with self._lock:
            if message.message_id in self._fired:
                return None
            self._fired[message.message_id] = None
            _forget_oldest(self._fired)
        return trigger

    async def _check_life_time(self, job: JobDefinition, message: Message) -> None:
        """Before a job runs: one past its life_time fires the trigger and is discarded.

        Raises:
            Discard: the job is past its life_time (sqsjkr drops it too).
        """
        if job.life_time is None:
            return
        age = self._age(message)
        if age <= job.life_time:
            return
        trigger = self._take_trigger(job, message)
        log.warning("%s: job sent %.1f s ago, past its life_time of %g s: not run, dropped%s",
                    message.message_id, age, job.life_time,
                    "; firing the trigger" if trigger else "")  # fmt: skip
        if trigger is not None:
            await run_sync(self._fire, trigger, message)
        raise Discard()

    async def _watch_life_time(self, job: JobDefinition, message: Message) -> None:
        assert job.life_time is not None
        await anyio.sleep(max(0.0, job.life_time - self._age(message)))
        trigger = self._take_trigger(job, message)
        if trigger is None:
            return
        log.warning("%s: job still running past its life_time of %g s (since it was sent): "
                    "firing the trigger", message.message_id, job.life_time)  # fmt: skip
        # A thread of its own, not one of the consumer's: those may all be busy with jobs
        # (max_concurrent_num = 1), and the trigger must fire while the job still runs.
        _thread(self._fire, trigger, message)

    def _fire(self, trigger: str, message: Message) -> None:
        try:
            done = subprocess.run(
                [SHELL, "-c", trigger],
                input=message.body.encode("utf-8"),
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("%s: life-time trigger failed: %s", message.message_id, exc)
            return
        for name, output in (("stdout", done.stdout), ("stderr", done.stderr)):
            for line in output.decode("utf-8", "replace").splitlines():
                log.info("%s trigger %s: %s", message.message_id, name, line)
        if done.returncode != 0:
            log.error("%s: life-time trigger exited with status %d", message.message_id,
                      done.returncode)  # fmt: skip

    def _execute(self, job: JobDefinition, message_id: str) -> int | None:
        """Run the command in its own process group; its status, None when timed out."""
        process = subprocess.Popen(
            [SHELL, "-c", job.command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **job.env},
            start_new_session=True,  # one killpg reaches everything the job starts
        )
        with self._lock:
            self._running.add(process)
        assert process.stdout and process.stderr
        threads = [
            _thread(_log_lines, process.stdout, message_id, "stdout"),
            _thread(_log_lines, process.stderr, message_id, "stderr"),
        ]
        try:
            return process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s: job ran over %g s: killing its process group", message_id,
                        self.timeout)  # fmt: skip
            _kill_group(process)
            return None
        finally:
            with self._lock:
                self._running.discard(process)
            for thread in threads:
                thread.join(_DRAIN_AFTER_EXIT)

    def kill_all(self) -> None:
        """Kill the jobs still running (after the consumer has stopped)."""
        with self._lock:
            running = list(self._running)
        for process in running:
            log.warning("killing job pid %d, still running after shutdown", process.pid)
            _kill_group(process)


# -- settings --------------------------------------------------------------------------------


def kick_settings() -> list[Setting]:
    """The settings of `kick`: the consumer options, locks, and sqsjkr's own."""
    settings = [*option_settings(batch=False), *cli_settings()]
    settings = [setting for setting in settings if setting.name not in _NOT_FOR_KICK]
    return [
        *settings,
        Setting("life_time_trigger", str, "shell command fired once for a job past its "
                "life_time (job definition on stdin)", "CMD", is_option=False),
        Setting("allow_shell", _bool, "run each job's command through /bin/sh -c: anyone who "
                "can send to the queue can run commands here", "BOOL", is_option=False),
    ]  # fmt: skip


def add_kick_parser(commands: Any, formatter: Any, add_setting: Any) -> None:
    """The `kick` subcommand and its flags."""
    kick = commands.add_parser(
        "kick",
        help="run sqsjkr job definitions through /bin/sh (kayac's sqsjkr)",
        description="A drop-in for kayac's sqsjkr: each message is a job definition (command, env, event_id, lock_id, life_time, abort_if_locked, disable_life_time_trigger) whose command runs through /bin/sh -c. Needs --allow-shell: whoever can send to the queue can run commands on this host.",
        formatter_class=formatter,
    )
    files = kick.add_argument_group(
        "configuration (precedence: flag > environment > env file > TOML)"
    )
    files.add_argument("-c", "--config", metavar="FILE.toml", type=file_name,
                       help="sqsjkr's TOML: [account] id/profile/region, [sqs] queue_name, "
                       "[kicker] max_concurrent_num/life_time_trigger/stats_port")  # fmt: skip
    files.add_argument("-e", "--env-file", metavar="FILE", type=file_name,
                       help="read SQS_CONSUMER_* from a dotenv file")  # fmt: skip
    groups = {
        "consumer": kick.add_argument_group("consumer options (each also SQS_CONSUMER_<NAME>)"),
        "locks": kick.add_argument_group("locks (docs/exactly-once.md)"),
        "kick": kick.add_argument_group(
            "sqsjkr",
            "sqsjkr's own flags work too: -conf FILE (--config), -region, -profile, "
            "-lock-table (both --lock-table and --idempotency-table, as sqsjkr's one table), "
            "-stats-port, -log-level. -stats-socket (and stats_socket in the TOML) is not "
            "supported: use --stats-port.",
        ),
    }
    from .config import LOCK_SETTINGS

    groups["kick"].add_argument("--profile", metavar="NAME",
                                help="the AWS profile (overrides AWS_PROFILE and the TOML's "
                                "account.profile; it must be configured)")  # fmt: skip
    _add_sqsjkr_flags(kick)
    for setting in kick_settings():
        if setting.name in LOCK_SETTINGS:
            group = groups["locks"]
        elif setting.name in ("life_time_trigger", "allow_shell"):
            group = groups["kick"]
        else:
            group = groups["consumer"] if setting.is_option else files
        if setting.name in ("no_retry", "abort_if_locked", "allow_shell"):
            group.add_argument(
                setting.flag,
                dest=f"set__{setting.name}",
                action="store_const",
                const="true",
                default=argparse.SUPPRESS,
                help=setting.help,
            )
        elif setting.name == "region_name":
            add_setting(group, setting, "--region")
        else:
            add_setting(group, setting)


# sqsjkr's single-dash flags (Go's flag package) -> where each goes here; hidden from --help
# (the sqsjkr group's description lists them).
SQSJKR_FLAGS = {
    "-conf": "config",
    "-region": "set__region_name",
    "-profile": "profile",
    "-lock-table": "sqsjkr_lock_table",
    "-stats-port": "set__stats_port",
    "-stats-socket": "stats_socket",
    "-log-level": "set__log_level",
}
STATS_SOCKET_UNSUPPORTED = (
    "a Unix-socket stats server is not supported by kick: use stats_port (--stats-port) "
    "for /stats/metrics/v2 instead"
)


def _add_sqsjkr_flags(kick: argparse.ArgumentParser) -> None:
    for flag, dest in SQSJKR_FLAGS.items():
        # Registered as whole option strings, so `-conf FILE` is not read as `-c onf FILE`.
        default = None if dest in ("config", "profile") else argparse.SUPPRESS
        kind: Callable[[str], str] = file_name if dest == "config" else str
        kick.add_argument(flag, dest=dest, default=default, type=kind, help=argparse.SUPPRESS)


def kick_flags(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as flags: name -> text, sqsjkr's -lock-table spread over both
    tables (sqsjkr keeps its locks and its throttle in that one table).

    Raises:
        ConfigError: -stats-socket was given (not supported).
    """
    if getattr(args, "stats_socket", None) is not None:
        raise ConfigError(f"-stats-socket: {STATS_SOCKET_UNSUPPORTED}")
    flags = {name[5:]: value for name, value in vars(args).items() if name.startswith("set__")}
    table = getattr(args, "sqsjkr_lock_table", None)
    if table is not None:
        flags.setdefault("lock_table", table)
        flags.setdefault("idempotency_table", table)
    return flags


def read_sqsjkr_toml(path: str) -> dict[str, tuple[str, Any]]:
    """sqsjkr's TOML as settings: name -> (source, value). `queue_name` and `account_id`
    stand for the queue until it is looked up; `profile` for the AWS profile.

    Raises:
        ConfigError: the file cannot be read or parsed, or a value has the wrong type.
    """
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"--config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    label = os.path.basename(path)
    wanted = {
        ("account", "id"): "account_id",
        ("account", "profile"): "profile",
        ("account", "region"): "region_name",
        ("sqs", "queue_name"): "queue_name",
        ("kicker", "max_concurrent_num"): "concurrency",
        ("kicker", "life_time_trigger"): "life_time_trigger",
        ("kicker", "stats_port"): "stats_port",
    }
    found: dict[str, tuple[str, Any]] = {}
    for (table, key), name in wanted.items():
        section = document.get(table)
        if not isinstance(section, dict) or key not in section:
            continue
        value = section[key]
        source = f"{label}: {table}.{key}"
        expected = int if name in ("concurrency", "stats_port") else str
        if isinstance(value, bool) or not isinstance(value, expected):
            kind = "an integer" if expected is int else "a string"
            raise ConfigError(f"{source}: expected {kind}, got {value!r}")
        found[name] = (source, value)
    kicker = document.get("kicker")
    if isinstance(kicker, dict) and kicker.get("stats_socket") not in (None, ""):
        raise ConfigError(f"{label}: kicker.stats_socket: {STATS_SOCKET_UNSUPPORTED}")
    return found


def _apply_sqsjkr(layers: Layers, toml: Mapping[str, tuple[str, Any]]) -> None:
    """sqsjkr's values below every other source: only where nothing else set them."""
    for name in ("region_name", "concurrency", "life_time_trigger", "stats_port"):
        if name in toml and name not in layers.values:
            source, value = toml[name]
            layers.put_text(name, str(value), source)


def _use_profile(toml: Mapping[str, tuple[str, Any]], flag: str | None = None) -> None:
    """Set AWS_PROFILE: from --profile (it must be configured), else from the TOML's
    account.profile when that is configured and AWS_PROFILE is not set.

    Raises:
        ConfigError: the --profile named is not configured.
    """
    import boto3

    if flag is not None:
        if flag not in boto3.session.Session().available_profiles:
            raise ConfigError(
                f"--profile {flag}: AWS profile {flag!r} is not configured (~/.aws/config or "
                f"~/.aws/credentials)"
            )
        os.environ["AWS_PROFILE"] = flag
        return
    if "profile" not in toml or "AWS_PROFILE" in os.environ:
        return
    source, profile = toml["profile"]

    if profile in boto3.session.Session().available_profiles:
        os.environ["AWS_PROFILE"] = profile
    else:
        log.warning("%s: AWS profile %r is not configured; using the default credentials",
                    source, profile)  # fmt: skip


def _queue_url(layers: Layers, toml: Mapping[str, tuple[str, Any]]) -> None:
    """Look the queue up by sqsjkr's queue_name when no queue URL was given."""
    if "queue_url" in layers.values or "queue_name" not in toml:
        return
    source, name = toml["queue_name"]
    import boto3

    client = boto3.session.Session().client(
        "sqs", endpoint_url=layers.get("endpoint_url"), region_name=layers.get("region_name")
    )
    request: dict[str, str] = {"QueueName": name}
    if "account_id" in toml:
        request["QueueOwnerAWSAccountId"] = str(toml["account_id"][1])
    try:
        url = client.get_queue_url(**request)["QueueUrl"]
    except Exception as exc:
        raise ConfigError(f"{source}: cannot find queue {name!r}: {exc}") from None
    layers.put_text("queue_url", url, source)


def _check_stores(*stores: LockStore) -> None:
    async def check() -> None:
        for store in stores:
            await store.check()

    anyio.run(check)


def _serve_stats(port: int, kicker: Kicker, consumer: Consumer) -> None:
    """/healthz, /stats and sqsjkr's /stats/metrics/v2, from a thread of their own."""
    server = StatsServer(
        port,
        stats=lambda: consumer.stats().as_dict(),
        healthy=consumer.healthy,
        routes={"/stats/metrics/v2": kicker.metrics},
    )
    ready = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve)
                ready.set()
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    threading.Thread(target=anyio.run, args=(main,), name="sqs-consumer-kick-stats",
                     daemon=True).start()  # fmt: skip
    ready.wait(10)
    if failure:
        error = failure[0]
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        raise ConfigError(f"cannot serve stats on port {port}: {error}")


def run_kick(args: argparse.Namespace) -> int:
    """Run `kick` as the settings say; the exit code."""
    flags = kick_flags(args)
    layers = layered(kick_settings(), flags=flags, env_file=args.env_file)
    toml = read_sqsjkr_toml(args.config) if args.config else {}
    _apply_sqsjkr(layers, toml)
    configure_logging(layers.get("log_level", "info"))
    if not layers.get("allow_shell"):
        raise ConfigError(
            "kick runs each message's command through /bin/sh -c, so anyone who can send to "
            "the queue can run commands on this host: give --allow-shell (or "
            "SQS_CONSUMER_ALLOW_SHELL=true) to accept that"
        )
    _use_profile(toml, args.profile)
    _queue_url(layers, toml)
    options: ConsumerOptions = build_options(layers)
    stats_port = options.stats_port
    options = attrs.evolve(options, stats_port=None)  # served here, with sqsjkr's path too
    idempotency = store_for(layers.get("idempotency_table"), options, what="idempotency")
    locks = store_for(layers.get("lock_table"), options, what="lock")
    try:
        _check_stores(idempotency, locks)
    except LockCheckError as exc:
        print(f"sqs-consumer: error: {exc}", flush=True, file=sys.stderr)
        return 2
    kicker = Kicker(
        idempotency=idempotency,
        locks=locks,
        ttl=layers.get("idempotency_ttl", DEFAULT_TTL),
        lease=layers.get("lock_lease", DEFAULT_LEASE),
        abort_if_locked=bool(layers.get("abort_if_locked", False)),
        life_time_trigger=layers.get("life_time_trigger"),
        timeout=options.handler_timeout,
        concurrency=options.concurrency,
    )
    log.warning("kick: running job commands through %s -c (whoever can send to %s can run "
                "commands here)", SHELL, options.queue_url)  # fmt: skip

    def before(consumer: Consumer) -> None:
        if stats_port is not None:
            _serve_stats(stats_port, kicker, consumer)

    return serve(kicker, options, after=kicker.kill_all, before=before)
