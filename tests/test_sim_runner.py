"""``sparkscaler simulate``: the real controller and guard driving the simulator."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sparkscaler.cli import app
from sparkscaler.config import Config
from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.evaluation.simulation import (
    JOB_SPEC_USAGE,
    PolicyFailedError,
    SimulationResult,
    parse_duration,
    parse_jobs,
    simulate,
    simulate_workload,
)
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies import make_policy
from sparkscaler.policies.base import Policy
from sparkscaler.sim.arrivals import Arrivals, poisson
from sparkscaler.sim.workload import (
    FixedDurations,
    JobSpec,
    ModelJobs,
    Stage,
    SyntheticJobs,
    TpchJobs,
)

runner = CliRunner()
VOLATILE = {"wall_s", "sim_seconds_per_wall_second"}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SPARKSCALER_HOME", str(home))
    return home


def sim_config(tmp_path: Path, **simulation: object) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "cluster": {"worker_cores": 2, "worker_memory": "2g"},
            "scaling": {
                "min_workers": 1,
                "max_workers": 5,
                "interval_s": 10,
                "scale_out_cooldown_s": 10,
                "scale_in_cooldown_s": 30,
                "scale_in_stabilization_s": 60,
                "decommission_timeout_s": 60,
            },
            "policy": {"name": "dra"},
            "simulation": {"provisioning": "local", "seed": 3, **simulation},
        }
    )


class Burst:
    """Every job: 40 tasks of 20 s (no noise, no wave effects): 800 task-seconds."""

    spec = JobSpec(0, "burst", 0.0, (Stage(0, 40, FixedDurations(20.0)),), 1.0)

    def sample(self, rng: np.random.Generator) -> JobSpec:
        return self.spec


# ---------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600.0),
        ("3600s", 3600.0),
        ("90m", 5400.0),
        ("12h", 43200.0),
        ("1.5h", 5400.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (" 5 m ", 300.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "5x", "h", "1h30m", "5 mins"])
def test_parse_duration_errors_name_the_valid_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration.*90m, 12h, 7d"):
        parse_duration(text)


def test_parse_jobs(tmp_path: Path) -> None:
    assert isinstance(parse_jobs("synthetic"), SyntheticJobs)
    for size in ("2g", "10g"):
        (tmp_path / size).mkdir()
        np.save(tmp_path / size / "adj_mat_1.npy", np.zeros((1, 1)))
    with pytest.raises(ValueError, match="no TPC-H profiles of size 5g; it has 10g, 2g"):
        parse_jobs(f"tpch:{tmp_path},sizes=2g+5g")
    tpch = parse_jobs(f"tpch:{tmp_path},sizes=2g+10g")
    assert isinstance(tpch, TpchJobs)
    assert (tpch.directory, list(tpch.sizes or [])) == (tmp_path, ["2g", "10g"])
    assert parse_jobs(f"tpch:{tmp_path}").sizes is None  # type: ignore[attr-defined]
    model = RuntimeModel().fit([1, 2, 3], [1, 2, 3], [10.0, 12.0, 15.0])
    model.save(tmp_path / "m.json")
    jobs = parse_jobs(f"model:{tmp_path / 'm.json'},sizes=1-2")
    assert isinstance(jobs, ModelJobs) and jobs.sizes_gb == (1.0, 2.0)
    assert np.allclose(jobs.model.coef_, model.coef_)  # type: ignore[attr-defined]
    default = parse_jobs(f"model:{tmp_path / 'm.json'}")
    assert default.sizes_gb == (0.5, 3.0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "spec", ["", "bogus", "synthetic:extra", "tpch", "tpch:", "model:", "model", "csv:x"]
)
def test_parse_jobs_errors_list_the_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown job source") as error:
        parse_jobs(spec)
    assert JOB_SPEC_USAGE in str(error.value)


# ---------------------------------------------------------------------------------- simulate
def _run(tmp_path: Path, seed: int, hours: float = 2.0) -> SimulationResult:
    cfg = sim_config(tmp_path)
    arrivals = poisson(20.0, hours * 3600, np.random.default_rng(seed))
    return simulate(cfg, arrivals, SyntheticJobs(), make_policy("dra"), hours * 3600, seed=seed)


def _comparable(result: SimulationResult) -> dict:
    data = result.to_json()
    data["summary"] = {k: v for k, v in data["summary"].items() if k not in VOLATILE}
    return data


def test_simulate_is_bit_identical_for_a_seed(tmp_path: Path) -> None:
    a = _run(tmp_path, seed=5)
    assert a.jobs_arrived > 20 and a.jobs_done > 10
    assert _comparable(_run(tmp_path, seed=5)) == _comparable(a)
    assert _comparable(_run(tmp_path, seed=6)) != _comparable(a)
    assert json.dumps(a.to_json())  # JSON-able as the CLI writes it


def test_simulate_scales_under_a_burst_and_back(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path, executor_startup_s=(0.0, 0.0))
    arrivals = Arrivals(np.array([0.0, 0.0, 0.0, 1800.0]), np.ones(4))
    result = simulate(cfg, arrivals, Burst(), make_policy("dra"), 3600.0, deadline_s=900.0)
    workers = result.timeline["workers"]
    assert result.scale_outs > 0 and result.scale_ins > 0
    assert max(workers) == 5 and max(workers) <= cfg.scaling.max_workers
    assert min(workers) >= cfg.scaling.min_workers
    assert workers[-1] < 5  # back down after the last job
    assert (result.jobs_arrived, result.jobs_done) == (4, 4)
    assert len(result.timeline["time_s"]) == 3600 // 10
    assert result.timeline["time_s"] == sorted(result.timeline["time_s"])
    # worker-hours pay at least for the busy cores: 4 jobs x 800 task-s on 2-core workers
    busy_task_hours = 4 * 40 * 20.0 / 3600
    assert result.worker_hours >= busy_task_hours / cfg.cluster.worker_cores
    assert result.worker_hours <= 5 * 1.0  # never above max_workers for the hour
    assert result.lost_task_hours == 0.0  # drains are graceful and long enough
    summary = result.summary()
    assert summary["misses"] == result.misses == sum(j.missed for j in result.jobs)
    assert summary["miss_pct"] == pytest.approx(100 * result.misses / 4)


def test_simulate_counts_unfinished_late_jobs_as_misses(tmp_path: Path) -> None:
    cfg = sim_config(tmp_path, executor_startup_s=(0.0, 0.0))
    arrivals = Arrivals(np.array([0.0]), np.ones(1))
    # 800 task-seconds on at most 10 slots cannot end within 30 s nor within the 60 s simulated
    result = simulate(cfg, arrivals, Burst(), make_policy("dra"), 60.0, deadline_s=30.0)
    assert (result.jobs_arrived, result.jobs_done, result.misses) == (1, 0, 1)


class Learner(Policy):
    """A fixed size that remembers every history it was fitted on."""

    name = "learner"

    def __init__(self) -> None:
        super().__init__()
        self.fits: list[list[str]] = []

    def fit(self, history: Sequence[JobRecord]) -> Learner:
        self.fits.append([r.app_id for r in history])
        return self

    def decide(self, observation: Observation) -> Decision:
        return self._decision(2, "fixed")


def test_a_learning_simulation_refits_the_policy_on_its_finished_jobs(tmp_path: Path) -> None:
    """Three bursts 20 min apart: each refit sees the jobs finished so far, each job once."""
    cfg = sim_config(tmp_path, executor_startup_s=(0.0, 0.0))
    workload = [Burst.spec.with_arrival(i, 1200.0 * i, 900.0) for i in range(3)]
    policy = Learner()
    simulate_workload(cfg, workload, policy, 3600.0, learn=True)
    assert policy.fits == [
        ["sim-job-0"],
        ["sim-job-0", "sim-job-1"],
        [f"sim-job-{i}" for i in range(3)],
    ]

    capped = Learner()
    simulate_workload(cfg, workload, capped, 3600.0, learn=True, runs_per_signature=1)
    assert capped.fits == [["sim-job-0"]]  # later runs of "burst" are not handed over

    silent = Learner()
    simulate_workload(cfg, workload, silent, 3600.0)
    assert silent.fits == []


class FailsAfter(Policy):
    """Asks for 2 workers, then raises from its ``fails_from``-th decision on."""

    name = "fails-after"

    def __init__(self, fails_from: int) -> None:
        super().__init__()
        self.fails_from, self.calls = fails_from, 0

    def decide(self, observation: Observation) -> Decision:
        self.calls += 1
        if self.calls >= self.fails_from:
            raise KeyError("no such field")
        return self._decision(2, "fixed")


def test_a_simulated_run_whose_policy_raises_is_an_error_not_a_result(tmp_path: Path) -> None:
    """The loop holds on the policy's behalf, as a live loop must; a simulation that did so
    would report the hold's numbers under the policy's name."""
    cfg = sim_config(tmp_path, executor_startup_s=(0.0, 0.0))
    workload = [Burst.spec.with_arrival(0, 0.0, 900.0)]
    with pytest.raises(PolicyFailedError) as failed:
        simulate_workload(cfg, workload, FailsAfter(fails_from=30), 600.0)
    assert str(failed.value).startswith(
        "policy fails-after raised on 31 of 60 simulated steps (the first: KeyError: "
    ), failed.value
    fine = simulate_workload(cfg, workload, FailsAfter(fails_from=1_000), 600.0)
    assert fine.jobs_done == 1


# ---------------------------------------------------------------------------------- CLI
def test_cli_simulate_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    args = ["simulate", "--duration", "2h", "--workload", "poisson:rate=20", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout.replace("\n", "")
    data = json.loads(out.read_text())
    assert {"summary", "jobs", "timeline", "config", "seed"} <= set(data)
    summary = data["summary"]
    assert summary["duration_s"] == 7200.0 and summary["policy"] == "hybrid"
    assert summary["jobs_done"] == len(data["jobs"]) <= summary["jobs_arrived"]
    assert summary["jobs_arrived"] > 10
    assert {"id", "arrival", "finished", "deadline_s"} <= set(data["jobs"][0])
    timeline = data["timeline"]
    interval = data["config"]["scaling"]["interval_s"]
    assert len(timeline["time_s"]) == int(7200 // interval)
    assert {len(v) for v in timeline.values()} == {len(timeline["time_s"])}
    assert max(timeline["workers"]) <= data["config"]["scaling"]["max_workers"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--jobs", "bogus"], "unknown job source 'bogus'"),
        (["--jobs", "model:/nonexistent/model.json"], "/nonexistent/model.json"),
        (["--workload", "bogus"], "unknown arrival spec 'bogus'"),
        (["--workload", "poisson:speed=3"], "unknown parameter"),
        (["--duration", "xyz"], "not a duration: 'xyz'"),
        (["--policy", "nope"], "'nope' is not one of"),
    ],
)
def test_cli_simulate_rejects_bad_options(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", "--duration", "1h", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("spec", ["tpch:{missing}", "tpch:{tpch},sizes=3g"])
def test_cli_simulate_rejects_a_bad_tpch_directory(spec: str, tmp_path: Path) -> None:
    tpch = tmp_path / "tpch" / "2g"
    tpch.mkdir(parents=True)
    adj = np.zeros((1, 1))
    np.save(tpch / "adj_mat_1.npy", adj)
    profile = {0: {"first_wave": {2: [1000]}, "fresh_durations": {2: []}, "rest_wave": {2: []}}}
    np.save(tpch / "task_duration_1.npy", np.array(profile, dtype=object))
    jobs = spec.format(missing=tmp_path / "missing", tpch=tmp_path / "tpch")
    result = runner.invoke(app, ["simulate", "--duration", "1h", "--jobs", jobs])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)


COEF = (10.0, 100.0, 5.0, 1.0, 2.0)  # 1, s/n, s, n, log n


def _write_runs(path: Path) -> None:
    lines = ["size,workers,seconds"]
    wiggle = 1.0
    for size in (1.0, 2.0, 4.0, 8.0):
        for n in (1, 2, 4, 8, 16):
            c0, c1, c2, c3, c4 = COEF
            seconds = c0 + c1 * size / n + c2 * size + c3 * n + c4 * math.log(n)
            wiggle = -wiggle  # +-0.5 % measurement noise, deterministic
            lines.append(f"{size},{n},{seconds * (1 + 0.005 * wiggle):.4f}")
    path.write_text("\n".join(lines) + "\n")


def test_cli_calibrate_writes_a_model_that_predicts(tmp_path: Path) -> None:
    runs, out = tmp_path / "runs.csv", tmp_path / "model.json"
    _write_runs(runs)
    result = runner.invoke(app, ["calibrate", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout.replace("\n", "")
    model = RuntimeModel.load(out)
    assert model.n_runs_ == 20 and model.source == str(runs)
    c0, c1, c2, c3, c4 = COEF
    for size, n in [(1.0, 1), (3.0, 5), (8.0, 16), (6.0, 12)]:
        truth = c0 + c1 * size / n + c2 * size + c3 * n + c4 * math.log(n)
        assert model.predict(size, n) == pytest.approx(truth, rel=0.02), (size, n)
    # and the simulator takes it as a job source
    sim_out = tmp_path / "sim.json"
    args = ["simulate", "--duration", "1h", "--workload", "poisson:rate=10"]
    result = runner.invoke(app, [*args, "--jobs", f"model:{out}", "--out", str(sim_out)])
    assert result.exit_code == 0, result.output
    assert json.loads(sim_out.read_text())["summary"]["jobs_arrived"] > 0


def test_cli_calibrate_on_a_missing_file_fails_cleanly(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["calibrate", str(missing), "--out", str(tmp_path / "m.json")])
    assert result.exit_code in (1, 2)
    assert str(missing) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "m.json").exists()


def test_cli_calibrate_on_a_bad_csv_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("size,seconds\n1,10\n2,20\n")
    result = runner.invoke(app, ["calibrate", str(bad)])
    assert result.exit_code == 1
    assert "missing column(s) workers" in result.stderr
    assert isinstance(result.exception, SystemExit)
