from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from relay.models import Task, TaskStatus
from relay.polling.durations import Basis, DurationEstimate, DurationKey, DurationModel, summarise

NOW = datetime(2026, 6, 6, 16, 0, 0, tzinfo=UTC)
KEY = DurationKey("ark", "seedance-2.0", 5, "720p")
Z90 = 1.6448536269514722  # the normal 95th percentile
DECILE_RANGE = 2 * 1.2815515655446004  # the normal 10-90 % range


def key(
    duration: int | None = 5,
    resolution: str | None = "720p",
    model: str | None = None,
    provider: str = "ark",
) -> DurationKey:
    return DurationKey(provider, model or "seedance-2.0", duration, resolution)


def feed(model: DurationModel, k: DurationKey, *seconds: float) -> None:
    for s in seconds:
        assert model.observe(k, s)


def check(
    estimate: DurationEstimate | None,
    *,
    median: float,
    spread: float,
    observations: int,
    basis: Basis,
    outlier_rate: float = 0.0,
) -> None:
    assert estimate is not None
    assert estimate.median == pytest.approx(median, rel=1e-9)
    assert estimate.spread == pytest.approx(spread, rel=1e-9)
    assert (estimate.observations, estimate.basis, estimate.outlier_rate) == (
        observations,
        basis,
        outlier_rate,
    )


def expected_spread(scale: float, n: int, prior: float = 0.15) -> float:
    """What the model answers for n observations of this scale: prior-weighted scatter, with
    the uncertainty of the median (pi/2 / n) on top."""
    return math.sqrt((n * scale**2 + prior**2) / (n + 1) * (1 + math.pi / 2 / n))


# --- keys -----------------------------------------------------------------------------------


def test_levels_go_from_fine_to_coarse() -> None:
    assert KEY.levels() == (
        KEY,
        DurationKey("ark", "seedance-2.0", None, "720p"),
        DurationKey("ark", "seedance-2.0", 5, None),
        DurationKey("ark", "seedance-2.0"),
        DurationKey("ark"),
    )


def test_levels_have_no_repeats_when_fields_are_missing() -> None:
    assert DurationKey("ark", "m").levels() == (DurationKey("ark", "m"), DurationKey("ark"))
    assert DurationKey("ark").levels() == (DurationKey("ark"),)
    assert DurationKey("ark", "m", 5).levels() == (
        DurationKey("ark", "m", 5),
        DurationKey("ark", "m"),
        DurationKey("ark"),
    )


def test_key_of_a_task() -> None:
    task = Task(
        id="task_1",
        account_id="acc_1",
        provider="ark",
        provider_task_id="cgt-1",
        status=TaskStatus.SUCCEEDED,
        created_at=NOW,
        updated_at=NOW,
        model="seedance-2.0",
        duration=10,
        resolution="1080p",
    )
    assert DurationKey.of(task) == DurationKey("ark", "seedance-2.0", 10, "1080p")


# --- the robust summary ---------------------------------------------------------------------


def test_summary_of_three() -> None:
    logs = tuple(math.log(s) for s in (90, 100, 110))
    stats = summarise(logs, 3)
    assert stats.centre == pytest.approx(math.log(100))
    # MAD: the middle of 0, ln 1.1, ln(10/9); the 10-90 % range: 0.8 x ln(110/90), smaller.
    assert stats.scale == pytest.approx(1.4826 * math.log(1.1))
    assert stats.outlier_rate == 0
    assert stats.observations == 3


def test_summary_of_a_mixture_uses_the_decile_range() -> None:
    # Half at 100 s, half at 200 s: every value is ln 2 / 2 from the centre, so the MAD
    # gives 1.4826 x 0.35 = 0.51, more than the 10-90 % range, ln 2 / 2.563 = 0.27.
    logs = tuple(math.log(s) for s in [100.0] * 5 + [200.0] * 5)
    stats = summarise(logs, 10)
    assert stats.centre == pytest.approx(math.log(math.sqrt(2) * 100))
    assert stats.scale == pytest.approx(1.4826 * math.log(2) / 2)
    # Three kinds, unevenly: the MAD is 0 (most are 100 s), the decile range is not.
    logs = tuple(math.log(s) for s in [100.0] * 6 + [50.0, 50.0, 400.0, 400.0])
    stats = summarise(logs, 10)
    assert stats.centre == pytest.approx(math.log(100))
    assert stats.scale == pytest.approx(math.log(400 / 50) / DECILE_RANGE)


