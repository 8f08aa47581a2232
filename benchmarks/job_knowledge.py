"""How well the planner knows a recurring job: run-time prediction error after 1, 3 and 5 prior
runs of its signature, and the projected-finish error of a running job at 25, 50 and 75 % of
its run.

Data: the recorded real runs of the four PySpark jobs at several sizes and worker counts
(``sparkscaler.models.recorded_runs.load_recorded_runs``, ``src/sparkscaler/data/
job_runs.jsonl``); with ``--synthetic`` (or while those recordings are not there) runs of four
simulated recurring jobs instead, so that the script itself can be checked.

- **MAPE after k runs**: each run of a signature is predicted before it starts (its size, its
  workers, its ``spark.cores.max``) by :class:`~sparkscaler.models.job_knowledge.JobKnowledge`
  fitted on k other runs of that signature, drawn at random (seeded; ``--draws`` per run), as
  a cluster would know it after k runs; no prior model, as in production. The error is
  ``|predicted - actual| / actual``, averaged over runs and draws.
- **Projected-finish error**: each run is rebuilt as the live job context it had at 25, 50
  and 75 % of its run time (``context_at``) and projected on its workers by the knowledge
  fitted on all the other runs of its signature; the error is that of the projected whole run
  time. The error of the same knowledge with no live progress (the prediction at the start)
  is shown beside it: what progress adds.

    .venv/bin/python benchmarks/job_knowledge.py [--synthetic] [--runs RUNS.jsonl] [--draws 20]

Writes ``benchmarks/results/job_knowledge.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _cluster import save

from sparkscaler.backends.simulated import SimJobHistory, held_cores, job_contexts
from sparkscaler.core import JobContext, JobRecord
from sparkscaler.models.job_knowledge import JobKnowledge
from sparkscaler.models.recorded_runs import RECORDED_RUNS, load_recorded_runs
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage

PRIOR_RUNS = (1, 3, 5)
PROGRESS = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class Run:
    """One recorded run: its record, its signature, the workers it ran on, and its live job
    context at any time into the run."""

    record: JobRecord
    kind: str
    workers: int
    context_at: Callable[[float], JobContext]
    cores_per_worker: float = 1.0


# ---------------------------------------------------------------------------- synthetic runs
#: Four recurring jobs of different shapes: (driver seconds, seconds per GB of each stage's
#: task at 1 GB, tasks per stage, task time noise).
SYNTHETIC: dict[str, tuple[float, tuple[float, ...], tuple[int, ...], float]] = {
    "wordcount": (6.0, (1.5, 0.8), (16, 4), 0.1),
    "pagerank": (8.0, (1.0, 2.0, 2.0, 2.0), (8, 8, 8, 8), 0.15),
    "kmeans": (10.0, (0.5, 3.0, 3.0), (8, 8, 1), 0.1),
    "forecast": (12.0, (4.0,), (4,), 0.2),
}


def _spec(kind: str, size_gb: float) -> JobSpec:
    driver, per_gb, tasks, noise = SYNTHETIC[kind]
    stages = tuple(
        Stage(i, n, FixedDurations(t * size_gb, noise), (i - 1,) if i else ())
        for i, (t, n) in enumerate(zip(per_gb, tasks, strict=True))
    )
    return JobSpec(0, kind, 0.0, stages, size_gb, None, driver, signature=kind)


def _simulated(kind: str, size_gb: float, workers: int, seed: int) -> Run:
    """A run of a synthetic job on its own on ``workers`` 1-core workers, and its contexts."""

    def cluster() -> SimCluster:
        return SimCluster(
            [_spec(kind, size_gb)], initial_workers=workers, executor_startup_s=(0.0, 0.0),
            provisioning=(0.0, 0.0), seed=seed,
        )  # fmt: skip

    sim = cluster()
    history = SimJobHistory(sim)
    sim.run_until(86_400.0)
    (record,) = history.poll()

    def context_at(t: float) -> JobContext:
        live = cluster()
        live.run_until(t)
        (job,) = job_contexts(live, held_cores(live))
        return job

    return Run(record, kind, workers, context_at)


def synthetic_runs(seed: int = 0) -> list[Run]:
    """Each synthetic job at 4 sizes on 1 to 4 workers, in a shuffled (seeded) order."""
    rng = np.random.default_rng(seed)
    grid = [(k, s, n) for k in SYNTHETIC for s in (0.5, 1.0, 2.0, 4.0) for n in (1, 2, 3, 4)]
    order = rng.permutation(len(grid))
    runs = []
    for i, index in enumerate(order):
        kind, size, workers = grid[index]
        run = _simulated(kind, size, workers, seed + i)
        record = dataclasses.replace(
            run.record, app_id=f"{kind}-{i}", submit_time=1000.0 * i,
            end_time=1000.0 * i + run.record.duration_s,
        )  # fmt: skip
        runs.append(dataclasses.replace(run, record=record))
    return runs


def recorded_runs(path: Path = RECORDED_RUNS) -> list[Run] | None:
    """The recorded real runs, or None while they are not there."""
    try:
        loaded = load_recorded_runs(path)
    except FileNotFoundError:
        return None
    return [Run(r.record, r.kind, r.workers, r.context_at, r.cores_per_worker) for r in loaded]


# ---------------------------------------------------------------------------------- measures
def _start(run: Run) -> JobContext:
    """The run as a job that has just been submitted: its size, core cap and nothing done."""
    r = run.record
    return JobContext(
        r.app_id, r.name, r.key, 0.0, r.deadline_s, float(r.input_bytes) or None,
        "declared" if r.input_bytes else "unknown", (), 0, r.max_cores,
    )  # fmt: skip


def _error(predicted: float, actual: float) -> float:
    return abs(predicted - actual) / actual


def _knowledge(runs: Sequence[Run]) -> JobKnowledge:
    cpw = runs[0].cores_per_worker if runs else 1.0
    return JobKnowledge(cores_per_worker=cpw).fit([r.record for r in runs])


def prediction_errors(
    by_kind: dict[str, list[Run]], draws: int, seed: int
) -> dict[str, dict[int, dict[str, Any]]]:
    """Per signature and k: MAPE (%) of whole-run predictions from k other runs, and which
    estimator the knowledge chose how often."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for kind, runs in by_kind.items():
        out[kind] = {}
        for k in PRIOR_RUNS:
            if len(runs) <= k:
                continue
            errors, chosen = [], defaultdict(int)
            for i, run in enumerate(runs):
                others = [r for j, r in enumerate(runs) if j != i]
                for _ in range(draws):
                    picked = [others[j] for j in sorted(rng.choice(len(others), k, replace=False))]
                    knowledge = _knowledge(picked)
                    chosen[knowledge.signatures_[kind].estimator] += 1
                    projection = knowledge.project(_start(run), run.workers, run.cores_per_worker)
                    assert projection is not None
                    errors.append(_error(projection.whole_s, run.record.duration_s))
            out[kind][k] = {
                "mape_pct": round(100 * float(np.mean(errors)), 2),
                "p90_pct": round(100 * float(np.quantile(errors, 0.9)), 2),
                "predictions": len(errors),
                "estimators": dict(chosen),
            }
    return out


