"""The paper's regression baseline and the Ernest deadline planner, on hand-checked numbers.

Refits on the Thonglek et al. data are skipped when ../shared/data is absent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkscaler.core import ClusterState, Features, JobRecord, Observation, WorkerInfo
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.observe.driverlog import load_thonglek_logs
from sparkscaler.policies.planner import PlannerPolicy
from sparkscaler.policies.regression import (
    PUBLISHED_INSTANCES_COEF,
    PUBLISHED_SIZE_COEF,
    RegressionPolicy,
)

THONGLEK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thonglek-spark-runs"
needs_data = pytest.mark.skipif(
    not (THONGLEK / "worker1.csv").is_file() or not (THONGLEK / "1_workernodes").is_dir(),
    reason=f"the Thonglek et al. data set is not at {THONGLEK} (see ../shared/data/README.md)",
)

T0 = 1_700_000_000.0

#: t(s, n) = 10 + 120 s/n + 2 s + 0.5 n + log n: mostly parallel work.
PARALLEL = [10.0, 120.0, 2.0, 0.5, 1.0]
#: t(s, n) = 10 + 100 s + 0.5 n: all serial work plus a per-worker overhead.
SERIAL = [10.0, 0.0, 100.0, 0.5, 0.0]


def _model(coef: list[float], residuals: list[float] | None = None) -> RuntimeModel:
    res = residuals if residuals is not None else [0.0, 0.0]
    return RuntimeModel.from_dict(
        {
            "features": ["1", "s/n", "s", "n", "log n"],
            "coef": coef,
            "residuals": res,
            "n_runs": len(res),
            "source": "test",
        }
    )


def _worker(i: int) -> WorkerInfo:
    return WorkerInfo(
        id=f"w{i}", host="h", port=i, state="ALIVE", cores=4, cores_used=0, memory_mb=4096,
        memory_used_mb=0,
    )  # fmt: skip


def _obs(
    *,
    workers: int = 1,
    size_gb: float | None = 1.0,
    deadline_s: float | None = 120.0,
    elapsed_s: float | None = 0.0,
    min_workers: int = 0,
    max_workers: int | None = 10,
    features: Features | None = None,
    running: int = 0,
) -> Observation:
    return Observation(
        time=T0,
        cluster=ClusterState(workers=tuple(_worker(i) for i in range(workers))),
        running_tasks=running,
        input_bytes=None if size_gb is None else size_gb * 1e9,
        oldest_job_elapsed_s=elapsed_s,
        deadline_s=deadline_s,
        min_workers=min_workers,
        max_workers=max_workers,
        features=features or Features(),
    )


IDLE = dict(size_gb=None, deadline_s=None, elapsed_s=None)


def _job(i: int, size_gb: float, workers: int, seconds: float) -> JobRecord:
    return JobRecord(
        app_id=f"app-{i}", name="job", submit_time=T0 + 1000 * i, end_time=T0 + 1000 * i + seconds,
        tasks=10, failed_tasks=0, task_seconds=seconds, executors=workers, workers=workers,
        input_bytes=int(size_gb * 1e9), spark_jobs=1, success=True,
    )  # fmt: skip


def _p99_ms(decide, observations: list[Observation]) -> float:
    times = []
    for obs in observations:
        start = time.perf_counter()
        decide(obs)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 99))


# ======================================================================== regression


def test_regression_published_defaults_hand_computed() -> None:
    policy = RegressionPolicy()
    assert policy.size_coef_ == PUBLISHED_SIZE_COEF
    assert policy.instances_coef_ == PUBLISHED_INSTANCES_COEF
    # 2.01103 + 5.17337*2 - 0.02862*300 = 3.77177 -> 4
    d = policy.decide(_obs(size_gb=2.0, deadline_s=300, max_workers=5))
    assert d.target == 4 and d.policy == "regression"
    assert "regression says 4" in d.reason and d.model_version.startswith("1:published-0runs-")
    # 2.01103 + 5.17337*3 - 0.02862*60 = 15.81394 -> 16, capped at N = 5
    d = policy.decide(_obs(size_gb=3.0, deadline_s=60, max_workers=5))
    assert d.target == 5 and "capped at N = 5" in d.reason
    # 2.01103 + 5.17337*0.5 - 0.02862*600 = -12.57 -> -12, but a running job gets one worker
    assert policy.decide(_obs(size_gb=0.5, deadline_s=600)).target == 1
    # ... or the minimum, if that is more
    assert policy.decide(_obs(size_gb=0.5, deadline_s=600, min_workers=2)).target == 2


def test_regression_memory_proxy_hand_computed() -> None:
    # 1000 MB at 100 %: ma 0.5 % -> 5 MB, mt 1 % -> 10 MB
    # size = -0.03031 - 0.38603*5 + 0.56362*10 = 3.67574 GB
    # instances = 2.01103 + 5.17337*3.67574 - 0.02862*300 = 12.441 -> 13
    policy = RegressionPolicy(executor_memory_mb=1000.0)
    obs = _obs(size_gb=None, deadline_s=300, max_workers=20, features=Features(ma=0.5, mt=1.0))
    assert policy.predict_size(5.0, 10.0) == pytest.approx(3.67574)
    d = policy.decide(obs)
    assert d.target == 13 and "size from memory" in d.reason
    # "memory" ignores a known input size; "auto" prefers it (2 GB -> 4 as above).
    known = _obs(size_gb=2.0, deadline_s=300, max_workers=20, features=Features(ma=0.5, mt=1.0))
    assert (
        RegressionPolicy(executor_memory_mb=1000.0, size_source="memory").decide(known).target == 13
    )
    assert policy.decide(known).target == 4


def test_regression_without_size_deadline_or_job() -> None:
    policy = RegressionPolicy()
    d = policy.decide(_obs(workers=3, size_gb=None, deadline_s=300))
    assert d.target == 3 and "executor_memory_mb" in d.reason
    d = policy.decide(_obs(workers=3, size_gb=2.0, deadline_s=None))
    assert d.target == 3 and "no deadline" in d.reason
    # The param T stands in for a missing deadline: same as the first hand-computed case.
    assert RegressionPolicy(deadline_s=300).decide(_obs(size_gb=2.0, deadline_s=None)).target == 4
    d = policy.decide(_obs(workers=3, min_workers=1, **IDLE))
    assert d.target == 1 and "no job running" in d.reason


def test_regression_fit_on_jobs_refits_the_instance_model() -> None:
    # workers = 1 + 2*size - 0.01*seconds exactly, so an unanchored fit recovers (1, 2, -0.01).
    grid = [(1, 1), (2, 2), (2, 3), (3, 2), (3, 4), (1, 2)]  # (size GB, workers)
    jobs = [_job(i, s, n, 100 * (1 + 2 * s - n)) for i, (s, n) in enumerate(grid)]
    policy = RegressionPolicy(zero_anchor_runs=0)
    before = policy.model_version
    assert policy.fit(jobs[:4]).instances_coef_ == PUBLISHED_INSTANCES_COEF  # < min_runs (5)
    policy.fit(jobs)
    assert policy.instances_coef_ == pytest.approx((1.0, 2.0, -0.01), abs=1e-9)
    assert policy.size_coef_ == PUBLISHED_SIZE_COEF  # job records carry no memory features
    assert policy.model_version != before and ":jobs-6runs-" in policy.model_version
    # 1 + 2*2 - 0.01*300 = 2 -> 2
    d = policy.decide(_obs(size_gb=2.0, deadline_s=300))
    assert d.target == 2 and d.model_version == policy.model_version


def test_regression_save_load_round_trip(tmp_path: Path) -> None:
    grid = [(1, 1), (2, 2), (2, 3), (3, 2), (3, 4), (1, 2)]
    jobs = [_job(i, s, n, 100 * (1 + 2 * s - n)) for i, (s, n) in enumerate(grid)]
    policy = RegressionPolicy(zero_anchor_runs=0, deadline_s=250).fit(jobs)
    policy.save(tmp_path / "r.json")
    again = RegressionPolicy.load(tmp_path / "r.json")
    assert again.instances_coef_ == policy.instances_coef_
    assert again.get_params() == policy.get_params()
    for size in (0.5, 1.0, 2.0, 3.0, 5.0):
        for deadline in (None, 100.0, 300.0):
            obs = _obs(size_gb=size, deadline_s=deadline)
            assert again.decide(obs) == policy.decide(obs)


@dataclass(frozen=True)
class CsvRun:
    size_gb: float
    workers: int
    seconds: float
    avg_mem_action: float
    avg_mem_transformation: float


@needs_data
def test_regression_refit_on_the_papers_csv_reproduces_the_published_fit() -> None:
    """modelZ.R's data: worker{1,2,3}.csv, USED_B/USED_M in KB -> MB, plus its zero rows."""
    runs = [
        CsvRun(r.SIZE, n, r.TIME, r.USED_B / 1000, r.USED_M / 1000)
        for n in (1, 2, 3)
        for r in pd.read_csv(THONGLEK / f"worker{n}.csv").itertuples()
    ]
    policy = RegressionPolicy().fit_runs(runs)
    message = (
        f"refit on the {len(runs)} CSV runs + 25 zero rows per worker count: size "
        f"{np.round(policy.size_coef_, 5)}, instances {np.round(policy.instances_coef_, 5)}; "
        f"published {PUBLISHED_SIZE_COEF}, {PUBLISHED_INSTANCES_COEF}"
    )
    assert policy.size_coef_ == pytest.approx(PUBLISHED_SIZE_COEF, abs=5e-6), message
    assert policy.instances_coef_ == pytest.approx(PUBLISHED_INSTANCES_COEF, abs=5e-6), message


