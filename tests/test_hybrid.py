"""The hybrid policy: which part decides, and that the others only ever keep the cluster up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkscaler.configfile import ConfigError, config_from_dict
from sparkscaler.core import ClusterState, Observation, WorkerInfo
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies import make_policy
from sparkscaler.policies.dra import DynamicAllocationPolicy
from sparkscaler.policies.hybrid import HybridPolicy

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
    )


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


def test_a_learned_peak_raises_the_floor_before_the_load() -> None:
    hybrid = HybridPolicy()
    past = np.arange(NOW - 28 * 86400, NOW, 300.0)
    hybrid.predictive_.fit_series(past, np.full(len(past), 5.0))  # 5 busy slots all day
    decision = hybrid.decide(_obs(workers=1, running=0))
    assert decision.target == 5
    assert decision.reason.startswith("predictive floor decided")
    assert decision.forecast_tasks == pytest.approx(5.0, abs=0.5)  # the forecaster's, passed on


def test_the_planner_sizes_a_job_for_its_deadline_once_it_has_a_model() -> None:
    sizes = np.array([1.0, 2.0, 1.0, 2.0, 3.0, 3.0])
    workers = np.array([1, 1, 2, 2, 1, 3])
    model = RuntimeModel().fit(sizes, workers, 100.0 * sizes / workers)  # purely parallel
    hybrid = HybridPolicy()
    obs = _obs(workers=1, running=1, deadline_s=60.0, input_bytes=1e9, elapsed=0.0)
    without = hybrid.decide(obs)
    assert "deadline planner" not in without.reason  # no model: the planner stays out
    hybrid.planner_.model_ = model
    decision = hybrid.decide(obs)
    # 100 s of work must fit in 60 s: 2 workers (100/2 = 50 s).
    assert decision.target == 2
    assert decision.reason.startswith("deadline planner decided")


def test_while_the_planner_sizes_a_deadline_job_a_backlog_does_not_outvote_it() -> None:
    sizes = np.array([1.0, 2.0, 1.0, 2.0, 3.0, 3.0])
    workers = np.array([1, 1, 2, 2, 1, 3])
    model = RuntimeModel().fit(sizes, workers, 100.0 * sizes / workers)
    obs = _obs(
        workers=1,
        running=1,
        pending=30,
        backlog_s=20.0,
        deadline_s=60.0,
        input_bytes=1e9,
        elapsed=0.0,
    )
    assert HybridPolicy().decide(obs).target == 6  # no model: the backlog grows it to N
    decision = HybridPolicy(planner_model=model).decide(obs)
    assert decision.target == 2
    assert decision.reason.startswith("deadline planner decided")
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
    hybrid = HybridPolicy()
    past = np.arange(NOW - 28 * 86400, NOW, 300.0)
    hybrid.predictive_.fit_series(past, np.full(len(past), 4.0))
    hybrid.save(tmp_path / "hybrid.json")
    loaded = HybridPolicy.load(tmp_path / "hybrid.json")
    obs = _obs(workers=1)
    assert loaded.decide(obs).target == hybrid.decide(obs).target == 4


def test_hybrid_is_the_default_policy() -> None:
    assert config_from_dict({}).policy.name == "hybrid"
