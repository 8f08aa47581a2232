"""The predictive policy (a quantile forecast of busy slots as a floor) on seeded synthetic series.

Series are at 5-minute steps from a Monday 00:00 UTC, so that day and week lags line up with
the pattern whatever the machine's time zone does to the hour features. Nothing here is timed;
decision latency belongs to the engine benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path

import joblib
import numpy as np
import pytest
from pydantic import ValidationError

from sparkscaler.core import ClusterState, JobRecord, Observation, WorkerInfo
from sparkscaler.models.capacity_forecast import SeasonalNaiveForecaster, pinball_loss
from sparkscaler.policies.hpa import HpaPolicy
from sparkscaler.policies.predictive import PredictivePolicy, demand_from_jobs
from sparkscaler.sim.arrivals import daily_weekly, daily_weekly_rate

STEP = 300.0
STEPS_PER_DAY = 288
STEPS_PER_WEEK = 7 * STEPS_PER_DAY
H = 12  # one hour of 5-minute steps
T0 = 1_699_833_600.0  # Monday 2023-11-13 00:00 UTC
CORES = 4


def _obs(
    time: float,
    running: int,
    *,
    pending: int = 0,
    workers: int = 10,
    busy: int = 0,
    min_workers: int = 0,
    max_workers: int | None = 50,
    stale: bool = False,
) -> Observation:
    """``workers`` ALIVE workers of 4 cores, the first ``busy`` running one task each, and the
    load's ``running`` and ``pending`` tasks."""
    alive = tuple(
        WorkerInfo(
            id=f"worker-{i}",
            host="127.0.0.1",
            port=40000 + i,
            state="ALIVE",
            cores=CORES,
            cores_used=CORES if i < busy else 0,
            memory_mb=4096,
            memory_used_mb=0,
            running_tasks=1 if i < busy else 0,
        )
        for i in range(workers)
    )
    return Observation(
        time=time,
        cluster=ClusterState(workers=alive),
        running_tasks=running,
        pending_tasks=pending,
        min_workers=min_workers,
        max_workers=max_workers,
        stale=stale,
    )