@needs_data
def test_regression_refit_on_the_driver_logs_has_the_published_form() -> None:
    """From the raw logs (our features and log run times) the same signs and structure come out."""
    runs = load_thonglek_logs(THONGLEK)
    anchored = RegressionPolicy().fit_runs(runs)
    plain = RegressionPolicy(zero_anchor_runs=0).fit_runs(runs)
    message = (
        f"refit on {len(runs)} driver logs (successful runs; size, workers from folders; time = "
        f"log span; avg_mem_* in MB): with modelZ.R's zero rows size "
        f"{np.round(anchored.size_coef_, 5)}, instances {np.round(anchored.instances_coef_, 5)}; "
        f"without them size {np.round(plain.size_coef_, 5)}, instances "
        f"{np.round(plain.instances_coef_, 5)}; published {PUBLISHED_SIZE_COEF}, "
        f"{PUBLISHED_INSTANCES_COEF}"
    )
    print(message)
    for fitted in (anchored, plain):
        assert np.sign(fitted.size_coef_[1:]).tolist() == [-1, 1], message
        assert np.sign(fitted.instances_coef_).tolist() == [1, 1, -1], message
    # With the zero rows, the log fit is close to the published one.
    assert anchored.size_coef_ == pytest.approx(PUBLISHED_SIZE_COEF, rel=0.25, abs=0.01), message
    assert anchored.instances_coef_ == pytest.approx(PUBLISHED_INSTANCES_COEF, rel=0.25), message
    # The published size model explains the logs' sizes well (mean error in GB).
    errors = [anchored.predict_size(r.avg_mem_action, r.avg_mem_transformation) - r.size_gb
              for r in runs]  # fmt: skip
    assert float(np.mean(np.abs(errors))) < 0.2, message