def test_summary_counts_outliers() -> None:
    logs = tuple(math.log(s) for s in [95.0, 100.0, 105.0] * 6 + [500.0])
    stats = summarise(logs, 19)
    assert stats.centre == pytest.approx(math.log(100))
    assert stats.outlier_rate == pytest.approx(1 / 19)


# --- estimates ------------------------------------------------------------------------------


def test_nothing_learned_no_estimate() -> None:
    model = DurationModel()
    assert model.estimate(KEY) is None
    assert model.expected_finish(KEY, NOW) is None
    assert len(model) == 0


def test_an_estimate_needs_min_observations() -> None:
    model = DurationModel()
    feed(model, KEY, 90, 100)
    assert model.estimate(KEY) is None
    feed(model, KEY, 110)
    estimate = model.estimate(KEY)
    check(
        estimate,
        median=100,
        spread=expected_spread(1.4826 * math.log(1.1), 3),
        observations=3,
        basis=Basis.KEY,
    )
    assert estimate is not None
    assert model.expected_finish(KEY, NOW) == NOW + timedelta(seconds=estimate.median)


def test_identical_observations_still_leave_a_spread() -> None:
    model = DurationModel()
    feed(model, KEY, 100, 100, 100)
    estimate = model.estimate(KEY)
    assert estimate is not None
    assert estimate.spread == pytest.approx(expected_spread(0, 3))  # 0.092: the prior
    many = DurationModel(window=8)
    feed(many, KEY, *[100] * 50)
    estimate = many.estimate(KEY)
    assert estimate is not None
    assert estimate.spread == pytest.approx(expected_spread(0, 8))  # 0.058
    floored = DurationModel(window=8, prior_weight=0)
    feed(floored, KEY, *[100] * 8)
    assert floored.estimate(KEY).spread == 0.03  # type: ignore[union-attr]


@pytest.mark.parametrize(("median", "sigma"), [(40.0, 0.15), (150.0, 0.075), (400.0, 0.1)])
def test_the_estimate_converges(median: float, sigma: float) -> None:
    rng = random.Random(7)
    model = DurationModel()
    feed(model, KEY, *(median * math.exp(rng.gauss(0, sigma)) for _ in range(500)))
    estimate = model.estimate(KEY)
    assert estimate is not None
    assert estimate.basis is Basis.KEY
    assert estimate.observations == 500
    # The window is 64: its median is within 3 standard errors (1.25 x sigma / 8 each).
    assert estimate.median == pytest.approx(median, rel=0.5 * sigma)
    assert 0.8 * sigma < estimate.spread < 1.3 * sigma
    low, high = estimate.interval(0.9)
    assert low < median < high


def test_stalls_move_neither_the_median_nor_the_spread() -> None:
    rng = random.Random(3)
    model = DurationModel()
    durations = [100 * math.exp(rng.gauss(0, 0.05)) for _ in range(60)]
    durations[10] = durations[30] = durations[50] = 500  # three stalls, x 5
    feed(model, KEY, *durations)
    clean = DurationModel()
    feed(clean, KEY, *(d for d in durations if d != 500))
    estimate, reference = model.estimate(KEY), clean.estimate(KEY)
    assert estimate is not None
    assert reference is not None
    assert estimate.median == pytest.approx(reference.median, rel=0.01)
    assert estimate.spread == pytest.approx(reference.spread, rel=0.15)
    assert estimate.outlier_rate == pytest.approx(3 / 60)
    assert reference.outlier_rate == 0


