"""The wiring: one place builds every loop, so run, the evaluation and the env agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from sparkscaler.backends.simulated import SimClock, SimObserver, SimulatedBackend
from sparkscaler.cli import app as cli
from sparkscaler.clock import Clock, WallClock
from sparkscaler.config import Config, PolicySettings, ScalingSettings
from sparkscaler.controller import Controller
from sparkscaler.core import JobContext, JobRecord, Observation
from sparkscaler.evaluation import paper_grid
from sparkscaler.evaluation.lineup import Calibration
from sparkscaler.observe.history import EventLogWatcher
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.policies.base import GUARD_RULES
from sparkscaler.policies.encoding import delta_action
from sparkscaler.policies.hybrid import HybridPolicy
from sparkscaler.rl.env import EnvConfig, SparkClusterEnv
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage
from sparkscaler.store import Store
from sparkscaler.wiring import (
    LIVE_PROVISIONING_S,
    build_loop,
    build_policy,
    live_context,
    live_loop,
    make_sim,
    simulated_loop,
    simulated_provisioning_s,
)

runner = CliRunner()


def _finished(n: int) -> list[JobRecord]:
    """Finished jobs of 1-3 GB on 1-3 workers: enough for the planner to learn a model."""
    return [
        JobRecord(
            f"app-{i}", "etl", 1000.0 * i, 1000.0 * i + 60.0 * (1 + i % 3) / (1 + i % 2),
            10, 0, 100.0, 1 + i % 2, 1 + i % 2, int((1 + i % 3) * 1e9), 1, True,
        )
        for i in range(n)
    ]  # fmt: skip


def _sim_loop(cfg: Config, store: Store, clock: Clock | None = None) -> Controller:
    sim = SimCluster([], initial_workers=1, seed=0)
    return build_loop(
        cfg,
        backend=SimulatedBackend(sim),
        observer=SimObserver(sim),
        clock=clock or SimClock(sim),
        store=store,
        context=live_context(),
    )


# ------------------------------------------------------------------------- the policy
def test_run_and_the_evaluation_build_the_same_hybrid(tmp_path: Path) -> None:
    """The evaluated hybrid is the one `sparkscaler run` builds: the same class and parameters,
    only the provisioning delay (of the cluster it runs on) and the model it starts from differ."""
    cfg = Config(state_dir=tmp_path, policy=PolicySettings(name="hybrid"))
    with Store(Path(":memory:")) as store:
        run = _sim_loop(cfg, store).policy
        calibration = Calibration.load()
        ctx = paper_grid.RunContext(calibration, (1.0, 2.0), 0, 1)
        sim = make_sim(cfg, [], seed=0)
        evaluated = simulated_loop(
            paper_grid.policy_config(cfg, "hybrid", ctx),
            sim,
            store,
            runtime_model=calibration.runtime_model,
        ).policy
    assert isinstance(run, HybridPolicy) and isinstance(evaluated, HybridPolicy)

    def without_delay(policy: HybridPolicy) -> dict[str, Any]:
        params = policy.get_params()
        del params["planner"]["provisioning_s"]
        del params["predictive"]["lead_s"]
        return params

    assert without_delay(run) == without_delay(evaluated)
    assert run.planner_.params.provisioning_s == LIVE_PROVISIONING_S > 0
    assert evaluated.planner_.params.provisioning_s == simulated_provisioning_s(cfg)
    # The forecaster raises its floor one of the same delays ahead, at hybrid's quantile.
    assert run.predictive_.params.lead_s == LIVE_PROVISIONING_S
    assert evaluated.predictive_.params.lead_s == simulated_provisioning_s(cfg)
    assert run.predictive_.params.quantile == evaluated.predictive_.params.quantile == 0.9
    assert run.planner_.prior_ is None  # learned from the store's jobs, none yet
    assert evaluated.planner_.prior_ is not None  # the calibration's


def test_production_learns_each_job_from_the_stores_jobs(tmp_path: Path) -> None:
    """A loop (run, serve, a restarted service) builds its policy fitted on the store's
    history, so that the jobs it knows are planned from its first decision."""
    for name in ("planner", "hybrid"):
        cfg = Config(state_dir=tmp_path, policy=PolicySettings(name=name))
        with Store(Path(":memory:")) as store:
            store.add_jobs(_finished(6))
            policy = _sim_loop(cfg, store).policy
        planner = policy if name == "planner" else policy.planner_  # type: ignore[attr-defined]
        assert set(planner.knowledge_.signatures_) == {"etl"}
        job = JobContext("app-new", "etl", "etl", 0.0, 300.0, 2e9, "declared")
        decision = policy.decide(Observation(time=0.0, max_workers=4, jobs=(job,)))
        assert "etl: " in decision.reason and "new signature" not in decision.reason
        assert set(decision.predicted_s) == {"app-new"}


@pytest.mark.parametrize(
    ("name", "params", "path"),
    [
        ("planner", {"provisioning_s": 3.0}, ("provisioning_s",)),
        ("hybrid", {"planner": {"provisioning_s": 3.0}}, ("planner", "provisioning_s")),
    ],
)
def test_a_provisioning_delay_in_the_params_wins(
    name: str, params: dict[str, Any], path: tuple[str, ...]
) -> None:
    value: Any = build_policy(name, params, provisioning_s=99.0).get_params()
    for key in path:
        value = value[key]
    assert value == 3.0


def test_build_policy_takes_a_config_or_a_name() -> None:
    cfg = Config(policy=PolicySettings(name="static", params={"workers": 3}))
    assert build_policy(cfg).get_params() == build_policy("static", {"workers": 3}).get_params()
    with pytest.raises(TypeError):
        build_policy(cfg, {"workers": 2})
    with pytest.raises(ValueError, match="unknown policy"):
        build_policy("nope")


# ------------------------------------------------------------------------- the guard
@pytest.mark.parametrize(
    ("name", "rules"),
    [("hpa", GUARD_RULES), ("dra", GUARD_RULES), ("dataproc", GUARD_RULES), ("hybrid", set())],
)
def test_the_guard_leaves_a_policy_the_rules_it_brings(name: str, rules: set[str]) -> None:
    with Store(Path(":memory:")) as store:
        loop = _sim_loop(Config(policy=PolicySettings(name=name)), store)
    assert loop.guard.own_rules == rules


def test_a_policy_switched_in_brings_its_rules_to_the_guard() -> None:
    with Store(Path(":memory:")) as store:
        loop = _sim_loop(Config(policy=PolicySettings(name="hybrid")), store)
        loop.use_policy(build_policy("hpa"))
        assert loop.policy.name == "hpa" and loop.guard.own_rules == GUARD_RULES
        loop.use_policy(build_policy("static"))
        assert loop.guard.own_rules == frozenset()


# ------------------------------------------------------------------------- the loops
class _Cluster:
    """A real cluster's backend as far as the wiring looks at it."""

    def __init__(self, running: bool = True) -> None:
        self.running = running
        self.started = self.stopped = False

    def worker_pids(self) -> list[int]:
        return []

    def workers(self) -> list[Any]:
        return []

    def launch(self, count: int) -> list[str]:
        raise AssertionError("not in these tests")

    def decommission(self, ids: Any, timeout: float) -> None:
        raise AssertionError("not in these tests")

    def unreachable(self) -> dict[str, str]:
        return {}

    def start(self, workers: int) -> None:
        self.started = self.running = True

    def stop(self) -> None:
        self.stopped = True