def test_regression_fit_runs_needs_two_worker_counts() -> None:
    runs = [CsvRun(1.0, 1, 100.0, 1.0, 2.0)] * 5
    with pytest.raises(ValueError, match="2 worker counts"):
        RegressionPolicy().fit_runs(runs)


@pytest.mark.timing  # wall-clock latency: run alone, before the lanes (Makefile)
def test_regression_decide_is_fast() -> None:
    policy = RegressionPolicy(executor_memory_mb=1000.0)
    obs = [_obs(size_gb=None if i % 2 else 1.0 + i % 7, deadline_s=300) for i in range(2000)]
    assert _p99_ms(policy.decide, obs) < 5.0


# =========================================================================== planner


def test_planner_serial_job_gets_fewer_workers_than_parallel_job() -> None:
    # 1 GB, T = 120 s, nothing done yet, margin 0 (zero residuals).
    # parallel: t(1,1) = 10+120+2+0.5 = 132.5 > 120; t(1,2) = 10+60+2+1+log 2 = 73.69 -> 2
    parallel = PlannerPolicy(model=_model(PARALLEL))
    d = parallel.decide(_obs(size_gb=1.0, deadline_s=120))
    assert d.target == 2 and "does not scale" not in d.reason
    # serial: t(1,1) = 10+100+0.5 = 110.5 <= 120 -> 1; t(1,10) = 115, speedup 0.96 < 1.1
    serial = PlannerPolicy(model=_model(SERIAL))
    d = serial.decide(_obs(size_gb=1.0, deadline_s=120))
    assert d.target == 1 and "does not scale" in d.reason
    assert d.model_version.startswith("1:given-2runs-")


