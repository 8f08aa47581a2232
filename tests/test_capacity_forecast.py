"""The capacity forecaster (quantile forest, seasonal naive) on seeded synthetic busy-slot series.

Series are at 5-minute steps from a Monday 00:00 UTC, so that day and week lags line up with the
pattern whatever the machine's time zone does to the hour features.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparkscaler.models.capacity_forecast import (
    CapacityForecaster,
    SeasonalNaiveForecaster,
    _forest_quantiles,
    coverage,
    pinball_loss,
    window_max,
    window_steps,
)
from sparkscaler.sim.arrivals import daily_weekly_rate

STEP = 300.0
DAY = 288
FIRST = round(1_699_833_600.0 / STEP)  # Monday 2023-11-13 00:00 UTC


def _busy(days: int, seed: int = 1) -> np.ndarray:
    """Poisson busy slots around an office-hours rate (mean 20 on weekdays' peak)."""
    offsets = np.arange(days * DAY) * STEP
    rate = daily_weekly_rate(offsets, 10.0, peak_hour=14.0, daily_amplitude=0.9, weekend_factor=0.3)
    return np.random.default_rng(seed).poisson(rate).astype(float)


def test_window_steps_reach_one_lead_past_the_step() -> None:
    assert window_steps(0.0, STEP) == 1
    assert window_steps(126.0, STEP) == 2
    assert window_steps(300.0, STEP) == 2
    assert window_steps(301.0, STEP) == 3


def test_window_max_ignores_missing_and_leaves_incomplete_windows_out() -> None:
    y = np.array([1.0, np.nan, 3.0, 2.0, np.nan])
    out = window_max(y, 2)
    assert out[:3].tolist() == [1.0, 3.0, 3.0]
    assert np.isnan(out[4])  # the last window runs past the series
    assert window_max(y, 1)[2] == 3.0


def test_pinball_loss_and_coverage() -> None:
    actual = np.array([0.0, 10.0])
    assert pinball_loss(actual, np.array([5.0, 5.0]), 0.9) == pytest.approx((0.1 * 5 + 0.9 * 5) / 2)
    assert pinball_loss(actual, actual, 0.5) == 0.0
    assert coverage(actual, np.array([5.0, 5.0])) == 0.5


def test_seasonal_naive_repeats_yesterday_and_needs_a_day() -> None:
    day = np.arange(DAY, dtype=float)
    y = np.concatenate([day, day])
    naive = SeasonalNaiveForecaster(STEP, 1, (0.5,), neighbourhood_steps=0).fit(y, FIRST)
    rows = np.arange(DAY, 2 * DAY)
    assert naive.predict(y, FIRST, rows)[:, 0].tolist() == day.tolist()
    assert np.isnan(naive.predict(y, FIRST, np.array([DAY - 1]))).all()  # no yesterday yet


def test_forecaster_is_seasonal_naive_until_its_history_then_a_forest() -> None:
    y = _busy(6)
    cold = CapacityForecaster(STEP, 2, (0.5, 0.9), n_estimators=10).fit(y[: 2 * DAY], FIRST)
    assert cold.model_ is None and cold.method_ == "seasonal naive"
    rows = np.arange(DAY, 2 * DAY)
    naive = SeasonalNaiveForecaster(STEP, 2, (0.5, 0.9)).fit(y[: 2 * DAY], FIRST)
    assert np.array_equal(
        cold.predict(y[: 2 * DAY], FIRST, rows), naive.predict(y[: 2 * DAY], FIRST, rows)
    )
    warm = CapacityForecaster(STEP, 2, (0.5, 0.9), n_estimators=10).fit(y[: 4 * DAY], FIRST)
    assert warm.method_ == "quantile forest" and warm.n_train_rows_ > 3 * DAY


def test_forecasts_read_only_the_past_and_quantiles_are_ordered() -> None:
    y = _busy(7)
    model = CapacityForecaster(STEP, 2, (0.5, 0.9), n_estimators=10).fit(y[: 5 * DAY], FIRST)
    rows = np.arange(5 * DAY, 6 * DAY)
    out = model.predict(y[: 6 * DAY], FIRST, rows)
    assert np.all(out[:, 1] >= out[:, 0])
    future = y[: 6 * DAY].copy()
    future[rows[100] :] = 1000.0  # what happens from row 100 on cannot change forecasts before it
    changed = model.predict(future, FIRST, rows)
    assert np.array_equal(out[:101], changed[:101])
    assert not np.array_equal(out[101:], changed[101:])


def test_same_seed_same_forecasts() -> None:
    y = _busy(5)
    rows = np.arange(4 * DAY, 5 * DAY)
    a = CapacityForecaster(STEP, 2, n_estimators=10, random_state=3).fit(y[: 4 * DAY], FIRST)
    b = CapacityForecaster(STEP, 2, n_estimators=10, random_state=3).fit(y[: 4 * DAY], FIRST)
    assert np.array_equal(a.predict(y, FIRST, rows), b.predict(y, FIRST, rows))


def test_direct_tree_walk_gives_what_predict_gives() -> None:
    y = _busy(5)
    model = CapacityForecaster(STEP, 2, (0.5, 0.9), n_estimators=10).fit(y[: 4 * DAY], FIRST)
    x = model._features(y, FIRST, np.arange(4 * DAY, 4 * DAY + 20))
    assert model.model_ is not None
    expected = model.model_.predict(x, quantiles=[0.5, 0.9])
    assert np.allclose(_forest_quantiles(model.model_, x, [0.5, 0.9]), expected)


def test_forest_beats_seasonal_naive_and_covers_its_quantiles() -> None:
    y = _busy(21)
    q = (0.5, 0.9)
    window = 2
    model = CapacityForecaster(STEP, window, q, n_estimators=30).fit(y[: 14 * DAY], FIRST)
    naive = SeasonalNaiveForecaster(STEP, window, q).fit(y[: 14 * DAY], FIRST)
    rows = np.arange(14 * DAY, 21 * DAY - window)
    actual = window_max(y, window)[rows]
    f_model, f_naive = model.predict(y, FIRST, rows), naive.predict(y, FIRST, rows)
    for i, level in enumerate(q):
        forest = pinball_loss(actual, f_model[:, i], level)
        seasonal = pinball_loss(actual, f_naive[:, i], level)
        assert forest < seasonal, (level, forest, seasonal)
        # Calibrated for integer counts: at least ``level`` at or below the forecast, at most
        # ``level`` strictly below it (ties at the quantile are common).
        assert coverage(actual, f_model[:, i]) >= level - 0.05
        assert np.mean(actual < f_model[:, i] - 1e-9) <= level + 0.05


def test_bad_series_are_rejected() -> None:
    with pytest.raises(ValueError, match="1-D"):
        CapacityForecaster().fit(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="negative"):
        CapacityForecaster().fit(np.array([1.0, -1.0]))
