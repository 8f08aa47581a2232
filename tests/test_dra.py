"""Spark dynamic allocation's rule on hand-built observations, with hand-computed answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparkscaler.core import ClusterState, Observation, WorkerInfo
from sparkscaler.policies import make_policy
from sparkscaler.policies.dra import DynamicAllocationPolicy

T0 = 1_700_000_000.0


def _worker(
    i: int, *, cores: int = 1, used: int = 0, idle_s: float = 0.0, state: str = "ALIVE"
) -> WorkerInfo:
    return WorkerInfo(
        id=f"worker-{i}",
        host=f"127.0.0.{i + 2}",
        port=40000 + i,
        state=state,
        cores=cores,
        cores_used=used,
        memory_mb=1024,
        memory_used_mb=0,
        idle_s=idle_s,
    )


def _obs(
    time: float = T0,
    *,
    workers: int | list[WorkerInfo] = 1,
    cores: int = 1,
    running: int = 0,
    pending: int = 0,
    backlog_age_s: float = 0.0,
    max_workers: int | None = None,
) -> Observation:
    ws = workers if isinstance(workers, list) else [_worker(i, cores=cores) for i in range(workers)]
    return Observation(
        time=time,
        cluster=ClusterState(workers=tuple(ws)),
        running_tasks=running,
        pending_tasks=pending,
        backlog_age_s=backlog_age_s,
        max_workers=max_workers,
    )


def _dra(**params: object) -> DynamicAllocationPolicy:
    policy = make_policy("dra", params)
    assert isinstance(policy, DynamicAllocationPolicy)
    return policy


# ------------------------------------------------------------------------------- the need
@pytest.mark.parametrize(
    ("running", "pending", "cores", "params", "needed"),
    [
        (3, 4, 2, {}, 4),  # ceil(7 / 2)
        (4, 4, 2, {}, 4),  # 8 / 2 exactly
        (0, 1, 4, {}, 1),  # ceil(1 / 4)
        (2, 3, 4, {"task_cpus": 2}, 3),  # 4 cores / 2 cpus = 2 slots: ceil(5 / 2)
        (2, 6, 2, {"allocation_ratio": 0.5}, 2),  # ceil(8 * 0.5 / 2)
        (3, 4, 1, {"cores_per_worker": 3}, 3),  # the param beats the reported 1 core: ceil(7 / 3)
        (3, 4, 8, {"cores_per_worker": 2}, 4),  # ... and the reported 8: ceil(7 / 2)
    ],
)
def test_needed_workers_with_a_backlog(
    running: int, pending: int, cores: int, params: dict, needed: int
) -> None:
    out = _dra(**params).decide(
        _obs(workers=1, cores=cores, running=running, pending=pending, backlog_age_s=5)
    )
    assert f"{needed} needed" in out.reason
    assert out.target == min(2, needed)  # the first ramp step adds at most 1
    assert out.policy == "dra"


@pytest.mark.parametrize(
    ("running", "cores", "params", "needed"),
    [(5, 2, {}, 3), (6, 2, {}, 3), (6, 4, {"task_cpus": 2}, 3), (0, 2, {}, 0)],
)
def test_needed_workers_without_a_backlog(
    running: int, cores: int, params: dict, needed: int
) -> None:
    # Three busy workers: none can be removed, so the reason reports the need.
    workers = [_worker(i, cores=cores, used=1) for i in range(3)]
    out = _dra(**params).decide(_obs(workers=workers, running=running))
    assert out.target == 3
    assert out.reason == f"no backlog; {running} running task(s) need {needed}"


# ------------------------------------------------------------------------------- backlog timeout
def test_pending_below_the_backlog_timeout_keeps_the_current_size() -> None:
    policy = _dra(backlog_timeout_s=3)
    out = policy.decide(_obs(workers=2, pending=10, backlog_age_s=2.9))
    assert out.target == 2
    assert "below the 3 s backlog timeout" in out.reason
    # At exactly the timeout it adds one.
    assert policy.decide(_obs(T0 + 0.1, workers=2, pending=10, backlog_age_s=3)).target == 3


# ------------------------------------------------------------------------------- the ramp
def test_ramp_doubles_across_rounds_and_is_capped_by_the_need() -> None:
    policy = _dra(sustained_backlog_timeout_s=1)
    # 20 pending one-core tasks on one-core workers: 20 needed.
    current, targets = 1, []
    for round_ in range(5):
        out = policy.decide(
            _obs(T0 + round_, workers=current, pending=20, backlog_age_s=1 + round_)
        )
        targets.append(out.target)
        current = out.target
    # +1, +2, +4, +8, then +16 would pass the need of 20: +4 only.
    assert targets == [2, 4, 8, 16, 20]
    assert "+4 (ramp step 16, 20 needed)" in out.reason


def test_ramp_restarts_at_one_after_an_increase_capped_by_the_need() -> None:
    policy = _dra(sustained_backlog_timeout_s=1)
    assert policy.decide(_obs(T0, workers=1, pending=3, backlog_age_s=1)).target == 2  # +1
    assert policy.decide(_obs(T0 + 1, workers=2, pending=3, backlog_age_s=2)).target == 3  # +1 < 2
    # The need grows to 10 workers; the ramp starts again from 1, not 4.
    out = policy.decide(_obs(T0 + 2, workers=3, pending=10, backlog_age_s=3))
    assert out.target == 4
    assert "ramp step 1" in out.reason
    assert policy.decide(_obs(T0 + 3, workers=4, pending=10, backlog_age_s=4)).target == 6


def test_ramp_restarts_at_one_when_the_backlog_clears() -> None:
    policy = _dra(sustained_backlog_timeout_s=1)
    assert policy.decide(_obs(T0, workers=1, pending=50, backlog_age_s=1)).target == 2
    assert policy.decide(_obs(T0 + 1, workers=2, pending=50, backlog_age_s=2)).target == 4
    # Backlog gone for one observation.
    busy = [_worker(i, used=1) for i in range(4)]
    assert policy.decide(_obs(T0 + 1.5, workers=busy, running=4)).target == 4
    # A new backlog, even within the sustained timeout of the last add: +1 at once.
    out = policy.decide(_obs(T0 + 1.6, workers=4, pending=50, backlog_age_s=1))
    assert out.target == 5
    assert "ramp step 1" in out.reason


def test_sustained_backlog_timeout_paces_the_rounds() -> None:
    policy = _dra(sustained_backlog_timeout_s=5)
    assert policy.decide(_obs(T0, workers=1, pending=50, backlog_age_s=1)).target == 2
    early = policy.decide(_obs(T0 + 4.9, workers=2, pending=50, backlog_age_s=5.9))
    assert early.target == 2
    assert "next round soon" in early.reason
    # The early observation neither added nor moved the next round: at T0 + 5 it adds 2.
    assert policy.decide(_obs(T0 + 5, workers=2, pending=50, backlog_age_s=6)).target == 4
    assert policy.decide(_obs(T0 + 9, workers=4, pending=50, backlog_age_s=10)).target == 4
    assert policy.decide(_obs(T0 + 10, workers=4, pending=50, backlog_age_s=11)).target == 8


def test_ramp_is_capped_by_the_maximum_and_then_restarts_at_one() -> None:
    policy = _dra(sustained_backlog_timeout_s=1)
    targets, current = [], 1
    for round_ in range(4):
        obs = _obs(
            T0 + round_, workers=current, pending=50, backlog_age_s=1 + round_, max_workers=5
        )
        out = policy.decide(obs)
        targets.append(out.target)
        current = out.target
        if round_ == 2:
            assert "+1 (ramp step 4, 50 needed)" in out.reason
    # +1, +2, then +4 would pass the maximum of 5: +1; at the maximum: +0.
    assert targets == [2, 4, 5, 5]
    # The maximum is raised: the ramp starts again from 1.
    out = policy.decide(_obs(T0 + 4, workers=5, pending=50, backlog_age_s=5, max_workers=10))
    assert out.target == 6
    assert "ramp step 1" in out.reason


def test_without_a_maximum_only_the_need_caps_the_ramp() -> None:
    policy = _dra()
    policy.to_add_ = 64  # as after six full rounds
    out = policy.decide(_obs(workers=3, pending=40, backlog_age_s=2))
    assert out.target == 40


def test_ramp_never_shrinks_the_cluster_when_the_need_is_below_current() -> None:
    policy = _dra()
    # 2 pending + 0 running on 4-core workers: 1 needed, 3 there.
    out = policy.decide(_obs(workers=3, cores=4, pending=2, backlog_age_s=10))
    assert out.target == 3
    assert "+0" in out.reason


# ------------------------------------------------------------------------------- scale in
def test_scale_in_removes_only_workers_idle_for_the_idle_timeout() -> None:
    workers = [
        _worker(0, used=1),
        _worker(1, idle_s=60.0),
        _worker(2, idle_s=59.9),
        _worker(3, idle_s=300.0),
    ]
    out = _dra(idle_timeout_s=60).decide(_obs(workers=workers, running=1))
    # worker-1 and worker-3 are idle long enough; worker-2 is not yet.
    assert out.target == 2
    assert out.reason.startswith("2 worker(s) idle for over 60 s; 1 needed")


def test_scale_in_never_goes_below_the_need() -> None:
    # Workers report 2 cores, but the param says 1 slot each: 4 running tasks need 4 workers.
    workers = [_worker(0, cores=2, used=2), _worker(1, cores=2, used=2)]
    workers += [_worker(i, cores=2, idle_s=120.0) for i in (2, 3, 4)]
    out = _dra(cores_per_worker=1).decide(_obs(workers=workers, running=4))
    assert out.target == 4  # 3 idle, but only 5 - 4 = 1 may go
    # With the reported 2 cores, 2 workers are enough and all 3 idle ones go.
    assert _dra().decide(_obs(workers=workers, running=4)).target == 2


def test_busy_or_non_serving_workers_are_never_removed() -> None:
    workers = [
        _worker(0, used=1, idle_s=500.0),  # busy now, whatever the idle counter says
        _worker(1, idle_s=500.0, state="DECOMMISSIONED"),  # not counted at all
        _worker(2, idle_s=500.0),
    ]
    out = _dra(idle_timeout_s=60).decide(_obs(workers=workers, running=1))
    assert out.target == 1  # 2 serving workers, one of them idle


def test_no_scale_in_while_tasks_are_pending() -> None:
    workers = [_worker(i, idle_s=1000.0) for i in range(3)]
    out = _dra(backlog_timeout_s=10).decide(_obs(workers=workers, pending=1, backlog_age_s=1))
    assert out.target == 3


# ------------------------------------------------------------------------------- params, save/load
def test_bad_params_and_names_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"policy\.params\.idle_timeout_s"):
        make_policy("dra", {"idle_timeout_s": -1})
    with pytest.raises(ValueError, match="allocation_ratio"):
        make_policy("dra", {"allocation_ratio": 0})
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_policy("nope")


def test_save_load_round_trip(tmp_path: Path) -> None:
    params = {"idle_timeout_s": 30.0, "cores_per_worker": 2, "sustained_backlog_timeout_s": 4.0}
    policy = _dra(**params)
    path = tmp_path / "dra.json"
    policy.save(path)
    assert json.loads(path.read_text())["name"] == "dra"

    loaded = DynamicAllocationPolicy.load(path)
    assert loaded.get_params() == policy.get_params()
    assert loaded.get_params()["cores_per_worker"] == 2
    assert loaded.get_params()["task_cpus"] == 1
    obs = _obs(workers=1, cores=8, running=3, pending=4, backlog_age_s=2)
    assert loaded.decide(obs) == _dra(**params).decide(obs)


def test_load_of_another_policy_raises(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"name": "hpa", "params": {}}))
    with pytest.raises(ValueError, match="'hpa'"):
        DynamicAllocationPolicy.load(path)


def test_fit_returns_the_policy() -> None:
    policy = _dra()
    assert policy.fit([]) is policy
