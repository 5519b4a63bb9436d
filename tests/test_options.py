"""ConsumerOptions validation: every bad value is refused with a message naming it."""

from __future__ import annotations

from typing import Any

import pytest

from sqs_consumer import ConsumerOptions, ExponentialBackoff
from sqs_consumer.workers import ElasticPool, SemaphoreWorker

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"


def test_defaults_match_the_spec() -> None:
    """The defaults are the ones SPEC §2 lists."""
    o = ConsumerOptions(queue_url=URL)
    assert (o.worker, o.concurrency, o.batch_size, o.wait_time_seconds, o.pollers) == (
        "semaphore",
        10,
        10,
        20,
        "auto",
    )
    assert o.visibility_timeout is None and o.heartbeat_interval is None
    assert o.max_visibility == 43200 and o.handler_timeout is None
    assert isinstance(o.retry, ExponentialBackoff)
    assert (o.delete_batch_size, o.delete_flush_interval, o.shutdown_timeout) == (10, 0.1, 30)
    assert (o.pool_min_workers, o.pool_idle_timeout, o.waiting_room_size) == (0, 10, None)
    assert o.middleware == () and o.stats_port is None and o.batch is False


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("queue_url", "", "queue URL"),
        ("queue_url", "sqs://x", "queue URL"),
        ("concurrency", 0, "between 1 and 100000"),
        ("concurrency", True, "between 1 and 100000"),
        ("concurrency", 2.5, "between 1 and 100000"),
        ("batch_size", 11, "between 1 and 10"),
        ("batch_size", 0, "between 1 and 10"),
        ("wait_time_seconds", 21, "between 0 and 20"),
        ("wait_time_seconds", -1, "between 0 and 20"),
        ("pollers", 0, '"auto" or an integer between 1 and 100'),
        ("pollers", "many", '"auto" or an integer'),
        ("worker", "threads", '"semaphore", "pool" or a Worker'),
        ("visibility_timeout", 0, "between 1 and 43200"),
        ("visibility_timeout", 43201, "between 1 and 43200"),
        ("heartbeat_interval", 0, "> 0"),
        ("max_visibility", 50000, "<= 43200"),
        ("handler_timeout", -1, "> 0"),
        ("handler_timeout", float("nan"), "> 0"),
        ("retry", 5, "RetryPolicy"),
        ("delete_batch_size", 20, "between 1 and 10"),
        ("delete_flush_interval", -0.1, ">= 0"),
        ("shutdown_timeout", -1, ">= 0"),
        ("shutdown_timeout", float("inf"), "a finite number of seconds >= 0"),
        ("shutdown_timeout", float("nan"), "a finite number of seconds >= 0"),
        ("handler_timeout", float("inf"), "None or a finite number of seconds > 0"),
        ("pool_idle_timeout", float("inf"), "a finite number of seconds > 0"),
        ("unhealthy_after", float("inf"), "a finite number of seconds > 0"),
        ("heartbeat_interval", float("inf"), "a finite number of seconds > 0 and <= 43200"),
        ("max_visibility", float("inf"), "<= 43200"),
        ("delete_flush_interval", float("inf"), "<= 60"),
        ("region_name", "", "region name"),
        ("pool_idle_timeout", 0, "> 0"),
        ("waiting_room_size", 0, "between 1 and 100000"),
        ("stats_port", 70000, "between 0 and 65535"),
        ("middleware", [1], "callables"),
        ("batch", "yes", "bool"),
    ],
)
def test_bad_value_is_named(field: str, value: Any, allowed: str) -> None:
    """The error names the field, repeats the bad value and states what is allowed."""
    settings: dict[str, Any] = {"queue_url": URL, field: value}
    with pytest.raises((ValueError, TypeError)) as info:
        ConsumerOptions(**settings)
    text = str(info.value)
    assert field in text
    assert allowed in text


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"concurrency": 2, "pool_min_workers": 3}, "pool_min_workers (3) must not exceed"),
        ({"max_receives": 3}, "max_receives and dead_letter_queue_url go together"),
        ({"dead_letter_queue_url": URL + "-dlq"}, "go together"),
        ({"max_receives": 3, "dead_letter_queue_url": URL}, "must differ from queue_url"),
        ({"visibility_timeout": 10, "heartbeat_interval": 10}, "must be shorter"),
        ({"visibility_timeout": 100, "max_visibility": 50}, "(100) must not exceed max_visibility"),
    ],
)
def test_cross_field_rules(settings: dict[str, Any], fragment: str) -> None:
    """Rules that involve two fields name both."""
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ConsumerOptions(queue_url=URL, **settings)


def test_options_are_frozen_and_keyword_only() -> None:
    """Options cannot be changed after construction nor given positionally."""
    options = ConsumerOptions(queue_url=URL)
    with pytest.raises(AttributeError):
        options.concurrency = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        ConsumerOptions(URL)  # type: ignore[misc]


def test_unknown_option_is_a_type_error() -> None:
    """A misspelt option is refused, not ignored."""
    with pytest.raises(TypeError, match="concurency"):
        ConsumerOptions(queue_url=URL, concurency=5)  # type: ignore[call-arg]


def test_make_worker_follows_the_strategy_name() -> None:
    """'semaphore' and 'pool' build the matching strategy; an instance is used as is."""
    assert isinstance(ConsumerOptions(queue_url=URL).make_worker(), SemaphoreWorker)
    assert isinstance(ConsumerOptions(queue_url=URL, worker="pool").make_worker(), ElasticPool)
    mine = SemaphoreWorker(3)
    assert ConsumerOptions(queue_url=URL, worker=mine).make_worker() is mine


def test_auto_pollers_scale_with_concurrency() -> None:
    """'auto' allows enough receive loops to fill concurrency and the largest prefetch
    (4 x concurrency for "auto") in full batches, capped at 64."""
    assert ConsumerOptions(queue_url=URL, concurrency=2).max_pollers() == 1
    assert ConsumerOptions(queue_url=URL, concurrency=100).max_pollers() == 50
    assert ConsumerOptions(queue_url=URL, concurrency=100, prefetch=0).max_pollers() == 10
    assert ConsumerOptions(queue_url=URL, concurrency=100, prefetch=50).max_pollers() == 15
    assert ConsumerOptions(queue_url=URL, concurrency=10000).max_pollers() == 64
    assert ConsumerOptions(queue_url=URL, pollers=3).max_pollers() == 3
