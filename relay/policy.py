"""Pure decisions: how a delivery attempt ends, when to retry it, when to poll a task next.

Nothing here does I/O or reads the clock: ``now`` and a ``random.Random`` are parameters, so
every decision is reproducible in a test with a seeded generator and ``jitter=0``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

# DESIGN §5: these statuses mean "slow down", so their Retry-After is worth honouring.
SLOW_DOWN_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Dead:
    """The schedule is exhausted: the delivery is ``failed`` and stays replayable."""

    reason: str


@dataclass(frozen=True, slots=True)
class Gone:
    """The receiver answered 410: stop this delivery (the caller disables a subscription)."""

    reason: str


DeliveryOutcome = Delivered | RetryAt | Dead | Gone


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Waits after attempts 1, 2, …: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h."""

    schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    jitter: float = 0.2
    retry_after_max: float = 3600

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.schedule):
            raise ValueError("retry schedule delays must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.retry_after_max < 0:
            raise ValueError("retry_after_max must be >= 0")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt got. ``status_code`` is None when no response came back (timeout,
    connection refused, TLS failure, …) and ``error`` then says which."""

    status_code: int | None
    retry_after: float | None = None
    error: str | None = None


def jittered(delay: float, jitter: float, rng: random.Random) -> float:
    # Multiplicative jitter spreads retries and polls that were scheduled together.
    return delay * rng.uniform(1 - jitter, 1 + jitter)


def retry_delay(attempts_made: int, policy: RetryPolicy, rng: random.Random) -> float | None:
    """Seconds to wait after attempt ``attempts_made`` (1-based), or None once the schedule
    is exhausted (after ``len(schedule) + 1`` attempts in all)."""
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1, got {attempts_made}")
    if attempts_made > len(policy.schedule):
        return None
    return jittered(policy.schedule[attempts_made - 1], policy.jitter, rng)


def describe_attempt(result: AttemptResult) -> str:
    """A short human-readable reason, kept on the attempt and shown to operators."""
    code = result.status_code
    if code is None:
        return result.error or "no response"
    if 300 <= code < 400:
        return f"HTTP {code} (redirects are not followed)"
    if code == 410:
        return "HTTP 410 Gone"
    return f"HTTP {code}"


def classify_attempt(
    result: AttemptResult,
    attempts_made: int,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
) -> DeliveryOutcome:
    """Turn one attempt into what happens next (DESIGN §5).

    2xx is the only success. 410 stops the delivery. Everything else, including 3xx (redirects
    are not followed, so a redirect never delivers) and no response at all, is retried on the
    schedule. For 429/502/503/504 a ``Retry-After`` can push the retry later, up to
    ``retry_after_max``, but never earlier than the schedule: a receiver cannot make us hammer it.
    """
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return Delivered()
    reason = describe_attempt(result)
    if code == 410:
        return Gone(reason)
    delay = retry_delay(attempts_made, policy, rng)
    if delay is None:
        return Dead(f"schedule exhausted after {attempts_made} attempts: {reason}")
    ra = result.retry_after
    if code in SLOW_DOWN_STATUSES and ra is not None and math.isfinite(ra) and ra > 0:
        delay = max(delay, min(ra, policy.retry_after_max))
    return RetryAt(now + timedelta(seconds=delay), reason)


@dataclass(frozen=True, slots=True)
class PollPolicy:
    min_interval: float = 5.0
    max_interval: float = 60.0
    expected_duration: float = 120.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.min_interval <= self.max_interval:
            raise ValueError("need 0 < min_interval <= max_interval")
        if self.expected_duration <= 0:
            raise ValueError("expected_duration must be > 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def estimated_duration(age: float, progress: int | None, expected: float) -> float:
    """``expected``, refined by reported progress when there is enough of it to mean something.

    Progress is coarse and often non-linear (queued time, a final encode step), so the estimate
    ``age / progress`` is bounded to [0.5, 3] x expected and only averaged with it, and ignored
    below 10 % where it is mostly noise.
    """
    if progress is None or not 10 <= progress <= 100:
        return expected
    from_progress = clamp(age / (progress / 100), 0.5 * expected, 3 * expected)
    return (expected + from_progress) / 2


def next_poll_delay(
    age: float,
    progress: int | None,
    policy: PollPolicy,
    rng: random.Random,
    expected: float | None = None,
) -> float:
    """Seconds until a task of ``age`` seconds should be polled again.

    Polls cost provider request budget, and a finished task is only useful once noticed, so the
    delay follows where a finish is likely, given the expected duration E (``expected`` — what
    the relay learned for this provider/model — else ``policy.expected_duration``, refined by
    ``progress``):

    * early, age < min(20 s, 0.15·E): ``min_interval``. Fast failures (input moderation, a bad
      parameter) come back within seconds and the caller wants to hear about them at once.
    * before the finish, up to 0.9·E: half the time left to 0.9·E, within
      [min_interval, max_interval]. Sparse, yet a task that finishes early is noticed within
      half of how early it was. Once 0.9·E is less than three ``min_interval`` away the poll
      jumps straight to it: stepping at ``min_interval`` there would be dense polling where a
      finish is not yet likely.
    * near the finish, 0.9·E to 1.3·E: ``min_interval``. Most tasks end here; dense polling makes
      the poll just after the real finish land within one ``min_interval`` of it.
    * overdue, past 1.3·E: grows with how overdue, min_interval · (1 + 4·(age - 1.3·E)/E),
      up to ``max_interval``: the estimate was wrong (a queue, a slow model) and the finish
      could now be anywhere, so latency matters less than budget.

    Finally ±``jitter`` (multiplicative, uniform) spreads tasks registered together (no
    thundering herd). The result is always within [min·(1 - jitter), max·(1 + jitter)].

    For E = 120 s, min 5 s, max 60 s this polls 11 times in the first 120 s, where a fixed
    5-second loop polls 24 times.
    """
    low, high = policy.min_interval, policy.max_interval
    e = policy.expected_duration if expected is None else expected
    if e <= 0:
        raise ValueError(f"expected duration must be > 0, got {e}")
    e = estimated_duration(age, progress, e)

    if age < min(20.0, 0.15 * e):
        delay = low
    elif age < 0.9 * e:
        gap = 0.9 * e - age
        delay = clamp(gap if gap < 3 * low else gap / 2, low, high)
    elif age <= 1.3 * e:
        delay = low
    else:
        delay = clamp(low * (1 + (age - 1.3 * e) / e * 4), low, high)

    j = policy.jitter
    return clamp(jittered(delay, j, rng), low * (1 - j), high * (1 + j))


def provider_backoff(
    consecutive_faults: int,
    retry_after: float | None,
    *,
    base: float = 2.0,
    cap: float = 300.0,
    rng: random.Random,
) -> float:
    """Seconds to leave a provider alone after ``consecutive_faults`` 429/5xx answers in a row.

    Exponential, base·2^(n-1), with ±20 % jitter so that the tasks waiting on that provider do
    not all come back in the same second. ``cap`` is a hard maximum: jitter only spreads below
    it, so an operator can rely on a provider never being left alone longer. A ``Retry-After``
    is honoured as a minimum, within the same cap. No faults, no backoff.
    """
    if consecutive_faults <= 0:
        return 0.0
    # The exponent is bounded so a long outage cannot overflow the float.
    delay = min(base * 2.0 ** min(consecutive_faults - 1, 60), cap)
    delay = min(jittered(delay, 0.2, rng), cap)
    return max(delay, retry_after_wait(retry_after, cap=cap))


def retry_after_wait(retry_after: float | None, *, cap: float = 300.0) -> float:
    """Seconds a provider's ``Retry-After`` asks the relay to stay away, within ``cap``;
    0 when it sent none (or nothing usable: negative, NaN, infinite)."""
    if retry_after is None or not math.isfinite(retry_after) or retry_after <= 0:
        return 0.0
    return min(retry_after, cap)


def is_past_max_age(created_at: datetime, now: datetime, max_age: float) -> bool:
    """True once a task is older than ``max_age`` seconds (default 48 h, the Ark expiry);
    the tracker then marks it ``expired`` instead of polling it again."""
    return (now - created_at).total_seconds() > max_age
