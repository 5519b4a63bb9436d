"""Settings in layers: flag > environment > env file > TOML > default, each error naming its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqs_consumer import ConsumerOptions
from sqs_consumer.cli import URL_SETTING, build_parser, main
from sqs_consumer.cli.commands import resolve
from sqs_consumer.cli.config import (
    ConfigError,
    build_options,
    cli_settings,
    layered,
    option_settings,
    parse_duration,
    read_env_file,
)

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
SETTINGS = option_settings(batch=True) + cli_settings()


def _files(tmp_path: Path, toml: str = "", env: str = "") -> tuple[str, str]:
    (tmp_path / "config.toml").write_text(f"[consumer]\n{toml}")
    (tmp_path / ".env").write_text(env)
    return str(tmp_path / "config.toml"), str(tmp_path / ".env")


def _options(tmp_path: Path, *, toml: str = "", env: str = "", environ=None, flags=None):
    config, env_file = _files(tmp_path, toml, env)
    layers = layered(
        SETTINGS,
        flags=flags or {},
        config=config,
        env_file=env_file,
        environ=environ or {},
        export=False,
    )
    return build_options(layers)


class TestPrecedence:
    def test_each_source_beats_the_one_below(self, tmp_path: Path) -> None:
        """TOML over default, env file over TOML, environment over env file, flag over all."""
        toml = f'queue_url = "{URL}"\nconcurrency = 2\nbatch_size = 2\nwait_time_seconds = 2\n'
        toml += "shutdown_timeout = 2\n"
        env = "SQS_CONSUMER_BATCH_SIZE=3\nSQS_CONSUMER_WAIT_TIME_SECONDS=3\n"
        env += "SQS_CONSUMER_SHUTDOWN_TIMEOUT=3\n"
        environ = {"SQS_CONSUMER_WAIT_TIME_SECONDS": "4", "SQS_CONSUMER_SHUTDOWN_TIMEOUT": "4"}
        options = _options(
            tmp_path, toml=toml, env=env, environ=environ, flags={"shutdown_timeout": "5"}
        )
        assert (options.concurrency, options.batch_size, options.wait_time_seconds) == (2, 3, 4)
        assert options.shutdown_timeout == 5.0
        assert options.pollers == "auto"  # untouched: the default

    def test_values_are_typed_from_the_options_fields(self, tmp_path: Path) -> None:
        """Text becomes int, float, None, a literal or a bool as each field wants."""
        flags = {
            "queue_url": URL,
            "pollers": "3",
            "visibility_timeout": "none",
            "heartbeat_interval": "2.5",
            "worker": "pool",
            "batch": "true",
            "no_retry": "true",
        }
        options = _options(tmp_path, flags=flags)
        assert (options.pollers, options.visibility_timeout) == (3, None)
        assert (options.heartbeat_interval, options.worker, options.batch) == (2.5, "pool", True)
        assert options.retry is None

    def test_region_alias_variable(self, tmp_path: Path) -> None:
        """SQS_CONSUMER_REGION_NAME (and SQS_CONSUMER_REGION) set region_name."""
        environ = {"SQS_CONSUMER_QUEUE_URL": URL, "SQS_CONSUMER_REGION": "eu-west-1"}
        assert _options(tmp_path, environ=environ).region_name == "eu-west-1"

    def test_the_parser_has_a_flag_for_every_scalar_option(self) -> None:
        """Every ConsumerOptions field but client, middleware and retry is a flag of run."""
        parser = build_parser()
        run = parser._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
        flags = {flag for action in run._actions for flag in action.option_strings}
        import attrs

        for field in attrs.fields(ConsumerOptions):
            if field.name not in ("client", "middleware", "retry"):
                assert "--" + field.name.replace("_", "-") in flags, field.name
        assert {"--region", "--no-retry", "--config", "--env-file", "-e"} <= flags


class TestErrorsNameTheirSource:
    @pytest.mark.parametrize(
        ("where", "source"),
        [
            ("flag", "--concurrency"),
            ("environ", "SQS_CONSUMER_CONCURRENCY"),
            ("env", ".env: SQS_CONSUMER_CONCURRENCY"),
            ("toml", "config.toml: consumer.concurrency"),
        ],
    )
    def test_an_out_of_range_value(self, tmp_path: Path, where: str, source: str) -> None:
        """The error starts with the source and keeps ConsumerOptions' allowed range."""
        kwargs: dict[str, object] = {"environ": {"SQS_CONSUMER_QUEUE_URL": URL}}
        if where == "flag":
            kwargs["flags"] = {"concurrency": "0"}
        elif where == "environ":
            kwargs["environ"] = {"SQS_CONSUMER_QUEUE_URL": URL, "SQS_CONSUMER_CONCURRENCY": "0"}
        elif where == "env":
            kwargs["env"] = "SQS_CONSUMER_CONCURRENCY=0\n"
        else:
            kwargs["toml"] = "concurrency = 0\n"
        with pytest.raises(ConfigError) as error:
            _options(tmp_path, **kwargs)  # type: ignore[arg-type]
        text = str(error.value)
        assert source in text
        assert "an integer between 1 and 100000, got 0" in text

    def test_text_that_is_not_a_number(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"^--batch-size: expected an integer, got 'ten'$"):
            _options(tmp_path, flags={"queue_url": URL, "batch_size": "ten"})

    def test_an_unknown_toml_key(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"config.toml: consumer.concurency is not a setting"):
            _options(tmp_path, toml="concurency = 3\n")

    def test_send_shares_the_toml_file_with_run(self, tmp_path: Path) -> None:
        """Settings of other commands are skipped, not refused, where a command has no use for them."""
        config, _ = _files(tmp_path, f'queue_url = "{URL}"\nconcurrency = 5\n')
        queue_only = [setting for setting in SETTINGS if setting.name == "queue_url"]
        layers = layered(queue_only, flags={}, config=config, environ={}, export=False)
        assert layers.get("queue_url") == URL

    def test_toml_without_a_consumer_table(self, tmp_path: Path) -> None:
        path = tmp_path / "other.toml"
        path.write_text("[sqs]\nqueue_name = 'x'\n")
        with pytest.raises(ConfigError, match=r"no \[consumer\] table"):
            layered(SETTINGS, flags={}, config=str(path), environ={}, export=False)

    def test_a_cross_field_error_names_both_sources(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as error:
            _options(
                tmp_path,
                environ={"SQS_CONSUMER_QUEUE_URL": URL, "SQS_CONSUMER_POOL_MIN_WORKERS": "20"},
                flags={"concurrency": "5"},
            )
        assert str(error.value).startswith("SQS_CONSUMER_POOL_MIN_WORKERS, --concurrency: ")

    @pytest.mark.parametrize(
        ("flags", "expected"),
        [
            (
                {"shutdown_timeout": "inf"},
                "--shutdown-timeout: ConsumerOptions.shutdown_timeout must be a finite number "
                "of seconds >= 0, got inf",
            ),
            (
                {"handler_timeout": "inf"},
                "--handler-timeout: ConsumerOptions.handler_timeout must be None or a finite "
                "number of seconds > 0, got inf (None is no limit)",
            ),
            ({"pool_idle_timeout": "Infinity"}, "--pool-idle-timeout: ConsumerOptions."),
            ({"lock_lease": "inf"}, "--lock-lease: expected a finite duration > 0"),
            ({"region_name": ""}, "--region-name: expected a non-empty string (or none), got ''"),
            ({"endpoint_url": " "}, "--endpoint-url: expected a non-empty string (or none)"),
        ],
    )
    def test_no_infinite_durations_or_empty_names(
        self, tmp_path: Path, flags: dict[str, str], expected: str
    ) -> None:
        """A deadline must be finite (None where there is none); an empty name is no name."""
        with pytest.raises(ConfigError) as error:
            _options(tmp_path, flags={"queue_url": URL, **flags})
        assert str(error.value).startswith(expected), str(error.value)

    def test_no_queue(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="no queue: give --queue-url"):
            _options(tmp_path)


class TestTomlTypes:
    """TOML values keep their TOML types: a value of the wrong type is an error, not parsed."""

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ('concurrency = "5"', "consumer.concurrency: expected an integer, got the string '5'"),
            (
                'batch = "yes"',
                "consumer.batch: expected a boolean (true or false), got the string 'yes'",
            ),
            ('shutdown_timeout = "30"', "consumer.shutdown_timeout: expected a number"),
            ('visibility_timeout = "none"', "consumer.visibility_timeout: expected an integer"),
            ("concurrency = 5.0", "consumer.concurrency: expected an integer, got the float 5.0"),
            ("concurrency = true", "consumer.concurrency: expected an integer, got the boolean"),
            ("worker = 1", "consumer.worker: expected a string, got the integer 1"),
            ('processes = "4"', "consumer.processes: expected an integer, got the string '4'"),
            (
                'no_retry = "yes"',
                "consumer.no_retry: expected a boolean (true or false), got the string 'yes'",
            ),
            ("log_level = [1]", "consumer.log_level: expected a string, got the array [1]"),
        ],
    )
    def test_a_value_of_the_wrong_type(self, tmp_path: Path, line: str, expected: str) -> None:
        """One line naming the file and key, even when a flag would override the value."""
        with pytest.raises(ConfigError) as error:
            _options(tmp_path, toml=f'queue_url = "{URL}"\n{line}\n', flags={"concurrency": "3"})
        text = str(error.value)
        assert text.startswith("config.toml: " + expected), text
        assert "\n" not in text

    def test_values_of_the_right_type(self, tmp_path: Path) -> None:
        """Strings stay strings, ints ints; a number of seconds may be an int; a duration of
        the lock settings may be a string such as "1h"."""
        toml = (
            f'queue_url = "{URL}"\nworker = "pool"\npollers = "auto"\nprefetch = 0\n'
            "concurrency = 5\nbatch = true\nshutdown_timeout = 3\nheartbeat_interval = 2.5\n"
            'log_level = "warn"\nprocesses = 2\nno_retry = true\nidempotency_ttl = "1h"\n'
            "lock_lease = 90\n"
        )
        config, _ = _files(tmp_path, toml)
        layers = layered(SETTINGS, flags={}, config=config, environ={}, export=False)
        options = build_options(layers)
        assert (options.worker, options.pollers, options.prefetch) == ("pool", "auto", 0)
        assert (options.concurrency, options.batch, options.retry) == (5, True, None)
        assert (options.shutdown_timeout, options.heartbeat_interval) == (3, 2.5)
        assert (layers.get("log_level"), layers.get("processes")) == ("warning", 2)
        assert (layers.get("idempotency_ttl"), layers.get("lock_lease")) == (3600.0, 90.0)

    def test_the_command_exits_2_with_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        config, _ = _files(tmp_path, 'concurrency = "5"\n')
        assert main(["run", "jobs:handle", "--config", config]) == 2
        err = capsys.readouterr().err
        assert err == (
            "sqs-consumer run: error: config.toml: consumer.concurrency: expected an integer, "
            "got the string '5' (TOML values keep their types)\n"
        )

    def test_a_string_option_is_not_stripped(self, tmp_path: Path) -> None:
        """A string is taken as it is: ConsumerOptions refuses the stray space, naming the key."""
        with pytest.raises(ConfigError, match=r"^config.toml: consumer.queue_url: .*whitespace"):
            _options(tmp_path, toml=f'queue_url = "{URL} "\n')


