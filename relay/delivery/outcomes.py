"""How a delivery attempt ends and when it is tried again (DESIGN §5): pure decisions.

Nothing here does I/O or reads the clock: ``now`` and a ``random.Random`` are parameters, so
every decision is reproducible in a test with a seeded generator and ``jitter=0``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from relay.backoff import jittered
from relay.models import DeliveryStatus

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


def outcome_fields(outcome: DeliveryOutcome) -> tuple[str, DeliveryStatus, datetime | None]:
    """(attempt outcome label, the delivery's new status, its next attempt time)."""
    match outcome:
        case Delivered():
            return "delivered", DeliveryStatus.SUCCEEDED, None
        case RetryAt(at=at):
            return "retry", DeliveryStatus.PENDING, at
        case Dead():
            return "failed", DeliveryStatus.FAILED, None
        case Gone():
            return "gone", DeliveryStatus.STOPPED, None
    raise AssertionError(outcome)  # pragma: no cover - the match is exhaustive
