"""Preemptive ML autoscaling: a Random Forest forecasts the next horizon's peak demand.

The seed's "preemptive" autoscaler: rather than waiting for a backlog, learn when the load comes
(weekday, hour, the recent load, the same time yesterday and last week) and add workers *before*
it arrives. The rule, every decision:

- demand = running + pending tasks, in task slots. It is recorded, as the maximum seen per step
  of ``step_s`` (300 s), into the policy's own bounded ring buffer (``buffer_s``, 28 days), so
  that its lags are there live.
- At the first observation of a new step ``b`` the forest forecasts the peak demand over the
  next horizon, ``max(demand[b .. b + H - 1])`` with ``H = ceil(horizon_s / step_s)``, from
  features of *completed* steps only: weekday, hour, minute of day, minute of day and minute of
  week as sin/cos, the demand 1, 2 and 3 steps ago, the peak of the last horizon, and the demand
  at the same time 1 day and 1 week ago together with the peak of the horizon that followed it
  then. The forecast is cached for the rest of the step, so a decision costs one forest
  evaluation per step (the trees are walked directly; ``RandomForestRegressor.predict`` spends
  ~5 ms on joblib and input checks for one row, the trees themselves ~0.2 ms).
- Workers: ``forecast workers = ceil(forecast / slots per worker)``, which equals the maximum
  over the horizon of ``ceil(demand / slots)`` (ceil is monotone); the model predicts slots, not
  workers, so it stays right when the worker size changes. ``reactive = ceil(demand now /
  slots)``. The target is ``max(forecast workers, reactive)``: out ahead of the forecast load,
  and never below the load that is already here (the forest cannot see a burst it never saw).
- Cautious scale-in: fewer workers than now only when both the forecast and the current load
  allow it (the max above), and never below the workers currently running tasks (``busy``).
- Too little history (fewer than ``min_history_s`` of observed steps, 2 days): no model; the
  reason says so and the target is the reactive rule (HPA's tasks metric at 100 %), still never
  below the busy workers.
- Bounds: clipped to ``[min_workers, max_workers]``. A stale observation holds the size and is
  not recorded.

Forecast error. Each forecast made at step ``b`` is settled once the steps ``b .. b + H - 1``
have been seen; the last ``error_window`` (forecast, actual) pairs are kept in ``errors_`` and
their mean absolute error, in task slots, is ``forecast_mae_`` (named in the reason);
``forecast_`` is the last forecast (slots) and ``forecast_workers_`` its worker count.

Learning. ``fit_series(times, demand)`` learns from a demand series (a trace, or the store's
observations); ``fit(history)`` from finished jobs (:class:`JobRecord`): each job is taken to use
``task_seconds / duration`` slots evenly from submit to end, and each step's demand is the
time-weighted sum over the jobs running in it. That average hides bursts shorter than a step, so
job-built series under-state the peaks a little; a series of observations does not. Both reset
the learned state and seed the ring buffer with the series. Online, the forest is retrained from
the ring buffer after every ``retrain_every_s`` of observed steps (a day; ``None``: never), or as
soon as the buffer first holds ``min_history_s``. That retraining is the one impure, slower part
of ``decide`` (about a second for four weeks of 5-minute steps, once a day of observations); like
everything else in ``decide`` it does no I/O, and :meth:`retrain` lets a caller do it off the
decision path.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from pydantic import Field, model_validator

from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.units import Duration

if TYPE_CHECKING:  # scikit-learn is the 'ml' extra: imported where a forest is made or read
    from sklearn.ensemble import RandomForestRegressor

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S

#: Column order of the feature matrix (also written into saved models).
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
    "recent_peak",
    "lag_day",
    "lag_day_peak",
    "lag_week",
    "lag_week_peak",
)
_LAG1, _LAG2, _LAG3, _RECENT, _DAY, _DAY_PEAK, _WEEK, _WEEK_PEAK = range(7, 15)


def _ceil(x: float) -> int:
    """ceil that ignores float noise (a forecast of 8.0000000001 slots is 8)."""
    return max(0, math.ceil(x - 1e-9))


class PredictiveParams(PolicyParams):
    step_s: Duration = Field(300.0, gt=0, description="step of the demand series, seconds")
    horizon_s: Duration = Field(
        3600.0, gt=0, le=DAY_S, description="forecast the peak demand over this much ahead"
    )
    n_estimators: int = Field(50, ge=1, le=1000)
    max_depth: int | None = Field(12, ge=1)
    min_samples_leaf: int = Field(3, ge=1)
    max_features: float = Field(0.5, gt=0, le=1, description="fraction of features per split")
    random_state: int = 0
    min_history_s: Duration = Field(
        2 * DAY_S, ge=0, description="observed history needed before the forest is used"
    )
    retrain_every_s: Duration | None = Field(
        DAY_S, gt=0, description="retrain online after this much observed time; None: never"
    )
    buffer_s: Duration = Field(
        28 * DAY_S, gt=0, description="demand kept in the ring buffer (lags, retraining)"
    )
    error_window: int = Field(288, ge=1, description="forecast/actual pairs kept for the MAE")
    cores_per_worker: int | None = Field(
        None, ge=1, description="task slots per worker; default: what the workers report"
    )
    task_cpus: int = Field(1, ge=1, description="spark.task.cpus")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.horizon_s < self.step_s:
            raise ValueError(f"horizon_s ({self.horizon_s:g}) must be >= step_s ({self.step_s:g})")
        if self.buffer_s < max(self.min_history_s, self.horizon_s + self.step_s):
            raise ValueError(
                f"buffer_s ({self.buffer_s:g}) must hold min_history_s ({self.min_history_s:g}) "
                f"and a horizon plus a step"
            )
        if self.buffer_s / self.step_s > 10_000_000:
            raise ValueError("buffer_s / step_s must be at most 10 million steps")
        return self


def _time_row(epoch_s: float) -> tuple[float, ...]:
    """Weekday, hour, minute of day and their cyclic forms, in local time (as Observation)."""
    t = dt.datetime.fromtimestamp(epoch_s)
    minute = t.hour * 60 + t.minute + t.second / 60.0
    week_minute = t.weekday() * 1440 + minute
    a, w = 2 * math.pi * minute / 1440.0, 2 * math.pi * week_minute / 10080.0
    return (
        float(t.weekday()),
        float(t.hour),
        float(t.hour * 60 + t.minute),
        math.sin(a),
        math.cos(a),
        math.sin(w),
        math.cos(w),
    )


def _peaks(padded: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Max over ``padded[s : s + width]`` for each start, ignoring NaN (NaN if all missing)."""
    return np.fmax.reduce(padded[starts[:, None] + np.arange(width)], axis=1)