class TestEnvFile:
    def test_dotenv_syntax(self, tmp_path: Path) -> None:
        """Comments, export, quotes and inline comments, as dotenv reads them."""
        path = tmp_path / ".env"
        path.write_text(
            "# comment\n\nexport A=1\nB = two words # note\nC='lit # eral'\n"
            'D="line\\nbreak \\"q\\""\nE=\n'
        )
        assert [(name, value) for _, name, value in read_env_file(str(path))] == [
            ("A", "1"),
            ("B", "two words"),
            ("C", "lit # eral"),
            ("D", 'line\nbreak "q"'),
            ("E", ""),
        ]

    def test_a_bad_line_names_the_file_and_line(self, tmp_path: Path) -> None:
        path = tmp_path / ".env"
        path.write_text("A=1\nnot a setting\n")
        with pytest.raises(ConfigError, match=r"\.env:2: expected NAME=VALUE"):
            read_env_file(str(path))

    def test_variables_are_exported_without_overriding(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AWS_* in the file reach boto3, as with sqsd; the real environment still wins."""
        monkeypatch.setenv("CLI_TEST_KEEP", "real")
        monkeypatch.delenv("CLI_TEST_NEW", raising=False)
        path = tmp_path / ".env"
        path.write_text("CLI_TEST_KEEP=file\nCLI_TEST_NEW=file\n")
        layered(SETTINGS, flags={}, env_file=str(path))
        import os

        assert (os.environ["CLI_TEST_KEEP"], os.environ["CLI_TEST_NEW"]) == ("real", "file")
        monkeypatch.delenv("CLI_TEST_NEW")


class TestSqsdEnv:
    SQSD = [*option_settings(), *cli_settings(), URL_SETTING]

    def test_sqsd_names_map_onto_options(self, tmp_path: Path) -> None:
        """taiyoh/sqsd's .env as it is: every name it reads maps onto a setting."""
        (tmp_path / ".env").write_text(
            "INVOKER_URL=http://localhost:8080/work\n"
            f"QUEUE_URL={URL}\n"
            "INVOKER_TIMEOUT=1m30s\n"
            "UNLOCK_INTERVAL=1m\nLOCK_EXPIRE=24h\n"
            "FETCHER_PARALLEL_COUNT=2\nINVOKER_PARALLEL_COUNT=8\n"
            "MONITORING_PORT=7070\nLOG_LEVEL=warn\n"
        )
        layers = layered(
            self.SQSD, flags={}, env_file=str(tmp_path / ".env"), environ={}, sqsd=True,
            export=False,
        )  # fmt: skip
        options = build_options(layers)
        assert layers.get("url") == "http://localhost:8080/work"
        assert (options.queue_url, options.handler_timeout) == (URL, 90.0)
        assert (options.pollers, options.concurrency, options.stats_port) == (2, 8, 7070)
        assert layers.get("log_level") == "warning"

    def test_sqsd_defaults_apply_with_its_names(self, tmp_path: Path) -> None:
        """One sqsd name is enough for sqsd's defaults: 1 invoker, 1 fetcher, port 6969."""
        layers = layered(self.SQSD, flags={}, environ={"QUEUE_URL": URL}, sqsd=True)
        options = build_options(layers)
        assert (options.concurrency, options.pollers, options.stats_port) == (1, 1, 6969)

    def test_our_names_beat_sqsd_names(self, tmp_path: Path) -> None:
        environ = {"QUEUE_URL": URL, "INVOKER_PARALLEL_COUNT": "4", "SQS_CONSUMER_CONCURRENCY": "6"}
        layers = layered(self.SQSD, flags={}, environ=environ, sqsd=True)
        assert build_options(layers).concurrency == 6

    def test_sqsd_names_are_for_http_only(self) -> None:
        layers = layered(SETTINGS, flags={}, environ={"QUEUE_URL": URL})
        with pytest.raises(ConfigError, match="no queue"):
            build_options(layers)

    def test_a_bad_duration(self) -> None:
        with pytest.raises(ConfigError, match=r"^INVOKER_TIMEOUT: expected a duration"):
            layered(self.SQSD, flags={}, environ={"INVOKER_TIMEOUT": "soon"}, sqsd=True)

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("60s", 60), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2.5", 2.5), ("1.5m", 90)],
    )
    def test_go_durations(self, text: str, seconds: float) -> None:
        assert parse_duration(text) == pytest.approx(seconds)


def test_the_supervisor_overrides_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child of --processes takes its stats port and processes=1 over the user's flags."""
    args = build_parser().parse_args(
        ["run", "jobs:handle", "--processes", "4", "--stats-port", "80"]
    )
    environ = {"SQS_CONSUMER__CHILD": '{"processes": 1, "stats_port": 41234}'}
    layers = resolve(args, environ=environ)
    assert (layers.get("processes"), layers.get("stats_port")) == (1, 41234)
