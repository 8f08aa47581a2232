"""The peer policies (static, Kubernetes HPA, Dataproc) on hand-built observations.

Every expected number is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from sparkscaler.core import ClusterState, Decision, Features, Observation, WorkerInfo
from sparkscaler.policies.base import Policy
from sparkscaler.policies.dataproc import DataprocPolicy
from sparkscaler.policies.hpa import HpaPolicy
from sparkscaler.policies.static import StaticPolicy

T0 = 1_700_000_000.0


def _worker(
    i: int,
    *,
    cores: int = 2,
    cores_used: int = 0,
    memory_mb: int = 4096,
    state: str = "ALIVE",
    running: int | None = None,
    idle_s: float = 0.0,
) -> WorkerInfo:
    return WorkerInfo(
        id=f"worker-{i}",
        host=f"127.0.0.{i + 2}",
        port=40000 + i,
        state=state,
        cores=cores,
        cores_used=cores_used,
        memory_mb=memory_mb,
        memory_used_mb=0,
        idle_s=idle_s,
        running_tasks=running,
    )


def _obs(
    time: float = T0,
    *,
    workers: int = 1,
    cores: int = 2,
    memory_mb: int = 4096,
    cores_used: int = 0,
    provisioning: int = 0,
    running: int = 0,
    pending: int = 0,
    cu: float = 0.0,
    cs: float = 0.0,
    min_workers: int = 0,
    max_workers: int | None = None,
    stale: bool = False,
) -> Observation:
    """``workers`` ALIVE workers of ``cores`` cores and ``memory_mb`` each (``cores_used`` of
    them allocated on each), plus ``provisioning`` workers still booting."""
    alive = [
        _worker(i, cores=cores, cores_used=cores_used, memory_mb=memory_mb) for i in range(workers)
    ]
    booting = [
        _worker(workers + i, cores=cores, memory_mb=memory_mb, state="PROVISIONING")
        for i in range(provisioning)
    ]
    return Observation(
        time=time,
        cluster=ClusterState(workers=tuple(alive + booting)),
        running_tasks=running,
        pending_tasks=pending,
        features=Features(cu=cu, cs=cs),
        min_workers=min_workers,
        max_workers=max_workers,
        stale=stale,
    )


def _decide(policy: Policy, obs: Observation) -> Decision:
    out = policy.decide(obs)
    assert out.policy == policy.name
    assert out.reason and "\n" not in out.reason, out.reason
    return out


# =============================================================================== static
def test_static_default_is_max_workers() -> None:
    out = _decide(StaticPolicy(), _obs(workers=2, max_workers=7))
    assert out.target == 7
    assert "max_workers" in out.reason


def test_static_explicit_count() -> None:
    out = _decide(StaticPolicy(workers=3), _obs(workers=6, max_workers=7))
    assert out.target == 3
    assert "always 3" in out.reason


@pytest.mark.parametrize(
    ("workers", "min_workers", "max_workers", "expected"),
    [(10, 0, 6, 6), (1, 2, 6, 2), (4, 2, None, 4)],
)
def test_static_is_clipped_to_the_bounds(
    workers: int, min_workers: int, max_workers: int | None, expected: int
) -> None:
    out = _decide(
        StaticPolicy(workers=workers),
        _obs(workers=3, min_workers=min_workers, max_workers=max_workers),
    )
    assert out.target == expected
    assert ("clipped" in out.reason) == (expected != workers)


def test_static_without_count_or_maximum_holds() -> None:
    assert _decide(StaticPolicy(), _obs(workers=3)).target == 3
    assert _decide(StaticPolicy(), _obs(workers=0, min_workers=2)).target == 2


@pytest.mark.parametrize("params", [{"workers": 0}, {"workers": 2, "size": 3}])
def test_static_rejects_bad_params(params: dict) -> None:
    with pytest.raises(ValidationError):
        StaticPolicy(**params)


# =============================================================================== HPA
def test_hpa_defaults_are_kubernetes_defaults() -> None:
    p = HpaPolicy().params
    assert (p.metric, p.target_utilization, p.tolerance) == ("tasks", 80.0, 0.1)
    assert (p.scale_down_stabilization_s, p.scale_up_stabilization_s) == (300.0, 0.0)
    assert (p.scale_up_pods, p.scale_up_percent, p.scale_up_period_s) == (4, 100.0, 15.0)
    assert (p.scale_down_pods, p.scale_down_percent, p.scale_down_period_s) == (None, 100.0, 15.0)
    assert (p.scale_up_select, p.scale_down_select) == ("Max", "Max")


def test_hpa_formula() -> None:
    # 4 workers x 5 slots = 20; 20 running + 4 pending = 120 %; 120 / 80 = 1.5 -> ceil(4 x 1.5) = 6
    # (the rate limit from 4 is max(4 + 4, 2 x 4) = 8, so it does not bind)
    out = _decide(HpaPolicy(), _obs(workers=4, cores=5, running=20, pending=4))
    assert out.target == 6
    assert "ceil(4 x 120 / 80) = 6" in out.reason


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        (84, 10),  # 84 % / 80 % = 1.05: inside 1 ± 0.1, keep 10
        (76, 10),  # 0.95: inside, keep 10 (and no scale-down)
        (89, 12),  # 1.1125 > 1.1: ceil(10 x 89 / 80) = ceil(11.125) = 12
    ],
)
def test_hpa_tolerance_band(tasks: int, expected: int) -> None:
    out = _decide(HpaPolicy(), _obs(workers=10, cores=10, running=tasks))
    assert out.target == expected
    assert ("within" in out.reason) == (expected == 10)


def test_hpa_scale_down_stabilisation_keeps_the_highest_recommendation_for_300_s() -> None:
    hpa = HpaPolicy()
    # 6 workers x 2 slots. 2 tasks: 16.7 % -> ceil(6 x 16.7 / 80) = ceil(1.25) = 2, but the history
    # starts with the current 6 (HPA's initial recommendation): hold 6.
    assert _decide(hpa, _obs(T0, workers=6, running=2)).target == 6
    # 6 tasks: 50 % -> ceil(3.75) = 4, still below the 6 of T0: hold 6
    assert _decide(hpa, _obs(T0 + 100, workers=6, running=6)).target == 6
    out = _decide(hpa, _obs(T0 + 299, workers=6, running=2))
    assert out.target == 6
    assert "highest recommendation in the last 300 s is 6, so 6" in out.reason
    # T0 has left the window (T0 + 1, T0 + 301]: the highest left is the 4 of T0 + 100
    assert _decide(hpa, _obs(T0 + 301, workers=6, running=2)).target == 4
    # the 4 has gone too; 4 workers, 2 tasks: 25 % -> ceil(4 x 25 / 80) = 2
    assert _decide(hpa, _obs(T0 + 401, workers=4, running=2)).target == 2


class _ScanningHpa(HpaPolicy):
    """HPA's stabilisation as horizontal.go writes it: a scan of every remembered recommendation."""

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.history: list[tuple[float, int]] = []

    def _remember(self, now: float, rec: int) -> None:
        self.history.append((now, rec))

    def _stabilize(self, now: float, current: int, raw: int) -> tuple[int, int, int]:
        up = min(
            [raw] + [r for t, r in self.history if t > now - self.params.scale_up_stabilization_s]
        )
        down = max(
            [raw] + [r for t, r in self.history if t > now - self.params.scale_down_stabilization_s]
        )
        self.history.append((now, raw))
        return min(max(current, up), down), up, down