def _weekly_series(weeks: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Poisson busy slots around daily_weekly's office-hours rate (mean 40 on weekdays)."""
    offsets = np.arange(weeks * STEPS_PER_WEEK) * STEP
    rate = daily_weekly_rate(offsets, 40.0, peak_hour=14.0, daily_amplitude=0.9, weekend_factor=0.3)
    demand = np.random.default_rng(seed).poisson(rate).astype(float)
    return T0 + offsets, demand


def _office_series(days: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A sharp ramp: about 2 slots at night, about 40 from 08:00 to 18:00, every day."""
    offsets = np.arange(days * STEPS_PER_DAY) * STEP
    hour = (offsets % 86_400) / 3600
    base = np.where((hour >= 8) & (hour < 18), 40.0, 2.0)
    demand = np.random.default_rng(seed).poisson(base).astype(float)
    return T0 + offsets, demand


@pytest.fixture(scope="module")
def office_policy() -> PredictivePolicy:
    times, demand = _office_series(15)
    return PredictivePolicy(retrain_every_s=None, n_estimators=20).fit_series(times, demand)


# ====================================================================== forecast quality
def test_forecast_beats_seasonal_naive_live() -> None:
    times, busy = _weekly_series(4)
    train = 3 * STEPS_PER_WEEK
    policy = PredictivePolicy(
        quantile=0.9, n_estimators=20, retrain_every_s=None, error_window=STEPS_PER_WEEK
    ).fit_series(times[:train], busy[:train])
    assert policy.model_ is not None
    test = train + 3 * STEPS_PER_DAY
    for i in range(train, test):  # three days, live, one observation per step
        out = policy.decide(_obs(times[i], int(busy[i])))
    assert "quantile forest forecast q90" in out.reason and "pinball" in out.reason, out.reason

    naive = SeasonalNaiveForecaster(STEP, 1, (0.9,)).fit(busy[:test])
    made = np.array([step for step, _, _ in policy.errors_]) - round(T0 / STEP)
    forecasts = np.array([f for _, f, _ in policy.errors_])
    actual = np.array([a for _, _, a in policy.errors_])
    assert np.array_equal(actual, busy[made])  # window of one step (no lead): that step's mean
    assert len(made) >= 3 * STEPS_PER_DAY - 2
    seasonal = naive.predict(busy[:test], 0, made)[:, 0]
    assert policy.pinball_loss_ == pytest.approx(pinball_loss(actual, forecasts, 0.9))
    assert policy.pinball_loss_ < pinball_loss(actual, seasonal, 0.9)
    assert policy.coverage_ is not None and policy.coverage_ >= 0.85
    print(f"q90 pinball: forest {policy.pinball_loss_:.2f}, seasonal naive "
          f"{pinball_loss(actual, seasonal, 0.9):.2f} slots")  # fmt: skip


def test_it_forecasts_busy_slots_not_the_backlog() -> None:
    """A batch load: 4 tasks running and 60 waiting, all day. The capacity it keeps busy is 4
    slots, whatever its width."""
    policy = PredictivePolicy(min_history_s=86_400, n_estimators=10)
    times = T0 + np.arange(2 * STEPS_PER_DAY) * STEP
    for t in times:
        policy.decide(_obs(t, 4, pending=60))
    assert policy.forecast_ == pytest.approx(4.0)
    out = policy.decide(_obs(times[-1] + STEP, 0, workers=1))
    assert policy.forecast_workers_ == 1 and out.target == 1, out.reason


# ====================================================================== preemptive
def test_the_floor_rises_one_lead_time_ahead_of_the_morning_ramp() -> None:
    times, busy = _office_series(8)
    policy = PredictivePolicy(lead_s=600, retrain_every_s=None, n_estimators=20)
    policy.fit_series(times, busy)
    day = T0 + 8 * 86_400  # the day after the training data
    night = [policy.decide(_obs(day + h * 3600, 2)) for h in (3, 4, 5)]
    assert all(d.target <= 2 for d in night), [d.reason for d in night]

    early = policy.decide(_obs(day + 7.5 * 3600, 2))  # 07:30: 08:00 is more than a lead away
    assert early.target <= 2, early.reason
    ahead = policy.decide(_obs(day + 7.85 * 3600, 2))  # 07:51: the window reaches 08:00
    assert math.ceil(2 / CORES) == 1
    assert ahead.target >= 8, ahead.reason  # ~40 busy slots from 08:00 need 10 workers of 4
    assert policy.forecast_ is not None and policy.forecast_ > 30
    assert policy.forecast_workers_ == ahead.target
    assert ahead.forecast_tasks == policy.forecast_  # kept with the decision for the dashboard
    assert "in the next 15 min" in ahead.reason


def test_a_loop_gives_its_provisioning_delay_as_the_lead() -> None:
    assert PredictivePolicy.for_loop({}, provisioning_s=126.0).params.lead_s == 126.0
    assert PredictivePolicy.for_loop({"lead_s": 30}, provisioning_s=126.0).params.lead_s == 30


# ====================================================================== cautious scale-in
def test_scale_in_never_below_busy_workers(office_policy: PredictivePolicy) -> None:
    night = T0 + 16 * 86_400 + 2 * 3600
    out = office_policy.decide(_obs(night, 6, workers=10, busy=6))
    assert office_policy.forecast_workers_ is not None and office_policy.forecast_workers_ <= 2
    assert out.target == 6, out.reason  # 6 tasks need 2 workers, but 6 are busy
    assert "busy" in out.reason


def test_scale_in_never_below_current_demand(office_policy: PredictivePolicy) -> None:
    night = T0 + 17 * 86_400 + 2 * 3600
    out = office_policy.decide(_obs(night, 30, workers=12, busy=0))
    assert office_policy.forecast_workers_ is not None and office_policy.forecast_workers_ <= 2
    assert out.target == math.ceil(30 / CORES), out.reason


def test_bounds_clip_the_target(office_policy: PredictivePolicy) -> None:
    noon = T0 + 18 * 86_400 + 12 * 3600
    assert office_policy.decide(_obs(noon, 40, max_workers=5)).target == 5
    late = T0 + 18 * 86_400 + 23 * 3600
    assert office_policy.decide(_obs(late, 0, workers=1, min_workers=3)).target == 3


def test_stale_observation_holds() -> None:
    out = PredictivePolicy().decide(_obs(T0, 40, workers=3, stale=True))
    assert out.target == 3 and "stale" in out.reason


# ====================================================================== cold start
def test_cold_start_forecasts_from_one_day_as_seasonal_naive() -> None:
    fresh = PredictivePolicy().decide(_obs(T0, 9, workers=1))
    assert "no forecast" in fresh.reason and fresh.target == math.ceil(9 / CORES)

    times, busy = _office_series(1)
    policy = PredictivePolicy().fit_series(times, busy)
    assert policy.model_ is None
    out = policy.decide(_obs(times[-1] + 8.5 * 3600, 1, workers=1))  # 08:30 on day two
    assert out.reason.startswith("seasonal naive forecast"), out.reason
    assert out.model_version.endswith("seasonal-naive")
    assert out.target >= 8  # yesterday's office hours: ~40 busy slots


def test_online_training_starts_and_repeats_from_the_ring_buffer() -> None:
    policy = PredictivePolicy(
        min_history_s=6 * 3600, retrain_every_s=2 * 3600, buffer_s=86_400, n_estimators=10
    )
    times, busy = _office_series(1)
    trained: list[int | None] = []
    for t, d in zip(times[: 12 * 12], busy[: 12 * 12], strict=True):
        policy.decide(_obs(t, int(d)))
        trained.append(policy.forecaster_.trained_until_ if policy.model_ is not None else None)
    assert trained[6 * 12 - 1] is None  # not yet 6 h of completed steps
    assert policy.model_ is not None
    assert len({x for x in trained if x is not None}) >= 3  # first fit, then every 2 h


# ====================================================================== job records
def _jobs(days: int, seed: int = 11) -> list[JobRecord]:
    rng = np.random.default_rng(seed)
    arrivals = daily_weekly(20.0, days * 86_400, rng)
    jobs = []
    for k, t in enumerate(arrivals.times):
        duration = float(rng.uniform(600, 1800))
        slots = float(rng.integers(2, 17))
        jobs.append(
            JobRecord(
                app_id=f"app-{k}",
                name="job",
                submit_time=T0 + float(t),
                end_time=T0 + float(t) + duration,
                tasks=100,
                failed_tasks=0,
                task_seconds=duration * slots,
                executors=2,
                workers=2,
                input_bytes=0,
                spark_jobs=1,
                success=True,
            )
        )
    return jobs


def test_demand_from_jobs_conserves_task_seconds() -> None:
    jobs = _jobs(1)
    times, busy = demand_from_jobs(jobs, STEP)
    assert len(times) == len(busy) and np.all(np.diff(times) == STEP)
    assert float(busy.sum() * STEP) == pytest.approx(sum(j.task_seconds for j in jobs))
    assert demand_from_jobs([], STEP)[0].size == 0


def test_fit_from_job_records_and_then_from_its_own_observations() -> None:
    jobs = _jobs(4)
    policy = PredictivePolicy(n_estimators=20).fit(jobs)
    assert policy.model_ is not None and policy.forecaster_.n_train_rows_ > 500
    out = policy.decide(_obs(max(j.end_time for j in jobs) + STEP, 10))
    assert out.reason.startswith("quantile forest forecast"), out.reason
    assert policy.forecast_ is not None and policy.forecast_ >= 0
    # A loop refits its policy on the store's jobs whenever one finishes: the forecaster keeps
    # the series it holds (its own observations hold those jobs) instead of rebuilding it.
    model, latest = policy.model_, policy.latest_step_
    assert policy.fit(jobs[:10]).model_ is model and policy.latest_step_ == latest

    empty = PredictivePolicy().fit([])
    assert empty.model_ is None and empty.latest_step_ is None


# ====================================================================== persistence
def test_save_load_round_trip_gives_identical_decisions(tmp_path: Path) -> None:
    times, demand = _office_series(3)
    policy = PredictivePolicy(n_estimators=10, retrain_every_s=3600).fit_series(times, demand)
    rng = np.random.default_rng(5)
    start = times[-1] + STEP
    warmup = [_obs(start + i * 60, int(rng.integers(0, 50)), busy=3) for i in range(30)]
    for obs in warmup:
        policy.decide(obs)
    path = tmp_path / "predictive.json"
    policy.save(path)
    assert (tmp_path / "predictive.json.model.joblib").is_file()
    loaded = PredictivePolicy.load(path)
    assert loaded.get_params() == policy.get_params()
    assert loaded.pinball_loss_ == policy.pinball_loss_ and loaded.coverage_ == policy.coverage_

    later = [_obs(start + 1800 + i * 120, int(rng.integers(0, 50)), busy=2) for i in range(60)]
    assert [loaded.decide(o) for o in later] == [policy.decide(o) for o in later]
    assert loaded.forecaster_.trained_until_ == policy.forecaster_.trained_until_
    assert loaded.model_ is not None


def test_load_refuses_a_task_demand_model(tmp_path: Path) -> None:
    """A version-1 model file forecast task demand: its numbers mean something else now."""
    path = tmp_path / "p.json"
    PredictivePolicy().fit_series(*_office_series(1)).save(path)
    model = tmp_path / "p.json.model.joblib"
    state = joblib.load(model)
    joblib.dump({**state, "version": "1"}, model)
    with pytest.raises(ValueError, match="refit"):
        PredictivePolicy.load(path)


def test_load_refuses_another_policys_file(tmp_path: Path) -> None:
    path = tmp_path / "hpa.json"
    HpaPolicy().save(path)
    with pytest.raises(ValueError, match="hpa"):
        PredictivePolicy.load(path)


def test_unfitted_policy_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    PredictivePolicy(lead_s=180).save(path)
    loaded = PredictivePolicy.load(path)
    assert loaded.model_ is None and loaded.params.lead_s == 180


# ====================================================================== params
@pytest.mark.parametrize(
    "params",
    [
        {"bogus": 1},
        {"n_estimators": 0},
        {"quantile": 0.4},
        {"quantile": 1.0},
        {"lead_s": -1},
        {"buffer_s": 3600, "min_history_s": 0},
        {"min_history_s": -1},
        {"buffer_s": 86_400, "min_history_s": 2 * 86_400},
        {"max_features": 1.5},
        {"retrain_every_s": 0},
    ],
)
def test_invalid_params_are_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PredictivePolicy(**params)


def test_fit_series_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one length"):
        PredictivePolicy().fit_series([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="negative"):
        PredictivePolicy().fit_series([1.0], [-1.0])
    with pytest.raises(ValueError, match="empty"):
        PredictivePolicy().fit_series([], [])