def progress_errors(by_kind: dict[str, list[Run]]) -> dict[str, dict[str, Any]]:
    """Per signature: the projected-finish error (%) at each share of the run, from live
    progress, and at the start (history alone), each run projected by the knowledge of the
    signature's other runs."""
    out: dict[str, dict[str, Any]] = {}
    for kind, runs in by_kind.items():
        if len(runs) < 2:
            continue
        live: dict[float, list[float]] = defaultdict(list)
        start: list[float] = []
        for i, run in enumerate(runs):
            knowledge = _knowledge([r for j, r in enumerate(runs) if j != i])
            actual = run.record.duration_s
            at_start = knowledge.project(_start(run), run.workers, run.cores_per_worker)
            assert at_start is not None
            start.append(_error(at_start.whole_s, actual))
            for share in PROGRESS:
                job = run.context_at(share * actual)
                projection = knowledge.project(job, run.workers, run.cores_per_worker)
                assert projection is not None
                live[share].append(_error(projection.whole_s, actual))
        out[kind] = {
            "runs": len(runs),
            "at_start_pct": round(100 * float(np.mean(start)), 2),
            **{
                f"at_{round(100 * s)}pct_pct": round(100 * float(np.mean(live[s])), 2)
                for s in PROGRESS
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", action="store_true", help="simulated runs, not recorded")
    parser.add_argument("--draws", type=int, default=20, help="random k-run histories per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=Path, default=RECORDED_RUNS, help="recorded runs (.jsonl)")
    args = parser.parse_args()
    runs = None if args.synthetic else recorded_runs(args.runs)
    source = "recorded"
    if runs is None:
        runs, source = synthetic_runs(args.seed), "synthetic"
        if not args.synthetic:
            print("recorded runs not found: using synthetic runs")
    by_kind: dict[str, list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.record.end_time):
        if run.record.success and run.record.duration_s > 0:
            by_kind[run.kind].append(run)
    mape = prediction_errors(by_kind, args.draws, args.seed)
    progress = progress_errors(by_kind)
    header = f"{'signature':12s} {'runs':>4s} " + " ".join(f"{f'MAPE@{k}':>8s}" for k in PRIOR_RUNS)
    header += " " + " ".join(f"{f'fin@{round(100 * s)}%':>8s}" for s in PROGRESS) + "   at start"
    print(f"{source} runs")
    print(header)
    for kind in sorted(by_kind):
        cells = [
            f"{mape[kind][k]['mape_pct']:7.1f}%" if k in mape[kind] else "       -"
            for k in PRIOR_RUNS
        ]
        p = progress.get(kind)
        fin = [f"{p[f'at_{round(100 * s)}pct_pct']:7.1f}%" if p else "       -" for s in PROGRESS]
        start = f"{p['at_start_pct']:7.1f}%" if p else "-"
        print(f"{kind:12s} {len(by_kind[kind]):4d} {' '.join(cells)} {' '.join(fin)}   {start}")
    result = {
        "source": source,
        "draws": args.draws,
        "seed": args.seed,
        "runs": {kind: len(r) for kind, r in by_kind.items()},
        "mape_after_k_runs": mape,
        "projected_finish_error": progress,
    }
    print(f"written to {save('job_knowledge', result)}")


if __name__ == "__main__":
    main()