def test_a_provider_that_got_slower_is_followed_within_half_a_window() -> None:
    model = DurationModel(window=64)
    feed(model, KEY, *[100] * 64)
    feed(model, KEY, *[200] * 32)
    assert model.estimate(KEY).median == pytest.approx(math.sqrt(2) * 100)  # type: ignore[union-attr]
    feed(model, KEY, 200)
    assert model.estimate(KEY).median == pytest.approx(200)  # type: ignore[union-attr]
    assert model.stats(KEY).observations == 97  # type: ignore[union-attr]
    assert len(model.stats(KEY).logs) == 64  # type: ignore[union-attr]


def test_the_midpoint_between_the_last_two_polls_is_learned() -> None:
    model = DurationModel()
    model.observe(KEY, 104, last_running=96)
    model.observe(KEY, 101, last_running=99)
    model.observe(KEY, 100)
    # last_running that cannot be (not before the finish, negative, NaN) is ignored.
    model.observe(KEY, 100, last_running=100)
    model.observe(KEY, 100, last_running=-1)
    model.observe(KEY, 100, last_running=math.nan)
    stats = model.stats(KEY)
    assert stats is not None
    assert [math.exp(x) for x in stats.logs] == pytest.approx([100] * 6)


@pytest.mark.parametrize("seconds", [0, -5, math.nan, math.inf])
def test_impossible_durations_teach_nothing(seconds: float) -> None:
    model = DurationModel()
    assert not model.observe(KEY, seconds)
    assert len(model) == 0


# --- fallbacks ------------------------------------------------------------------------------


@pytest.fixture
def learned() -> DurationModel:
    """5 s and 10 s clips at 720p: 100 s and 200 s, three of each."""
    model = DurationModel()
    feed(model, key(5), 100, 100, 100)
    feed(model, key(10), 200, 200, 200)
    return model


def test_clip_lengths_in_between_are_interpolated(learned: DurationModel) -> None:
    own = learned.estimate(key(5))
    assert own is not None
    assert own.spread == pytest.approx(expected_spread(0, 3))
    for duration, median in [(6, 120), (7, 140), (9, 180)]:
        check(
            learned.estimate(key(duration)),
            median=median,
            spread=math.hypot(own.spread, 0.05),
            observations=6,
            basis=Basis.NEIGHBOURS,
        )


def test_clip_lengths_just_outside_are_extrapolated(learned: DurationModel) -> None:
    own = learned.estimate(key(5))
    assert own is not None
    for duration, median in [(4, 80), (15, 300)]:
        check(
            learned.estimate(key(duration)),
            median=median,
            spread=math.hypot(own.spread, 0.1),
            observations=6,
            basis=Basis.NEIGHBOURS,
        )
    # Further than the two points are apart: not trusted, a coarser key answers.
    far = learned.estimate(key(16))
    assert far is not None
    assert far.basis is Basis.RESOLUTION


def test_a_key_of_its_own_wins_over_its_neighbours(learned: DurationModel) -> None:
    feed(learned, key(7), 170, 170)
    assert learned.estimate(key(7)).basis is Basis.NEIGHBOURS  # type: ignore[union-attr]
    feed(learned, key(7), 170)
    assert learned.estimate(key(7)).median == pytest.approx(170)  # type: ignore[union-attr]
    assert learned.estimate(key(7)).basis is Basis.KEY  # type: ignore[union-attr]


def test_coarser_keys_answer_in_order(learned: DurationModel) -> None:
    mixed = learned.estimate(key(20))  # too far to extrapolate: (ark, standard, 720p)
    assert mixed is not None
    assert mixed.basis is Basis.RESOLUTION
    assert mixed.median == pytest.approx(100 * math.sqrt(2))  # the median of 100s and 200s
    assert mixed.observations == 6
    # The mixture's own spread (the MAD's 0.51, more than the deciles' 0.27), with the wide
    # prior of a coarse key.
    scale = 1.4826 * math.log(2) / 2
    assert mixed.spread == pytest.approx(expected_spread(scale, 6, prior=0.5))
    assert learned.estimate(key(5, "1080p")).basis is Basis.DURATION  # type: ignore[union-attr]
    assert learned.estimate(key(7, "1080p")).basis is Basis.MODEL  # type: ignore[union-attr]
    other_model = learned.estimate(key(5, model="seedance-2.0-fast"))
    assert other_model is not None
    assert other_model.basis is Basis.PROVIDER
    assert other_model.median == pytest.approx(100 * math.sqrt(2))
    assert learned.estimate(key(5, provider="apiyi")) is None


