"""Quantile forecasts of the capacity the next minutes will need, from weekday, hour and history.

What is forecast is *capacity*, not task demand. The series is the **busy task slots** of each
step of ``step_s`` (the mean number of running tasks over the step): the work the load brought
in that step, whatever size the cluster had. A batch job's pending tasks say how wide it could
run, not how many slots meeting its deadline needs; a job with a deadline five times its run on
N workers needs a fifth of them for five times as long, and the busy slots averaged over a step
are the same either way (the work is conserved). Raw demand (running + pending) of a batch
trace exceeds N in every hour; its busy slots are what the oracle, which gives each job the
fewest workers that meet its deadline, keeps running on average.

A forecast made at the start of step ``b`` (from steps before ``b`` only) is of the **window**
``b .. b + window_steps - 1``: the highest busy-slot mean among those steps. A policy sets its
floor from it for the whole of step ``b``, so the window must reach one lead time (provisioning
delay plus executor start-up) past the end of the step: ``window_steps = 1 + ceil(lead / step)``
(:func:`window_steps`). Forecasts are **quantiles** (``quantiles``), so that a policy can
provision to a chosen one, as AWS and Azure predictive scaling provision to a forecast of the
load one lead time ahead.

Two estimators, one interface (scikit-learn's conventions: parameters in ``__init__``, ``fit``
returns self, learned state ends with ``_``; the series is the ``X`` of ``fit`` and of
``predict``, a 1-D array of steps from ``first_step`` on, NaN where a step was not observed):

- :class:`SeasonalNaiveForecaster`: the windows that followed the same time yesterday and on
  the same weekday last week, ``± neighbourhood_steps`` around it; their empirical quantiles
  are the forecast. It needs one day of history, and is the baseline a learned model must beat.
- :class:`CapacityForecaster`: a quantile regression forest (Meinshausen 2006, the
  ``quantile-forest`` package) over weekday, hour, minute of day (and their cyclic forms), the
  last steps, the last hour, the windows of yesterday and last week, and the seasonal-naive
  quantiles themselves. With less than ``min_history_s`` of observed steps it forecasts as the
  seasonal naive does (cold start), so a policy forecasts after one day rather than waiting for
  the forest.

:func:`pinball_loss` and :func:`coverage` score quantile forecasts (the backtest and the
policy's own running score use them).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np

if TYPE_CHECKING:  # quantile-forest (scikit-learn) is the 'ml' extra: imported where fitted
    from quantile_forest import RandomForestQuantileRegressor

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S

#: Column order of the forest's feature matrix (the seasonal-naive quantiles follow, one column
#: per quantile).
FEATURES: tuple[str, ...] = (
    "weekday",
    "hour",
    "minute_of_day",
    "day_sin",
    "day_cos",
    "week_sin",
    "week_cos",
    "lag_1",
    "lag_2",
    "lag_3",
    "last_hour_mean",
    "last_hour_max",
    "window_yesterday",
    "window_last_week",
)


def window_steps(lead_s: float, step_s: float) -> int:
    """Steps a forecast made at a step's start must cover so that a floor set from it holds
    one lead time past the step's end: ``1 + ceil(lead / step)``."""
    return 1 + max(0, math.ceil(lead_s / step_s - 1e-9))


def window_max(series: np.ndarray, width: int) -> np.ndarray:
    """``out[i] = max(series[i : i + width])`` ignoring NaN (NaN if all are missing or the
    window runs past the end)."""
    n = len(series)
    padded = np.concatenate([np.asarray(series, dtype=float), np.full(width, np.nan)])
    out = np.fmax.reduce(padded[np.arange(n)[:, None] + np.arange(width)], axis=1)
    if width > 1:
        out[n - width + 1 :] = np.nan  # windows that run past the series are not complete
    return out


def pinball_loss(actual: np.ndarray, forecast: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of forecasts of the ``q`` quantile, in the series' unit."""
    diff = np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float)
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))