@pytest.mark.parametrize("seed", range(5))
def test_hpa_stabilisation_queues_match_hpas_scan(seed: int) -> None:
    rng = random.Random(seed)
    params = {"scale_up_stabilization_s": 20, "scale_down_stabilization_s": 60}
    fast, scan = HpaPolicy(**params), _ScanningHpa(**params)
    time, workers = T0, 5
    for _ in range(300):
        time += rng.choice([1, 2, 5, 15])
        obs = _obs(time, workers=workers, running=rng.randint(0, 40), max_workers=30)
        out = _decide(fast, obs)
        assert out == scan.decide(obs)
        workers = max(1, out.target if rng.random() < 0.7 else workers)


def test_hpa_scale_up_rate_is_max_of_4_workers_and_100_percent_per_15_s() -> None:
    hpa = HpaPolicy()
    # 1 worker, 1000 tasks pending: wants 625; max(1 + 4, 2 x 1) = 5 per period
    out = _decide(hpa, _obs(T0, workers=1, pending=1000, max_workers=100))
    assert out.target == 5
    assert "scale-up limit 5 (max(+4, +100%) per 15 s)" in out.reason
    # same period: it started at 1 and 4 were added, so still 5 (whether or not the guard acted)
    assert _decide(hpa, _obs(T0 + 5, workers=1, pending=1000, max_workers=100)).target == 5
    booting = _obs(T0 + 10, workers=1, provisioning=4, pending=1000, max_workers=100)
    assert _decide(hpa, booting).target == 5
    # next period: from 5, max(5 + 4, 2 x 5) = 10; then from 10, max(14, 20) = 20
    assert _decide(hpa, _obs(T0 + 16, workers=5, pending=1000, max_workers=100)).target == 10
    assert _decide(hpa, _obs(T0 + 32, workers=10, pending=1000, max_workers=100)).target == 20


