"""The rate limit on failed authentication (relay.limits): pure, time is a number."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from relay.api.http import client_address
from relay.limits import FailureLimiter


def test_a_burst_of_failures_then_a_wait_for_each_new_one() -> None:
    limiter = FailureLimiter(per_minute=6, burst=3)  # one token every 10 s
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4", 100.0) is None
        limiter.failed("1.2.3.4", 100.0)
    assert limiter.retry_after("1.2.3.4", 100.0) == pytest.approx(10.0)
    assert limiter.retry_after("1.2.3.4", 104.0) == pytest.approx(6.0)
    assert limiter.retry_after("1.2.3.4", 110.0) is None  # one token back
    limiter.failed("1.2.3.4", 110.0)
    assert limiter.retry_after("1.2.3.4", 110.0) == pytest.approx(10.0)
    # The burst refills fully, never beyond.
    assert limiter.retry_after("1.2.3.4", 10_000.0) is None
    for _ in range(3):
        limiter.failed("1.2.3.4", 10_000.0)
    assert limiter.retry_after("1.2.3.4", 10_000.0) is not None


def test_clients_are_counted_apart() -> None:
    limiter = FailureLimiter(per_minute=1, burst=1)
    limiter.failed("10.0.0.1", 0.0)
    assert limiter.retry_after("10.0.0.1", 0.0) == pytest.approx(60.0)
    assert limiter.retry_after("10.0.0.2", 0.0) is None


def test_failures_while_blocked_do_not_push_the_wait_further() -> None:
    limiter = FailureLimiter(per_minute=60, burst=1)
    limiter.failed("c", 0.0)
    limiter.failed("c", 0.5)  # a failure the caller should not have let through
    assert limiter.retry_after("c", 0.5) == pytest.approx(1.0)


def test_zero_per_minute_turns_it_off() -> None:
    limiter = FailureLimiter(per_minute=0, burst=1)
    for _ in range(100):
        limiter.failed("c", 0.0)
    assert limiter.retry_after("c", 0.0) is None


def test_the_table_of_clients_stays_bounded() -> None:
    limiter = FailureLimiter(per_minute=60, burst=2, max_clients=100)
    for i in range(1000):
        limiter.failed(f"c{i}", float(i) / 1000)
    assert len(limiter._buckets) <= 100
    # The most recent offenders are still remembered.
    limiter.failed("c999", 1.0)
    assert limiter.retry_after("c999", 1.0) is not None


def test_bad_parameters_are_refused() -> None:
    for kwargs in ({"per_minute": -1}, {"burst": 0}, {"max_clients": 0}):
        with pytest.raises(ValueError, match="need per_minute"):
            FailureLimiter(**kwargs)


@pytest.mark.parametrize(
    ("peer", "counted_as"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("2001:db8:1:2:aaaa::1", 5000), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 6000), "2001:db8:1:2::/64"),
        (None, None),
    ],
)
def test_wrong_keys_count_against_the_address_or_its_ipv6_64(
    peer: tuple[str, int] | None, counted_as: str | None
) -> None:
    """One IPv6 host holds a whole /64: counting /128s would not limit it at all."""
    scope: dict[str, object] = {"type": "http", "headers": [], "client": peer}
    assert client_address(Request(scope)) == counted_as