def coverage(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Share of actuals at or below the forecast (a good ``q`` forecast covers ``q``)."""
    return float(np.mean(np.asarray(actual) <= np.asarray(forecast) + 1e-9))


def _time_rows(steps: np.ndarray, step_s: float) -> np.ndarray:
    """Weekday, hour, minute of day and their cyclic forms at each step's start, local time
    (as :class:`~sparkscaler.core.Observation` counts them: load follows the users' day)."""
    out = np.empty((len(steps), 7))
    for i, step in enumerate(steps):
        t = dt.datetime.fromtimestamp(float(step) * step_s)
        minute = t.hour * 60 + t.minute + t.second / 60.0
        a = 2 * math.pi * minute / 1440.0
        w = 2 * math.pi * (t.weekday() * 1440 + minute) / 10080.0
        out[i] = (t.weekday(), t.hour, t.hour * 60 + t.minute, *_sincos(a), *_sincos(w))
    return out


def _sincos(angle: float) -> tuple[float, float]:
    return math.sin(angle), math.cos(angle)


def _check_series(series: Sequence[float] | np.ndarray) -> np.ndarray:
    y = np.asarray(series, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"the series must be 1-D, got shape {y.shape}")
    if np.any(np.isinf(y)) or np.any(y < 0):
        raise ValueError("the series must be finite and not negative (NaN: not observed)")
    return y


class SeasonalNaiveForecaster:
    """Quantiles of the windows that followed the same time yesterday and last week.

    For a forecast at step ``r``, the pool is the window maxima at ``r - s + j`` for each season
    ``s`` in ``seasons_s`` and ``|j| <= neighbourhood_steps``, among the windows that ended
    before ``r``; the forecast is the pool's empirical quantiles (NaN with an empty pool).
    """

    def __init__(
        self,
        step_s: float = 300.0,
        window: int = 1,
        quantiles: Sequence[float] = (0.5, 0.9),
        neighbourhood_steps: int = 6,
        seasons_s: Sequence[float] = (DAY_S, WEEK_S),
    ) -> None:
        self.step_s = step_s
        self.window = window
        self.quantiles = quantiles
        self.neighbourhood_steps = neighbourhood_steps
        self.seasons_s = seasons_s

    def _offsets(self) -> np.ndarray:
        """How far back each pool member's window starts, in steps (all ``>= window``)."""
        nb = self.neighbourhood_steps
        out = [
            round(s / self.step_s) + j
            for s in self.seasons_s
            for j in range(-nb, nb + 1)
            if round(s / self.step_s) + j >= self.window
        ]
        return np.asarray(sorted(set(out)), dtype=np.int64)

    def fit(self, series: Sequence[float] | np.ndarray, first_step: int = 0) -> Self:
        """Nothing to learn but how much history there is (for the caller to know)."""
        y = _check_series(series)
        self.quantiles_ = tuple(float(q) for q in self.quantiles)
        self.observed_s_ = float(np.count_nonzero(~np.isnan(y))) * self.step_s
        self.offsets_ = self._offsets()
        return self

    def predict(
        self, series: Sequence[float] | np.ndarray, first_step: int, rows: np.ndarray
    ) -> np.ndarray:
        """Quantile forecasts (``len(rows)`` x quantiles) at ``rows``, indices into ``series``
        (step ``first_step + row``); only steps before each row are read."""
        y = _check_series(series)
        rows = np.asarray(rows, dtype=np.int64)
        targets = window_max(y, self.window)
        reach = int(self.offsets_.max()) if len(self.offsets_) else 0
        padded = np.concatenate([np.full(reach, np.nan), targets])
        pool = padded[rows[:, None] + reach - self.offsets_[None, :]]
        out = np.full((len(rows), len(self.quantiles_)), np.nan)
        seen = ~np.all(np.isnan(pool), axis=1)
        if np.any(seen):
            out[seen] = np.nanquantile(pool[seen], self.quantiles_, axis=1).T
        return out


class CapacityForecaster:
    """A quantile regression forest of the next window's busy slots; seasonal naive when cold.

    ``window``: steps each forecast covers (:func:`window_steps`). ``min_history_s``: observed
    history before the forest is fitted; below it, and for rows the forest cannot see, the
    seasonal naive forecasts. The forest's other parameters are ``RandomForestQuantileRegressor``'s.
    """

    def __init__(
        self,
        step_s: float = 300.0,
        window: int = 1,
        quantiles: Sequence[float] = (0.5, 0.9),
        n_estimators: int = 50,
        max_depth: int | None = 10,
        min_samples_leaf: int = 10,
        max_features: float = 0.5,
        random_state: int = 0,
        min_history_s: float = 3 * DAY_S,
        neighbourhood_steps: int = 6,
    ) -> None:
        self.step_s = step_s
        self.window = window
        self.quantiles = quantiles
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.min_history_s = min_history_s
        self.neighbourhood_steps = neighbourhood_steps

    @property
    def method_(self) -> str:
        return "quantile forest" if self.model_ is not None else "seasonal naive"

    def _naive(self) -> SeasonalNaiveForecaster:
        return SeasonalNaiveForecaster(
            self.step_s, self.window, self.quantiles, self.neighbourhood_steps
        )

    def _features(self, y: np.ndarray, first_step: int, rows: np.ndarray) -> np.ndarray:
        """The feature matrix at ``rows``, from steps before each row only; a missing lag is
        filled from the others (recent ones from the last hour, yesterday from last week and
        the other way round), then from the seasonal naive, then 0."""
        day, week = round(DAY_S / self.step_s), round(WEEK_S / self.step_s)
        hour = max(1, round(3600.0 / self.step_s))
        targets = window_max(y, self.window)
        pad = week + hour
        py = np.concatenate([np.full(pad, np.nan), y])
        pt = np.concatenate([np.full(pad, np.nan), targets])
        r = rows + pad
        lags = [py[r - k] for k in (1, 2, 3)]
        recent = py[r[:, None] - np.arange(1, hour + 1)[None, :]]
        with warnings.catch_warnings():  # an all-NaN last hour is expected: NaN, filled below
            warnings.simplefilter("ignore", RuntimeWarning)
            hour_mean = np.nanmean(recent, axis=1)
            hour_max = np.nanmax(recent, axis=1)
        w = self.window
        yesterday = pt[r - max(day, w)]
        last_week = pt[r - max(week, w)]
        naive = self.naive_.predict(y, first_step, rows)
        base = np.nan_to_num(_first(hour_mean, yesterday, last_week, naive[:, 0]), nan=0.0)
        lags = [_first(x, hour_mean, base) for x in lags]
        hour_mean, hour_max = _first(hour_mean, base), _first(hour_max, base)
        yesterday, last_week = (
            _first(yesterday, last_week, base),
            _first(last_week, yesterday, base),
        )
        naive = np.where(np.isnan(naive), base[:, None], naive)
        times = _time_rows(first_step + rows, self.step_s)
        columns = [*lags, hour_mean, hour_max, yesterday, last_week]
        return np.hstack([times, np.column_stack(columns), naive])

    def fit(self, series: Sequence[float] | np.ndarray, first_step: int = 0) -> Self:
        """Learn from a busy-slot series (steps ``first_step ..``; NaN: not observed): the
        forest once ``min_history_s`` is observed, else the seasonal naive alone."""
        y = _check_series(series)
        self.quantiles_ = tuple(float(q) for q in self.quantiles)
        self.naive_ = self._naive().fit(y, first_step)
        self.model_: RandomForestQuantileRegressor | None = None
        self.n_train_rows_ = 0
        self.trained_until_ = first_step + len(y) - 1
        targets = window_max(y, self.window)
        rows = np.flatnonzero(~np.isnan(targets))
        rows = rows[rows >= 1]
        if self.naive_.observed_s_ < self.min_history_s or len(rows) < 2 * self.min_samples_leaf:
            return self
        from quantile_forest import RandomForestQuantileRegressor

        model = RandomForestQuantileRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            max_samples_leaf=None,  # every sample of a leaf: the quantiles need them all
            random_state=self.random_state,
            n_jobs=1,
        )
        model.fit(self._features(y, first_step, rows), targets[rows])
        self.model_ = model
        self.n_train_rows_ = len(rows)
        return self

    def predict(
        self, series: Sequence[float] | np.ndarray, first_step: int, rows: np.ndarray
    ) -> np.ndarray:
        """Quantile forecasts (``len(rows)`` x quantiles, non-decreasing along the quantiles,
        NaN where not even the seasonal naive has history) at ``rows``, indices into
        ``series``; only steps before each row are read."""
        y = _check_series(series)
        rows = np.asarray(rows, dtype=np.int64)
        if self.model_ is None:
            return self.naive_.predict(y, first_step, rows)
        x = self._features(y, first_step, rows)
        out = _forest_quantiles(self.model_, x, list(self.quantiles_))
        return np.maximum.accumulate(out.reshape(len(rows), -1), axis=1)

    def get_params(self) -> dict[str, Any]:
        names = (
            "step_s",
            "window",
            "quantiles",
            "n_estimators",
            "max_depth",
            "min_samples_leaf",
            "max_features",
            "random_state",
            "min_history_s",
            "neighbourhood_steps",
        )
        return {name: getattr(self, name) for name in names}


def _forest_quantiles(
    model: RandomForestQuantileRegressor, x: np.ndarray, quantiles: list[float]
) -> np.ndarray:
    """``model.predict(x, quantiles)``, with the trees walked directly: ``predict`` finds the
    leaves through joblib, about 10 ms for the one row a policy forecasts per step, against
    0.4 ms for the trees themselves. Falls back to ``predict`` where the forest's internals
    differ (another quantile-forest)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    try:
        leaves = np.column_stack([tree.tree_.apply(x32) for tree in model.estimators_])
        out = model.forest_.predict(quantiles, leaves, None, b"linear", True, False, True)
        return np.asarray(out, dtype=float)[:, 0, :]
    except (AttributeError, TypeError, ValueError):
        return np.asarray(model.predict(x, quantiles=quantiles), dtype=float)


def _first(*columns: np.ndarray) -> np.ndarray:
    """Element-wise the first column that is not NaN."""
    out = np.array(columns[0], dtype=float)
    for col in columns[1:]:
        out = np.where(np.isnan(out), col, out)
    return out
