"""Predictive scaling: a quantile forecast of the capacity the next lead time needs sets a floor.

The seed's "preemptive" autoscaler, in the form AWS and Azure predictive scaling give it: learn
when the load comes (weekday, hour, recent history) and have the workers it will need running
*before* it arrives, one lead time ahead (the provisioning delay plus executor start-up), as a
floor under a reactive rule. The forecast raises the floor ahead of load; it never scales in on
its own.

What is forecast is the capacity the load needs, not its task demand
(:mod:`sparkscaler.models.capacity_forecast` says why): the **busy task slots** of each step
of ``step_s`` (the mean of ``running_tasks`` over the step's observations), recorded live into
the policy's own bounded ring buffer (``buffer_s``, 28 days). Busy slots measure the work the
load brought whatever the cluster's size, so what the policy provisions does not feed back
into what it learns. A batch job's pending tasks (its width) do not count: the planner (in
``hybrid``) or the reactive rule sizes a job that is already here.

Every decision, with ``slots`` the task slots of a worker:

- At the first observation of a new step ``b`` the forecaster
  (:class:`~sparkscaler.models.capacity_forecast.CapacityForecaster`) forecasts the
  ``quantile`` (the median by default; ``hybrid`` uses 0.9) and the median of the highest
  busy-slot mean over steps ``b .. b + window - 1``, where ``window = 1 + ceil(lead_s /
  step_s)`` so that the floor it sets holds one lead time past the step's end. From steps
  before ``b`` only; cached for the rest of the step.
- ``floor = ceil(forecast / slots)``: workers requested now are running by the time the load
  the forecast covers arrives. ``reactive = ceil((running + pending) / slots)``: the load that
  is already here. The target is ``max(floor, reactive)``; a falling forecast lowers only the
  floor, so the cluster shrinks only as far as the reactive rule lets it, and never below the
  workers running tasks (``busy``).
- The forecaster: a quantile regression forest once the buffer holds ``min_history_s`` (3 days)
  of observed steps; before that, cold start, the seasonal naive (the windows after the same
  time yesterday and last week, +- 30 min, their empirical quantiles), which forecasts from
  one day of history. With less than a day, no forecast: the reactive rule alone, and the
  reason says so.
- Bounds: clipped to ``[min_workers, max_workers]``. A stale observation holds the size and is
  not recorded.

Forecast score. Each forecast is settled once its window has been observed; the last
``error_window`` (step, forecast, actual) triples are kept in ``errors_``, and the running
pinball loss (``pinball_loss_``, slots) and coverage (``coverage_``, share of windows at or
below the forecast; a calibrated forecast covers ``quantile``) are named in the reason.
``forecast_`` is the current forecast (slots), ``forecast_median_`` its median and
``forecast_workers_`` the floor.

Learning. ``fit_series(times, busy)`` learns from a series of busy task slots (a trace, or the
store's observations' running tasks); ``fit(history)`` from finished jobs (:class:`JobRecord`):
each job keeps ``task_seconds / duration`` slots busy evenly from submit to end, and each
step's busy slots are the time-weighted sum over the jobs running in it. ``fit_series`` resets
the learned state and seeds the ring buffer with the series; ``fit`` does so only while the
buffer is empty (a loop refits its policy whenever jobs finish, and the policy's own
observations already hold them). Online, the forecaster is refitted from the ring buffer after
every ``retrain_every_s`` of observed steps (a day; ``None``: never), and as soon as the buffer
first holds ``min_history_s``. That refit (one to three seconds for one to four weeks of
5-minute steps on this machine) is the one slower part of ``decide``; like everything else in
``decide`` it does no I/O, and :meth:`retrain` lets a caller do it off the decision path.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from pydantic import Field, model_validator

from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.models.capacity_forecast import (
    DAY_S,
    FEATURES,
    WEEK_S,
    CapacityForecaster,
    coverage,
    pinball_loss,
    window_max,
    window_steps,
)
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.units import Duration

if TYPE_CHECKING:
    from sparkscaler.models.runtime_model import RuntimeModel


def _ceil(x: float) -> int:
    """ceil that ignores float noise (a forecast of 8.0000000001 slots is 8)."""
    return max(0, math.ceil(x - 1e-9))


class PredictiveParams(PolicyParams):
    step_s: Duration = Field(300.0, gt=0, description="step of the busy-slot series, seconds")
    lead_s: Duration = Field(
        0.0,
        ge=0,
        le=DAY_S,
        description="how long a requested worker takes to run tasks (provisioning + executor "
        "start-up): the floor is raised this far ahead; a loop gives its own",
    )
    quantile: float = Field(0.5, ge=0.5, lt=1, description="the forecast quantile provisioned")
    n_estimators: int = Field(50, ge=1, le=1000)
    max_depth: int | None = Field(10, ge=1)
    min_samples_leaf: int = Field(10, ge=1)
    max_features: float = Field(0.5, gt=0, le=1, description="fraction of features per split")
    random_state: int = 0
    min_history_s: Duration = Field(
        3 * DAY_S,
        ge=0,
        description="observed history before the quantile forest is used (seasonal naive "
        "before it)",
    )
    retrain_every_s: Duration | None = Field(
        DAY_S, gt=0, description="refit online after this much observed time; None: never"
    )
    buffer_s: Duration = Field(
        28 * DAY_S, gt=0, description="busy slots kept in the ring buffer (lags, refits)"
    )
    error_window: int = Field(288, ge=1, description="settled forecasts kept for the score")
    cores_per_worker: int | None = Field(
        None, ge=1, description="task slots per worker; default: what the workers report"
    )
    task_cpus: int = Field(1, ge=1, description="spark.task.cpus")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.buffer_s < max(self.min_history_s, DAY_S):
            raise ValueError(
                f"buffer_s ({self.buffer_s:g}) must hold min_history_s ({self.min_history_s:g}) "
                f"and a day"
            )
        if self.buffer_s / self.step_s > 10_000_000:
            raise ValueError("buffer_s / step_s must be at most 10 million steps")
        return self


class PredictivePolicy(Policy):
    """A quantile forecast of the busy slots one lead time ahead as a floor under the load."""

    name = "predictive"
    Params = PredictiveParams
    version = "2"

    @classmethod
    def for_loop(
        cls,
        params: Mapping[str, Any],
        *,
        runtime_model: RuntimeModel | None = None,
        provisioning_s: float = 0.0,
    ) -> Self:
        """Raises its floor one of the loop's provisioning delays ahead (unless ``params`` sets
        a ``lead_s`` of its own)."""
        return cls(**{"lead_s": provisioning_s, **params})

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self._window = window_steps(p.lead_s, p.step_s)
        self._quantiles = (0.5, p.quantile) if p.quantile > 0.5 else (0.5,)
        # Steps a forecast reads: last week's window and its neighbourhood, and the last hour.
        self._reach = round(WEEK_S / p.step_s) + self._window + 2 * round(3600.0 / p.step_s)
        self._reset()

    def _forecaster(self) -> CapacityForecaster:
        p = self.params
        return CapacityForecaster(
            step_s=p.step_s,
            window=self._window,
            quantiles=self._quantiles,
            n_estimators=p.n_estimators,
            max_depth=p.max_depth,
            min_samples_leaf=p.min_samples_leaf,
            max_features=p.max_features,
            random_state=p.random_state,
            min_history_s=p.min_history_s,
        )

    def _reset(self) -> None:
        size = max(1, _ceil(self.params.buffer_s / self.params.step_s))
        self.buffer_sum_ = np.zeros(size)  # busy slots summed over a step's observations
        self.buffer_count_ = np.zeros(size, dtype=np.int64)  # observations in the step
        self.buffer_step_ = np.full(size, -1, dtype=np.int64)  # the step each slot holds
        self.latest_step_: int | None = None
        self.forecaster_ = self._forecaster().fit(np.empty(0))  # seasonal naive, no history
        self.steps_since_fit_ = 0
        self.forecast_: float | None = None  # slots at the chosen quantile, for the cached step
        self.forecast_median_: float | None = None
        self.forecast_step_: int | None = None
        self.forecast_workers_: int | None = None
        self.pending_: deque[tuple[int, float]] = deque()  # (step, forecast) not settled yet
        self.errors_: deque[tuple[int, float, float]] = deque(maxlen=self.params.error_window)

    # ------------------------------------------------------------------ learned summaries

    @property
    def model_(self) -> Any:
        """The quantile forest, or None while the forecaster is the seasonal naive."""
        return self.forecaster_.model_

    @property
    def pinball_loss_(self) -> float | None:
        """Mean pinball loss (slots) of the last ``error_window`` settled forecasts."""
        if not self.errors_:
            return None
        _, f, a = np.asarray(self.errors_).T
        return pinball_loss(a, f, self.params.quantile)

    @property
    def coverage_(self) -> float | None:
        """Share of the last ``error_window`` windows whose busy slots the forecast covered."""
        if not self.errors_:
            return None
        _, f, a = np.asarray(self.errors_).T
        return coverage(a, f)

    @property
    def history_s_(self) -> float:
        """Observed time in the ring buffer (steps with data x step)."""
        if self.latest_step_ is None:
            return 0.0
        present = (self.buffer_step_ > self.latest_step_ - len(self.buffer_step_)) & (
            self.buffer_count_ > 0
        )
        return float(np.count_nonzero(present)) * self.params.step_s

    @property
    def model_version(self) -> str:
        f = self.forecaster_
        if f.model_ is None:
            return f"{self.version}:seasonal-naive"
        return f"{self.version}:qrf-{f.trained_until_}-{f.n_train_rows_}rows"

    # ------------------------------------------------------------------ fitting

    def _fit_grid(self, grid: np.ndarray, first_step: int) -> None:
        self.forecaster_ = self._forecaster().fit(grid, first_step)
        self.steps_since_fit_ = 0
        self.forecast_step_ = None  # the cached forecast came from the old model

    def fit_series(self, times: Sequence[float] | np.ndarray, busy: Sequence[float]) -> Self:
        """Learn from a series of busy task slots: epoch seconds and running tasks at each.

        Points are averaged per step of ``step_s`` (as live); steps with no point are missing.
        Resets the learned state and seeds the ring buffer.
        """
        t = np.asarray(times, dtype=float)
        d = np.asarray(busy, dtype=float)
        if t.ndim != 1 or t.shape != d.shape:
            raise ValueError(f"times and busy must be 1-D of one length, got {t.shape}, {d.shape}")
        if not len(t):
            raise ValueError("empty busy-slot series")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(d))):
            raise ValueError("times and busy slots must be finite")
        if np.any(d < 0):
            raise ValueError("busy slots must not be negative")
        steps = np.floor(t / self.params.step_s).astype(np.int64)
        first = int(steps.min())
        size = int(steps.max()) - first + 1
        total = np.bincount(steps - first, weights=d, minlength=size)
        count = np.bincount(steps - first, minlength=size)
        self._reset()
        keep = min(size, len(self.buffer_step_))
        span = np.arange(first + size - keep, first + size, dtype=np.int64)
        slots = span % len(self.buffer_step_)
        self.buffer_step_[slots] = span
        self.buffer_sum_[slots] = total[-keep:]
        self.buffer_count_[slots] = count[-keep:]
        self.latest_step_ = int(span[-1])
        self._fit_grid(self._window_series(int(span[0]), int(span[-1]) + 1), int(span[0]))
        return self

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Learn from finished jobs (see the module doc for how busy slots are rebuilt), unless
        the ring buffer holds a series already (observed live, or given to ``fit_series``).

        A loop refits its policy on the store's jobs whenever jobs finish; the forecaster's own
        observations hold the busy slots of those jobs, measured rather than rebuilt, and it
        refits from them on its own schedule. Rebuilding it from the jobs each time would cost a
        forest fit per finished job, and would throw away a series the jobs cover only in part
        (a simulation hands over a sample of them). So the jobs teach a forecaster that has
        seen nothing yet: a loop's start.
        """
        if self.latest_step_ is not None:
            return self
        times, busy = demand_from_jobs(history, self.params.step_s)
        if not len(times):
            return self
        return self.fit_series(times, busy)

    def retrain(self) -> bool:
        """Refit from the ring buffer's completed steps; True if a forest came out."""
        if self.latest_step_ is None:
            return False
        size = len(self.buffer_step_)
        last = self.latest_step_ - 1  # the latest step is still being observed
        first = max(last - size + 2, int(self.buffer_step_[self.buffer_step_ >= 0].min()))
        if last < first:
            self.steps_since_fit_ = 0
            return False
        self._fit_grid(self._window_series(first, last + 1), first)
        return self.model_ is not None

    # ------------------------------------------------------------------ ring buffer

    def _record(self, step: int, busy: float) -> bool:
        """Add one observation's busy slots to its step; True when ``step`` is a new latest."""
        size = len(self.buffer_step_)
        slot = step % size
        held = int(self.buffer_step_[slot])
        if held < step:
            self.buffer_step_[slot] = step
            self.buffer_sum_[slot] = 0.0
            self.buffer_count_[slot] = 0
        elif held > step:  # older than the buffer reaches
            return False
        self.buffer_sum_[slot] += busy
        self.buffer_count_[slot] += 1
        if self.latest_step_ is None or step > self.latest_step_:
            self.latest_step_ = step
            return True
        return False

    def _window_series(self, start: int, stop: int) -> np.ndarray:
        """Busy-slot means of steps ``start .. stop - 1`` from the ring (NaN where not held)."""
        steps = np.arange(start, stop, dtype=np.int64)
        slots = steps % len(self.buffer_step_)
        held = (self.buffer_step_[slots] == steps) & (self.buffer_count_[slots] > 0)
        count = np.maximum(self.buffer_count_[slots], 1)
        return np.where(held, self.buffer_sum_[slots] / count, np.nan)

    # ------------------------------------------------------------------ forecasting

    def forecast_at(self, step: int) -> tuple[float, float] | None:
        """(median, chosen quantile) of the busy slots of the window from ``step``, in slots;
        None without the history to forecast it."""
        series = self._window_series(step - self._reach, step)
        out = self.forecaster_.predict(series, step - self._reach, np.array([self._reach]))[0]
        if np.any(np.isnan(out)):
            return None
        return max(0.0, float(out[0])), max(0.0, float(out[-1]))

    def _on_new_step(self, step: int) -> None:
        w = self._window
        while self.pending_ and self.pending_[0][0] + w <= step:
            made, forecast = self.pending_.popleft()
            actual = window_max(self._window_series(made, made + w), w)[0]
            if not np.isnan(actual):
                self.errors_.append((made, forecast, float(actual)))
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
        self._forecast(step)
        if self.forecast_ is not None:
            self.pending_.append((step, self.forecast_))

    def _forecast(self, step: int) -> None:
        out = self.forecast_at(step)
        self.forecast_median_, self.forecast_ = out if out is not None else (None, None)
        self.forecast_step_ = step

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

    def _score(self) -> str:
        loss, cover = self.pinball_loss_, self.coverage_
        if loss is None or cover is None:
            return "not scored yet"
        return f"pinball {loss:.2f} slots, coverage {cover:.0%} of {len(self.errors_)}"

    def decide(self, observation: Observation) -> Decision:
        obs, p = observation, self.params
        current = obs.workers
        if obs.stale:
            return self._make(current, f"stale observation: holding {current} worker(s)")
        step = math.floor(obs.time / p.step_s)
        if self._record(step, float(obs.running_tasks)):
            self._on_new_step(step)
        elif self.forecast_step_ != step:  # an out-of-order or refitted step: not cached
            self._forecast(step)

        slots = self._slots_per_worker(obs)
        demand = obs.running_tasks + obs.pending_tasks
        reactive = _ceil(demand / slots)
        busy = sum(1 for w in obs.cluster.alive if w.busy)
        now = f"{demand} task(s) on {slots} slot(s)/worker need {reactive}"
        if self.forecast_ is None or self.forecast_median_ is None:
            self.forecast_workers_ = None
            raw = reactive
            reason = (
                f"no forecast (history {self.history_s_ / 3600:.1f} h, a day needed): "
                f"reactive, {now}"
            )
        else:
            floor = _ceil(self.forecast_ / slots)
            self.forecast_workers_ = floor
            raw = max(floor, reactive)
            ahead = self._window * p.step_s / 60
            method = self.forecaster_.method_
            reason = (
                f"{method} forecast q{p.quantile * 100:g} {self.forecast_:.1f} busy slots "
                f"(median {self.forecast_median_:.1f}) in the next {ahead:g} min -> floor "
                f"{floor}; {now}; {self._score()}"
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
        """A JSON header at ``path`` and the forecaster and buffers in ``<path>.model.joblib``."""
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
                "pinball_loss": self.pinball_loss_,
                "coverage": self.coverage_,
                "features": list(FEATURES),
                "sklearn": sklearn.__version__,
            },
        }
        state = {
            "name": self.name,
            "version": self.version,
            "forecaster": self.forecaster_,
            "steps_since_fit": self.steps_since_fit_,
            "buffer_sum": self.buffer_sum_,
            "buffer_count": self.buffer_count_,
            "buffer_step": self.buffer_step_,
            "latest_step": self.latest_step_,
            "forecast": self.forecast_,
            "forecast_median": self.forecast_median_,
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
        if state.get("version") != cls.version:
            raise ValueError(
                f"{model_path} holds a version {state.get('version', '1')!r} forecaster "
                f"(a forecast of task demand); this is version {cls.version}: refit it"
            )
        if len(state["buffer_sum"]) != len(policy.buffer_sum_):
            raise ValueError(f"{model_path}: ring buffer size does not match buffer_s / step_s")
        policy.forecaster_ = state["forecaster"]
        policy.steps_since_fit_ = int(state["steps_since_fit"])
        policy.buffer_sum_ = np.asarray(state["buffer_sum"], dtype=float)
        policy.buffer_count_ = np.asarray(state["buffer_count"], dtype=np.int64)
        policy.buffer_step_ = np.asarray(state["buffer_step"], dtype=np.int64)
        policy.latest_step_ = state["latest_step"]
        policy.forecast_ = state["forecast"]
        policy.forecast_median_ = state["forecast_median"]
        policy.forecast_step_ = state["forecast_step"]
        policy.forecast_workers_ = state["forecast_workers"]
        policy.pending_ = deque(tuple(x) for x in state["pending"])
        policy.errors_ = deque(
            (tuple(x) for x in state["errors"]), maxlen=policy.params.error_window
        )
        return policy


def demand_from_jobs(history: Sequence[JobRecord], step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """A per-step busy-slot series (step start times, task slots) rebuilt from finished jobs.

    A job keeps ``task_seconds / duration`` slots busy evenly while it runs; a step's busy
    slots are the time-weighted sum over the jobs that overlap it. Jobs without a positive
    duration or task time are skipped.
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
