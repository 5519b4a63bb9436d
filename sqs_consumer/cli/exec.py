"""`sqs-consumer exec -- CMD ARGS...`: run a command per message, never through a shell.

The body goes to the command's stdin; the message's id, receive count, queue, group and
string attributes go to its environment. Exit status 0 acknowledges the message; anything
else fails it. Each command runs in a session of its own, so on `handler_timeout` the
whole process group is killed (TERM, then KILL after a grace period): nothing it started
outlives the message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import IO

from ..message import Message
from .config import ConfigError

__all__ = ["ExecError", "ExecHandler", "message_environment"]

log = logging.getLogger("sqs_consumer.exec")

KILL_GRACE = 2.0  # seconds between TERM and KILL for a command past its timeout
LONGEST_LINE = 8192  # characters of one output line kept in the log
_SUPERVISOR_VARIABLES = ("SQS_CONSUMER__CHILD", "SQS_CONSUMER_SUPERVISOR_PID")
_DRAIN_AFTER_EXIT = 1.0  # seconds to read output left by the command's own children


class ExecError(Exception):
    """The command exited with a non-zero status, was killed, or ran out of time."""


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def message_environment(message: Message) -> dict[str, str]:
    """The variables a command gets for `message` (added to the consumer's environment)."""
    env = {
        "SQS_MESSAGE_ID": message.message_id,
        "SQS_RECEIVE_COUNT": str(message.receive_count),
        "SQS_QUEUE_URL": message.queue_url,
    }
    if message.group_id is not None:
        env["SQS_MESSAGE_GROUP_ID"] = message.group_id
    for name, attribute in message.message_attributes.items():
        text = attribute.get("StringValue")
        if str(attribute.get("DataType", "")).startswith(("String", "Number")) and isinstance(
            text, str
        ):
            env[f"SQS_ATTR_{_env_name(name)}"] = text.replace("\0", "")
    return env


def resolve_command(argv: Sequence[str]) -> list[str]:
    """`argv` with its program found on PATH (or checked, when it names a path).

    Raises:
        ConfigError: no command, or the program does not exist or is not executable.
    """
    if not argv:
        raise ConfigError("no command: give one after --, e.g. exec -- ./job.sh")
    program = argv[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ConfigError(f"command not found or not executable: {program}")
        return list(argv)
    found = shutil.which(program)
    if found is None:
        raise ConfigError(f"command not found on PATH: {program}")
    return [found, *argv[1:]]


class ExecHandler:
    """A sync handler that runs `argv` once per message.

    Args:
        argv: the command and its arguments, run as they are (no shell, no expansion).
        timeout: seconds before the command's process group is killed; None: no limit.

    Raises:
        ConfigError: the command does not exist.
    """

    def __init__(self, argv: Sequence[str], *, timeout: float | None) -> None:
        self.argv = resolve_command(argv)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()

    def __repr__(self) -> str:
        return f"<ExecHandler {self.argv!r}>"

    def __call__(self, message: Message) -> None:
        """Run the command for one message; raise ExecError unless it exits 0."""
        env = {**os.environ, **message_environment(message)}
        for private in _SUPERVISOR_VARIABLES:  # for our own children, not the user's commands
            env.pop(private, None)
        process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: one killpg reaches all it starts
        )
        with self._lock:
            self._running.add(process)
        assert process.stdin and process.stdout and process.stderr
        threads = [
            _thread(_feed, process.stdin, message.body.encode("utf-8")),
            _thread(_log_lines, process.stdout, message.message_id, "stdout"),
            _thread(_log_lines, process.stderr, message.message_id, "stderr"),
        ]
        try:
            status = process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s %s ran over %g s: killing its process group", message.message_id,
                        self.argv[0], self.timeout)  # fmt: skip
            _kill_group(process)
            raise ExecError(
                f"{self.argv[0]} ran over {self.timeout:g} s: its process group was killed"
            ) from None
        finally:
            with self._lock:
                self._running.discard(process)
            for thread in threads:
                thread.join(_DRAIN_AFTER_EXIT)  # a daemon its child left behind may hold a pipe
        if status < 0:
            raise ExecError(f"{self.argv[0]} was killed by {signal.Signals(-status).name}")
        if status != 0:
            raise ExecError(f"{self.argv[0]} exited with status {status}")

    def kill_all(self) -> None:
        """Kill the commands still running (after the consumer has stopped)."""
        with self._lock:
            running = list(self._running)
        for process in running:
            log.warning("killing %s (pid %d), still running after shutdown", self.argv[0],
                        process.pid)  # fmt: skip
            _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """TERM the process group, KILL it after KILL_GRACE; the leader is reaped."""
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(KILL_GRACE)
    # Always: children that ignored TERM (or outlived their parent) are still in the group.
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group has gone
        os.killpg(pgid, signum)


def _thread(target: Callable[..., None], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _feed(stdin: IO[bytes], body: bytes) -> None:
    # An OSError (EPIPE) means the command did not read its input; its exit status decides.
    with contextlib.suppress(OSError):
        stdin.write(body)
    with contextlib.suppress(OSError):
        stdin.close()


def _log_lines(stream: IO[bytes], message_id: str, name: str) -> None:
    with stream:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) > LONGEST_LINE:
                line = line[:LONGEST_LINE] + "..."
            log.info("%s %s: %s", message_id, name, line)
