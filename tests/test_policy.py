from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from relay.backoff import provider_backoff, retry_after_wait
from relay.delivery.outcomes import (
    AttemptResult,
    Dead,
    Delivered,
    Gone,
    RetryAt,
    RetryPolicy,
    classify_attempt,
    retry_delay,
)
from relay.polling.durations import DurationEstimate
from relay.polling.learned import (
    LEARNED_POLLING,
    FinishModel,
    LearnedPolling,
    next_poll_delay_learned,
)
from relay.polling.schedule import PollPolicy, estimated_duration, is_past_max_age, next_poll_delay

NOW = datetime(2026, 6, 6, 16, 0, 0, tzinfo=UTC)
EXACT = RetryPolicy(jitter=0)
SCHEDULE = EXACT.schedule
POLL = PollPolicy(jitter=0)  # min 5, max 60, E 120


class Edge(random.Random):
    """A generator whose ``uniform`` always returns one end of the range, to pin jitter."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def rng() -> random.Random:
    return random.Random(1234)


def after(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --- delivery outcomes ---------------------------------------------------------------------


def test_default_schedule_is_the_documented_one() -> None:
    assert SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert sum(SCHEDULE) == 272105  # about three days, DESIGN §5


@pytest.mark.parametrize(("attempt", "wait"), list(enumerate(SCHEDULE, start=1)))
def test_every_schedule_step(attempt: int, wait: float) -> None:
    outcome = classify_attempt(AttemptResult(500), attempt, EXACT, NOW, rng())
    assert outcome == RetryAt(after(wait), "HTTP 500")
    assert retry_delay(attempt, EXACT, rng()) == wait


def test_dead_after_the_last_step() -> None:
    outcome = classify_attempt(AttemptResult(500), 10, EXACT, NOW, rng())
    assert outcome == Dead("schedule exhausted after 10 attempts: HTTP 500")
    assert retry_delay(10, EXACT, rng()) is None


def test_custom_schedule() -> None:
    policy = RetryPolicy(schedule=(1, 2), jitter=0)
    assert classify_attempt(AttemptResult(None, error="timeout"), 2, policy, NOW, rng()) == RetryAt(
        after(2), "timeout"
    )
    assert classify_attempt(AttemptResult(None, error="timeout"), 3, policy, NOW, rng()) == Dead(
        "schedule exhausted after 3 attempts: timeout"
    )


def test_attempts_made_must_count_the_attempt_just_made() -> None:
    with pytest.raises(ValueError, match="attempts_made"):
        retry_delay(0, EXACT, rng())


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert classify_attempt(AttemptResult(status), 1, EXACT, NOW, rng()) == Delivered()
    # Even on the last attempt: success beats an exhausted schedule.
    assert classify_attempt(AttemptResult(status), 10, EXACT, NOW, rng()) == Delivered()


@pytest.mark.parametrize("status", [301, 302, 304, 307, 308])
def test_redirect_is_a_failure(status: int) -> None:
    outcome = classify_attempt(AttemptResult(status), 2, EXACT, NOW, rng())
    assert outcome == RetryAt(after(300), f"HTTP {status} (redirects are not followed)")


def test_410_is_gone_even_when_the_schedule_is_exhausted() -> None:
    assert classify_attempt(AttemptResult(410), 1, EXACT, NOW, rng()) == Gone("HTTP 410 Gone")
    assert classify_attempt(AttemptResult(410), 10, EXACT, NOW, rng()) == Gone("HTTP 410 Gone")


@pytest.mark.parametrize("status", [100, 400, 401, 404, 409, 413, 500, 501, 599])
def test_other_statuses_retry(status: int) -> None:
    outcome = classify_attempt(AttemptResult(status), 1, EXACT, NOW, rng())
    assert outcome == RetryAt(after(5), f"HTTP {status}")


@pytest.mark.parametrize(
    ("error", "reason"),
    [("timeout", "timeout"), ("connection refused", "connection refused"), (None, "no response")],
)
def test_no_response_retries(error: str | None, reason: str) -> None:
    outcome = classify_attempt(AttemptResult(None, error=error), 3, EXACT, NOW, rng())
    assert outcome == RetryAt(after(1800), reason)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
@pytest.mark.parametrize(
    ("attempt", "retry_after", "wait"),
    [
        (1, 120, 120),  # larger than the schedule's 5 s: honoured
        (1, 7200, 3600),  # larger than retry_after_max: capped
        (1, 2, 5),  # smaller than the schedule: the schedule wins
        (2, 60, 300),
        (4, 3601, 7200),  # capped at 3600, and the schedule's 7200 is later still
        (1, 0, 5),
        (1, -30, 5),
        (1, float("inf"), 5),  # a nonsense header is ignored, not trusted
        (1, None, 5),
    ],
)
def test_retry_after_on_slow_down_statuses(
    status: int, attempt: int, retry_after: float | None, wait: float
) -> None:
    outcome = classify_attempt(AttemptResult(status, retry_after), attempt, EXACT, NOW, rng())
    assert outcome == RetryAt(after(wait), f"HTTP {status}")


@pytest.mark.parametrize("status", [500, 400, 302])
def test_retry_after_is_ignored_on_other_statuses(status: int) -> None:
    outcome = classify_attempt(AttemptResult(status, 600), 1, EXACT, NOW, rng())
    assert isinstance(outcome, RetryAt)
    assert outcome.at == after(5)


def test_retry_after_does_not_extend_the_schedule() -> None:
    outcome = classify_attempt(AttemptResult(503, 60), 10, EXACT, NOW, rng())
    assert outcome == Dead("schedule exhausted after 10 attempts: HTTP 503")


def test_retry_after_max_is_configurable() -> None:
    policy = RetryPolicy(jitter=0, retry_after_max=60)
    outcome = classify_attempt(AttemptResult(429, 600), 1, policy, NOW, rng())
    assert outcome == RetryAt(after(60), "HTTP 429")


@pytest.mark.parametrize(("attempt", "wait"), [(1, 5), (2, 300), (9, 86400)])
def test_retry_jitter_stays_within_twenty_percent(attempt: int, wait: float) -> None:
    policy = RetryPolicy()
    r = rng()
    draws = [retry_delay(attempt, policy, r) for _ in range(2000)]
    values = [d for d in draws if d is not None]
    assert len(values) == 2000
    assert all(0.8 * wait <= d <= 1.2 * wait for d in values)
    # Actually spread, not pinned to one end.
    assert min(values) < 0.82 * wait
    assert max(values) > 1.18 * wait
    assert retry_delay(attempt, policy, Edge(high=False)) == pytest.approx(0.8 * wait)
    assert retry_delay(attempt, policy, Edge(high=True)) == pytest.approx(1.2 * wait)


def test_jitter_never_lets_retry_after_go_below_the_schedule() -> None:
    outcome = classify_attempt(AttemptResult(503, 2), 1, RetryPolicy(), NOW, Edge(high=True))
    assert outcome == RetryAt(after(6), "HTTP 503")


@pytest.mark.parametrize(
    "kwargs", [{"jitter": 1.0}, {"jitter": -0.1}, {"schedule": (5, -1)}, {"retry_after_max": -1}]
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- poll planning --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "delay"),
    [
        (0, 5),  # early: catch fast failures
        (17.9, 5),
        (18, 45),  # middle: half of the 90 s left to 0.9·E
        (20, 44),
        (60, 24),
        (80, 14),
        (93.5, 14.5),  # 0.9·E is within 3 x min away: jump straight to it
        (95, 13),
        (106, 5),  # never below min
        (108, 5),  # near the finish: dense
        (120, 5),
        (156, 5),
        (171, 7.5),  # overdue by E/8: 5 · (1 + 4/8)
        (186, 10),
        (276, 25),
        (1000, 60),  # capped
    ],
)
def test_next_poll_delay_phases(age: float, delay: float) -> None:
    assert next_poll_delay(age, None, POLL, rng()) == pytest.approx(delay)


def test_early_phase_is_shorter_for_short_tasks() -> None:
    # E = 60: the early phase ends at 0.15·E = 9 s.
    assert next_poll_delay(8, None, POLL, rng(), expected=60) == 5
    assert next_poll_delay(9, None, POLL, rng(), expected=60) == pytest.approx(22.5)


def test_expected_overrides_the_policy() -> None:
    assert next_poll_delay(100, None, POLL, rng()) == pytest.approx(8)
    assert next_poll_delay(100, None, POLL, rng(), expected=600) == 60
    assert next_poll_delay(500, None, POLL, rng(), expected=600) == pytest.approx(20)
    assert next_poll_delay(600, None, POLL, rng(), expected=600) == 5


@pytest.mark.parametrize(
    ("age", "progress", "estimate"),
    [
        (60, None, 120),
        (60, 5, 120),  # below 10 %: noise, ignored
        (60, 50, 120),  # on track
        (60, 80, 97.5),  # ahead: 60 / 0.8 = 75, averaged with 120
        (30, 90, 90),  # far ahead: bounded to 0.5·E = 60, then averaged
        (60, 10, 240),  # far behind: bounded to 3·E = 360, then averaged
        (100, 100, 110),
        (60, 101, 120),  # out of range: ignored
    ],
)
def test_progress_refines_the_estimate(age: float, progress: int | None, estimate: float) -> None:
    assert estimated_duration(age, progress, 120) == pytest.approx(estimate)


def test_progress_moves_the_dense_window() -> None:
    # Without progress, age 90 is still sparse (gap 18 → 9 s); at 80 % the task looks
    # due at 0.5·(120 + 112.5) = 116.25, but 90 < 0.9 · 116.25 = 104.6: gap 14.6 → jump.
    assert next_poll_delay(90, None, POLL, rng()) == pytest.approx(9)
    assert next_poll_delay(90, 80, POLL, rng()) == pytest.approx(0.9 * 116.25 - 90)
    # At 95 % and age 100 the estimate is 0.5·(120 + 105.3) = 112.6: already dense.
    assert next_poll_delay(100, 95, POLL, rng()) == 5
    # Slow progress pushes the window out: at 20 % after 60 s, E' = 0.5·(120 + 300) = 210.
    assert next_poll_delay(60, 20, POLL, rng()) == pytest.approx(60)
    assert next_poll_delay(150, None, POLL, rng()) == 5


def test_poll_jitter_spreads_within_bounds() -> None:
    policy = PollPolicy()  # jitter 0.1
    r = rng()
    early = [next_poll_delay(0, None, policy, r) for _ in range(2000)]
    assert all(4.5 <= d <= 5.5 for d in early)
    assert min(early) < 4.55
    assert max(early) > 5.45
    assert next_poll_delay(20, None, policy, Edge(high=False)) == pytest.approx(44 * 0.9)
    assert next_poll_delay(20, None, policy, Edge(high=True)) == pytest.approx(44 * 1.1)


@pytest.mark.parametrize("expected", [10.0, 60.0, 120.0, 600.0])
@pytest.mark.parametrize("progress", [None, 0, 10, 50, 99, 100])
def test_poll_delay_never_leaves_the_bounds(expected: float, progress: int | None) -> None:
    policy = PollPolicy()
    low, high = 5.0 * 0.9, 60.0 * 1.1
    r = rng()
    for step in range(1001):
        age = step * expected / 100  # 0 .. 10·E
        delay = next_poll_delay(age, progress, policy, r, expected=expected)
        assert low <= delay <= high, (age, delay)


def _simulate(expected: float, policy: PollPolicy, r: random.Random) -> tuple[int, float]:
    """Poll from age 0 until past ``expected``; return the polls made before it and the age of
    the first poll at or after it."""
    age, polls = 0.0, 0
    while age < expected:
        polls += 1
        age += next_poll_delay(age, None, policy, r, expected=expected)
    return polls, age


def test_adaptive_polling_is_sparse_yet_punctual_exact() -> None:
    polls, first_after = _simulate(120, POLL, rng())
    # 0, 5, 10, 15, 20, 64, 86, 97, 108, 113, 118: 11 polls against 24 at a fixed 5 s.
    assert polls == 11
    assert first_after == pytest.approx(123)


@pytest.mark.parametrize("seed", range(50))
def test_adaptive_polling_is_sparse_yet_punctual_jittered(seed: int) -> None:
    policy = PollPolicy()
    polls, first_after = _simulate(120, policy, random.Random(seed))
    assert polls < (120 / 5) / 2
    assert 120 <= first_after <= 120 + 5 * 1.1


@pytest.mark.parametrize(
    "kwargs",
    [{"min_interval": 0}, {"min_interval": 70}, {"expected_duration": 0}, {"jitter": 1.0}],
)
def test_poll_policy_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
        PollPolicy(**kwargs)  # type: ignore[arg-type]


def test_expected_must_be_positive() -> None:
    with pytest.raises(ValueError, match="expected duration"):
        next_poll_delay(10, None, POLL, rng(), expected=0)


# --- provider backoff and max age ----------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "middle"), [(1, 2), (2, 4), (3, 8), (6, 64), (8, 256), (9, 300), (5000, 300)]
)
def test_provider_backoff_is_exponential_with_jitter_under_the_cap(
    faults: int, middle: float
) -> None:
    assert provider_backoff(faults, None, rng=Edge(high=False)) == pytest.approx(0.8 * middle)
    assert provider_backoff(faults, None, rng=Edge(high=True)) == pytest.approx(
        min(1.2 * middle, 300)
    )
    r = rng()
    for _ in range(500):
        assert 0.8 * middle <= provider_backoff(faults, None, rng=r) <= min(1.2 * middle, 300)


def test_provider_backoff_base_and_cap() -> None:
    assert provider_backoff(3, None, base=1, cap=10, rng=Edge(high=True)) == pytest.approx(4.8)
    assert provider_backoff(5, None, base=1, cap=10, rng=Edge(high=True)) == 10


def test_no_faults_no_backoff() -> None:
    assert provider_backoff(0, None, rng=rng()) == 0
    assert provider_backoff(0, 30, rng=rng()) == 0


@pytest.mark.parametrize(
    ("retry_after", "delay"), [(30, 30), (1, 2.4), (1000, 300), (-5, 2.4), (None, 2.4)]
)
def test_provider_backoff_honours_retry_after_within_the_cap(
    retry_after: float | None, delay: float
) -> None:
    assert provider_backoff(1, retry_after, rng=Edge(high=True)) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (None, 0),
        (0, 0),
        (-5, 0),
        (float("nan"), 0),
        (float("inf"), 0),
        (2.5, 2.5),
        (30, 30),
        (1000, 300),
    ],
)
def test_retry_after_wait_is_the_providers_ask_within_the_cap(
    retry_after: float | None, wait: float
) -> None:
    # What a fault that is not counted as a new one (the same outage) still holds the
    # provider off for.
    assert retry_after_wait(retry_after) == wait
    assert retry_after_wait(retry_after, cap=10) == min(wait, 10)


@pytest.mark.parametrize(
    ("age", "past"), [(0, False), (172799, False), (172800, False), (172801, True)]
)
def test_is_past_max_age(age: float, past: bool) -> None:
    assert is_past_max_age(NOW, NOW + timedelta(seconds=age), 48 * 3600) is past


# --- poll planning with a learned duration --------------------------------------------------

LEARN = PollPolicy(min_interval=2, max_interval=60, jitter=0)
LEARNED = DurationEstimate(median=120, spread=0.1, observations=30)  # 90 % in 102-141 s


def polls_until(
    limit: float,
    estimate: DurationEstimate | None,
    policy: PollPolicy = LEARN,
    r: random.Random | None = None,
) -> list[float]:
    """The ages at which a task that never finishes is polled, up to ``limit``."""
    r = r or rng()
    ages, age = [], 0.0
    while age < limit:
        age += next_poll_delay_learned(age, None, policy, estimate, r)
        ages.append(age)
    return ages


def gaps(ages: list[float], low: float, high: float) -> list[float]:
    return [b - a for a, b in itertools.pairwise(ages) if low <= a < high]


@pytest.mark.parametrize("age", [0, 10, 17.9, 18, 60, 93.5, 108, 156, 171, 1000])
@pytest.mark.parametrize("progress", [None, 50, 95])
def test_without_an_estimate_the_learned_policy_is_todays(age: float, progress: int | None) -> None:
    for policy in (POLL, PollPolicy()):
        assert next_poll_delay_learned(age, progress, policy, None, rng()) == next_poll_delay(
            age, progress, policy, rng()
        )


def test_learned_schedule() -> None:
    # The docstring's example: 7 polls before 120 s (a fixed 5 s loop: 24), the first two
    # for fast failures, then straight to the window.
    ages = polls_until(150, LEARNED)
    assert ages[:8] == pytest.approx(
        [22.80, 61.37, 102.48, 108.32, 112.62, 116.21, 119.39, 122.30], abs=0.01
    )
    assert sum(1 for a in ages if a < 120) == 7


def test_sparse_before_the_window_dense_inside_backing_off_after() -> None:
    ages = polls_until(3000, LEARNED)
    low, high = LEARNED.interval(0.9)
    assert (low, high) == pytest.approx((101.80, 141.45), abs=0.01)
    # Inside the window: every 2.2-6 s (a fixed loop: 5 s), denser and denser as the
    # chance that the finish is in the next few seconds, given no finish yet, grows.
    inside = gaps(ages, low, high)
    assert len(inside) == 13
    assert all(2.2 < g < 6 for g in inside)
    assert all(b < a + 0.001 for a, b in itertools.pairwise(inside))
    assert inside[0] == pytest.approx(5.84, abs=0.01)
    assert inside[-1] == pytest.approx(2.25, abs=0.01)
    # Before it, after the early failures: nothing for 40 s.
    assert gaps(ages, 30, low - 5) == pytest.approx([41.11], abs=0.01)
    # After it: sparser and sparser, up to max_interval.
    after = gaps(ages, 160, 3000)
    assert all(b >= a - 0.5 for a, b in itertools.pairwise(after))
    assert after[0] > 5
    assert after[-1] == 60
    assert 9 < gaps(ages, 300, 320)[0] < 11


@pytest.mark.parametrize("age", [0.0, 10.0, 30.0, 60.0, 100.0, 110.0, 120.0, 135.0, 145.0])
@pytest.mark.parametrize("estimate", [LEARNED, DurationEstimate(300, 0.2, 10, outlier_rate=0.1)])
def test_each_gap_costs_the_poll_cost_in_expected_delay(
    age: float, estimate: DurationEstimate
) -> None:
    """The defining property: a gap is as long as it can be while the detection delay it
    adds, given that the task is still running, is ``poll_cost`` seconds. Checked against a
    numerical integral of the finish density (from the survival function alone)."""
    gap = next_poll_delay_learned(age, None, LEARN, estimate, rng())
    finish = FinishModel.of(estimate.median, estimate.spread, estimate.outlier_rate)
    steps = 4000
    h = gap / steps
    # E[(end - T); age < T <= end] = integral of P(age < T <= t) dt over [age, end]
    survive = finish.survival(age)
    area = h * sum((survive - finish.survival(age + (i + 0.5) * h)) for i in range(steps))
    if LEARN.min_interval < gap < LEARN.max_interval:
        assert area / survive == pytest.approx(LEARNED_POLLING.poll_cost, rel=1e-3)
    else:
        assert gap == LEARN.max_interval
        assert area / survive < LEARNED_POLLING.poll_cost


@pytest.mark.parametrize("median", [10.0, 40.0, 120.0, 400.0, 2000.0])
@pytest.mark.parametrize("spread", [0.03, 0.1, 0.5])
@pytest.mark.parametrize("outlier_rate", [0.0, 0.3])
def test_learned_delay_never_leaves_the_bounds(
    median: float, spread: float, outlier_rate: float
) -> None:
    estimate = DurationEstimate(median, spread, 10, outlier_rate=outlier_rate)
    generators = (rng(), Edge(high=False), Edge(high=True))
    for step in range(0, 2001, 7):
        age = step * median / 100  # 0 .. 20 x the median
        for progress in (None, 50):
            for r in generators:
                delay = next_poll_delay_learned(age, progress, PollPolicy(), estimate, r)
                # Never closer than min_interval, even with jitter: the request budget.
                assert 5.0 <= delay <= 60.0, (age, progress, delay)


def test_jitter_spreads_learned_polls_without_breaking_min_interval() -> None:
    policy = replace(LEARN, jitter=0.1)
    base = next_poll_delay_learned(120, None, LEARN, LEARNED, rng())
    assert base == pytest.approx(2.8629, abs=1e-4)
    assert next_poll_delay_learned(120, None, policy, LEARNED, Edge(high=True)) == pytest.approx(
        base * 1.1
    )
    # Jitter down from 2.86 would be 2.58: kept. Near min_interval it is clamped at it.
    assert next_poll_delay_learned(120, None, policy, LEARNED, Edge(high=False)) == pytest.approx(
        base * 0.9
    )
    short = DurationEstimate(40, 0.05, 30)
    assert next_poll_delay_learned(40, None, LEARN, short, rng()) == 2
    assert next_poll_delay_learned(40, None, policy, short, Edge(high=False)) == 2
    r = rng()
    spread = [next_poll_delay_learned(120, None, policy, LEARNED, r) for _ in range(500)]
    assert min(spread) < 0.92 * base
    assert max(spread) > 1.08 * base


def test_a_lost_task_is_polled_at_max_interval() -> None:
    assert next_poll_delay_learned(20 * 120, None, LEARN, LEARNED, rng()) == 60
    assert next_poll_delay_learned(1e7, None, LEARN, LEARNED, rng()) == 60
    # Overdue backoff: at 2.5 x the median (99 % end at 151 s), at least
    # 2 x (1 + 2 x (300 - 151.1) / 120) = 6.96 s; the stall model asks more already.
    assert next_poll_delay_learned(300, None, LEARN, LEARNED, rng()) == pytest.approx(
        9.53, abs=0.01
    )
    steep = LearnedPolling(overdue_slope=8)
    assert next_poll_delay_learned(300, None, LEARN, LEARNED, rng(), tuning=steep) == pytest.approx(
        2 * (1 + 8 * (300 - 120 * math.exp(2.326 * 0.1)) / 120)
    )


def test_progress_moves_the_learned_window() -> None:
    # At 80 % after 60 s the task looks due at 0.5·(120 + 75) = 97.5 s, as in
    # estimated_duration.
    assert estimated_duration(60, 80, 120) == 97.5
    for age in (60.0, 85.0, 95.0):
        due = estimated_duration(age, 80, 120)
        assert next_poll_delay_learned(age, 80, LEARN, LEARNED, rng()) == next_poll_delay_learned(
            age, None, LEARN, replace(LEARNED, median=due), rng()
        )
    assert next_poll_delay_learned(60, 80, LEARN, LEARNED, rng()) < next_poll_delay_learned(
        60, None, LEARN, LEARNED, rng()
    )


def test_a_wider_estimate_polls_more_and_earlier() -> None:
    narrow = polls_until(200, LEARNED)
    wide = polls_until(200, replace(LEARNED, spread=0.3))
    assert len(wide) > len(narrow)
    assert min(a for a in wide if a > 30) < min(a for a in narrow if a > 30)


def test_finish_model_shares() -> None:
    assert FinishModel.of(120, 0.1, 0.0).slow == 0.02  # the floor
    assert FinishModel.of(120, 0.1, 0.1).slow == 0.1  # learned
    assert FinishModel.of(120, 0.1, 0.9).slow == 0.45  # capped
    finish = FinishModel.of(120, 0.1, 0.0)
    assert finish.survival(0) == 1
    assert finish.survival(30) == pytest.approx(0.97, abs=1e-5)  # early failures are done
    # At the median: half of the 95 % main share, and most of the stalls (median 240 s).
    stalls = 0.5 * math.erfc(math.log(120 / 240) / (0.6 * math.sqrt(2)))
    assert stalls == pytest.approx(0.8760, abs=1e-4)
    assert finish.survival(120) == pytest.approx(0.95 * 0.5 + 0.02 * stalls)
    excess, mass = finish.gap_delay(100, 130)
    assert mass == pytest.approx(finish.survival(100) - finish.survival(130))
    assert 0 < excess < 30 * mass


@pytest.mark.parametrize(
    "kwargs",
    [
        {"poll_cost": 0},
        {"early_window": 0},
        {"slow_spread": 0},
        {"slow_factor": 0.5},
        {"early_failure_rate": 0.5},
        {"slow_rate": -0.1},
        {"overdue_slope": -1},
    ],
)
def test_learned_polling_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
        LearnedPolling(**kwargs)


def test_learned_polling_beats_a_fixed_loop() -> None:
    """400 tasks whose kind's median (60-400 s) is known, ±7.5 % noise: a third of the polls
    of a fixed 5 s loop, and a shorter mean delay (the full benchmark, with learning, stalls
    and failures: benchmarks/polling_efficiency.py)."""
    policy, r, workload = replace(LEARN, jitter=0.1), random.Random(11), random.Random(5)
    polls = fixed_polls = 0
    delay = fixed_delay = 0.0
    for _ in range(400):
        median = math.exp(workload.uniform(math.log(60), math.log(400)))
        finish = median * math.exp(workload.gauss(0, 0.075))
        estimate, age = DurationEstimate(median, 0.075, 30), 0.0
        while age < finish:
            age += next_poll_delay_learned(age, None, policy, estimate, r)
            polls += 1
        delay += age - finish
        fixed_polls += math.ceil(finish / 5)
        fixed_delay += math.ceil(finish / 5) * 5 - finish
    assert fixed_polls / polls == pytest.approx(3.667, abs=0.001)
    assert delay / 400 == pytest.approx(1.746, abs=0.001)
    assert fixed_delay / 400 == pytest.approx(2.493, abs=0.001)