def test_the_live_loop_observes_the_cluster_and_reads_new_event_logs(tmp_path: Path) -> None:
    cfg = Config(state_dir=tmp_path, policy=PolicySettings(name="dra"))
    with Store(tmp_path / "s.db") as store:
        loop = live_loop(cfg, store, WallClock(), backend=_Cluster(), dry_run=True)  # type: ignore[arg-type]
        try:
            assert isinstance(loop.observer, SparkObserver)
            assert isinstance(loop.history, EventLogWatcher)
            assert loop.dry_run and loop.guard.own_rules == GUARD_RULES
        finally:
            loop.close()


def test_a_simulated_loop_gives_jobs_without_one_the_configs_deadline() -> None:
    cfg = Config(deadline_s=600.0)
    job = JobSpec(0, "j", 0.0, (Stage(0, 4, FixedDurations(100.0)),), 1.0)
    with Store(Path(":memory:")) as store:
        loop = simulated_loop(cfg, make_sim(cfg, [job], seed=0), store)
        assert loop.step().observation.deadline_s == 600.0
        loop = simulated_loop(cfg, make_sim(cfg, [job], seed=0), store, default_deadline_s=60.0)
        assert loop.step().observation.deadline_s == 60.0


# ------------------------------------------------------------------------- the env
def test_an_env_step_is_a_controller_step_behind_the_guard() -> None:
    """Two scale-outs 5 s apart: the second is held by the 10 s scale-out cooldown, as it would
    be when the trained policy runs, and the reward is for the size the cluster kept."""
    env = SparkClusterEnv(
        EnvConfig(
            max_workers=5,
            interval_s=5.0,
            scale_out_cooldown_s=10.0,
            jobs_per_episode=0,
            reward="paper",
        )
    )
    env.reset(seed=0)
    assert env.loop is not None
    _, first, *_ = env.step(delta_action(1, 5))
    _, second, *_ = env.step(delta_action(1, 5))
    decisions = env.loop.store.decisions(2)[::-1]
    assert [d["action"] for d in decisions] == ["scale_out", "hold"]
    assert "cooldown" in decisions[1]["reason"]
    assert all(d["policy"] == "agent" for d in decisions)
    # node term 1 - 2 (x + y - 1) / 4: x = 1, y = +1, then x = 2, y = 0 (held)
    assert first == pytest.approx(0.5 / 8) and second == pytest.approx(0.5 / 8)


