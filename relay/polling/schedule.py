"""When to poll a task next, and when it is too old to poll: pure decisions (DESIGN §6).

Nothing here does I/O or reads the clock: ``now`` and a ``random.Random`` are parameters.
``relay.polling.learned`` refines this schedule once durations have been learned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from relay.backoff import clamp, jittered


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


def is_past_max_age(created_at: datetime, now: datetime, max_age: float) -> bool:
    """True once a task is older than ``max_age`` seconds (default 48 h, the Ark expiry);
    the tracker then marks it ``expired`` instead of polling it again."""
    return (now - created_at).total_seconds() > max_age
