"""The hybrid policy: which part decides, and that the others only ever keep the cluster up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkscaler.configfile import ConfigError, config_from_dict
from sparkscaler.core import (
    ClusterState,
    JobContext,
    JobRecord,
    Observation,
    StageProgress,
    StageSummary,
    WorkerInfo,
)
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies import make_policy
from sparkscaler.policies.dra import DynamicAllocationPolicy
from sparkscaler.policies.hybrid import HybridPolicy, unplanned_load

NOW = 1_767_600_000.0  # a Monday afternoon (UTC)


def _obs(
    workers: int = 1,
    running: int = 0,
    pending: int = 0,
    backlog_s: float = 0.0,
    deadline_s: float | None = None,
    input_bytes: float | None = None,
    elapsed: float | None = None,
    time: float = NOW,
    jobs: tuple[JobContext, ...] = (),
) -> Observation:
    busy = min(workers, running)
    cluster = ClusterState(
        workers=tuple(
            WorkerInfo(f"w{i}", f"h{i}", 0, "ALIVE", 1, 1, 1024, 1024, running_tasks=int(i < busy))
            for i in range(workers)
        )
    )
    return Observation(
        time=time,
        cluster=cluster,
        running_tasks=running,
        pending_tasks=pending,
        backlog_age_s=backlog_s,
        deadline_s=deadline_s,
        input_bytes=input_bytes,
        oldest_job_elapsed_s=elapsed,
        min_workers=1,
        max_workers=6,
        jobs=jobs,
    )


def _job(
    app: str,
    signature: str,
    *,
    deadline_s: float | None = 60.0,
    running: int = 0,
    pending: int = 0,
    cores: int = 0,
) -> JobContext:
    """A fresh 1 GB job with one stage of ``running + pending`` tasks (10 when none)."""
    tasks = running + pending or 10
    return JobContext(
        app, signature, signature, 0.0, deadline_s, 1e9, "declared",
        (StageProgress(0, tasks, 0, running),), cores,
    )  # fmt: skip


def _run(i: int, size_gb: float, workers: int, signature: str = "etl") -> JobRecord:
    """A finished run of a purely parallel job: 100 task-s per GB over its workers."""
    seconds = 100.0 * size_gb / workers
    return JobRecord(
        f"{signature}-{i}", signature, NOW - 10_000 + 1000 * i, NOW - 10_000 + 1000 * i + seconds,
        10, 0, 100.0 * size_gb, workers, workers, int(size_gb * 1e9), 1, True,
        signature=signature, stages=(StageSummary(0, 10, 100.0 * size_gb),),
    )  # fmt: skip


def test_a_backlog_without_history_is_handled_by_the_reactive_part() -> None:
    hybrid = HybridPolicy()
    obs = _obs(workers=1, running=1, pending=10, backlog_s=5.0)
    decision = hybrid.decide(obs)
    reactive = DynamicAllocationPolicy().decide(obs)
    assert decision.policy == "hybrid"
    # The forecaster has no history: it falls back to ceil(demand / slots) = 11 → max 6;
    # Spark's ramp adds 1 → 2. The higher, the fallback forecast, decides.
    assert decision.target == 6
    assert decision.reason.startswith("predictive floor decided")
    assert f"reactive {reactive.target}" in decision.reason


def test_a_learned_peak_raises_the_floor_while_a_job_runs_not_while_idle() -> None:
    hybrid = HybridPolicy()
    past = np.arange(NOW - 28 * 86400, NOW, 300.0)
    hybrid.predictive_.fit_series(past, np.full(len(past), 5.0))  # 5 busy slots all day
    # One task running: the floor of the load forecast for the next minutes holds 5 workers
    # ready for the jobs that arrive while this one runs.
    decision = hybrid.decide(_obs(workers=1, running=1))
    assert decision.target == 5
    assert decision.reason.startswith("predictive floor decided")
    assert decision.forecast_tasks == pytest.approx(5.0, abs=0.5)  # the forecaster's, passed on
    # An idle cluster: the forecast is still made and shown, but not applied.
    idle = hybrid.decide(_obs(workers=1, running=0, time=NOW + 1))
    assert idle.target == 1
    assert idle.reason.startswith("reactive decided")
    assert "predictive floor 5 (idle cluster: not applied)" in idle.reason
    assert idle.forecast_tasks == pytest.approx(5.0, abs=0.5)


def test_the_planner_takes_part_from_the_start_for_the_signatures_it_knows() -> None:
    obs = _obs(
        workers=1,
        running=1,
        pending=9,
        backlog_s=5.0,
        jobs=(_job("a1", "etl", running=1, pending=9, cores=1),),
    )
    # Never seen, no prior: the reactive rule and the fallback forecast decide (N = 6).
    unknown = HybridPolicy().decide(obs)
    assert not unknown.reason.startswith("deadline planner") and unknown.predicted_s == {}
    # Three runs of etl (no prior model): 100 s of work per GB, T = 60 -> 2 workers (the
    # margin of its leave-one-out errors is 0 for exact runs); 9.5 of its 10 tasks left (the
    # running one counts half done): 47.5 s.
    hybrid = HybridPolicy().fit([_run(0, 1.0, 1), _run(1, 2.0, 2), _run(2, 1.5, 3)])
    decision = hybrid.decide(obs)
    assert decision.target == 2 and decision.reason.startswith("deadline planner decided")
    assert "etl: work of 3 runs, scaled by size" in decision.reason
    assert decision.predicted_s == {"a1": pytest.approx(47.5)}
    assert ":planner-1:noprior-1sig-3runs-" in decision.model_version


def test_a_job_of_a_new_signature_is_left_to_the_reactive_rule() -> None:
    hybrid = HybridPolicy().fit([_run(0, 1.0, 1), _run(1, 2.0, 2), _run(2, 1.5, 3)])
    planned = _job("a1", "etl", pending=10)
    new = _job("a2", "kmeans", running=1, pending=9, cores=1)
    obs = _obs(workers=2, running=1, pending=19, backlog_s=5.0, jobs=(planned, new))
    decision = hybrid.decide(obs)
    # etl: 2 workers set aside for it; kmeans' 10 tasks on what is left (none): Spark's ramp
    # adds 1 -> 2 + 1.
    assert decision.target == 3 and decision.reason.startswith("deadline planner decided")
    assert "kmeans: new signature: reactive" in decision.reason
    assert "2 planned + reactive 1" in decision.reason
    assert set(decision.predicted_s) == {"a1"}
    # Without the new job, only the planned one counts: its backlog does not vote.
    alone = _obs(workers=2, running=0, pending=10, backlog_s=5.0, jobs=(planned,))
    assert hybrid.decide(alone).target == 2


def test_unplanned_load_is_only_the_unplanned_jobs_tasks_on_the_workers_left() -> None:
    busy = _obs(workers=4, running=3, pending=5, backlog_s=3.0)
    job = _job("a2", "kmeans", running=2, pending=4, cores=2)
    load = unplanned_load(busy, [job], 3)
    assert (load.running_tasks, load.pending_tasks, load.backlog_age_s) == (2, 4, 3.0)
    assert load.workers == 1 and load.max_workers == 3 and load.jobs == (job,)
    # the busy workers go to the planned jobs first, the idle one stays for the reactive rule
    assert [w.busy for w in load.cluster.workers] == [False]
    done = JobContext("a3", "kmeans", "kmeans", 9.0, stages=(StageProgress(0, 4, 4, 0),))
    assert unplanned_load(busy, [done], 0).backlog_age_s == 0.0


def test_while_the_planner_sizes_a_deadline_job_a_backlog_does_not_outvote_it() -> None:
    sizes = np.array([1.0, 2.0, 1.0, 2.0, 3.0, 3.0])
    workers = np.array([1, 1, 2, 2, 1, 3])
    model = RuntimeModel().fit(sizes, workers, 100.0 * sizes / workers)
    job = _job("a1", "etl", running=1, pending=30, cores=1)
    obs = _obs(workers=1, running=1, pending=30, backlog_s=20.0, jobs=(job,))
    # The prior model (a loop's runtime model) plans etl from the start: 100 s / 2 <= 60.
    decision = HybridPolicy(planner_model=model).decide(obs)
    assert decision.target == 2
    assert decision.reason.startswith("deadline planner decided")
    assert "etl: prior model" in decision.reason
    # A trained forecast still raises the floor above the planner's size.
    hybrid = HybridPolicy(planner_model=model)
    past = np.arange(NOW - 28 * 86400, NOW, 300.0)
    hybrid.predictive_.fit_series(past, np.full(len(past), 5.0))
    assert hybrid.decide(obs).target == 5


def test_nested_parameters_are_validated_by_each_part() -> None:
    config = config_from_dict(
        {"policy": {"name": "hybrid", "params": {"reactive": {"idle_timeout_s": 30}}}}
    )
    assert make_policy("hybrid", config.policy.params).reactive_.params.idle_timeout_s == 30
    with pytest.raises(ConfigError) as error:
        config_from_dict(
            {"policy": {"name": "hybrid", "params": {"reactive": {"idle_timeout_s": -1}}}}
        )
    assert any("policy.params.reactive.idle_timeout_s" in p for p in error.value.problems)


def test_save_and_load_keep_what_the_parts_learned(tmp_path: Path) -> None:
    hybrid = HybridPolicy().fit([_run(0, 1.0, 1), _run(1, 2.0, 2), _run(2, 1.5, 3)])
    past = np.arange(NOW - 28 * 86400, NOW, 300.0)
    hybrid.predictive_.fit_series(past, np.full(len(past), 4.0))
    hybrid.save(tmp_path / "hybrid.json")
    loaded = HybridPolicy.load(tmp_path / "hybrid.json")
    obs = _obs(workers=1, running=1)
    assert loaded.decide(obs).target == hybrid.decide(obs).target == 4
    planned = _obs(workers=1, jobs=(_job("a1", "etl", deadline_s=30.0),))
    assert loaded.decide(planned) == hybrid.decide(planned)
    assert "etl: work of 3 runs" in loaded.decide(planned).reason


def test_hybrid_is_the_default_policy() -> None:
    assert config_from_dict({}).policy.name == "hybrid"
