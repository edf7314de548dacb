"""How long tasks take, learned from the ones that finished (DESIGN §6).

Pure: no I/O and no clock. Durations are seconds passed in by the caller (for a finished task,
``completed_at - created_at``) and finish times are computed from a ``created_at`` it passes.

The model works on the logarithm of a duration: generation time is multiplicative in its causes
(a 1080p clip takes about twice a 720p one, a fast model half a standard one), so the spread
of a key's durations is a ratio (±15 %), the same for a 40 s task as for a 400 s one.

Per key it keeps the last ``window`` log-durations and summarises them robustly: the median
is the centre; the spread is the larger of 1.4826 x the median absolute deviation and the
10-90 % range / 2.563 (both the standard deviation for a normal sample; the second stays
honest for a coarse key that mixes task kinds, the first for a tight key with a few stalls).
A stalled task that took five times as long moves neither, and a provider that got slower is
followed within half a window. The spread answered also carries the uncertainty of the centre
itself and a weak prior (0.15 for a key's own data, 0.5 for a coarser key's), so that three
lucky look-alike observations do not make the relay confident.

An estimate for a task comes from, in order, the first that has seen ``min_observations``:

1. its own key, (provider, model, duration, resolution);
2. its neighbours in clip length: the nearest shorter and longer clips of the same provider,
   model and resolution, interpolated linearly in seconds (generation time is about a fixed
   overhead plus a cost per frame), or extrapolated from the two nearest on one side;
3. (provider, model, resolution), then (provider, model, duration), then (provider, model),
   then the provider alone: every observation feeds all of these. They mix task kinds, so
   their spread is wider and a policy built on them is more careful, as it should be;
4. none: the caller uses its configured expected duration.
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from statistics import NormalDist

from relay.models import Task

# The normal-consistent scale of a median absolute deviation.
_MAD_SCALE = 1.4826
# A median of n normal values has a standard error of about sqrt(pi/2) x sd/√n.
_MEDIAN_ERROR = math.sqrt(math.pi / 2)
# The 10-90 % range of a normal sample, in standard deviations.
_DECILE_RANGE = 2 * NormalDist().inv_cdf(0.9)
# A residual beyond this many spreads counts as an outlier (a stall, a queue).
_OUTLIER_Z = 3.0
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class DurationKey:
    """What a task's duration depends on. ``None`` fields are a value like any other (a task
    registered by id may not say its model)."""

    provider: str
    model: str | None = None
    duration: int | None = None
    resolution: str | None = None

    @classmethod
    def of(cls, task: Task) -> DurationKey:
        return cls(task.provider, task.model, task.duration, task.resolution)

    def levels(self) -> tuple[DurationKey, ...]:
        """The keys an observation of this one feeds, finest first: (p, m, d, r), (p, m, r),
        (p, m, d), (p, m), (p); without repeats (a key without a resolution is its own
        (p, m, d))."""
        p, m, d, r = self.provider, self.model, self.duration, self.resolution
        keys = [
            self,
            DurationKey(p, m, None, r),
            DurationKey(p, m, d, None),
            DurationKey(p, m),
            DurationKey(p),
        ]
        return tuple(dict.fromkeys(keys))


@dataclass(frozen=True, slots=True)
class KeyStats:
    """One key's recent log-durations (oldest first) and their robust summary."""

    logs: tuple[float, ...]
    observations: int
    """All observations ever made of this key (``logs`` holds at most the window)."""
    centre: float
    """Median of ``logs``."""
    scale: float
    """The spread of ``logs``: the larger of 1.4826 x their median absolute deviation and
    their 10-90 % range / 2.563."""
    outlier_rate: float
    """Share of ``logs`` further than 3 spreads from the centre."""


class Basis(enum.StrEnum):
    """Where an estimate came from, finest first."""

    KEY = "key"
    """The task's own (provider, model, duration, resolution)."""
    NEIGHBOURS = "neighbours"
    """Shorter and longer clips of the same provider, model and resolution."""
    RESOLUTION = "resolution"
    """(provider, model, resolution), all clip lengths."""
    DURATION = "duration"
    """(provider, model, duration), all resolutions."""
    MODEL = "model"
    """(provider, model)."""
    PROVIDER = "provider"
    """Every task of the provider."""


