"""Validate the runtime model and the simulator against real runs.

1. The OLA 2019 paper's Spark runs (``../shared/data/thonglek-spark-runs``): the Ernest model's
   fit error, and whether it tells that 3 workers are not faster than 1.
2. This machine's local cluster (``src/sparkscaler/data/local_runs.csv``, recorded by
   ``record_local_runs.py``): each recorded run replayed in the simulator, on the same number
   of workers, in two ways:
   - structural: the job's measured shape (its tasks at their measured mean duration, its
     measured start-up before the first task and shutdown after the last), so that what is
     tested is the simulator's scheduling of waves over workers;
   - calibrated: the job generated from the runtime model fitted to those runs (``ModelJobs``).
3. TPC-H profiles (``../shared/data/tpch``): every query alone on 5, 10 and 20 one-core
   workers against its profile's own task durations summed per wave (``wave_estimate``).

    .venv/bin/python benchmarks/validate_simulator.py
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
from _cluster import save

from sparkscaler.models.runtime_model import LOCAL_RUNS, RunRecord, fit_runs, load_thonglek
from sparkscaler.sim.cluster import LOCAL_EXECUTOR_STARTUP_S, SimCluster
from sparkscaler.sim.workload import (
    FixedDurations,
    JobSpec,
    ModelJobs,
    Stage,
    load_tpch_job,
    tpch_queries,
    wave_estimate,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def alone(job: JobSpec, workers: int, startup: tuple[float, float], seed: int) -> float:
    """The job's duration alone on a static cluster of one-core workers."""
    sim = SimCluster([job], initial_workers=workers, executor_startup_s=startup, seed=seed)
    sim.run_until(1e7)
    (result,) = sim.results
    return result.finished - result.arrival


def pct(simulated: float, real: float) -> float:
    return 100.0 * (simulated - real) / real


def thonglek() -> dict[str, float] | None:
    folder = DATA / "thonglek-spark-runs"
    if not folder.exists():
        return None
    runs = load_thonglek(folder)
    model = fit_runs(runs, str(folder))
    arrays = [
        np.array(v) for v in zip(*((r.size_gb, r.workers, r.seconds) for r in runs), strict=True)
    ]
    return {
        "runs": len(runs),
        "mape_pct": round(model.mape(*arrays), 2),
        "speedup_1_to_3_workers_at_2gb": round(model.speedup(2.0, 3), 3),
        "coef": [round(c, 3) for c in model.coef_],
    }


def local_replay() -> dict[str, object] | None:
    path = LOCAL_RUNS
    if not path.exists():
        return None
    with path.open() as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    model = fit_runs([RunRecord(r["size"], int(r["workers"]), r["seconds"]) for r in rows])
    groups: dict[tuple[int, int], list[dict[str, float]]] = defaultdict(list)
    for row in rows:
        groups[(int(row["size"]), int(row["workers"]))].append(row)
    startup_mean = sum(LOCAL_EXECUTOR_STARTUP_S) / 2
    points = []
    for (size, workers), runs in sorted(groups.items()):
        real = statistics.mean(r["seconds"] for r in runs)
        tasks = int(runs[0]["tasks"])
        task_s = statistics.mean(r["task_seconds_mean"] for r in runs)
        driver = statistics.mean(r["first_task_delay_s"] for r in runs) - startup_mean
        tail = statistics.mean(r["tail_s"] for r in runs)
        shaped = JobSpec(
            0,
            "replay",
            0.0,
            (Stage(0, tasks, FixedDurations(task_s)),),
            float(size),
            None,
            max(0.0, driver),
        )
        structural = alone(shaped, workers, LOCAL_EXECUTOR_STARTUP_S, seed=size) + tail
        calibrated = alone(
            ModelJobs(model, tasks_per_job=tasks, planned_workers=workers).make(
                float(size), np.random.default_rng(0)
            ),
            workers,
            (0.0, 0.0),
            0,
        )
        points.append(
            {
                "size": size,
                "workers": workers,
                "runs": len(runs),
                "real_s": round(real, 2),
                "structural_s": round(structural, 2),
                "structural_err_pct": round(pct(structural, real), 1),
                "calibrated_s": round(calibrated, 2),
                "calibrated_err_pct": round(pct(calibrated, real), 1),
            }
        )
    sizes = np.array([r["size"] for r in rows])
    workers = np.array([r["workers"] for r in rows])
    seconds = np.array([r["seconds"] for r in rows])
    return {
        "runs": len(rows),
        "model_mape_pct": round(model.mape(sizes, workers, seconds), 2),
        "model_coef": [round(c, 3) for c in model.coef_],
        "structural_mape_pct": round(
            statistics.mean(abs(p["structural_err_pct"]) for p in points), 2
        ),
        "calibrated_mape_pct": round(
            statistics.mean(abs(p["calibrated_err_pct"]) for p in points), 2
        ),
        "points": points,
    }


def is_chain(job: JobSpec) -> bool:
    """One root and at most one parent per stage: no branches that would share the slots."""
    roots = sum(1 for stage in job.stages if not stage.parents)
    return roots == 1 and all(len(stage.parents) <= 1 for stage in job.stages)


def tpch() -> dict[str, object] | None:
    """The wave sum assumes every stage gets all the executors; a DAG's parallel branches share
    them, so the errors are reported apart for chain-shaped and branching queries."""
    folder = DATA / "tpch"
    if not folder.exists():
        return None
    errors: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_shape: dict[str, list[float]] = defaultdict(list)
    for query, size in tpch_queries(folder):
        job = load_tpch_job(folder, query, size)
        for executors in (5, 10, 20):
            simulated = alone(job, executors, (0.0, 0.0), seed=query)
            error = pct(simulated, wave_estimate(job, executors))
            errors[size][executors].append(error)
            by_shape["chain" if is_chain(job) else "branching"].append(error)
    table = {
        size: {
            f"e={e}": round(statistics.median(abs(x) for x in errs), 1) for e, errs in by_e.items()
        }
        for size, by_e in errors.items()
    }
    everything = [x for shape in by_shape.values() for x in shape]
    return {
        "median_abs_err_pct_by_size": table,
        "median_abs_err_pct_overall": round(statistics.median(abs(x) for x in everything), 1),
        "mean_signed_err_pct_overall": round(statistics.mean(everything), 1),
        "by_shape": {
            shape: {
                "jobs": len(errs),
                "median_abs_err_pct": round(statistics.median(abs(x) for x in errs), 1),
                "mean_signed_err_pct": round(statistics.mean(errs), 1),
            }
            for shape, errs in by_shape.items()
        },
    }


def main() -> None:
    result = {"thonglek": thonglek(), "local_replay": local_replay(), "tpch": tpch()}
    for name, part in result.items():
        print(f"== {name}: {part if part is not None else 'data not found, skipped'}")
    print(f"written to {save('validate_simulator', result)}")


if __name__ == "__main__":
    main()