def test_hpa_scale_down_rate_100_percent_reaches_the_minimum_in_one_step() -> None:
    hpa = HpaPolicy(scale_down_stabilization_s=0)
    out = _decide(hpa, _obs(workers=10, min_workers=1))  # no demand: wants 0; 100 % allows 0
    assert out.target == 1
    assert "min_workers 1" in out.reason


def test_hpa_scale_down_rate_is_measured_per_period() -> None:
    hpa = HpaPolicy(scale_down_stabilization_s=0, scale_down_percent=50)
    assert _decide(hpa, _obs(T0, workers=10, min_workers=1)).target == 5  # 10 x (1 - 0.5)
    # same period: it started at 10 and 5 went, so 5 is the floor until T0 + 15
    assert _decide(hpa, _obs(T0 + 10, workers=5, min_workers=1)).target == 5
    assert _decide(hpa, _obs(T0 + 16, workers=5, min_workers=1)).target == 2  # floor(5 x 0.5)


def test_hpa_disabled_scale_up_never_grows() -> None:
    hpa = HpaPolicy(scale_up_select="Disabled")
    assert _decide(hpa, _obs(workers=2, pending=100)).target == 2


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("cpu", 6),  # cu 90 + cs 30 = 120 % -> ceil(4 x 120 / 80) = 6
        ("cores", 5),  # 20 / 20 cores allocated = 100 % -> ceil(4 x 100 / 80) = 5
        ("tasks", 7),  # (20 + 8) / 20 slots = 140 % -> ceil(4 x 140 / 80) = 7
    ],
)
def test_hpa_metrics(metric: str, expected: int) -> None:
    obs = _obs(workers=4, cores=5, cores_used=5, running=20, pending=8, cu=90, cs=30)
    assert _decide(HpaPolicy(metric=metric), obs).target == expected


def test_hpa_with_no_worker() -> None:
    # tasks: the empty cluster counts as one worker of 2 slots: 3 / 2 = 150 % -> ceil(1.875) = 2
    assert _decide(HpaPolicy(cores_per_worker=2), _obs(workers=0, pending=3)).target == 2
    assert _decide(HpaPolicy(), _obs(workers=0)).target == 0  # no demand, nothing to start
    out = _decide(HpaPolicy(metric="cpu"), _obs(workers=0, pending=3))
    assert out.target == 0
    assert "no ALIVE worker" in out.reason
    assert _decide(HpaPolicy(metric="cpu"), _obs(workers=0, min_workers=1)).target == 1