@dataclass(frozen=True, slots=True)
class DurationEstimate:
    """How long a task will take: lognormal, ``median`` seconds, ``spread`` the standard
    deviation of its log (0.15 ≈ ±15 %), the uncertainty of the median included.
    ``outlier_rate`` is the share of recent tasks far outside the spread (stalls): a policy
    keeps some polls for them past the likely window."""

    median: float
    spread: float
    observations: int
    """How many finished tasks the estimate rests on (all of them, not just the window)."""
    basis: Basis = Basis.KEY
    outlier_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (self.median > 0 and math.isfinite(self.median)):
            raise ValueError(f"median must be a positive number of seconds, got {self.median}")
        if not (self.spread > 0 and math.isfinite(self.spread)):
            raise ValueError(f"spread must be > 0, got {self.spread}")
        if not 0 <= self.outlier_rate <= 1:
            raise ValueError(f"outlier_rate must be in [0, 1], got {self.outlier_rate}")

    def quantile(self, p: float) -> float:
        """Seconds by which a share ``p`` (0 < p < 1) of such tasks has finished."""
        return self.median * math.exp(self.spread * _STANDARD_NORMAL.inv_cdf(p))

    def interval(self, coverage: float = 0.9) -> tuple[float, float]:
        """The central window (seconds of age) in which ``coverage`` of such tasks finish."""
        tail = (1 - coverage) / 2
        return self.quantile(tail), self.quantile(1 - tail)

    def finish_at(self, created_at: datetime) -> datetime:
        """When a task created at ``created_at`` most likely finishes (its median)."""
        return created_at + timedelta(seconds=self.median)


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _quantile(ordered: list[float], q: float) -> float:
    # Linear interpolation between order statistics (the "type 7" of R and numpy).
    at = q * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def summarise(logs: tuple[float, ...], observations: int) -> KeyStats:
    """The robust summary of a window of log-durations (non-empty)."""
    ordered = sorted(logs)
    centre = _median(ordered)
    mad = _MAD_SCALE * _median(sorted(abs(x - centre) for x in ordered))
    decile_range = (_quantile(ordered, 0.9) - _quantile(ordered, 0.1)) / _DECILE_RANGE
    scale = max(mad, decile_range)
    limit = _OUTLIER_Z * scale
    outliers = sum(1 for x in logs if abs(x - centre) > limit) if scale > 0 else 0
    return KeyStats(logs, observations, centre, scale, outliers / len(logs))