def test_planner_margin_from_residual_quantile() -> None:
    # Residuals -0.1..0.3: the 0.9 quantile is 0.26, so t_q = 1.26 t.
    # T = 120: t_q(1,2) = 92.85 -> 2. T = 90: 92.85 > 90, t_q(1,3) = 1.26*54.60 = 68.79 -> 3.
    policy = PlannerPolicy(model=_model(PARALLEL, [-0.1, 0.0, 0.1, 0.2, 0.3]))
    assert policy.decide(_obs(size_gb=1.0, deadline_s=120)).target == 2
    assert policy.decide(_obs(size_gb=1.0, deadline_s=90)).target == 3
    # q = 0 -> margin max(0, -0.1) = 0: T = 90 is met by t(1,2) = 73.69
    loose = PlannerPolicy(model=_model(PARALLEL, [-0.1, 0.0, 0.1, 0.2, 0.3]), q=0.0)
    assert loose.decide(_obs(size_gb=1.0, deadline_s=90)).target == 2


def test_planner_running_job_uses_remaining_time() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL))
    # A fresh 1 GB job with T = 60: t(1,3) = 54.60 -> 3.
    assert policy.decide(_obs(size_gb=1.0, deadline_s=60)).target == 3
    # The same job after 30 s on 1 worker: done f = 30/132.5 = 0.2264, 30 s left;
    # (1-f) t(1,n) = 57.0, 42.2, 35.1, 31.0 for n = 2..5, 28.46 for n = 6 -> 6.
    d = policy.decide(_obs(workers=1, size_gb=1.0, deadline_s=60, elapsed_s=30))
    assert d.target == 6 and "~23% done" in d.reason
    # After 60 s of T = 120 on 1 worker: f = 0.4528, 60 s left; (1-f) t(1,1) = 72.5,
    # (1-f) t(1,2) = 40.3 -> 2.
    assert policy.decide(_obs(workers=1, size_gb=1.0, deadline_s=120, elapsed_s=60)).target == 2
    # Past its own prediction (t(1,2) = 73.7 s on 2 workers, 80 s elapsed): N if it scales ...
    d = policy.decide(_obs(workers=2, size_gb=1.0, deadline_s=120, elapsed_s=80))
    assert d.target == 10 and "past its predicted time" in d.reason
    # ... and the current size if it does not (t(1,2) = 111 s on 2 workers, 115 s elapsed).
    d = PlannerPolicy(model=_model(SERIAL)).decide(
        _obs(workers=2, size_gb=1.0, deadline_s=200, elapsed_s=115)
    )
    assert d.target == 2 and "does not scale" in d.reason


def test_planner_no_job_gives_min_workers() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL))
    d = policy.decide(_obs(workers=4, min_workers=1, **IDLE))
    assert d.target == 1 and "no job running" in d.reason
    assert policy.decide(_obs(workers=4, **IDLE)).target == 0


def test_planner_impossible_deadline_gives_max_workers() -> None:
    # The fastest the parallel model gets on up to 10 workers is t(1,10) = 31.3 s > 30 s.
    d = PlannerPolicy(model=_model(PARALLEL)).decide(_obs(size_gb=1.0, deadline_s=30))
    assert d.target == 10 and "deadline cannot be met" in d.reason
    # N comes from the observation, else from the param.
    d = PlannerPolicy(model=_model(PARALLEL), max_workers=7).decide(
        _obs(size_gb=1.0, deadline_s=30, max_workers=None)
    )
    assert d.target == 7
    # A job that does not scale gets no extra workers for a lost cause: t(1,1) = 110.5 > 60.
    d = PlannerPolicy(model=_model(SERIAL)).decide(_obs(size_gb=1.0, deadline_s=60, min_workers=1))
    assert d.target == 1
    assert "deadline cannot be met" in d.reason and "does not scale" in d.reason


