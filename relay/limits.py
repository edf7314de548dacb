"""Rate limit on failed authentication: a token bucket per client address, pure (``now`` is a
parameter, in seconds), kept in memory by each relay instance.

A client may send ``burst`` wrong API keys, then ``per_minute`` more each minute. While its
bucket is empty a wrong key is answered 429 with ``Retry-After`` instead of 401. A valid key
always passes (``relay.api.http.account_for_key`` says why). Requests without any key are not
counted (they guess nothing). Successes do not refill the bucket, or one valid key would
reset the count for the guesses around it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float


class FailureLimiter:
    def __init__(
        self, per_minute: float = 10.0, burst: int = 20, max_clients: int = 10_000
    ) -> None:
        """``per_minute`` 0 turns the limit off."""
        if per_minute < 0 or burst < 1 or max_clients < 1:
            raise ValueError("need per_minute >= 0, burst >= 1 and max_clients >= 1")
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._max_clients = max_clients
        self._buckets: dict[str, Bucket] = {}

    def _level(self, client: str, now: float) -> float:
        bucket = self._buckets.get(client)
        if bucket is None:
            return self._burst
        return min(self._burst, bucket.tokens + max(0.0, now - bucket.at) * self._rate)

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until ``client`` may try a key again; None when it may now."""
        if self._rate == 0:
            return None
        level = self._level(client, now)
        return None if level >= 1 else (1 - level) / self._rate

    def failed(self, client: str, now: float) -> None:
        """``client`` sent a key that is not valid."""
        if self._rate == 0:
            return
        self._buckets[client] = Bucket(max(0.0, self._level(client, now) - 1), now)
        if len(self._buckets) > self._max_clients:
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop buckets that have refilled (the same as no bucket), then, if an attack from
        many addresses still fills the table, the least recently failed half."""
        self._buckets = {
            c: b for c, b in self._buckets.items() if self._level(c, now) < self._burst
        }
        if len(self._buckets) > self._max_clients:
            recent = sorted(self._buckets.items(), key=lambda item: item[1].at)
            self._buckets = dict(recent[len(recent) // 2 :])
