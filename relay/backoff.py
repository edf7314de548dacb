"""Waiting rules shared by deliveries, polls and providers: multiplicative jitter, bounded
exponential back-off, and what a ``Retry-After`` header asks for. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def jittered(delay: float, jitter: float, rng: random.Random) -> float:
    # Multiplicative jitter spreads retries and polls that were scheduled together.
    return delay * rng.uniform(1 - jitter, 1 + jitter)


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # HttpReply promises lower-case names, but a hand-built mapping may not follow it.
    return next((v for k, v in headers.items() if k.lower() == name), None)


def parse_retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or an HTTP date); past → 0."""
    raw = _header(headers, "retry-after")
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