def test_the_env_config_carries_the_configs_guard_rules() -> None:
    scaling = ScalingSettings(
        max_workers=6,
        scale_out_cooldown_s=7.0,
        scale_in_cooldown_s=8.0,
        scale_in_stabilization_s=9.0,
    )
    env = EnvConfig.from_config(Config(scaling=scaling))
    assert (env.max_workers, env.scale_out_cooldown_s, env.scale_in_cooldown_s) == (6, 7.0, 8.0)
    assert env.loop_config().scaling.model_dump() == {
        **scaling.model_dump(),
        "interval_s": env.interval_s,
        "decommission_timeout_s": env.decommission_timeout_s,
    }


# ------------------------------------------------------------------------- the command line
class _StandIn(_Cluster):
    made: ClassVar[list[_StandIn]] = []
    found_running: ClassVar[bool] = False

    def __init__(self, *_: object) -> None:
        super().__init__(self.found_running)
        self.made.append(self)


def _run_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found_running: bool, cluster_yaml: str = ""
) -> tuple[Any, _StandIn]:
    """``sparkscaler run --once`` on a stand-in backend (running or not) and the simulator, with
    ``cluster_yaml`` added to a config of its own state dir; the result and the backend."""
    monkeypatch.setattr(_StandIn, "made", [])
    monkeypatch.setattr(_StandIn, "found_running", found_running)
    monkeypatch.setattr("sparkscaler.backends.open_backend", _StandIn)
    monkeypatch.setattr(
        "sparkscaler.wiring.live_loop",
        lambda cfg, store, clock, **_: _sim_loop(cfg, store, clock),
    )
    monkeypatch.setattr("sparkscaler.cli.loop.require_java", lambda: None)
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n{cluster_yaml}")
    result = runner.invoke(cli, ["run", "--once", "--config", str(config)])
    (cluster,) = _StandIn.made
    return result, cluster


@pytest.mark.parametrize("found_running", [False, True])
def test_run_never_starts_or_stops_a_master_it_attaches_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found_running: bool
) -> None:
    attach = "cluster:\n  master_url: spark://10.0.0.9:7077\n"
    result, cluster = _run_once(tmp_path, monkeypatch, found_running, attach)
    assert not cluster.started and not cluster.stopped
    if found_running:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert "no Spark master answers at spark://10.0.0.9:7077" in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("found_running", [False, True])
def test_run_starts_a_local_cluster_only_when_none_runs_and_stops_only_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found_running: bool
) -> None:
    result, cluster = _run_once(tmp_path, monkeypatch, found_running)
    assert result.exit_code == 0, result.output
    assert cluster.started is not found_running and cluster.stopped is not found_running