def _first_present(*columns: np.ndarray) -> np.ndarray:
    out = columns[0].copy()
    for col in columns[1:]:
        out = np.where(np.isnan(out), col, out)
    return out


class PredictivePolicy(Policy):
    """Random-Forest forecast of the next horizon's peak demand, preemptive, cautious to shrink."""

    name = "predictive"
    Params = PredictiveParams
    version = "1"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._horizon_steps = max(1, _ceil(p.horizon_s / p.step_s))
        self._day_steps = max(1, round(DAY_S / p.step_s))
        self._week_steps = max(1, round(WEEK_S / p.step_s))
        self._reset()

    def _reset(self) -> None:
        size = max(1, _ceil(self.params.buffer_s / self.params.step_s))
        self.buffer_demand_ = np.full(size, np.nan)  # demand per step, ring-indexed
        self.buffer_step_ = np.full(size, -1, dtype=np.int64)  # the step each slot holds
        self.latest_step_: int | None = None
        self.model_: RandomForestRegressor | None = None
        self.trained_until_: int | None = None  # last step the model was trained on
        self.n_train_rows_ = 0
        self.steps_since_fit_ = 0
        self.forecast_: float | None = None  # slots, for the cached step
        self.forecast_step_: int | None = None
        self.forecast_workers_: int | None = None
        self.pending_: deque[tuple[int, float]] = deque()  # (step, forecast) not settled yet
        self.errors_: deque[tuple[int, float, float]] = deque(maxlen=self.params.error_window)

    # ------------------------------------------------------------------ learned summaries

    @property
    def forecast_mae_(self) -> float | None:
        """Mean absolute error (task slots) of the last ``error_window`` settled forecasts."""
        if not self.errors_:
            return None
        return float(np.mean([abs(f - a) for _, f, a in self.errors_]))

    @property
    def history_s_(self) -> float:
        """Observed time in the ring buffer (steps with data x step)."""
        if self.latest_step_ is None:
            return 0.0
        present = (self.buffer_step_ > self.latest_step_ - len(self.buffer_step_)) & ~np.isnan(
            self.buffer_demand_
        )
        return float(np.count_nonzero(present)) * self.params.step_s

    @property
    def model_version(self) -> str:
        if self.model_ is None:
            return f"{self.version}:reactive"
        return f"{self.version}:rf-{self.trained_until_}-{self.n_train_rows_}rows"

    # ------------------------------------------------------------------ features

    def _features(self, grid: np.ndarray, first_step: int, rows: np.ndarray) -> np.ndarray:
        """Feature matrix for ``rows`` (indices into ``grid``; grid[j] is step first_step + j).

        Only steps before each row are read. Missing lags are filled: recent lags from each
        other (then yesterday, last week, 0), yesterday from last week and the other way round.
        """
        h, day, week = self._horizon_steps, self._day_steps, self._week_steps
        pad = week + h
        padded = np.concatenate([np.full(pad, np.nan), grid])
        r = rows + pad
        lag1, lag2, lag3 = padded[r - 1], padded[r - 2], padded[r - 3]
        recent = _peaks(padded, r - h, h)
        lag_day, day_peak = padded[r - day], _peaks(padded, r - day, h)
        lag_week, week_peak = padded[r - week], _peaks(padded, r - week, h)

        base = _first_present(lag1, lag2, lag3, recent, lag_day, lag_week)
        base = np.nan_to_num(base, nan=0.0)
        lag1, lag2, lag3 = (_first_present(x, base) for x in (lag1, lag2, lag3))
        recent = _first_present(recent, base)
        lag_day_f = _first_present(lag_day, lag_week, base)
        day_peak_f = _first_present(day_peak, week_peak, recent)
        lag_week = _first_present(lag_week, lag_day_f)
        week_peak = _first_present(week_peak, day_peak_f)

        step = self.params.step_s
        times = np.array([_time_row((first_step + int(i)) * step) for i in rows]).reshape(-1, 7)
        lags = np.column_stack(
            [lag1, lag2, lag3, recent, lag_day_f, day_peak_f, lag_week, week_peak]
        )
        return np.hstack([times, lags])

    def _targets(self, grid: np.ndarray, rows: np.ndarray) -> np.ndarray:
        h = self._horizon_steps
        padded = np.concatenate([grid, np.full(h, np.nan)])
        return _peaks(padded, rows, h)

    # ------------------------------------------------------------------ fitting

    def _train(self, grid: np.ndarray, first_step: int) -> None:
        """Fit the forest on a complete grid; rows need their whole target horizon inside it."""
        h = self._horizon_steps
        self.steps_since_fit_ = 0
        observed = float(np.count_nonzero(~np.isnan(grid))) * self.params.step_s
        if observed < self.params.min_history_s or len(grid) <= h:
            return
        rows = np.arange(1, len(grid) - h + 1)
        y = self._targets(grid, rows)
        keep = ~np.isnan(y)
        rows, y = rows[keep], y[keep]
        if len(rows) < 2:
            return
        x = self._features(grid, first_step, rows)
        from sklearn.ensemble import RandomForestRegressor

        p = self.params
        model = RandomForestRegressor(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth,
            min_samples_leaf=p.min_samples_leaf,
            max_features=p.max_features,
            random_state=p.random_state,
            n_jobs=1,
        )
        model.fit(x, y)
        self.model_ = model
        self.trained_until_ = first_step + len(grid) - 1
        self.n_train_rows_ = len(rows)
        self.forecast_step_ = None  # the cached forecast came from the old model

    def fit_series(self, times: Sequence[float] | np.ndarray, demand: Sequence[float]) -> Self:
        """Learn from a demand series: epoch seconds and demand in task slots at each.

        Points are binned into steps of ``step_s`` (the maximum per step, as live); steps with
        no point are missing. Resets the learned state and seeds the ring buffer.
        """
        t = np.asarray(times, dtype=float)
        d = np.asarray(demand, dtype=float)
        if t.ndim != 1 or t.shape != d.shape:
            raise ValueError(
                f"times and demand must be 1-D of one length, got {t.shape}, {d.shape}"
            )
        if not len(t):
            raise ValueError("empty demand series")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(d))):
            raise ValueError("times and demand must be finite")
        if np.any(d < 0):
            raise ValueError("demand must not be negative")
        steps = np.floor(t / self.params.step_s).astype(np.int64)
        first = int(steps.min())
        grid = np.full(int(steps.max()) - first + 1, np.nan)
        np.fmax.at(grid, steps - first, d)
        self._reset()
        self._seed_buffer(grid, first)
        self._train(grid, first)
        return self

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Learn from finished jobs (see the module doc for how demand is rebuilt)."""
        times, demand = demand_from_jobs(history, self.params.step_s)
        if not len(times):
            self._reset()
            return self
        return self.fit_series(times, demand)

    def retrain(self) -> bool:
        """Retrain from the ring buffer's completed steps; True if a model came out."""
        if self.latest_step_ is None:
            return False
        size = len(self.buffer_step_)
        last = self.latest_step_ - 1  # the latest step is still being observed
        first = max(last - size + 2, int(self.buffer_step_[self.buffer_step_ >= 0].min()))
        if last < first:
            self.steps_since_fit_ = 0
            return False
        grid = self._window(first, last + 1)
        before = self.model_
        self._train(grid, first)
        return self.model_ is not before

    # ------------------------------------------------------------------ ring buffer

    def _seed_buffer(self, grid: np.ndarray, first: int) -> None:
        size = len(self.buffer_step_)
        tail = grid[-size:]
        steps = np.arange(first + len(grid) - len(tail), first + len(grid), dtype=np.int64)
        slots = steps % size
        self.buffer_step_[slots] = steps
        self.buffer_demand_[slots] = tail
        self.latest_step_ = int(steps[-1])

    def _record(self, step: int, demand: float) -> bool:
        """Remember the step's peak demand; True when ``step`` is a new latest step."""
        size = len(self.buffer_step_)
        slot = step % size
        held = int(self.buffer_step_[slot])
        if held == step:
            old = self.buffer_demand_[slot]
            self.buffer_demand_[slot] = demand if np.isnan(old) else max(old, demand)
        elif held < step:
            self.buffer_step_[slot] = step
            self.buffer_demand_[slot] = demand
        else:  # older than the buffer reaches
            return False
        if self.latest_step_ is None or step > self.latest_step_:
            self.latest_step_ = step
            return True
        return False

    def _window(self, start: int, stop: int) -> np.ndarray:
        """Demand of steps ``start .. stop - 1`` from the ring (NaN where not held)."""
        steps = np.arange(start, stop, dtype=np.int64)
        slots = steps % len(self.buffer_step_)
        return np.where(self.buffer_step_[slots] == steps, self.buffer_demand_[slots], np.nan)

    # ------------------------------------------------------------------ forecasting

    def forecast_at(self, step: int) -> float | None:
        """The forest's forecast (slots) of the peak over steps ``step .. step + H - 1``."""
        if self.model_ is None:
            return None
        reach = self._week_steps + self._horizon_steps
        grid = np.append(self._window(step - reach, step), np.nan)
        x = self._features(grid, step - reach, np.array([reach]))
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        trees = self.model_.estimators_
        try:  # the trees' own arrays: what predict() averages, without its per-call overhead
            total = sum(float(tree.tree_.predict(x32)[0, 0]) for tree in trees) / len(trees)
        except AttributeError:  # a scikit-learn without Tree.predict
            total = float(self.model_.predict(x)[0])
        return max(0.0, total)

    def _on_new_step(self, step: int) -> None:
        h = self._horizon_steps
        while self.pending_ and self.pending_[0][0] + h <= step:
            made, forecast = self.pending_.popleft()
            actual = float(np.fmax.reduce(self._window(made, made + h)))
            if not np.isnan(actual):
                self.errors_.append((made, forecast, actual))
        self.steps_since_fit_ += 1
        p = self.params
        if p.retrain_every_s is not None:
            due = (
                self.history_s_ >= p.min_history_s
                if self.model_ is None
                else self.steps_since_fit_ * p.step_s >= p.retrain_every_s
            )
            if due:
                self.retrain()
        self.forecast_ = self.forecast_at(step)
        self.forecast_step_ = step
        if self.forecast_ is not None:
            self.pending_.append((step, self.forecast_))

    # ------------------------------------------------------------------ deciding

    def _slots_per_worker(self, obs: Observation) -> int:
        cores = self.params.cores_per_worker or obs.cluster.cores_per_worker or 1
        return max(1, int(cores) // self.params.task_cpus)

    def _make(self, target: int, reason: str) -> Decision:
        return Decision(
            target=target,
            policy=self.name,
            reason=reason,
            model_version=self.model_version,
            forecast_tasks=self.forecast_,
        )

    def decide(self, observation: Observation) -> Decision:
        obs, p = observation, self.params
        current = obs.workers
        if obs.stale:
            return self._make(current, f"stale observation: holding {current} worker(s)")
        demand = obs.running_tasks + obs.pending_tasks
        step = math.floor(obs.time / p.step_s)
        if self._record(step, float(demand)):
            self._on_new_step(step)
        elif self.forecast_step_ != step:  # an out-of-order or retrained step: not cached
            self.forecast_ = self.forecast_at(step)
            self.forecast_step_ = step

        slots = self._slots_per_worker(obs)
        reactive = _ceil(demand / slots)
        busy = sum(1 for w in obs.cluster.alive if w.busy)
        now = f"{demand} task(s) on {slots} slot(s)/worker need {reactive}"
        if self.model_ is None or self.forecast_ is None:
            self.forecast_workers_ = None
            raw = reactive
            reason = (
                f"history {self.history_s_ / 3600:.1f} h < min_history_s "
                f"{p.min_history_s / 3600:g} h: reactive fallback, {now}"
            )
        else:
            fw = _ceil(self.forecast_ / slots)
            self.forecast_workers_ = fw
            raw = max(fw, reactive)
            mae = self.forecast_mae_
            reason = (
                f"forecast peak {self.forecast_:.1f} slots in next {p.horizon_s / 60:g} min "
                f"-> {fw}; {now}; forecast MAE "
                + (f"{mae:.1f} slots ({len(self.errors_)})" if mae is not None else "n/a")
            )
        target = raw
        if target < current and target < busy:
            target = busy
            reason += f"; {busy} busy worker(s) kept"
        lo, hi = obs.min_workers, obs.max_workers
        clipped = max(lo, target if hi is None else min(target, hi))
        if clipped != target:
            reason += f"; bounds [{lo}, {hi if hi is not None else '-'}]"
        return self._make(clipped, f"{reason} -> {clipped}")

    # ------------------------------------------------------------------ persistence

    def _model_path(self, path: Path) -> Path:
        return path.with_name(path.name + ".model.joblib")

    def save(self, path: Path) -> None:
        """A JSON header at ``path`` and the forest and buffers in ``<path>.model.joblib``."""
        import joblib
        import sklearn

        path = Path(path)
        model_path = self._model_path(path)
        header = {
            "name": self.name,
            "version": self.version,
            "params": self.get_params(),
            "learned": {
                "model_file": model_path.name,
                "model_version": self.model_version,
                "forecast_mae": self.forecast_mae_,
                "features": list(FEATURES),
                "sklearn": sklearn.__version__,
            },
        }
        state = {
            "name": self.name,
            "model": self.model_,
            "trained_until": self.trained_until_,
            "n_train_rows": self.n_train_rows_,
            "steps_since_fit": self.steps_since_fit_,
            "buffer_demand": self.buffer_demand_,
            "buffer_step": self.buffer_step_,
            "latest_step": self.latest_step_,
            "forecast": self.forecast_,
            "forecast_step": self.forecast_step_,
            "forecast_workers": self.forecast_workers_,
            "pending": list(self.pending_),
            "errors": list(self.errors_),
        }
        joblib.dump(state, model_path)
        path.write_text(json.dumps(header, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        """Rebuild a saved policy. The model file is a pickle: load only files you wrote."""
        import joblib

        path = Path(path)
        policy = super().load(path)  # refuses another policy's file
        learned = json.loads(path.read_text()).get("learned")
        if not learned:
            return policy
        model_path = path.with_name(learned["model_file"])
        state = joblib.load(model_path)
        if not isinstance(state, dict) or state.get("name") != cls.name:
            raise ValueError(f"{model_path} does not hold a {cls.name!r} model")
        if len(state["buffer_demand"]) != len(policy.buffer_demand_):
            raise ValueError(f"{model_path}: ring buffer size does not match buffer_s / step_s")
        policy.model_ = state["model"]
        policy.trained_until_ = state["trained_until"]
        policy.n_train_rows_ = int(state["n_train_rows"])
        policy.steps_since_fit_ = int(state["steps_since_fit"])
        policy.buffer_demand_ = np.asarray(state["buffer_demand"], dtype=float)
        policy.buffer_step_ = np.asarray(state["buffer_step"], dtype=np.int64)
        policy.latest_step_ = state["latest_step"]
        policy.forecast_ = state["forecast"]
        policy.forecast_step_ = state["forecast_step"]
        policy.forecast_workers_ = state["forecast_workers"]
        policy.pending_ = deque(tuple(x) for x in state["pending"])
        policy.errors_ = deque(
            (tuple(x) for x in state["errors"]), maxlen=policy.params.error_window
        )
        return policy


def demand_from_jobs(history: Sequence[JobRecord], step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A per-step demand series (step start times, task slots) rebuilt from finished jobs.

    A job uses ``task_seconds / duration`` slots evenly while it runs; a step's demand is the
    time-weighted sum over the jobs that overlap it. Jobs without a positive duration or task
    time are skipped.
    """
    jobs = [
        (j.submit_time, j.end_time, j.task_seconds / (j.end_time - j.submit_time))
        for j in history
        if j.end_time > j.submit_time and j.task_seconds > 0
    ]
    if not jobs:
        return np.empty(0), np.empty(0)
    first = math.floor(min(s for s, _, _ in jobs) / step_s)
    last = math.floor(max(e for _, e, _ in jobs) / step_s)
    demand = np.zeros(last - first + 1)
    for start, end, rate in jobs:
        a, b = math.floor(start / step_s), math.floor(end / step_s)
        edges = np.arange(a, b + 2, dtype=float) * step_s
        overlap = np.minimum(edges[1:], end) - np.maximum(edges[:-1], start)
        demand[a - first : b - first + 1] += rate * np.clip(overlap, 0.0, None) / step_s
    times = (np.arange(first, last + 1) * step_s).astype(float)
    return times, demand
