"""The Ernest-style runtime model: fitting, decisions, persistence and the run loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparkscaler.core import JobRecord
from sparkscaler.evaluation.lineup import load_runs
from sparkscaler.models.runtime_model import (
    FEATURE_NAMES,
    NotFittedError,
    RunRecord,
    RuntimeModel,
    fit_runs,
    load_runs_csv,
    load_thonglek,
    runs_from_jobs,
)
from sparkscaler.store import Store

THONGLEK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thonglek-spark-runs"

#: A job dominated by parallel work (big s/n term) and one that is all serial work plus overhead.
PARALLEL_COEF = np.array([10.0, 120.0, 2.0, 0.5, 1.0])
SERIAL_COEF = np.array([10.0, 0.0, 150.0, 0.5, 0.0])


def synthetic(coef: np.ndarray, noise: float = 0.01, seed: int = 7) -> tuple[np.ndarray, ...]:
    """Runs on a grid of sizes and worker counts, with small multiplicative seeded noise."""
    sizes, workers = np.meshgrid([0.5, 1.0, 2.0, 4.0, 8.0], [1, 2, 4, 8, 16])
    s, n = sizes.ravel(), workers.ravel()
    exact = coef[0] + coef[1] * s / n + coef[2] * s + coef[3] * n + coef[4] * np.log(n)
    rng = np.random.default_rng(seed)
    return s, n, exact * (1 + rng.normal(0.0, noise, exact.shape)), exact


# ------------------------------------------------------------------ synthetic


@pytest.mark.parametrize("coef", [PARALLEL_COEF, SERIAL_COEF])
def test_fit_recovers_predictions(coef: np.ndarray) -> None:
    s, n, t, exact = synthetic(coef)
    model = RuntimeModel().fit(s, n, t)
    assert model.coef_.shape == (len(FEATURE_NAMES),)
    assert model.n_runs_ == len(t)
    assert model.residuals_.shape == (len(t),)
    rel = np.abs(model.predict(s, n) - exact) / exact
    assert rel.max() < 0.02, f"worst relative error {rel.max():.3%}"


def test_parallel_job_scales_and_serial_job_does_not() -> None:
    parallel = RuntimeModel().fit(*synthetic(PARALLEL_COEF)[:3])
    serial = RuntimeModel().fit(*synthetic(SERIAL_COEF)[:3])
    assert parallel.scales(4.0, 8)
    assert parallel.speedup(4.0, 8) > 3
    assert not serial.scales(4.0, 8)
    assert serial.speedup(4.0, 8) < 1.1


def test_coefficients_are_never_negative() -> None:
    # Run time that *falls* with size would need negative coefficients to fit; nnls clamps them.
    s = np.array([1.0, 2.0, 4.0, 8.0, 1.0, 2.0, 4.0, 8.0])
    n = np.array([1, 1, 1, 1, 4, 4, 4, 4])
    t = np.array([100.0, 80.0, 60.0, 40.0, 90.0, 70.0, 50.0, 30.0])
    model = RuntimeModel().fit(s, n, t)
    assert np.all(model.coef_ >= 0)


def test_scalar_and_array_predictions() -> None:
    model = RuntimeModel().fit(*synthetic(PARALLEL_COEF)[:3])
    one = model.predict(2.0, 4)
    assert isinstance(one, float)
    many = model.predict(np.array([2.0, 2.0]), np.array([4, 8]))
    assert isinstance(many, np.ndarray)
    assert many.shape == (2,)
    assert many[0] == pytest.approx(one)
    assert model.predict(2.0, np.array([1, 2, 4])).shape == (3,)


def test_margin_and_sampling() -> None:
    model = RuntimeModel().fit(*synthetic(PARALLEL_COEF, noise=0.05)[:3])
    assert model.margin(0.0) == 0.0  # the most optimistic residual is negative: floored at 0
    assert model.margin(0.95) > 0
    assert model.margin(0.99) >= model.margin(0.5)
    base = model.predict(2.0, 4)
    assert model.predict_with_margin(2.0, 4) == pytest.approx(base * (1 + model.margin(0.95)))
    rng = np.random.default_rng(0)
    draws = np.array([model.sample(2.0, 4, rng) for _ in range(500)])
    assert np.all(draws >= 0.05 * base)
    assert draws.std() > 0
    assert np.mean(draws) == pytest.approx(base, rel=0.02)
    assert model.sample(np.array([2.0, 3.0]), 4, rng).shape == (2,)


def test_sample_never_below_five_percent() -> None:
    model = RuntimeModel().fit([1.0, 2.0], [1, 1], [10.0, 20.0])
    model.residuals_ = np.array([-3.0])  # a wildly wrong run, as a poor fit may have
    assert model.sample(1.0, 1, np.random.default_rng(0)) == pytest.approx(
        0.05 * model.predict(1.0, 1)
    )


def test_smallest_workers() -> None:
    model = RuntimeModel().fit(*synthetic(PARALLEL_COEF)[:3])
    times = model.predict_with_margin(4.0, np.arange(1, 17))
    deadline = float(times[5])  # exactly what 6 workers need
    assert model.smallest_workers(4.0, deadline, 16) == 6
    assert model.smallest_workers(4.0, 1e9, 16) == 1
    assert model.smallest_workers(4.0, 1.0, 16) is None
    assert model.smallest_workers(4.0, deadline, 5) is None


def test_mape() -> None:
    s, n, t, _ = synthetic(PARALLEL_COEF)
    model = RuntimeModel().fit(s, n, t)
    assert model.mape(s, n, t) < 2.0
    assert model.mape(s, n, 2 * np.asarray(model.predict(s, n))) == pytest.approx(50.0)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = RuntimeModel(source="synthetic").fit(*synthetic(PARALLEL_COEF)[:3])
    path = tmp_path / "model.json"
    model.save(path)
    loaded = RuntimeModel.load(path)
    s, n = np.array([0.7, 3.0, 9.0]), np.array([1, 3, 12])
    np.testing.assert_array_equal(loaded.predict(s, n), model.predict(s, n))
    assert loaded.margin(0.9) == model.margin(0.9)
    assert loaded.n_runs_ == model.n_runs_
    assert loaded.source == "synthetic"
    assert loaded.to_dict() == model.to_dict()
    assert model.to_dict()["features"] == list(FEATURE_NAMES)


def test_from_dict_rejects_other_features() -> None:
    data = RuntimeModel().fit(*synthetic(PARALLEL_COEF)[:3]).to_dict()
    data["features"] = ["1", "s"]
    with pytest.raises(ValueError, match="features"):
        RuntimeModel.from_dict(data)


@pytest.mark.parametrize(
    ("size", "workers", "seconds", "message"),
    [
        ([1.0], [1], [10.0], "at least 2 runs"),
        ([1.0, 2.0], [1, 2], [10.0], "differ in length"),
        ([1.0, 0.0], [1, 2], [10.0, 20.0], "sizes"),
        ([1.0, 2.0], [1, 0], [10.0, 20.0], "worker counts"),
        ([1.0, 2.0], [1, 2], [10.0, -1.0], "run times"),
    ],
)
def test_fit_rejects_bad_input(
    size: list[float], workers: list[int], seconds: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeModel().fit(size, workers, seconds)


def test_predict_rejects_bad_input() -> None:
    model = RuntimeModel().fit(*synthetic(PARALLEL_COEF)[:3])
    with pytest.raises(ValueError, match="worker counts"):
        model.predict(1.0, 0)
    with pytest.raises(ValueError, match="sizes"):
        model.predict(-1.0, 2)


def test_use_before_fit_raises() -> None:
    model = RuntimeModel()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict(1.0, 2)
    with pytest.raises(RuntimeError):
        model.margin(0.95)
    with pytest.raises(RuntimeError):
        model.to_dict()


# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def thonglek_runs() -> list[RunRecord]:
    if not THONGLEK.is_dir():
        pytest.skip(f"Thonglek Spark runs not found at {THONGLEK} (shared reference data absent)")
    return load_thonglek(THONGLEK)


def test_thonglek_loads_all_runs(thonglek_runs: list[RunRecord]) -> None:
    # 25 runs per size: 4 sizes on 1 worker, 5 on 2, 6 on 3.
    assert len(thonglek_runs) == 25 * (4 + 5 + 6)
    assert {r.workers for r in thonglek_runs} == {1, 2, 3}
    assert {r.size_gb for r in thonglek_runs} == {0.5, 1.0, 1.5, 2.0, 2.5, 3.0}
    assert load_runs(THONGLEK) == thonglek_runs
    one_file = load_runs(THONGLEK / "worker2.csv")
    assert len(one_file) == 125
    assert {r.workers for r in one_file} == {2}


def test_thonglek_fit(thonglek_runs: list[RunRecord]) -> None:
    model = fit_runs(thonglek_runs, source=str(THONGLEK))
    s = [r.size_gb for r in thonglek_runs]
    n = [r.workers for r in thonglek_runs]
    t = [r.seconds for r in thonglek_runs]
    mape = model.mape(s, n, t)
    assert mape <= 10.0, f"MAPE {mape:.2f} % on the Thonglek runs, coefficients {model.coef_}"
    assert np.all(model.coef_ >= 0)
    # The paper's Word2Vec job does not get faster with more workers (356 s, 354 s, 348 s).
    speedup = model.speedup(2.0, 3)
    assert speedup < 1.1, f"speedup {speedup:.3f} from 1 to 3 workers"
    assert not model.scales(2.0, 3)
    assert model.smallest_workers(2.0, deadline_s=3600.0, max_workers=3) == 1


# -------------------------------------------------------------------- loaders


def test_load_runs_csv(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("size,workers,seconds\n1.0,2,30.5\n2.5,4,40\n")
    assert load_runs_csv(path) == [RunRecord(1.0, 2, 30.5), RunRecord(2.5, 4, 40.0)]
    alt = tmp_path / "alt.csv"
    alt.write_text("seconds, size_gb, workers, app\n12,0.5,1,x\n")
    assert load_runs(alt) == [RunRecord(0.5, 1, 12.0)]


def test_load_runs_csv_names_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("size,time\n1.0,30\n")
    with pytest.raises(ValueError, match=r"workers, seconds"):
        load_runs_csv(path)


def test_load_runs_csv_rejects_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("size,workers,seconds\n1.0,2,\n")
    with pytest.raises(ValueError, match="seconds"):
        load_runs_csv(path)
    path.write_text("size,workers,seconds\n1.0,2.5,10\n")
    with pytest.raises(ValueError, match="whole number"):
        load_runs_csv(path)


def test_dispatch_to_thonglek_layout(tmp_path: Path) -> None:
    # Same layout quirks as the real files: quoted upper-case header, worker count in the name.
    header = '"SIZE","TIME","USED_B","FREE_B","USED_M","FREE_M"\n'
    (tmp_path / "worker1.csv").write_text(header + "0.5,95.4,1,2,3,4\n1,180.2,1,2,3,4\n")
    (tmp_path / "worker3.csv").write_text(header + "0.5,89.6,1,2,3,4\n")
    expected = [RunRecord(0.5, 1, 95.4), RunRecord(1.0, 1, 180.2), RunRecord(0.5, 3, 89.6)]
    assert load_runs(tmp_path) == expected
    assert load_runs(tmp_path / "worker3.csv") == expected[2:]
    with pytest.raises(ValueError, match="worker<N>"):
        load_thonglek(tmp_path / "other.csv")


def job(app_id: str, *, success: bool = True, input_bytes: int = 2_000_000_000) -> JobRecord:
    return JobRecord(
        app_id=app_id,
        name="wordcount",
        submit_time=1000.0,
        end_time=1060.0,
        tasks=10,
        failed_tasks=0,
        task_seconds=100.0,
        executors=2,
        workers=2,
        input_bytes=input_bytes,
        spark_jobs=1,
        success=success,
    )


def test_runs_from_jobs_and_store_dispatch(tmp_path: Path) -> None:
    jobs = [job("ok"), job("failed", success=False), job("no-input", input_bytes=0)]
    assert runs_from_jobs(jobs) == [RunRecord(2.0, 2, 60.0)]
    db = tmp_path / "state.db"
    with Store(db) as store:
        store.add_jobs(jobs)
    assert load_runs(db) == [RunRecord(2.0, 2, 60.0)]
    with pytest.raises(FileNotFoundError):
        load_runs(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