def test_hpa_bounds_and_stale() -> None:
    out = _decide(HpaPolicy(), _obs(workers=1, pending=1000, max_workers=3))
    assert out.target == 3
    assert "max_workers 3" in out.reason
    assert _decide(HpaPolicy(), _obs(workers=5, max_workers=3)).target == 3  # moved back in
    assert _decide(HpaPolicy(), _obs(workers=2, pending=100, stale=True)).target == 2


@pytest.mark.parametrize(
    "params",
    [
        {"target_utilization": 0},
        {"metric": "memory"},
        {"tolerance": -0.1},
        {"scale_down_stabilization_s": 3601},
        {"scale_up_period_s": 0},
        {"scale_up_pods": None, "scale_up_percent": None},
        {"window": 5},
    ],
)
def test_hpa_rejects_bad_params(params: dict) -> None:
    with pytest.raises(ValidationError):
        HpaPolicy(**params)


# =============================================================================== Dataproc
def test_dataproc_defaults_and_bounds_are_dataprocs() -> None:
    p = DataprocPolicy().params
    assert (p.scale_up_factor, p.scale_down_factor) == (1.0, 1.0)
    assert (p.scale_up_min_worker_fraction, p.scale_down_min_worker_fraction) == (0.0, 0.0)
    assert p.cooldown_period_s == 120.0


@pytest.mark.parametrize(
    "params",
    [
        {"scale_up_factor": 1.5},
        {"scale_down_factor": -0.1},
        {"scale_up_min_worker_fraction": 1.1},
        {"cooldown_period_s": 60},  # Dataproc: cooldownPeriod bounds [2m, 1d]
        {"cooldown_period_s": 86401},
        {"graceful_decommission_timeout_s": 60},
    ],
)
def test_dataproc_rejects_bad_params(params: dict) -> None:
    with pytest.raises(ValidationError):
        DataprocPolicy(**params)


@pytest.mark.parametrize(("factor", "expected"), [(0.5, 4), (1.0, 5)])
def test_dataproc_scale_up(factor: float, expected: int) -> None:
    # 2 workers x 4 cores x 8192 MB: 2048 MB a slot. 6 running, 13 pending:
    # pending 13 x 2048 = 26624 MB, available (8 - 6) x 2048 = 4096 MB,
    # exact delta = (26624 - 4096) / 8192 = 2.75 workers;
    # factor 0.5: ROUND_UP(1.375) = 2 -> 4; factor 1.0: ROUND_UP(2.75) = 3 -> 5
    obs = _obs(workers=2, cores=4, memory_mb=8192, running=6, pending=13)
    out = _decide(DataprocPolicy(scale_up_factor=factor), obs)
    assert out.target == expected
    assert "26624 MB" in out.reason and "4096 MB" in out.reason and "+2.75" in out.reason


@pytest.mark.parametrize(("pending", "expected"), [(2, 10), (4, 12)])
def test_dataproc_min_worker_fraction(pending: int, expected: int) -> None:
    # 10 full workers x 2 slots: delta = pending / 2 workers; 0.2 x 10 = 2 are needed to act
    obs = _obs(workers=10, running=20, pending=pending)
    out = _decide(DataprocPolicy(scale_up_min_worker_fraction=0.2), obs)
    assert out.target == expected
    assert ("below 2" in out.reason) == (expected == 10)


@pytest.mark.parametrize(("factor", "expected"), [(0.5, 7), (1.0, 3), (0.0, 10)])
def test_dataproc_scale_down(factor: float, expected: int) -> None:
    # 10 workers x 2 slots, 5 running: 15 slots free -> exact delta = -15 / 2 = -7.5 workers;
    # factor 0.5: ROUND_DOWN(-3.75) = -3 -> 7; 1.0: -7 -> 3; 0: never removes
    out = _decide(DataprocPolicy(scale_down_factor=factor), _obs(workers=10, running=5))
    assert out.target == expected


