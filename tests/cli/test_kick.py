"""`sqs-consumer kick`: sqsjkr's job definitions, TOML, locks, life-time trigger and stats."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

from sqs_consumer import Message, Retry
from sqs_consumer.cli.exec import ExecError
from sqs_consumer.cli.kick import JobDefinition, JobDefinitionError, Kicker
from sqs_consumer.locks import DynamoDBLockStore, MemoryLockStore
from tests.cli.conftest import Cli, counts, send
from tests.conftest import REGION, _free_port, unique_name, wait_until
from tests.helpers import wait_for

# sqsjkr's README example, as it is.
EXAMPLE_JOB = {
    "command": "echo 'hello sqsjkr!'",
    "env": {"PATH": "/usr/local/bin/:/usr/bin/:/sbin/:/bin", "MAILTO": "example@example.com"},
    "event_id": "cloudwatch_event_schedule_id_name",
    "lock_id": "lock_id",
    "life_time": "1m",
    "abort_if_locked": False,
}
EXAMPLE_TOML = """\
[account]
id = "{account}"
profile = "default"
region = "{region}"

[sqs]
queue_name = "{queue_name}"

[kicker]
max_concurrent_num = 5
life_time_trigger = "{trigger}"
stats_port = {port}
"""


def message(body: Any, message_id: str = "m-1", *, sent: float | None = None) -> Message:
    """A received job; `sent`: its SentTimestamp, in seconds since the epoch."""
    text = body if isinstance(body, str) else json.dumps(body)
    attributes = {} if sent is None else {"SentTimestamp": str(round(sent * 1000))}
    return Message(message_id=message_id, receipt_handle="r", body=text, attributes=attributes)


class Clock:
    """A wall clock that moves only when the test sets `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestJobDefinition:
    def test_sqsjkrs_example(self) -> None:
        """The README's example reads field by field; "1m" is 60 s."""
        job = JobDefinition.from_message(message(EXAMPLE_JOB))
        assert job.command == "echo 'hello sqsjkr!'"
        assert job.env["MAILTO"] == "example@example.com"
        assert (job.event_id, job.lock_id) == ("cloudwatch_event_schedule_id_name", "lock_id")
        assert (job.life_time, job.abort_if_locked, job.disable_life_time_trigger) == (
            60.0, False, False,
        )  # fmt: skip

    def test_envs_as_sqsjkrs_code_reads_it(self) -> None:
        """sqsjkr's code reads "envs" (its README says "env"): both are the environment."""
        for field in ("env", "envs"):
            body = {"command": "true", field: {"MAILTO": "a@b.c"}}
            assert JobDefinition.from_message(message(body)).env == {"MAILTO": "a@b.c"}

    def test_life_time_as_seconds_or_durations(self) -> None:
        """An integer is seconds; strings take s, m, h units."""
        for value, seconds in ((30, 30.0), ("1h", 3600.0), ("90s", 90.0), ("500ms", 0.5)):
            body = {"command": "true", "life_time": value}
            assert JobDefinition.from_message(message(body)).life_time == seconds

    @pytest.mark.parametrize(
        ("body", "error"),
        [
            ("not json", "not JSON"),
            ([1, 2], "a JSON object with 'command'"),
            ({"env": {}}, "field 'command' is required"),
            ({"command": 7}, "field 'command' must be a string"),
            ({"command": "true", "life_time": "soon"}, "field 'life_time' must be seconds"),
            ({"command": "true", "env": {"N": 1}}, "field 'env.N' must be a string"),
            ({"command": "true", "envs": {"N": 1}}, "field 'envs.N' must be a string"),
            ({"command": "true", "envs": ["N"]}, "field 'envs' must be an object"),
            (
                {"command": "true", "env": {"A": "1"}, "envs": {"B": "2"}},
                "fields 'env' and 'envs' are both given",
            ),
            ({"command": "true", "lock_id": ["a"]}, "field 'lock_id' must be a string"),
            ({"command": "true", "abort_if_locked": "yes"}, "'abort_if_locked' must be true"),
        ],
    )
    def test_malformed_definitions_name_the_field(self, body: Any, error: str) -> None:
        """A bad job is a JobDefinitionError naming the message and the field."""
        with pytest.raises(JobDefinitionError, match=f"message m-1: .*{error}"):
            JobDefinition.from_message(message(body))


def kicker(**overrides: Any) -> Kicker:
    settings: dict[str, Any] = {
        "idempotency": MemoryLockStore(),
        "locks": MemoryLockStore(),
        "retry_delay": 0.5,
    }
    settings.update(overrides)
    return Kicker(**settings)


@pytest.mark.anyio
class TestKicker:
    async def test_runs_the_command_through_the_shell_with_its_env(self, tmp_path: Path) -> None:
        """The command is shell syntax and sees the job's env; the metrics count it."""
        out = tmp_path / "out.txt"
        job = {"command": f'echo "$MAILTO" | tr a-z A-Z > {out}', "env": {"MAILTO": "a@b.c"}}
        kick = kicker()
        await kick(message(job))
        assert out.read_text() == "A@B.C\n"
        assert kick.metrics() == {
            "workers": {"busy": 0, "idle": 10},
            "invocations": {"succeeded": 1, "failed": 0, "errored": 0},
        }

    async def test_failures_and_errors_are_counted_apart(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """sqsjkr's meaning: a command that ran and failed (non-zero exit, killed, timed
        out) is errored; a job that could not run (a malformed definition, a shell that
        would not start) is failed."""
        kick = kicker(timeout=0.2)
        with pytest.raises(ExecError, match="exited with status 3"):
            await kick(message({"command": "exit 3"}))
        with pytest.raises(ExecError, match="killed by signal 9"):
            await kick(message({"command": "kill -9 $$"}))
        with pytest.raises(ExecError, match="ran over"):
            await kick(message({"command": "sleep 5"}))
        assert kick.metrics()["invocations"] == {"succeeded": 0, "failed": 0, "errored": 3}
        with pytest.raises(JobDefinitionError):
            await kick(message({"command": ""}))
        monkeypatch.setattr("sqs_consumer.cli.kick.SHELL", "/nonexistent/sh")
        with pytest.raises(ExecError, match="cannot run the job"):
            await kick(message({"command": "true"}))
        assert kick.metrics()["invocations"] == {"succeeded": 0, "failed": 2, "errored": 3}

    async def test_the_life_time_trigger_fires_once_with_the_job_on_stdin(
        self, tmp_path: Path
    ) -> None:
        """A job past its life_time fires the trigger once, while it still runs."""
        stop, fired = tmp_path / "stop", tmp_path / "fired.txt"
        job = {"command": f"while [ ! -e {stop} ]; do sleep 0.02; done", "life_time": "200ms"}
        kick = kicker(life_time_trigger=f"cat >> {fired}; echo >> {fired}")
        async with anyio.create_task_group() as tg:
            tg.start_soon(kick, message(job))
            await wait_for(lambda: fired.exists() and fired.read_text().endswith("\n"))
            assert kick.busy == 1  # fired while the job runs
            await anyio.sleep(0.5)  # more than two further life times: no second firing
            stop.touch()
        assert fired.read_text().splitlines() == [json.dumps(job)]

    async def test_no_trigger_for_quick_or_disabled_jobs(self, tmp_path: Path) -> None:
        """A job within its life_time, or with disable_life_time_trigger, fires nothing."""
        fired = tmp_path / "fired.txt"
        kick = kicker(life_time_trigger=f"touch {fired}")
        await kick(message({"command": "true", "life_time": 5}))
        slow = {"command": "sleep 0.3", "life_time": "100ms", "disable_life_time_trigger": True}
        await kick(message(slow))
        assert not fired.exists()

    async def test_a_job_sent_longer_ago_than_its_life_time_is_not_run(
        self, tmp_path: Path
    ) -> None:
        """sqsjkr's rule: the age counts from SentTimestamp; a job past its life_time does
        not run, the trigger fires with the job on stdin, and the message is discarded."""
        from sqs_consumer import Discard

        out, fired = tmp_path / "out.txt", tmp_path / "fired.txt"
        kick = kicker(life_time_trigger=f"cat >> {fired}; echo >> {fired}")
        job = {"command": f"echo ran > {out}", "life_time": "1m"}
        with pytest.raises(Discard):
            await kick(message(job, sent=time.time() - 61))
        assert not out.exists()
        assert fired.read_text().splitlines() == [json.dumps(job)]
        await kick(message(job, "m-2", sent=time.time() - 30))  # within: it runs
        assert out.read_text() == "ran\n"
        assert kick.metrics()["invocations"] == {"succeeded": 1, "failed": 1, "errored": 0}

    async def test_past_its_life_time_without_a_trigger_is_dropped_silently(
        self, tmp_path: Path
    ) -> None:
        """No trigger configured, or disable_life_time_trigger: still not run, discarded."""
        from sqs_consumer import Discard

        out, fired = tmp_path / "out.txt", tmp_path / "fired.txt"
        job = {"command": f"echo ran > {out}", "life_time": 5}
        with pytest.raises(Discard):
            await kicker()(message(job, sent=time.time() - 10))
        quiet = kicker(life_time_trigger=f"touch {fired}")
        with pytest.raises(Discard):
            await quiet(message(dict(job, disable_life_time_trigger=True), sent=time.time() - 10))
        assert not out.exists() and not fired.exists()

    async def test_the_running_jobs_life_time_also_counts_from_its_sent_time(
        self, tmp_path: Path
    ) -> None:
        """A job received 59.8 s into its 1 min life_time runs, and the trigger fires about
        0.2 s later while it still runs, not a minute after it started."""
        stop, fired = tmp_path / "stop", tmp_path / "fired.txt"
        sent = 1_700_000_000.0
        kick = kicker(life_time_trigger=f"cat >> {fired}; echo >> {fired}",
                      clock=Clock(sent + 59.8))  # fmt: skip
        job = {"command": f"while [ ! -e {stop} ]; do sleep 0.02; done", "life_time": "1m"}
        async with anyio.create_task_group() as tg:
            tg.start_soon(kick, message(job, sent=sent))
            await wait_for(lambda: fired.exists() and fired.read_text().endswith("\n"))
            assert kick.busy == 1  # fired while the job runs
            stop.touch()
        assert fired.read_text().splitlines() == [json.dumps(job)]

    async def test_the_trigger_fires_once_per_message_across_deliveries(
        self, tmp_path: Path
    ) -> None:
        """The trigger fired while attempt 1 ran over its life_time; the job then failed;
        attempt 2 comes back past its life_time: dropped, with no second trigger."""
        from sqs_consumer import Discard

        stop, fired = tmp_path / "stop", tmp_path / "fired.txt"
        kick = kicker(life_time_trigger=f"cat >> {fired}; echo >> {fired}")
        job = {"command": f"while [ ! -e {stop} ]; do sleep 0.02; done; exit 1",
               "life_time": "300ms"}  # fmt: skip
        delivery = message(job, sent=time.time())
        async with anyio.create_task_group() as tg:

            async def attempt_1() -> None:
                with pytest.raises(ExecError, match="exited with status 1"):
                    await kick(delivery)

            tg.start_soon(attempt_1)
            await wait_for(lambda: fired.exists() and fired.read_text().endswith("\n"))
            stop.touch()
        with pytest.raises(Discard):
            await kick(delivery)  # attempt 2, past its life_time
        assert fired.read_text().splitlines() == [json.dumps(job)]
        assert kick.metrics()["invocations"] == {"succeeded": 0, "failed": 1, "errored": 1}

    async def test_without_a_sent_time_the_age_counts_from_the_first_delivery(
        self, tmp_path: Path
    ) -> None:
        """No SentTimestamp: the life_time counts from when this kicker first saw the job."""
        from sqs_consumer import Discard

        fired = tmp_path / "fired.txt"
        clock = Clock(1_700_000_000.0)
        kick = kicker(life_time_trigger=f"cat > {fired}", clock=clock)
        job = {"command": "exit 1", "life_time": "1m"}
        with pytest.raises(ExecError):
            await kick(message(job))  # seen now: it runs (and fails)
        clock.now += 59
        with pytest.raises(ExecError):
            await kick(message(job))  # 59 s after the first delivery: it runs again
        assert not fired.exists()
        clock.now += 2
        with pytest.raises(Discard):
            await kick(message(job))  # 61 s: dropped, trigger fired
        assert json.loads(fired.read_text()) == job

    async def test_a_job_waiting_on_its_lock_past_its_life_time_is_dropped(
        self, tmp_path: Path
    ) -> None:
        """sqsjkr checks the life time before each try of a held lock: a job whose lock_id
        is held and that is past its life_time is discarded with the trigger, not retried."""
        from sqs_consumer import Discard

        stop, fired = tmp_path / "stop", tmp_path / "fired.txt"
        kick = kicker(life_time_trigger=f"cat > {fired}")
        holder = {"command": f"while [ ! -e {stop} ]; do sleep 0.02; done", "lock_id": "L"}
        waiting = {"command": "true", "lock_id": "L", "life_time": 60}
        async with anyio.create_task_group() as tg:
            tg.start_soon(kick, message(holder))
            await wait_for(lambda: kick.busy == 1)
            with pytest.raises(Retry):
                await kick(message(waiting, "m-2", sent=time.time() - 30))
            with pytest.raises(Discard):
                await kick(message(waiting, "m-2", sent=time.time() - 61))
            stop.touch()
        assert json.loads(fired.read_text()) == waiting

    async def test_one_lock_id_never_runs_twice_at_once(self, tmp_path: Path) -> None:
        """Two jobs with one lock_id: the second is told to retry while the first runs;
        with abort_if_locked it is discarded instead."""
        from sqs_consumer import Discard

        stop = tmp_path / "stop"
        kick = kicker()
        long_job = {"command": f"while [ ! -e {stop} ]; do sleep 0.02; done", "lock_id": "L"}
        async with anyio.create_task_group() as tg:
            tg.start_soon(kick, message(long_job))
            await wait_for(lambda: kick.busy == 1)
            with pytest.raises(Retry):
                await kick(message({"command": "true", "lock_id": "L"}, "m-2"))
            with pytest.raises(Discard):
                await kick(message({"command": "true", "lock_id": "L", "abort_if_locked": True}))
            stop.touch()
        await kick(message({"command": "true", "lock_id": "L"}, "m-3"))  # released
        # The retried job counts in none; the discarded one could not run: failed.
        assert kick.metrics()["invocations"] == {"succeeded": 2, "failed": 1, "errored": 0}

    async def test_one_event_id_runs_once(self, tmp_path: Path) -> None:
        """A second job with a completed event_id is acknowledged without running."""
        out = tmp_path / "out.txt"
        kick = kicker()
        job = {"command": f"echo ran >> {out}", "event_id": "nightly"}
        await kick(message(job))
        await kick(message(job, "m-2"))
        assert out.read_text() == "ran\n"


def test_kick_needs_allow_shell(cli: Cli) -> None:
    """Without --allow-shell kick refuses to start, saying why."""
    done = cli.run("kick", "--queue-url", "memory://jobs")
    assert done.returncode == 2
    assert "anyone who can send to the queue can run commands" in done.stderr
    assert "--allow-shell" in done.stderr


def test_sqsjkrs_own_flags_map_to_ours() -> None:
    """sqsjkr's single-dash flags are whole options (-conf is not -c onf); -lock-table is
    sqsjkr's one table for locks and throttle, so it names both, below our own flags."""
    from sqs_consumer.cli import build_parser
    from sqs_consumer.cli.kick import kick_flags

    args = build_parser().parse_args([
        "kick", "-conf", "sqsjkr.toml", "-region", "ap-northeast-1", "-profile", "jkr",
        "-lock-table", "sqsjkr", "-stats-port", "8061", "-log-level", "debug",
    ])  # fmt: skip
    assert (args.config, args.profile) == ("sqsjkr.toml", "jkr")
    assert kick_flags(args) == {
        "region_name": "ap-northeast-1",
        "lock_table": "sqsjkr",
        "idempotency_table": "sqsjkr",
        "stats_port": "8061",
        "log_level": "debug",
    }
    args = build_parser().parse_args(
        ["kick", "-lock-table", "sqsjkr", "--idempotency-table", "events"]
    )
    assert kick_flags(args) == {"lock_table": "sqsjkr", "idempotency_table": "events"}


@pytest.mark.parametrize(
    ("flags", "toml", "error"),
    [
        (["-stats-socket", "/tmp/sqsjkr.sock"], None, "-stats-socket: a Unix-socket stats"),
        (["-conf", "sqsjkr.toml"], 'stats_socket = "/tmp/s.sock"',
         "sqsjkr.toml: kicker.stats_socket: a Unix-socket stats"),
        (["-conf", "missing.toml"], None, "--config missing.toml: No such file"),
        (["-profile", "nowhere"], None, "--profile nowhere: AWS profile 'nowhere' is not "
         "configured"),
        (["-conf"], None, "argument -conf: expected one argument"),
    ],
)  # fmt: skip
def test_sqsjkrs_flags_fail_in_one_line(
    cli: Cli, flags: list[str], toml: str | None, error: str
) -> None:
    """A flag kick cannot honour (sqsjkr's Unix-socket stats, a missing profile or file)
    is one line and exit 2, never a traceback; stats_socket says to use stats_port."""
    if toml is not None:
        (cli.cwd / "sqsjkr.toml").write_text(f"[kicker]\n{toml}\n")
    done = cli.run("kick", "--allow-shell", "--queue-url", "memory://jobs", *flags,
                   env={"AWS_CONFIG_FILE": str(cli.cwd / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(cli.cwd / "none")})  # fmt: skip
    assert done.returncode == 2
    assert error in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    if "stats_socket" in error or "stats-socket" in error:
        assert "use stats_port (--stats-port)" in done.stderr


def test_profile_flag_sets_aws_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-profile (--profile) names the AWS profile over AWS_PROFILE and the TOML's."""
    from sqs_consumer.cli.kick import _use_profile

    config = tmp_path / "config"
    config.write_text("[profile jkr]\nregion = ap-northeast-1\n[default]\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "default")
    _use_profile({"profile": ("sqsjkr.toml: account.profile", "default")}, "jkr")
    assert os.environ["AWS_PROFILE"] == "jkr"


def test_kick_with_sqsjkrs_toml_and_jobs_on_moto(
    cli: Cli, moto_sqs: Any, moto_endpoint: str
) -> None:
    """sqsjkr's TOML as it is (queue by name, with sqsjkr's -conf flag): the example job
    runs with its env, a
    malformed one goes to the DLQ, and /stats/metrics/v2 answers sqsjkr's JSON."""
    name = unique_name("kick")
    url = moto_sqs.create_queue(QueueName=name)["QueueUrl"]
    dlq = moto_sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    port = _free_port()
    (cli.cwd / "sqsjkr.toml").write_text(
        EXAMPLE_TOML.format(
            account="123456789012",
            region=REGION,
            queue_name=name,
            trigger="cat > trigger.txt",
            port=port,
        )  # fmt: skip
    )
    job = dict(EXAMPLE_JOB, command='echo "hello $MAILTO" > hello.txt')
    send(moto_sqs, url, [json.dumps(job), '{"env": {}}'])
    process = cli.start(
        "kick", "-conf", "sqsjkr.toml", "--allow-shell", "--endpoint-url", moto_endpoint,
        "--wait-time-seconds", "1", "--max-receives", "1", "--dead-letter-queue-url", dlq,
    )  # fmt: skip
    hello = cli.cwd / "hello.txt"

    def metrics() -> Any:
        try:
            return json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats/metrics/v2"))
        except OSError:  # not listening yet
            return None

    def done() -> bool:
        figures = metrics()
        return figures is not None and figures["invocations"]["succeeded"] == 1

    wait_until(lambda: done() and counts(moto_sqs, dlq)[0] == 1, timeout=20)
    figures = metrics()
    assert cli.stop(process) == 0
    assert hello.read_text() == "hello example@example.com\n"
    assert figures == {
        "workers": {"busy": 0, "idle": 5},
        "invocations": {"succeeded": 1, "failed": 1, "errored": 0},
    }
    assert "invalid job definition: field 'command' is required" in cli.log()
    assert counts(moto_sqs, url) == (0, 0)


def test_kick_locks_and_trigger_across_two_kickers_on_moto(
    cli: Cli, sqs_queue: str, moto_sqs: Any, moto_endpoint: str
) -> None:
    """Two kickers sharing a DynamoDB lock table never run two jobs with one lock_id at
    once; a job past its life_time (counted from its sent time: while it runs, or already
    when it is received) fires the trigger with its definition, once."""
    table = DynamoDBLockStore(unique_name("kick"), endpoint_url=moto_endpoint, region_name=REGION)
    table.create_table()
    jobs = [
        {"command": f"echo start {n} >> runs.txt; sleep 0.3; echo end {n} >> runs.txt",
         "lock_id": "one-at-a-time", "life_time": 30}
        for n in range(3)
    ]  # fmt: skip
    slow = {"command": "sleep 1.5", "life_time": 1, "event_id": "slow-1"}
    send(moto_sqs, sqs_queue, [json.dumps(job) for job in [*jobs, slow]])
    flags = [
        "kick", "--allow-shell", "--queue-url", sqs_queue, "--endpoint-url", moto_endpoint,
        "--region", REGION, "--wait-time-seconds", "1", "--concurrency", "4",
        "--lock-table", table.table_name,
        "--idempotency-table", table.table_name,
        "--life-time-trigger", f"{sys.executable} -c \"import sys; "
        "open('fired.txt', 'a').write(sys.stdin.read() + '\\n')\"",
    ]  # fmt: skip
    first, second = cli.start(*flags), cli.start(*flags)
    runs, fired = cli.cwd / "runs.txt", cli.cwd / "fired.txt"
    wait_until(lambda: runs.exists() and runs.read_text().count("end") == 3, timeout=45)
    wait_until(lambda: fired.exists() and counts(moto_sqs, sqs_queue) == (0, 0), timeout=20)
    assert cli.stop(first) == 0 and cli.stop(second) == 0
    lines = runs.read_text().split("\n")[:-1]
    for start, end in zip(lines[::2], lines[1::2], strict=True):
        assert (start.split()[0], end.split()[0], start.split()[1]) == ("start", "end",
                                                                        end.split()[1])  # fmt: skip
    assert [json.loads(line) for line in fired.read_text().splitlines()] == [slow]
