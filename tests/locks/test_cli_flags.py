"""`--idempotency-*` and `--lock-*` on run/http/exec: the middleware they build, and end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from sqs_consumer.cli import build_parser
from sqs_consumer.cli.commands import resolve
from sqs_consumer.cli.config import ConfigError, build_options
from sqs_consumer.cli.locking import with_locks
from sqs_consumer.locks import DynamoDBLockStore, Idempotent, KeyLock, MemoryLockStore
from tests.cli.conftest import Cli, lines, send
from tests.conftest import REGION, wait_until

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"


def options_for(*argv: str, environ: dict[str, str] | None = None) -> Any:
    args = build_parser().parse_args(list(argv))
    layers = resolve(args, environ=environ or {})
    return with_locks(layers, build_options(layers))


class TestFlags:
    def test_no_flags_no_middleware(self) -> None:
        """Without the flags nothing changes."""
        assert options_for("exec", "--queue-url", URL, "--", "true").middleware == ()

    def test_idempotency_and_lock_flags(self) -> None:
        """The flags build Idempotent then KeyLock on DynamoDB tables in the queue's region."""
        options = options_for(
            "exec", "--queue-url", URL,
            "--idempotency-table", "done", "--idempotency-key", "json:event_id",
            "--idempotency-ttl", "10m",
            "--lock-table", "locks", "--lock-key", "attr:lock_id", "--lock-lease", "90",
            "--abort-if-locked", "--", "true",
        )  # fmt: skip
        idempotent, lock = options.middleware
        assert isinstance(idempotent, Idempotent) and isinstance(lock, KeyLock)
        assert isinstance(idempotent.store, DynamoDBLockStore)
        assert idempotent.store.table_name == "done" and idempotent.ttl == 600
        assert "json:event_id" in repr(idempotent)
        assert isinstance(lock.store, DynamoDBLockStore) and lock.store.table_name == "locks"
        assert (lock.lease, lock.abort_if_locked) == (90, True)
        assert lock.store.client.meta.region_name == "eu-west-1"

    def test_environment_variables_and_memory_stores(self) -> None:
        """SQS_CONSUMER_LOCK_KEY alone locks in memory; the idempotency key defaults to the id."""
        environ = {"SQS_CONSUMER_LOCK_KEY": "job", "SQS_CONSUMER_IDEMPOTENCY_TTL": "60"}
        idempotent, lock = options_for("run", "m:f", "--queue-url", URL, environ=environ).middleware
        assert isinstance(idempotent.store, MemoryLockStore) and idempotent.ttl == 60
        assert isinstance(lock.store, MemoryLockStore)

    def test_sqsd_lock_expire_is_the_idempotency_ttl(self, tmp_path: Path) -> None:
        """http reads sqsd's LOCK_EXPIRE=24h as a one-day idempotency ttl, in memory."""
        (tmp_path / ".env").write_text(f"QUEUE_URL={URL}\nLOCK_EXPIRE=24h\n")
        options = options_for("http", "http://127.0.0.1:1/", "-e", str(tmp_path / ".env"))
        (idempotent,) = options.middleware
        assert isinstance(idempotent, Idempotent) and idempotent.ttl == 86400
        assert isinstance(idempotent.store, MemoryLockStore)

    def test_lock_settings_need_a_lock_key(self) -> None:
        """--lock-lease without --lock-key says what is missing."""
        with pytest.raises(ConfigError, match="--lock-lease needs --lock-key"):
            options_for("exec", "--queue-url", URL, "--lock-lease", "5", "--", "true")

    @pytest.mark.parametrize(
        ("flag", "value", "error"),
        [
            ("--lock-key", "xml:id", "--lock-key: .*'attr:NAME' or 'json:FIELD'"),
            ("--idempotency-ttl", "soon", "--idempotency-ttl: expected a duration"),
            ("--lock-lease", "0", "--lock-lease: expected a finite duration > 0"),
        ],
    )
    def test_bad_values_name_the_flag(self, flag: str, value: str, error: str) -> None:
        """A bad value is a one-line error naming its flag."""
        with pytest.raises(ConfigError, match=error):
            options_for("exec", "--queue-url", URL, flag, value, "--", "true")


RECORD = "import sys; open('ran.txt', 'a').write(sys.stdin.read() + '\\n')"


def test_exec_with_an_idempotency_table_runs_one_key_once(
    cli: Cli, sqs_queue: str, moto_sqs: Any, moto_endpoint: str, dynamodb_store: Any
) -> None:
    """Two messages with one event_id on moto: the command runs once, the other is acked."""
    send(moto_sqs, sqs_queue, ['{"event_id": "e", "n": 1}', '{"event_id": "e", "n": 2}'])
    process = cli.start(
        "exec", "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint, "--region", REGION,
        "--wait-time-seconds", "1", "--idempotency-table", dynamodb_store.table_name,
        "--idempotency-key", "json:event_id", "--", sys.executable, "-c", RECORD,
    )  # fmt: skip
    wait_until(lambda: _empty(moto_sqs, sqs_queue), timeout=20)
    assert cli.stop(process) == 0
    assert len(lines(cli.cwd / "ran.txt")) == 1


def test_a_missing_lock_table_is_a_start_up_error(
    cli: Cli, sqs_queue: str, moto_endpoint: str
) -> None:
    """Exit 2 and one line naming the table when it does not exist."""
    done = cli.run(
        "exec", "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint, "--region", REGION,
        "--lock-table", "missing-table", "--lock-key", "json:id", "--", "true",
    )  # fmt: skip
    assert done.returncode == 2
    assert "DynamoDB table 'missing-table' does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def _empty(client: Any, url: str) -> bool:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return attributes == {"ApproximateNumberOfMessages": "0",
                          "ApproximateNumberOfMessagesNotVisible": "0"}  # fmt: skip