def test_coarse_keys_need_min_observations_too() -> None:
    model = DurationModel()
    feed(model, key(5), 100, 100)
    assert model.estimate(key(6)) is None
    assert model.estimate(key(5, model="other")) is None


def test_a_key_without_a_duration_falls_back_to_its_model() -> None:
    model = DurationModel()
    feed(model, DurationKey("ark", "seedance-2.0"), 100, 100, 100)
    estimate = model.estimate(DurationKey("ark", "seedance-2.0"))
    assert estimate is not None
    assert estimate.basis is Basis.KEY
    assert model.estimate(key(None, None)).basis is Basis.KEY  # type: ignore[union-attr]
    assert model.estimate(key(5)).basis is Basis.MODEL  # type: ignore[union-attr]


# --- bounded memory -------------------------------------------------------------------------


def test_memory_is_bounded_and_the_least_recently_observed_key_goes() -> None:
    model = DurationModel(max_keys=6)
    feed(model, key(5), 100, 100, 100)  # 5 keys: its own and four coarser
    assert len(model) == 5
    feed(model, key(10), 200)  # its own and (ark, standard, 10): 7, so key(5) goes
    assert len(model) == 6
    assert model.stats(key(5)) is None
    assert model.stats(DurationKey("ark", "seedance-2.0", 5, None)) is not None
    assert model.stats(DurationKey("ark")) is not None  # touched by every observation
    # Nor does it linger as a neighbour.
    feed(model, key(10), 200, 200)
    assert model.estimate(key(7)).basis is Basis.RESOLUTION  # type: ignore[union-attr]


def test_many_keys_never_exceed_the_cap() -> None:
    model = DurationModel(max_keys=50, window=4)
    rng = random.Random(1)
    for _ in range(2000):
        k = DurationKey(
            rng.choice(["a", "b"]),
            rng.choice(["m1", "m2", "m3"]),
            rng.randint(4, 15),
            rng.choice(["480p", "720p", "1080p"]),
        )
        model.observe(k, rng.uniform(40, 400))
        assert len(model) <= 50
    assert all(len(s.logs) <= 4 for s in (model.stats(k) for k in model._stats) if s)
    assert sum(len(v) for v in model._lengths.values()) <= 50


def test_estimating_does_not_refresh_a_key() -> None:
    model = DurationModel(max_keys=6)
    feed(model, key(5), 100, 100, 100)
    assert model.estimate(key(5)) is not None
    feed(model, key(10), 200)
    assert model.stats(key(5)) is None


# --- values ---------------------------------------------------------------------------------


def test_estimate_quantiles() -> None:
    estimate = DurationEstimate(median=100, spread=0.1, observations=10)
    assert estimate.quantile(0.5) == pytest.approx(100)
    assert estimate.interval(0.9) == pytest.approx(
        (100 * math.exp(-0.1 * Z90), 100 * math.exp(0.1 * Z90))
    )
    assert estimate.finish_at(NOW) == NOW + timedelta(seconds=100)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"median": 0, "spread": 0.1},
        {"median": math.inf, "spread": 0.1},
        {"median": 100, "spread": 0},
        {"median": 100, "spread": math.nan},
        {"median": 100, "spread": 0.1, "outlier_rate": 1.5},
    ],
)
def test_estimate_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
        DurationEstimate(observations=1, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_keys": 0},
        {"window": 0},
        {"min_observations": 0},
        {"prior_spread": 0},
        {"coarse_prior_spread": -1},
        {"min_spread": 0},
        {"prior_weight": -1},
        {"neighbour_spread": -0.1},
    ],
)
def test_model_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
        DurationModel(**kwargs)  # type: ignore[arg-type]
