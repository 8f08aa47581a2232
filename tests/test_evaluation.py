"""The evaluation harness: the quick suites end to end, the oracle as a floor, same seed → same
numbers, and the pieces (oracle, replay, trace formats) on their own."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from typer.testing import CliRunner

from sparkscaler.cli import app
from sparkscaler.config import Config
from sparkscaler.core import JobRecord
from sparkscaler.evaluation import continuous
from sparkscaler.evaluation.harness import (
    EvaluationTaskError,
    Options,
    Task,
    _run_parallel,
    evaluate,
)
from sparkscaler.evaluation.lineup import ORACLE, Calibration
from sparkscaler.evaluation.oracle import run_oracle, run_oracle_round
from sparkscaler.evaluation.paper_grid import cell_config, round_jobs, run_cell
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage
from sparkscaler.store import Store
from sparkscaler.wiring import make_sim

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NASA = SHARED / "traces" / "nasa-http-1995" / "requests_per_minute.csv"
ALIBABA = SHARED / "traces" / "alibaba2017-batch" / "batch_task.csv"
runner = CliRunner()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """``sparkscaler evaluate --quick`` as a newcomer runs it: a subprocess, every core."""
    out = tmp_path_factory.mktemp("quick")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = subprocess.run(
        [sys.executable, "-m", "sparkscaler", "evaluate", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, f"worker processes left behind: {left}"
    assert "paper-grid (all cells)" in done.stdout and "trace: daily" in done.stdout
    return json.loads((out / "results.json").read_text()), out


def test_quick_writes_json_csv_and_a_self_contained_report(quick: tuple[dict, Path]) -> None:
    report, out = quick
    grid = report["suites"]["paper-grid"]
    assert grid["settings"]["deadlines_min"] == [5, 8]
    assert {r["policy"] for r in grid["cells"]} >= {"oracle", "regression", "hybrid", "dqn-paper"}
    assert all(r["rounds"] == 25 for r in grid["cells"])
    assert len(grid["rounds"]) == len(grid["cells"])  # every policy's rounds, per cell
    assert len(grid["rounds"]["dqn-paper-online@T5N5"]["failed"]) == 25
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(grid["cells"]) + len(report["suites"]["trace"]["cases"][0]["results"])
    page = (out / "report.html").read_text()
    assert "https://" not in page and "http://" not in page
    assert report["versions"]["stable-baselines3"] != "absent"
    assert report["config"]["simulation"]["seed"] == 0
    assert len(grid["dqn_learning_curves"]) == 6  # three pretrained variants x two N


def test_the_oracle_is_a_floor_in_every_cell(quick: tuple[dict, Path]) -> None:
    report, _ = quick
    cells = report["suites"]["paper-grid"]["cells"]
    oracles = {(r["T_min"], r["N"]): r for r in cells if r["policy"] == "oracle"}
    compared = 0
    for row in cells:
        oracle = oracles[(row["T_min"], row["N"])]
        assert row["failures"] >= oracle["failures"], row  # no size could save its failures
        if row["failures"] <= oracle["failures"]:
            compared += 1
            assert row["worker_minutes"] >= oracle["worker_minutes"], row
    for case in report["suites"]["trace"]["cases"]:
        oracle = next(r for r in case["results"] if r["policy"] == "oracle")
        for row in case["results"]:
            if row["misses"] <= oracle["misses"]:
                compared += 1
                assert row["worker_hours"] >= oracle["worker_hours"], row
    assert compared > 8  # the check compared real rows, not only the oracle with itself


def test_same_seed_same_numbers_on_any_number_of_processes(
    quick: tuple[dict, Path], tmp_path: Path
) -> None:
    """One process against every core, on the policies with randomness of their own: a DQN
    pretrained in the simulator, one learning online, and the default (the whole grid again
    would double this file's time for the same check)."""
    report, _ = quick
    chosen = ("hybrid", "dqn-improved", "dqn-paper-online")
    options = Options(suites=("paper-grid",), quick=True, n_jobs=1, policies=chosen)
    again = evaluate(Config(), options, tmp_path)["suites"]["paper-grid"]
    every = report["suites"]["paper-grid"]
    ran = {ORACLE, *chosen}
    assert {c["policy"] for c in again["cells"]} == ran
    for key in ("cells", "policies"):
        rows = [r for r in every[key] if r["policy"] in ran]
        assert json.dumps(again[key], sort_keys=True) == json.dumps(rows, sort_keys=True), key
    rounds = {k: v for k, v in every["rounds"].items() if k.split("@")[0] in ran}
    assert json.dumps(again["rounds"], sort_keys=True) == json.dumps(rounds, sort_keys=True)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_failing_task_is_named_and_the_finished_ones_are_kept(n_jobs: int) -> None:
    tasks = [Task(f"sqrt of {x:g}", math.sqrt, (x,), "run", (x,)) for x in (4.0, -1.0)]
    done: dict[tuple, object] = {}
    with pytest.raises(EvaluationTaskError) as failed:
        _run_parallel(tasks, n_jobs, done.__setitem__)
    assert str(failed.value).startswith(
        "evaluation task 'sqrt of -1' failed: ValueError: math domain error (at harness.py:"
    ), failed.value
    assert done == {(4.0,): 2.0} or (n_jobs > 1 and not done)  # in order with one process


def test_a_job_that_fits_one_worker_gets_one_from_the_oracle() -> None:
    config = cell_config(Config(), 5)
    stage = Stage(0, 8, FixedDurations(5.0))
    job = JobSpec(0, "small", 0.0, (stage,), 1.0, deadline_s=600.0, driver_s=10.0)
    run = run_oracle_round(config, job, seed=0)
    assert run.sizes == {0: 1} and run.misses == 0
    tight = JobSpec(0, "tight", 0.0, (Stage(0, 40, FixedDurations(20.0)),), 1.0, 400.0, 10.0)
    run = run_oracle_round(config, tight, seed=0)
    assert run.misses == 0 and run.sizes[0] > 1
    finished = run.sim.results[0].finished
    # Fewer workers would miss T (it picked the cheapest size that meets it).
    smaller = cell_config(Config(), run.sizes[0] - 1)
    assert run_oracle_round(smaller, tight, seed=0).misses == 1
    assert finished <= 400.0


def test_the_oracle_requests_workers_one_provisioning_delay_before_the_first_stage() -> None:
    # Local provisioning (7.8-10.1 s) is shorter than this job's 30 s driver phase: each extra
    # worker is requested its own delay before the stage starts (the seed's first two delays,
    # which every policy's first two workers meet too), ready then, not when the driver ends.
    # A launch takes the delays in order, so a worker whose delay is shorter than the next
    # one's is launched with it, and ready early.
    config = cell_config(Config.model_validate({"simulation": {"provisioning": "local"}}), 3)
    job = JobSpec(0, "j", 0.0, (Stage(0, 30, FixedDurations(10.0)),), 1.0, 150.0, 30.0)
    first, second = make_sim(config, [job], 0).peek_delays(2)
    run = run_oracle_round(config, job, seed=0)
    workers = sorted(  # in launch order
        [*run.sim.workers.values(), *run.sim.gone], key=lambda w: int(w.id.rsplit("-", 1)[1])
    )
    second_at = 30.0 - second
    first_at = min(30.0 - first, second_at)
    assert run.sizes == {0: 3}
    assert [w.launched_at for w in workers] == pytest.approx([0.0, first_at, second_at])
    assert [w.ready_at for w in workers[1:]] == pytest.approx([first_at + first, 30.0])
    assert max(w.ready_at for w in workers) == pytest.approx(30.0)


def test_the_oracle_repairs_jobs_that_share_the_cluster() -> None:
    config = cell_config(Config(), 6)
    stage = Stage(0, 24, FixedDurations(20.0))
    # Two jobs at once, each meeting T alone on 3 workers: first in, first served.
    jobs = [JobSpec(i, f"j{i}", 200.0, (stage,), 1.0, 220.0, 5.0) for i in range(2)]
    run = run_oracle(config, jobs, seed=0)
    assert run.misses == 0
    assert sum(run.sizes.values()) >= 6


def test_paper_grid_rounds_are_the_same_jobs_for_every_cell() -> None:
    calibration = Calibration.load()
    sizes = calibration.default_sizes(300.0, 5)
    a = round_jobs(calibration.runtime_model, sizes, 5, seed=3)
    b = round_jobs(calibration.runtime_model, sizes, 5, seed=3)
    assert [j.size_gb for j in a] == [j.size_gb for j in b]
    assert all(sizes[0] <= j.size_gb <= sizes[1] for j in a)
    # The largest size takes 1.1 T on the fewest workers (the paper's proportions).
    assert calibration.runtime_model.predict(sizes[1], 5) == pytest.approx(330.0, rel=1e-6)


def test_the_planner_meets_a_feasible_deadline_from_the_first_round() -> None:
    calibration = Calibration.load()
    sizes = calibration.default_sizes(300.0, 5)
    from sparkscaler.evaluation.paper_grid import RunContext

    ctx = RunContext(calibration, sizes, seed=0, rounds=6)
    config = Config.model_validate({"simulation": {"provisioning": "local"}})
    oracle = run_cell(config, "oracle", 8, 8, ctx)
    planner = run_cell(config, "planner", 8, 8, ctx)
    static = run_cell(config, "static", 8, 8, ctx)
    summary = planner.summary(oracle)
    assert summary["avoidable_failures"] == 0
    assert summary["worker_minutes"] < static.summary(oracle)["worker_minutes"]


def _record(i: int, submit: float, seconds: float, **kw: Any) -> JobRecord:
    values: dict[str, Any] = {
        "app_id": f"app-{i}",
        "name": f"job{i}",
        "submit_time": submit,
        "end_time": submit + seconds,
        "tasks": 12,
        "failed_tasks": 0,
        "task_seconds": 24.0,
        "executors": 2,
        "workers": 2,
        "input_bytes": 2_000_000_000,
        "spark_jobs": 1,
        "success": True,
    }
    return JobRecord(**(values | kw))


def test_replay_turns_records_into_jobs() -> None:
    records = [
        _record(0, 1000.0, 40.0, deadline_s=90.0),
        _record(1, 1600.0, 30.0),
        _record(2, 1700.0, 30.0, success=False),
    ]
    jobs = continuous.replay_jobs(records, Config(), deadline_factor=2.0)
    assert [j.arrival for j in jobs] == [0.0, 600.0]  # the failed app is left out
    assert jobs[0].deadline_s == 90.0 and jobs[1].deadline_s == 60.0
    # 12 tasks of 2 s on 2 one-core executors: 6 waves, 12 s; the rest was the driver's.
    assert jobs[0].driver_s == pytest.approx(28.0)
    assert jobs[0].stages[0].num_tasks == 12 and jobs[0].size_gb == 2.0
    with pytest.raises(ValueError, match="no finished application"):
        continuous.replay_jobs(records[2:], Config(), 2.0)


def test_cli_replays_a_store(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    rng = np.random.default_rng(0)
    with Store(db) as store:
        store.add_jobs(
            _record(i, 600.0 * i + float(rng.uniform(0, 60)), float(rng.uniform(20, 60)))
            for i in range(12)
        )
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "replay",
            "--history",
            str(db),
            "--out",
            str(out),
            "--dqn-timesteps",
            "200",
            "-j",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    (case,) = json.loads((out / "results.json").read_text())["suites"]["replay"]["cases"]
    assert case["settings"]["n_jobs"] == 12
    rows = {r["policy"]: r for r in case["results"]}
    assert rows["oracle"]["worker_hours"] <= rows["static"]["worker_hours"]
    assert all(r["jobs"] == 12 for r in rows.values())


def test_cli_rejects_an_unknown_suite_and_a_missing_history(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "bogus", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown suite bogus" in result.output
    missing = tmp_path / "nowhere.db"
    result = runner.invoke(app, ["evaluate", "replay", "--history", str(missing)])
    assert result.exit_code == 2 and "not found" in result.output


@pytest.mark.skipif(not NASA.is_file(), reason="../shared/data (NASA trace) is not here")
def test_the_nasa_case_evaluates_its_second_week_after_a_first() -> None:
    calibration = Calibration.load()
    case = continuous.Case("nasa", "csv", 86_400.0, 10, str(NASA))
    data = continuous.build_case(case, Config(), calibration, (30.0, 170.0), seed=0)
    assert data.previous is not None and len(data.workload) > 100
    rate = len(data.workload) / 24.0
    assert math.isclose(rate, data.rate_per_hour, rel_tol=0.3)


@pytest.mark.skipif(not ALIBABA.is_file(), reason="../shared/data (Alibaba trace) is not here")
def test_the_alibaba_case_spreads_its_arrivals_over_the_span() -> None:
    calibration = Calibration.load()
    case = continuous.Case("alibaba", "alibaba", 86_400.0, 10, str(ALIBABA))
    data = continuous.build_case(case, Config(), calibration, (30.0, 170.0), seed=0)
    arrivals = np.array([j.arrival for j in data.workload])
    assert data.previous is None  # one 17-hour trace: nothing to warm a forecaster up on
    assert arrivals.max() > 0.9 * 86_400.0
    assert len(arrivals) == pytest.approx(24 * data.rate_per_hour, rel=0.2)