class DurationModel:
    """What the relay has learned about task durations: a small mutable cache of
    :class:`KeyStats` (frozen values), one per key, the least recently observed key evicted
    beyond ``max_keys`` (an observation touches the task's key and its four coarser ones, so
    those stay while any of their tasks finish). Memory is bounded by ``max_keys`` x
    ``window`` floats.

    ``observe(key, seconds)`` when a task succeeds (failures end early for reasons unrelated
    to its duration and would teach the wrong thing); ``estimate(key)`` when planning a poll.
    Not thread-safe; the relay uses it from its one event loop.
    """

    def __init__(
        self,
        *,
        max_keys: int = 4096,
        window: int = 64,
        min_observations: int = 3,
        prior_spread: float = 0.15,
        prior_weight: float = 1.0,
        min_spread: float = 0.03,
        neighbour_spread: float = 0.05,
        coarse_prior_spread: float = 0.5,
    ) -> None:
        """``prior_spread`` (log sd) counts as ``prior_weight`` observations in the spread
        answered for a task's own key, ``coarse_prior_spread`` for a coarser key (which mixes
        task kinds), so that few observations never make it narrower than the data justify;
        ``min_spread`` is a floor (the relay's own poll timing blurs any duration it
        measures by a second or two). ``neighbour_spread`` is added (in quadrature) to an
        estimate from neighbouring clip lengths, for the straight line it assumes; twice
        that when it extrapolates."""
        if max_keys < 1 or window < 1 or min_observations < 1:
            raise ValueError("max_keys, window and min_observations must be >= 1")
        if (
            min(prior_spread, coarse_prior_spread, min_spread) <= 0
            or prior_weight < 0
            or neighbour_spread < 0
        ):
            raise ValueError(
                "prior_spread, coarse_prior_spread and min_spread must be > 0, "
                "prior_weight and neighbour_spread >= 0"
            )
        self.max_keys = max_keys
        self.window = window
        self.min_observations = min_observations
        self.prior_spread = prior_spread
        self.prior_weight = prior_weight
        self.min_spread = min_spread
        self.neighbour_spread = neighbour_spread
        self.coarse_prior_spread = coarse_prior_spread
        self._stats: OrderedDict[DurationKey, KeyStats] = OrderedDict()
        # (provider, model, None, resolution) -> the clip lengths with a key of their own.
        self._lengths: dict[DurationKey, set[int]] = {}

    def __len__(self) -> int:
        return len(self._stats)

    def stats(self, key: DurationKey) -> KeyStats | None:
        """The summary kept for exactly this key (no fallback), if any."""
        return self._stats.get(key)

    def observe(
        self, key: DurationKey, seconds: float, *, last_running: float | None = None
    ) -> bool:
        """Learn that a task of ``key`` took ``seconds`` (its age when a poll saw it finished).

        ``last_running``, when known, is its age at the poll before, which still saw it
        running: the finish lies in between, and the midpoint is learned. Without it the
        duration is over-stated by the detection delay, which matters little for long tasks
        but for a 40 s one polled every 4 s is 5 %.

        Returns False (and learns nothing) for a duration that cannot be one: not finite, or
        not positive (clock skew)."""
        if last_running is not None and math.isfinite(last_running) and 0 <= last_running < seconds:
            seconds = (seconds + last_running) / 2
        if not (math.isfinite(seconds) and seconds > 0):
            return False
        x = math.log(seconds)
        for level in key.levels():
            old = self._stats.pop(level, None)
            logs = (x,) if old is None else (*old.logs, x)[-self.window :]
            count = 1 if old is None else old.observations + 1
            self._stats[level] = summarise(logs, count)
        if key.duration is not None:
            self._lengths.setdefault(_lengths_key(key), set()).add(key.duration)
        while len(self._stats) > self.max_keys:
            evicted, _ = self._stats.popitem(last=False)
            self._forget_length(evicted)
        return True

    def estimate(self, key: DurationKey) -> DurationEstimate | None:
        """The duration of a task of ``key``, from the first of its own key, its neighbours
        in clip length and the coarser keys to have seen ``min_observations`` tasks; None when
        none has. Does not change the model."""
        own = self._known(key)
        if own is not None:
            return self._answer(own, Basis.KEY)
        neighbours = self._from_neighbours(key)
        if neighbours is not None:
            return neighbours
        p, m = key.provider, key.model
        coarser = (
            (DurationKey(p, m, None, key.resolution), Basis.RESOLUTION),
            (DurationKey(p, m, key.duration, None), Basis.DURATION),
            (DurationKey(p, m), Basis.MODEL),
            (DurationKey(p), Basis.PROVIDER),
        )
        for k, basis in coarser:
            stats = self._known(k) if k != key else None
            if stats is not None:
                return self._answer(stats, basis)
        return None

    def expected_finish(self, key: DurationKey, created_at: datetime) -> datetime | None:
        """When a task of ``key`` created at ``created_at`` most likely finishes."""
        estimate = self.estimate(key)
        return None if estimate is None else estimate.finish_at(created_at)

    def _known(self, key: DurationKey) -> KeyStats | None:
        stats = self._stats.get(key)
        return stats if stats is not None and stats.observations >= self.min_observations else None

    def _answer(self, stats: KeyStats, basis: Basis) -> DurationEstimate:
        n = len(stats.logs)
        # Observed scatter, shrunk towards the prior when there is little of it, plus the
        # uncertainty of the centre itself.
        prior = self.prior_spread if basis is Basis.KEY else self.coarse_prior_spread
        scatter = (n * stats.scale**2 + self.prior_weight * prior**2) / (n + self.prior_weight)
        spread = math.sqrt(scatter * (1 + _MEDIAN_ERROR**2 / n))
        return DurationEstimate(
            median=math.exp(stats.centre),
            spread=max(spread, self.min_spread),
            observations=stats.observations,
            basis=basis,
            outlier_rate=stats.outlier_rate,
        )

    def _from_neighbours(self, key: DurationKey) -> DurationEstimate | None:
        d = key.duration
        if d is None:
            return None
        lengths = self._lengths.get(_lengths_key(key), set())
        known = sorted(
            n for n in lengths if n != d and self._known(replace(key, duration=n)) is not None
        )
        below = [n for n in known if n < d]
        above = [n for n in known if n > d]
        if below and above:
            (d1, d2), allowance = (below[-1], above[0]), self.neighbour_spread
        elif len(below) >= 2 or len(above) >= 2:
            # A line extended beyond its two points, no further than they are apart.
            d1, d2 = (below[-2], below[-1]) if len(below) >= 2 else (above[0], above[1])
            if min(abs(d - d1), abs(d - d2)) > d2 - d1:
                return None
            allowance = 2 * self.neighbour_spread
        else:
            return None
        e1 = self._answer(self._stats[replace(key, duration=d1)], Basis.KEY)
        e2 = self._answer(self._stats[replace(key, duration=d2)], Basis.KEY)
        median = e1.median + (e2.median - e1.median) * (d - d1) / (d2 - d1)
        if median <= 0:
            return None
        # A straight line between two medians; the spread of the wider one, widened for
        # the line itself (a little more when it is extended beyond both).
        spread = math.hypot(max(e1.spread, e2.spread), allowance)
        return DurationEstimate(
            median=median,
            spread=spread,
            observations=e1.observations + e2.observations,
            basis=Basis.NEIGHBOURS,
            outlier_rate=max(e1.outlier_rate, e2.outlier_rate),
        )

    def _forget_length(self, key: DurationKey) -> None:
        if key.duration is None:
            return
        index = _lengths_key(key)
        lengths = self._lengths.get(index)
        if lengths is not None:
            lengths.discard(key.duration)
            if not lengths:
                del self._lengths[index]


def _lengths_key(key: DurationKey) -> DurationKey:
    return DurationKey(key.provider, key.model, None, key.resolution)
