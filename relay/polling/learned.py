"""When to poll a task whose kind has been seen finishing before
(``relay.polling.durations``): rarely before the likely finish window, about every
``min_interval`` inside it, backing off past it.
Pure, like ``relay.polling.schedule``, whose configured schedule it falls back to with no estimate.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from relay.backoff import clamp, jittered
from relay.polling.durations import DurationEstimate
from relay.polling.schedule import PollPolicy, estimated_duration, next_poll_delay


@dataclass(frozen=True, slots=True)
class LearnedPolling:
    """How :func:`next_poll_delay_learned` trades polls for detection delay, and what it
    assumes beyond the learned duration.

    ``poll_cost``: one poll is worth this many seconds of expected detection delay. Each gap
    between polls is made as long as possible while the delay it is expected to add (given
    that the task is still running) stays within it. This is the greedy form of the optimal
    inspection schedule (gaps of sqrt(2·cost/hazard)); for a median of 50 or 120 s it comes
    within 1 and 4 % of the exact optimum (by dynamic programming). On the workload of
    ``benchmarks/polling_efficiency.py`` 0.26 s gives a little less than the mean detection
    delay of a fixed 5 s loop (2.5 s) with a third of its polls.

    Beside the learned lognormal duration, the finish-time model keeps two small shares that
    the learner does not see: ``early_failure_rate`` of tasks fail within ``early_window``
    seconds (input moderation, a bad parameter), uniformly; and at least ``slow_rate`` (or the
    learned outlier rate, if higher) of tasks stall, lognormal around ``slow_factor`` x the
    median with log-spread ``slow_spread``. They keep a few polls early, and a slow backoff
    (rather than silence or dense polling) for a task that outlives its window.

    ``overdue_slope``: past the 99th percentile of the learned duration, gaps are at least
    ``min_interval`` x (1 + slope x overdue / median), up to ``max_interval``, whatever the
    model says: a lognormal's thin tail would otherwise keep a lost task polled every ten
    seconds for hours.
    """

    poll_cost: float = 0.26
    early_failure_rate: float = 0.03
    early_window: float = 30.0
    slow_rate: float = 0.02
    slow_factor: float = 2.0
    slow_spread: float = 0.6
    overdue_slope: float = 2.0

    def __post_init__(self) -> None:
        if self.poll_cost <= 0 or self.early_window <= 0 or self.slow_spread <= 0:
            raise ValueError("poll_cost, early_window and slow_spread must be > 0")
        if self.slow_factor < 1 or self.overdue_slope < 0:
            raise ValueError("slow_factor must be >= 1, overdue_slope >= 0")
        if not (0 <= self.early_failure_rate < 0.5 and 0 <= self.slow_rate < 0.5):
            raise ValueError("early_failure_rate and slow_rate must be in [0, 0.5)")


LEARNED_POLLING = LearnedPolling()
_SQRT2 = math.sqrt(2)


def _lognormal_sf(t: float, mu: float, sigma: float) -> float:
    if t <= 0:
        return 1.0
    return 0.5 * math.erfc((math.log(t) - mu) / (sigma * _SQRT2))


def _lognormal_part(a: float, b: float, mu: float, sigma: float) -> tuple[float, float]:
    """P(a < T <= b) and E[T; a < T <= b] for a lognormal T, computed from the upper tail
    (where an overdue task's figures are tiny and must stay exact)."""
    mass = _lognormal_sf(a, mu, sigma) - _lognormal_sf(b, mu, sigma)
    shift = mu + sigma * sigma
    mean = math.exp(mu + sigma * sigma / 2)
    weighted = mean * (_lognormal_sf(a, shift, sigma) - _lognormal_sf(b, shift, sigma))
    return mass, weighted


@dataclass(frozen=True, slots=True)
class FinishModel:
    """When a task finishes, as a mixture: early failures (uniform on [0, ``window``]), the
    learned lognormal (``median``, ``spread``) and stalls (lognormal around a multiple of the
    median). Ages are seconds since the task was created."""

    median: float
    spread: float
    early: float
    window: float
    slow: float
    slow_median: float
    slow_spread: float

    @classmethod
    def of(
        cls,
        median: float,
        spread: float,
        outlier_rate: float,
        tuning: LearnedPolling = LEARNED_POLLING,
    ) -> FinishModel:
        slow = min(max(tuning.slow_rate, outlier_rate), 0.45)
        return cls(
            median,
            spread,
            tuning.early_failure_rate,
            tuning.early_window,
            slow,
            median * tuning.slow_factor,
            tuning.slow_spread,
        )

    def survival(self, age: float) -> float:
        """P(the task is still running at ``age``)."""
        main = 1 - self.early - self.slow
        early = self.early * (1 - clamp(age / self.window, 0.0, 1.0))
        return (
            early
            + main * _lognormal_sf(age, math.log(self.median), self.spread)
            + self.slow * _lognormal_sf(age, math.log(self.slow_median), self.slow_spread)
        )

    def gap_delay(self, age: float, at: float) -> tuple[float, float]:
        """For a gap between polls at ``age`` and ``at``: the expected detection delay it adds,
        E[(at - T); age < T <= at], and the probability that the task finishes in it."""
        main = 1 - self.early - self.slow
        a, b = clamp(age, 0.0, self.window), clamp(at, 0.0, self.window)
        mass = self.early * (b - a) / self.window
        weighted = self.early * (b * b - a * a) / (2 * self.window)
        for share, median, spread in (
            (main, self.median, self.spread),
            (self.slow, self.slow_median, self.slow_spread),
        ):
            m, w = _lognormal_part(age, at, math.log(median), spread)
            mass += share * m
            weighted += share * w
        return max(at * mass - weighted, 0.0), mass

    def widest_gap(self, age: float, low: float, high: float, cost: float) -> float:
        """The longest gap in [low, high] after a poll at ``age`` whose expected detection
        delay, given the task is still running, is at most ``cost`` seconds."""
        budget = cost * self.survival(age)
        if budget <= 0:  # beyond anything the model expects: spare the budget
            return high
        excess, _ = self.gap_delay(age, age + high)
        if excess <= budget:
            return high
        # The delay is convex and increasing in the gap (its slope is the chance of finishing
        # within the gap), so Newton's method from the right never overshoots the root.
        gap = high
        for _ in range(50):
            excess, mass = self.gap_delay(age, age + gap)
            if excess - budget <= 1e-6 * budget or mass <= 0:
                break
            step = (excess - budget) / mass
            gap -= step
            if gap <= low or step < 1e-4:
                break
        return clamp(gap, low, high)


def next_poll_delay_learned(
    age: float,
    progress: int | None,
    policy: PollPolicy,
    estimate: DurationEstimate | None,
    rng: random.Random,
    *,
    tuning: LearnedPolling = LEARNED_POLLING,
) -> float:
    """Seconds until a task of ``age`` seconds should be polled again, given what the relay
    has learned about how long such tasks take (``relay.polling.durations.DurationModel.estimate``).

    Without an estimate (nothing learned yet for the task's provider) this is exactly
    :func:`next_poll_delay` with the configured expected duration.

    With one, the finish time is modelled (:class:`FinishModel`: the learned lognormal, plus a
    few early failures and stalls) and each gap is the longest one whose expected detection
    delay stays within ``tuning.poll_cost`` seconds. The result: one or two polls in the
    first half minute, sparse polls (up to ``max_interval``) while a finish is unlikely,
    dense ones (a few seconds, down to ``min_interval``) across the window where the learned
    duration says it is likely, and a growing backoff once the task outlives that window.
    Reported progress moves the window as in :func:`estimated_duration`.

    For a median of 120 s and a spread of 0.1 (90 % finish in 102-141 s), min 2 s, max 60 s,
    no jitter: polls at 23, 61, 102, 108, 113, 116, 119 s (7 before 120 s, where a fixed
    5-second loop makes 24), then every 2.9 to 2.2 s to 151 s, then 3, 3.4, 4.2, 5.7, 8 and
    about 10 s apart; from about 400 s the gaps grow again, to 60 s by 1900 s.

    ±``jitter`` spreads polls; the result is always within [``min_interval``,
    ``max_interval``], so a task is never polled more often than ``min_interval`` allows.
    """
    if estimate is None:
        return next_poll_delay(age, progress, policy, rng)
    low, high = policy.min_interval, policy.max_interval
    age = max(age, 0.0)
    median = estimated_duration(age, progress, estimate.median)
    finish = FinishModel.of(median, estimate.spread, estimate.outlier_rate, tuning)
    delay = finish.widest_gap(age, low, high, tuning.poll_cost)
    # Past 99 % of the learned durations the estimate was wrong for this task (a stall, a
    # lost task): back off as :func:`next_poll_delay` does once overdue.
    overdue = age - median * math.exp(2.326 * estimate.spread)
    if overdue > 0:
        delay = max(delay, min(high, low * (1 + tuning.overdue_slope * overdue / median)))
    return clamp(jittered(delay, policy.jitter, rng), low, high)
