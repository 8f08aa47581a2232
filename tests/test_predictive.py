"""The predictive (Random Forest) policy on seeded synthetic demand series.

Series are at 5-minute steps from a Monday 00:00 UTC, so that day and week lags line up with
the pattern whatever the machine's time zone does to the hour features. Nothing here is timed;
decision latency belongs to the engine benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from sparkscaler.core import ClusterState, JobRecord, Observation, WorkerInfo
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
    demand: int,
    *,
    workers: int = 10,
    busy: int = 0,
    min_workers: int = 0,
    max_workers: int | None = 50,
    stale: bool = False,
) -> Observation:
    """``workers`` ALIVE workers of 4 cores, the first ``busy`` running one task each."""
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
        running_tasks=demand,
        min_workers=min_workers,
        max_workers=max_workers,
        stale=stale,
    )


def _weekly_series(weeks: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Poisson demand around daily_weekly's office-hours rate (mean 40 slots on weekdays)."""
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
    return PredictivePolicy(retrain_every_s=None).fit_series(times, demand)


# ====================================================================== forecast quality
def test_forecast_beats_same_hour_last_week() -> None:
    times, demand = _weekly_series(5)
    train = 4 * STEPS_PER_WEEK
    policy = PredictivePolicy(error_window=STEPS_PER_WEEK).fit_series(times[:train], demand[:train])
    assert policy.model_ is not None
    for i in range(train, len(times)):  # the test week, live, one observation per step
        out = policy.decide(_obs(times[i], int(demand[i])))
    assert "forecast MAE" in out.reason, out.reason

    rf, naive = [], []
    first_step = round(T0 / STEP)
    for step, forecast, actual in policy.errors_:
        i = step - first_step
        assert actual == demand[i : i + H].max()
        rf.append(abs(forecast - actual))
        naive.append(abs(demand[i - STEPS_PER_WEEK : i - STEPS_PER_WEEK + H].max() - actual))
    assert len(rf) >= STEPS_PER_WEEK - H - 1
    mae_rf, mae_naive = float(np.mean(rf)), float(np.mean(naive))
    assert policy.forecast_mae_ == pytest.approx(mae_rf)
    assert mae_rf < mae_naive, f"RF MAE {mae_rf:.2f} vs same-hour-last-week {mae_naive:.2f}"
    print(f"next-hour peak MAE: RF {mae_rf:.2f} slots, same hour last week {mae_naive:.2f}")


# ====================================================================== preemptive
def test_target_rises_ahead_of_the_morning_ramp(office_policy: PredictivePolicy) -> None:
    policy = office_policy
    day = T0 + 15 * 86_400  # the day after the training data
    night = [policy.decide(_obs(day + h * 3600, 2)) for h in (3, 4, 5)]
    assert all(d.target <= 2 for d in night), [d.reason for d in night]

    before = policy.decide(_obs(day + 7.5 * 3600, 2))  # 07:30, load still at night level
    assert math.ceil(2 / CORES) == 1
    assert before.target >= 8, before.reason  # ~40 slots at 08:00 need 10 workers of 4
    assert policy.forecast_ is not None and policy.forecast_ > 30
    assert policy.forecast_workers_ == before.target
    assert before.forecast_tasks == policy.forecast_  # kept with the decision for the dashboard
    assert "forecast peak" in before.reason


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


# ====================================================================== short history
def test_short_history_falls_back_to_reactive() -> None:
    times, demand = _office_series(1)
    policy = PredictivePolicy().fit_series(times, demand)
    assert policy.model_ is None
    out = policy.decide(_obs(times[-1] + STEP, 13, workers=2))
    assert "fallback" in out.reason and "min_history_s" in out.reason, out.reason
    assert out.target == math.ceil(13 / CORES)
    assert out.model_version.endswith("reactive")

    fresh = PredictivePolicy().decide(_obs(T0, 9, workers=1))
    assert "fallback" in fresh.reason and fresh.target == math.ceil(9 / CORES)


def test_online_training_starts_and_repeats_from_the_ring_buffer() -> None:
    policy = PredictivePolicy(
        min_history_s=6 * 3600, retrain_every_s=2 * 3600, buffer_s=86_400, n_estimators=10
    )
    times, demand = _office_series(1)
    trained: list[int | None] = []
    for t, d in zip(times[: 12 * 12], demand[: 12 * 12], strict=True):
        policy.decide(_obs(t, int(d)))
        trained.append(policy.trained_until_)
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
    times, demand = demand_from_jobs(jobs, STEP)
    assert len(times) == len(demand) and np.all(np.diff(times) == STEP)
    assert float(demand.sum() * STEP) == pytest.approx(sum(j.task_seconds for j in jobs))
    assert demand_from_jobs([], STEP)[0].size == 0


def test_fit_from_job_records_produces_a_model() -> None:
    jobs = _jobs(3)
    policy = PredictivePolicy(n_estimators=20).fit(jobs)
    assert policy.model_ is not None and policy.n_train_rows_ > 500
    out = policy.decide(_obs(max(j.end_time for j in jobs) + STEP, 10))
    assert "forecast peak" in out.reason, out.reason
    assert policy.forecast_ is not None and policy.forecast_ >= 0

    empty = PredictivePolicy().fit([])
    assert empty.model_ is None


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
    assert loaded.forecast_mae_ == policy.forecast_mae_

    later = [_obs(start + 1800 + i * 120, int(rng.integers(0, 50)), busy=2) for i in range(60)]
    assert [loaded.decide(o) for o in later] == [policy.decide(o) for o in later]
    assert loaded.trained_until_ == policy.trained_until_


def test_load_refuses_another_policys_file(tmp_path: Path) -> None:
    path = tmp_path / "hpa.json"
    HpaPolicy().save(path)
    with pytest.raises(ValueError, match="hpa"):
        PredictivePolicy.load(path)


def test_unfitted_policy_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    PredictivePolicy(horizon_s=1800).save(path)
    loaded = PredictivePolicy.load(path)
    assert loaded.model_ is None and loaded.params.horizon_s == 1800


# ====================================================================== params
@pytest.mark.parametrize(
    "params",
    [
        {"bogus": 1},
        {"n_estimators": 0},
        {"horizon_s": 60, "step_s": 300},
        {"horizon_s": 2 * 86_400},
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
