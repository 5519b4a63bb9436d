"""ExponentialBackoff: delay by receive count, capped, with jitter."""

from __future__ import annotations

import pytest

from sqs_consumer import ExponentialBackoff, RetryPolicy


def test_grows_exponentially_and_caps() -> None:
    """Without jitter the delays double per receive and stop at max_delay."""
    policy = ExponentialBackoff(initial=1, multiplier=2, max_delay=10, jitter=0)
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert policy.delay(10_000) == 10


def test_jitter_stays_within_its_fraction() -> None:
    """Jittered delays fall within [delay * (1 - jitter), delay] and vary."""
    policy = ExponentialBackoff(initial=10, jitter=0.5, max_delay=100)
    delays = {policy.delay(1) for _ in range(200)}
    assert all(5 <= d <= 10 for d in delays)
    assert len(delays) > 1


def test_is_a_retry_policy_and_validates() -> None:
    """It satisfies the RetryPolicy protocol; bad bounds are refused."""
    assert isinstance(ExponentialBackoff(), RetryPolicy)
    with pytest.raises(ValueError, match="initial"):
        ExponentialBackoff(initial=0)
    with pytest.raises(ValueError, match="max_delay"):
        ExponentialBackoff(max_delay=50000)