def test_planner_without_model_size_or_deadline() -> None:
    d = PlannerPolicy().decide(_obs(size_gb=1.0, deadline_s=120))
    assert d.target == 10 and "no runtime model yet (0 of 5" in d.reason
    assert d.model_version == "1:none"
    policy = PlannerPolicy(model=_model(PARALLEL))
    d = policy.decide(_obs(size_gb=None, deadline_s=120, max_workers=6))
    assert d.target == 6 and "input size unknown" in d.reason
    d = policy.decide(_obs(workers=3, size_gb=1.0, deadline_s=None))
    assert d.target == 3 and "no deadline" in d.reason
    # The param T stands in for a missing deadline.
    fallback = PlannerPolicy(model=_model(PARALLEL), deadline_s=120)
    assert fallback.decide(_obs(size_gb=1.0, deadline_s=None)).target == 2


def test_planner_online_refit_changes_decisions() -> None:
    """Starts with a serial model; jobs that ran like the parallel model teach it otherwise."""
    coef = np.array(PARALLEL)
    grid = [(s, n) for s in (0.5, 1.0, 2.0) for n in (1, 2, 4, 8)]
    jobs = []
    for i, (s, n) in enumerate(grid):
        t = coef @ [1.0, s / n, s, n, math.log(n)]
        jobs.append(_job(i, s, n, float(t)))
    policy = PlannerPolicy(model=_model(SERIAL))
    obs = _obs(size_gb=1.0, deadline_s=120)
    assert policy.decide(obs).target == 1
    policy.fit(jobs[:4])  # fewer than min_runs = 5: still the given model
    assert policy.decide(obs).target == 1 and policy.jobs_seen_ == 4
    before = policy.model_version
    policy.fit(jobs)  # 12 exact runs: NNLS recovers the parallel model -> 2, as above
    assert policy.model_.coef_ == pytest.approx(PARALLEL, abs=1e-6)
    d = policy.decide(obs)
    assert d.target == 2 and d.model_version != before and ":jobs-12runs-" in d.model_version


def test_planner_save_load_round_trip(tmp_path: Path) -> None:
    model = _model(PARALLEL, [-0.1, 0.0, 0.1, 0.2, 0.3])
    model.save(tmp_path / "model.json")
    policy = PlannerPolicy(model_path=str(tmp_path / "model.json"), q=0.8)
    assert policy.model_version.startswith("1:given-5runs-")
    policy.save(tmp_path / "planner.json")
    (tmp_path / "model.json").unlink()  # the policy file alone must be enough
    again = PlannerPolicy.load(tmp_path / "planner.json")
    assert again.get_params() == policy.get_params()
    assert again.model_version == policy.model_version
    for size in (0.25, 0.5, 1.0, 2.0, 4.0):
        for deadline in (30.0, 60.0, 90.0, 120.0, 400.0):
            for workers, elapsed in ((0, None), (1, 0.0), (2, 20.0), (3, 50.0)):
                obs = _obs(workers=workers, size_gb=size, deadline_s=deadline, elapsed_s=elapsed)
                assert again.decide(obs) == policy.decide(obs)
    # Without a model, too.
    PlannerPolicy().save(tmp_path / "empty.json")
    assert PlannerPolicy.load(tmp_path / "empty.json").decide(_obs()).target == 10
    RegressionPolicy().save(tmp_path / "r.json")
    with pytest.raises(ValueError, match="not 'planner'"):
        PlannerPolicy.load(tmp_path / "r.json")


@pytest.mark.timing  # wall-clock latency: run alone, before the lanes (Makefile)
def test_planner_decide_is_fast() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL, list(np.linspace(-0.2, 0.3, 50))))
    obs = [
        _obs(workers=1 + i % 5, size_gb=0.5 + i % 9, deadline_s=60 + i % 300, elapsed_s=i % 40)
        for i in range(2000)
    ]
    assert _p99_ms(policy.decide, obs) < 5.0