def test_dataproc_scale_down_min_worker_fraction() -> None:
    # 2 slots free: -1 worker, below 0.2 x 10 = 2
    obs = _obs(workers=10, running=18)
    assert _decide(DataprocPolicy(scale_down_min_worker_fraction=0.2), obs).target == 10
    assert _decide(DataprocPolicy(), obs).target == 9


def test_dataproc_cooldown_holds_and_averages_over_the_period() -> None:
    dp = DataprocPolicy()
    # 2 workers x 2 slots, all busy, 4 pending: +2 -> 4
    assert _decide(dp, _obs(T0, workers=2, running=4, pending=4)).target == 4
    # 60 s later the cluster is idle (8 free slots: -4), but the cooldown holds 4
    out = _decide(dp, _obs(T0 + 60, workers=4))
    assert out.target == 4
    assert "cooldown" in out.reason
    # after 121 s: samples in (T0 + 1, T0 + 121] are T0 + 60 (0 pending, 8 free) and now
    # (8 pending, 0 free): mean pending - free = 0 -> keep 4 (the instant alone says +4)
    assert _decide(dp, _obs(T0 + 121, workers=4, running=8, pending=8)).target == 4
    # T0 + 60 leaves the window: mean 8 pending, 0 free = +4 workers -> 8
    assert _decide(dp, _obs(T0 + 180, workers=4, running=8, pending=8)).target == 8


def test_dataproc_cooldown_starts_when_the_update_has_completed() -> None:
    dp = DataprocPolicy()
    assert _decide(dp, _obs(T0, workers=2, running=4, pending=4)).target == 4
    out = _decide(dp, _obs(T0 + 130, workers=2, provisioning=2, running=4, pending=4))
    assert out.target == 4
    assert "provisioning" in out.reason
    # the update completed at T0 + 130 at the earliest: 70 s later, still cooling down
    assert _decide(dp, _obs(T0 + 200, workers=4, min_workers=1)).target == 4
    # 121 s after: idle 4 x 2 slots = -4 workers -> 0, clipped to min_workers 1
    out = _decide(dp, _obs(T0 + 251, workers=4, min_workers=1))
    assert out.target == 1
    assert "clipped" in out.reason


def test_dataproc_with_no_worker_and_stale() -> None:
    # no worker: 3 pending / 2 slots a worker = 1.5 -> ROUND_UP = 2
    assert _decide(DataprocPolicy(cores_per_worker=2), _obs(workers=0, pending=3)).target == 2
    assert _decide(DataprocPolicy(), _obs(workers=0)).target == 0
    assert _decide(DataprocPolicy(), _obs(workers=3, stale=True)).target == 3


# =============================================================================== save / load
@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (StaticPolicy, {"workers": 4}),
        (HpaPolicy, {"metric": "cores", "target_utilization": 60, "scale_down_pods": 2}),
        (DataprocPolicy, {"scale_up_factor": 0.5, "cooldown_period_s": 300}),
    ],
)
def test_save_and_load_round_trip(tmp_path: Path, cls: type[Policy], params: dict) -> None:
    policy = cls(**params)
    path = tmp_path / f"{cls.name}.json"
    policy.save(path)
    loaded = cls.load(path)
    assert type(loaded) is cls
    assert loaded.get_params() == policy.get_params()
    obs = _obs(workers=2, cores_used=2, running=4, pending=9, max_workers=8)
    assert loaded.decide(obs) == cls(**params).decide(obs)
    other = DataprocPolicy if cls is not DataprocPolicy else HpaPolicy
    with pytest.raises(ValueError, match="not"):
        other.load(path)
