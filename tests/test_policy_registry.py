"""Every policy is selectable by name from the config and follows the one interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkscaler.configfile import ConfigError, config_from_dict
from sparkscaler.core import ClusterState, Decision, Observation, WorkerInfo
from sparkscaler.policies import POLICIES, make_policy

BUILT = {
    "static",
    "hpa",
    "dra",
    "dataproc",
    "regression",
    "planner",
    "predictive",
    "dqn",
    "hybrid",
}


def _observation() -> Observation:
    workers = tuple(
        WorkerInfo(f"w{i}", f"127.0.0.{i + 2}", 0, "ALIVE", 2, 2, 1024, 1024, running_tasks=2)
        for i in range(2)
    )
    return Observation(
        time=1_700_000_000.0,
        cluster=ClusterState(workers=workers),
        running_tasks=4,
        pending_tasks=12,
        backlog_age_s=30.0,
        input_bytes=2e9,
        oldest_job_elapsed_s=20.0,
        deadline_s=300.0,
        min_workers=1,
        max_workers=6,
    )


def test_every_built_policy_is_registered() -> None:
    assert set(POLICIES) == BUILT


@pytest.mark.parametrize("name", sorted(BUILT))
def test_policy_decides_within_bounds_and_names_itself(name: str) -> None:
    decision = make_policy(name).decide(_observation())
    assert isinstance(decision, Decision)
    assert decision.policy == name
    assert 1 <= decision.target <= 6
    assert decision.reason


@pytest.mark.parametrize("name", sorted(BUILT))
def test_policy_is_chosen_by_config_and_rejects_unknown_params(name: str) -> None:
    assert config_from_dict({"policy": {"name": name}}).policy.name == name
    with pytest.raises(ConfigError) as error:
        config_from_dict({"policy": {"name": name, "params": {"no_such_param": 1}}})
    assert any("policy.params.no_such_param" in line for line in error.value.problems)


# An untrained DQN has no model to save; tests/test_dqn.py saves and loads a trained one.
@pytest.mark.parametrize("name", sorted(BUILT - {"dqn"}))
def test_save_and_load_give_the_same_decision(name: str, tmp_path: Path) -> None:
    policy = make_policy(name)
    path = tmp_path / f"{name}{POLICIES[name].file_suffix}"
    policy.save(path)
    loaded = POLICIES[name].load(path)
    assert loaded.decide(_observation()).target == make_policy(name).decide(_observation()).target
