"""The paper's regression baseline and the Ernest deadline planner, on hand-checked numbers.

Refits on the Thonglek et al. data are skipped when ../shared/data is absent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkscaler.core import (
    ClusterState,
    Features,
    JobContext,
    JobRecord,
    Observation,
    StageProgress,
    StageSummary,
    WorkerInfo,
)
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
#
# Hand-checked with the prior model PARALLEL: t(s, n) = 10 + 120 s/n + 2 s + 0.5 n + log n, whose
# serial part is S(s, n) = 10 + 2 s + 0.5 n + log n and parallel part P(s, n) = 120 s / n; a job
# of 1 GB has 120 task-seconds of work (P on one 1-core worker).


def _ctx(
    app: str = "app-1",
    *,
    signature: str = "etl",
    size_gb: float | None = 1.0,
    deadline_s: float | None = 120.0,
    elapsed_s: float = 0.0,
    stages: tuple[StageProgress, ...] = (),
    cores: int = 0,
    max_cores: int | None = None,
) -> JobContext:
    return JobContext(
        app_id=app, name=signature, signature=signature, elapsed_s=elapsed_s,
        deadline_s=deadline_s, input_bytes=None if size_gb is None else size_gb * 1e9,
        input_source="unknown" if size_gb is None else "declared", stages=stages, cores=cores,
        max_cores=max_cores,
    )  # fmt: skip


def _one_core(i: int) -> WorkerInfo:
    return WorkerInfo(f"w{i}", "h", i, "ALIVE", 1, 0, 1024, 0)


def _pobs(
    *jobs: JobContext, workers: int = 1, min_workers: int = 0, max_workers: int | None = 10
) -> Observation:
    return Observation(
        time=T0,
        cluster=ClusterState(workers=tuple(_one_core(i) for i in range(workers))),
        min_workers=min_workers,
        max_workers=max_workers,
        jobs=jobs,
        oldest_job_elapsed_s=max((j.elapsed_s for j in jobs), default=None),
    )


def _half_done(task_s: float, elapsed_s: float, cores: int) -> tuple[StageProgress, ...]:
    """One stage of 10 tasks, 5 of them done in ``task_s`` seconds each."""
    return (StageProgress(0, 10, 5, 0, 5 * task_s),)


def test_planner_serial_job_gets_fewer_workers_than_parallel_job() -> None:
    # 1 GB, T = 120 s, nothing done yet, margin 0 (zero residuals).
    # parallel: t(1,1) = 132.5 > 120; t(1,2) = 10+60+2+1+log 2 = 73.69 -> 2
    parallel = PlannerPolicy(model=_model(PARALLEL))
    d = parallel.decide(_pobs(_ctx()))
    assert d.target == 2 and d.predicted_s == {"app-1": pytest.approx(73.693, abs=1e-3)}
    assert "etl: prior model" in d.reason and "2 worker(s) meet T" in d.reason
    # serial: t(1,1) = 10+100+0.5 = 110.5 <= 120 -> 1
    serial = PlannerPolicy(model=_model(SERIAL))
    d = serial.decide(_pobs(_ctx()))
    assert d.target == 1 and d.model_version.startswith("1:prior-0sig-0runs-")


def test_planner_margin_from_residual_quantile() -> None:
    # Residuals -0.1..0.3: the 0.9 quantile is 0.26, so t_q = 1.26 t.
    # T = 120: t_q(1,2) = 92.85 -> 2. T = 90: 92.85 > 90, t_q(1,3) = 1.26*54.60 = 68.79 -> 3.
    policy = PlannerPolicy(model=_model(PARALLEL, [-0.1, 0.0, 0.1, 0.2, 0.3]))
    assert policy.decide(_pobs(_ctx(deadline_s=120))).target == 2
    assert policy.decide(_pobs(_ctx(deadline_s=90))).target == 3
    # q = 0 -> margin max(0, -0.1) = 0: T = 90 is met by t(1,2) = 73.69
    loose = PlannerPolicy(model=_model(PARALLEL, [-0.1, 0.0, 0.1, 0.2, 0.3]), q=0.0)
    assert loose.decide(_pobs(_ctx(deadline_s=90))).target == 2


def test_planner_scales_out_as_soon_as_the_projected_finish_passes_t() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL))
    # Half of 10 tasks done at the expected 12 s each, after the 12.5 s serial part on 1 worker:
    # elapsed 72.5 s, 60 task-s left -> P(1,n)/2 = 60/n, plus the serial part still to come on
    # n workers, S(1,n) - 12.5 = 0.5 n + log n - 0.5. T = 120: 47.5 s left; n = 1: 60 > 47.5;
    # n = 2: 30 + 1.19 = 31.19 -> 2.
    on_pace = _ctx(elapsed_s=72.5, stages=_half_done(12.0, 72.5, 1), cores=1)
    d = policy.decide(_pobs(on_pace))
    assert d.target == 2 and "~50% done" in d.reason
    assert d.predicted_s["app-1"] == pytest.approx(72.5 + 31.193, abs=1e-3)
    # The same point of a run whose tasks take 24 s (twice the history's): 132.5 s elapsed,
    # task time (5 * 24 + 4 * 12) / 9 = 18.67 s (prior_tasks = 4), 93.33 task-s left. With
    # 80 s left (T = 212.5) history alone says 1 worker (60 s); its own pace says 93.3 > 80,
    # so 2 (46.67 + 1.19).
    slow = _ctx(elapsed_s=132.5, deadline_s=212.5, stages=_half_done(24.0, 132.5, 1), cores=1)
    d = policy.decide(_pobs(slow))
    assert d.target == 2
    assert d.predicted_s["app-1"] == pytest.approx(132.5 + 93.333 / 2 + 1.193, abs=1e-2)
    fast = _ctx(elapsed_s=132.5, deadline_s=212.5, stages=_half_done(12.0, 132.5, 1), cores=1)
    assert policy.decide(_pobs(fast)).target == 1


def test_planner_shrinks_a_running_job_only_with_slack_to_spare() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL))

    # On 4 workers, half done at pace: 60 task-s done in 15 s, elapsed 27.5 (serial 12.5 done).
    # Left on n: 60/n + 0.5 n + log n - 0.5 = 60, 31.19, 22.10, 17.89 for n = 1..4.
    def job(deadline: float) -> JobContext:
        return _ctx(elapsed_s=27.5, deadline_s=deadline, stages=_half_done(12.0, 27.5, 4), cores=4)

    # 35 s left: 2 meet T, but only with 6 % to spare; with the 20 % slack (28 s) 3 do.
    assert policy.decide(_pobs(job(27.5 + 35.0), workers=4)).target == 3
    # 40 s left: 2 meet even 32 s.
    assert policy.decide(_pobs(job(27.5 + 40.0), workers=4)).target == 2
    # 20 s left: no size with slack but the current one; 4 meet T (17.89), so 4 stay.
    assert policy.decide(_pobs(job(27.5 + 20.0), workers=4)).target == 4
    # A job that has not started yet is not "shrunk": the smallest that meets T.
    fresh = _ctx(deadline_s=120.0, cores=4)
    assert policy.decide(_pobs(fresh, workers=4)).target == 2


def test_planner_sums_jobs_that_run_side_by_side_and_queues_those_that_do_not() -> None:
    # Two fresh 1 GB jobs capped at spark.cores.max = 2 (1-core workers): each sized alone.
    # A: T = 120 -> 2 (t(1,2) = 73.7); B: T = 150 -> 1 (t(1,1) = 132.5). Target 3.
    policy = PlannerPolicy(model=_model(PARALLEL))
    a = _ctx("app-a", deadline_s=120.0, max_cores=2)
    b = _ctx("app-b", signature="report", deadline_s=150.0, max_cores=2)
    d = policy.decide(_pobs(a, b))
    assert d.target == 3 and set(d.predicted_s) == {"app-a", "app-b"}
    assert d.predicted_s["app-b"] == pytest.approx(132.5)
    assert "etl: prior model" in d.reason and "report: prior model" in d.reason
    # Without a cap they run one after another on the same workers: B finishes t(1,n) + 120/n
    # after A. With no queue slack, T_B = 130: n = 2 gives 133.7 > 130; n = 3: 54.6 + 40 -> 3.
    a, b = _ctx("app-a", deadline_s=120.0), _ctx("app-b", signature="report", deadline_s=130.0)
    d = PlannerPolicy(model=_model(PARALLEL), queue_slack=0.0).decide(_pobs(a, b))
    assert d.target == 3 and "behind 1 job(s) on the same workers" in d.reason
    assert d.predicted_s["app-b"] == pytest.approx(54.599 + 40.0, abs=1e-3)
    # With the default 60 % slack both must fit 40 % of their time left: 48 and 52 s.
    # n = 7: A 34.6 s, B 51.7 s; n = 6: B 56.8 s -> 7.
    assert policy.decide(_pobs(a, b)).target == 7


def test_planner_provisioning_delay_counts_until_the_new_workers_arrive() -> None:
    # T = 90 on 1 alive worker: without a delay t(1,2) = 73.7 -> 2; with d = 40 s the first
    # 40 s run at 1/n of the rate: 2 -> 73.7 + 20 > 90; 3 -> 54.6 + 26.7 = 81.3 -> 3.
    assert PlannerPolicy(model=_model(PARALLEL)).decide(_pobs(_ctx(deadline_s=90))).target == 2
    late = PlannerPolicy(model=_model(PARALLEL), provisioning_s=40.0)
    assert late.decide(_pobs(_ctx(deadline_s=90))).target == 3
    # Idle workers no job holds are ready at once: with 3 of them, 3 workers pay no delay.
    assert late.decide(_pobs(_ctx(deadline_s=90), workers=3)).target == 2


def test_planner_counts_a_pending_worker_as_the_delay_left_since_it_was_asked_for() -> None:
    # T = 90, d = 40 s, 1 ALIVE worker and 1 PROVISIONING. Asked for just now, it is 40 s away
    # like a new one: 2 -> 73.7 + 40/2 = 93.7 > 90; 3 -> 54.6 + (40 + 40)/3 = 81.3 -> 3.
    # Asked for 35 s ago it is 5 s away: 2 -> 73.7 + 5/2 = 76.2 -> 2, and at 50 s ago, 0 s.
    def booting(pending_s: float) -> Observation:
        obs = _pobs(_ctx(deadline_s=90))
        coming = WorkerInfo("pending-h1", "h1", 0, "PROVISIONING", 1, 0, 1024, 0, 0.0, 0, pending_s)
        return replace(obs, cluster=ClusterState(workers=(*obs.cluster.workers, coming)))

    late = PlannerPolicy(model=_model(PARALLEL), provisioning_s=40.0)
    assert late.decide(booting(0.0)).target == 3
    d = late.decide(booting(35.0))
    assert d.target == 2 and d.predicted_s["app-1"] == pytest.approx(73.693 + 2.5, abs=1e-3)
    assert late.decide(booting(50.0)).predicted_s["app-1"] == pytest.approx(73.693, abs=1e-3)


def test_planner_no_job_gives_min_workers() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL))
    d = policy.decide(_pobs(workers=4, min_workers=1))
    assert d.target == 1 and "no job running" in d.reason
    assert policy.decide(_pobs(workers=4)).target == 0
    # Applications running that no job context describes yet: hold the size.
    d = policy.decide(_obs(workers=3, size_gb=1.0, deadline_s=120, elapsed_s=5.0))
    assert d.target == 3 and "not yet seen job by job" in d.reason


def test_planner_impossible_deadline_gives_all_the_job_can_use() -> None:
    # The fastest the parallel model gets on up to 10 workers is t(1,10) = 31.3 s > 30 s.
    d = PlannerPolicy(model=_model(PARALLEL)).decide(_pobs(_ctx(deadline_s=30)))
    assert d.target == 10 and "deadline cannot be met" in d.reason
    # N comes from the observation, else from the param; a core cap limits it.
    d = PlannerPolicy(model=_model(PARALLEL), max_workers=7).decide(
        _pobs(_ctx(deadline_s=30), max_workers=None)
    )
    assert d.target == 7
    d = PlannerPolicy(model=_model(PARALLEL)).decide(_pobs(_ctx(deadline_s=30, max_cores=3)))
    assert d.target == 3
    # A job that does not scale gets no extra workers for a lost cause: t(1,1) = 110.5 > 60.
    d = PlannerPolicy(model=_model(SERIAL)).decide(_pobs(_ctx(deadline_s=60), min_workers=1))
    assert d.target == 1 and "more workers do not help" in d.reason


def test_planner_a_new_signature_or_a_job_without_deadline() -> None:
    # No prior model and no history: the job is not planned; alone, the planner gives it N.
    d = PlannerPolicy().decide(_pobs(_ctx(max_cores=4), workers=1))
    assert d.target == 4 and "etl: new signature" in d.reason and d.predicted_s == {}
    assert d.model_version.startswith("1:noprior-0sig-0runs-")
    # No deadline: it holds what it has (its cores), whatever the knowledge.
    d = PlannerPolicy(model=_model(PARALLEL)).decide(
        _pobs(_ctx(deadline_s=None, cores=3), workers=3)
    )
    assert d.target == 3 and "no deadline" in d.reason
    # The param T stands in for a missing deadline.
    fallback = PlannerPolicy(model=_model(PARALLEL), deadline_s=120)
    assert fallback.decide(_pobs(_ctx(deadline_s=None))).target == 2


def _etl_run(i: int, size_gb: float, workers: int, *, signature: str = "etl") -> JobRecord:
    """A run that follows PARALLEL exactly, with its serial part and its 120 task-s per GB."""
    n = workers
    serial = 10.0 + 2.0 * size_gb + 0.5 * n + math.log(n)
    seconds = serial + 120.0 * size_gb / n
    return JobRecord(
        app_id=f"{signature}-{i}", name=signature, submit_time=T0 + 1000 * i,
        end_time=T0 + 1000 * i + seconds, tasks=64, failed_tasks=0,
        task_seconds=120.0 * size_gb, executors=n, workers=n, input_bytes=int(size_gb * 1e9),
        spark_jobs=1, success=True, signature=signature,
        stages=(StageSummary(0, 64, 120.0 * size_gb),), serial_s=serial,
    )  # fmt: skip


def test_planner_learns_each_signature_from_its_runs() -> None:
    """Starts with a serial prior; runs of etl that went like PARALLEL teach it otherwise, and
    only about etl."""
    policy = PlannerPolicy(model=_model(SERIAL))
    obs = _pobs(_ctx(), _ctx("app-2", signature="other", max_cores=1))
    assert policy.decide(_pobs(_ctx())).target == 1  # serial prior: t(1,1) = 110.5
    grid = [(0.5, 1), (1.0, 2), (2.0, 4), (1.0, 8), (2.0, 1)]
    policy.fit([_etl_run(i, s, n) for i, (s, n) in enumerate(grid)])
    d = policy.decide(obs)
    assert "etl: " in d.reason and "etl: prior model" not in d.reason
    assert "other: prior model" in d.reason  # other is still planned on the prior
    assert d.target == 2 + 1  # etl like PARALLEL needs 2; other (serial prior, cap 1) 1
    assert d.model_version.startswith("1:prior-1sig-5runs-")
    one = PlannerPolicy().fit([_etl_run(0, 1.0, 1)])  # no prior: one run, scaled by size
    d = one.decide(_pobs(_ctx(size_gb=2.0, deadline_s=200.0)))
    assert "etl: 1 run, scaled by size" in d.reason
    # 2 GB: its serial 12.5 s fixed + 240 task-s over n -> n = 2: 132.5 s (with the 20 %
    # default margin 159 s <= 200); n = 1: 252.5 s.
    assert d.target == 2 and d.predicted_s["app-1"] == pytest.approx(132.5)
    assert "predicted 159 s left with margin" in d.reason


def test_planner_save_load_round_trip(tmp_path: Path) -> None:
    model = _model(PARALLEL, [-0.1, 0.0, 0.1, 0.2, 0.3])
    model.save(tmp_path / "model.json")
    policy = PlannerPolicy(model_path=str(tmp_path / "model.json"), q=0.8)
    policy.fit([_etl_run(i, s, n) for i, (s, n) in enumerate([(0.5, 1), (1.0, 2), (2.0, 4)])])
    assert policy.model_version.startswith("1:prior-1sig-3runs-")
    policy.save(tmp_path / "planner.json")
    (tmp_path / "model.json").unlink()  # the policy file alone must be enough
    again = PlannerPolicy.load(tmp_path / "planner.json")
    assert again.get_params() == policy.get_params()
    assert again.model_version == policy.model_version
    for size in (0.25, 1.0, 4.0):
        for deadline in (30.0, 90.0, 400.0):
            for workers, elapsed in ((0, 0.0), (1, 0.0), (2, 20.0), (3, 50.0)):
                for signature in ("etl", "other"):
                    job = _ctx(signature=signature, size_gb=size, deadline_s=deadline,
                               elapsed_s=elapsed, cores=workers)  # fmt: skip
                    obs = _pobs(job, workers=workers)
                    assert again.decide(obs) == policy.decide(obs)
    # Without a model, too.
    PlannerPolicy().save(tmp_path / "empty.json")
    assert PlannerPolicy.load(tmp_path / "empty.json").decide(_pobs(_ctx())).target == 10
    RegressionPolicy().save(tmp_path / "r.json")
    with pytest.raises(ValueError, match="not 'planner'"):
        PlannerPolicy.load(tmp_path / "r.json")


@pytest.mark.timing  # wall-clock latency: run alone, before the lanes (Makefile)
def test_planner_decide_is_fast() -> None:
    policy = PlannerPolicy(model=_model(PARALLEL, list(np.linspace(-0.2, 0.3, 50))))
    policy.fit([_etl_run(i, 0.5 + i % 4, 1 + i % 5) for i in range(30)])
    obs = [
        _pobs(
            *(
                _ctx(
                    f"app-{j}",
                    signature=("etl", "new")[j % 2],
                    size_gb=0.5 + (i + j) % 9,
                    deadline_s=60 + i % 300,
                    elapsed_s=i % 40,
                    stages=(StageProgress(0, 64, i % 64, 1, (i % 64) * 2.0),),
                    cores=1 + j,
                )
                for j in range(1 + i % 3)
            ),
            workers=1 + i % 5,
        )
        for i in range(2000)
    ]
    assert _p99_ms(policy.decide, obs) < 5.0
