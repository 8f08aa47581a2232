"""``sparkscaler evaluate``: plan the suites' runs, run them in parallel, write the results.

Every run is a task — train one DQN, or run one policy over one paper-grid cell or one trace
case — that depends only on its arguments and the seed, so tasks run in any order on any number
of processes (joblib), or on a Spark cluster (joblibspark: :mod:`.spark_session`), and the
results are the same bit for bit. DQNs are trained first (the cells that use them wait for
them); everything else follows in one parallel batch.

A full evaluation takes hours, so ``results.json`` and ``results.csv`` are rewritten after every
task (atomically: a reader, or a crash, never sees half a file) with ``"complete": false`` until
the end; a failure then loses only the tasks still running. On Spark they are rewritten after
each batch instead: joblibspark returns a batch's results all together. The report is drawn
once, at the end.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import importlib.metadata
import io
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from sparkscaler.config import Config
from sparkscaler.core import JobRecord
from sparkscaler.errors import SparkscalerError
from sparkscaler.evaluation import continuous, paper_grid
from sparkscaler.evaluation.lineup import DQN_VARIANTS, ORACLE, Calibration
from sparkscaler.evaluation.paper_grid import CellResult, GridSettings
from sparkscaler.sim.traces import CLI_KNOBS, TraceError, is_alibaba_batch, read_demand

SUITES = ("paper-grid", "trace", "replay")
#: Our policies, among which "our best" is chosen for the goals; the rest are peers.
OURS = ("planner", "predictive", "hybrid", "dqn-improved", "dqn-residual")
PEERS = ("hpa", "dra", "dataproc")
DEFAULT_TRACES = (
    Path("../shared/data/traces/nasa-http-1995/requests_per_minute.csv"),
    Path("../shared/data/traces/alibaba2017-batch/batch_task.csv"),
    Path("../shared/data/traces/alibaba2018/machine_usage_days_1_to_8_grouped_300_seconds.csv"),
)
#: How to read a reference trace that has no time column, when ``--trace-column`` and
#: ``--trace-step`` do not say: its demand column and step (s), by file name.
REFERENCE_TRACE_FORMATS: dict[str, tuple[str, float]] = {
    "machine_usage_days_1_to_8_grouped_300_seconds.csv": ("cpu_util_percent", 300.0),
}
WEEK_S = 7 * 86_400.0


@dataclass(frozen=True)
class Options:
    suites: tuple[str, ...] = SUITES
    quick: bool = False
    seed: int = 0
    n_jobs: int = -1
    model: Path | None = None
    sizes: tuple[float, float] | None = None
    traces: tuple[Path, ...] | None = None
    history: Path | None = None
    max_workers: int = 10
    dqn_timesteps: int | None = None
    #: The demand column of the ``--trace`` CSVs (default: their first numeric column).
    trace_column: str | None = None
    #: The step of ``--trace`` CSVs without a time column; with one, it overrides the times' own.
    trace_step_s: float | None = None
    #: The policies to run (the oracle always runs: it is the floor); None: every one.
    policies: tuple[str, ...] | None = None
    #: A Spark master (spark://HOST:PORT) to run the tasks on, through joblibspark; None: local
    #: processes. ``n_jobs`` is then the tasks at once (-1: the cores the cluster gives).
    spark: str | None = None

    @property
    def timesteps(self) -> int:
        return self.dqn_timesteps or (3_000 if self.quick else 30_000)

    def grid(self) -> GridSettings:
        policies = self.chosen(paper_grid.POLICY_KEYS)
        if self.quick:
            return GridSettings(
                deadlines_min=(5, 8), max_workers=(5, 8), rounds=25, policies=policies
            )
        return GridSettings(policies=policies)

    def chosen(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        """Those of a suite's ``keys`` that were chosen, in the suite's order."""
        if self.policies is None:
            return keys
        return tuple(k for k in keys if k == ORACLE or k in self.policies)


def check_policies(policies: Iterable[str]) -> None:
    """Reject a policy no suite has, before any work, with the names there are."""
    known = dict.fromkeys(paper_grid.POLICY_KEYS + continuous.POLICY_KEYS)
    unknown = [p for p in policies if p not in known]
    if unknown:
        raise ValueError(f"unknown policy {', '.join(unknown)}; choose from {', '.join(known)}")


@dataclass
class Task:
    """One unit of work: a label for the progress bar, a function and its arguments."""

    label: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kind: str
    key: tuple[Any, ...] = field(default_factory=tuple)


def _case_name(path: Path, source: str) -> str:
    """``source`` for the reference trace of that name (its folder says so), else the stem."""
    return source if source in path.parent.name or source in path.stem else path.stem


def _trace_case(path: Path, options: Options, duration: float) -> tuple[continuous.Case, str]:
    """The case of one trace file, read now so that a file it cannot read stops the evaluation
    before any work, and a note when the trace is too short for the usual span."""
    if is_alibaba_batch(path):
        name = _case_name(path, "alibaba")
        return continuous.Case(name, "alibaba", duration, options.max_workers, str(path)), ""
    column, step_s = REFERENCE_TRACE_FORMATS.get(path.name, (None, None))
    column = options.trace_column or column
    step_s = options.trace_step_s or step_s
    trace = read_demand(path, column, step_s, CLI_KNOBS)
    name = _case_name(path, "alibaba2018" if path.name in REFERENCE_TRACE_FORMATS else "nasa")
    note = ""
    if continuous.demand_periods(trace, duration) < 2:
        span = min(duration, trace.span_s)
        note = (
            f"trace {path} spans {trace.span_s / 3600:.4g} h, less than two periods of "
            f"{duration / 3600:g} h: its case runs {span / 3600:.4g} h from the trace's start, "
            f"with no preceding period to warm the forecaster up on"
        )
        duration = span
    case = continuous.Case(
        name,
        "csv",
        duration,
        options.max_workers,
        str(path),
        column=trace.column,
        step_s=trace.step_s,
    )
    return case, note


def trace_cases(options: Options) -> tuple[list[continuous.Case], list[str]]:
    """The trace suite's cases, and notes on default traces that are not there and on traces
    too short for the usual span."""
    duration = 86_400.0 if options.quick else WEEK_S
    cases = [continuous.Case("daily", "daily", duration, options.max_workers)]
    notes = []
    if not options.quick:
        # A generated shape no policy was tuned on. (The recorded real jobs are not a case of
        # their own: they take 10-36 s, so 30 % of N is 535 of them an hour, 12,627 a day.)
        cases.append(continuous.Case("bursty", "bursty", duration, options.max_workers))
    elif options.traces is None:
        return cases, notes
    paths = options.traces if options.traces is not None else DEFAULT_TRACES
    for path in paths:
        if not path.is_file():
            if options.traces is None:
                notes.append(f"trace {path} not found: its case was skipped")
                continue
            raise TraceError(f"trace {path} not found")
        case, note = _trace_case(path, options, duration)
        if any(c.name == case.name for c in cases):  # two files of the same name
            case = replace(case, name=f"{case.name}-{len(cases)}")
        cases.append(case)
        notes += [note] if note else []
    return cases, notes


def _train(env_config: Any, variant: str, timesteps: int, seed: int, out: Path) -> dict[str, Any]:
    from sparkscaler.rl.training import train_dqn

    result = train_dqn(env_config, variant, timesteps, seed, out)  # type: ignore[arg-type]
    curve = result.metadata["learning_curve"]
    return {
        "path": str(out),
        "wall_s": result.wall_time_s,
        "episodes": result.episodes,
        "learning_curve": {"timesteps": curve["timesteps"], "rewards": curve["episode_rewards"]},
    }


def _model_path(out: Path, suite: str, where: str, variant: str) -> Path:
    """Where the DQN of ``variant`` for one N or case is trained to, and read from."""
    return out / "models" / f"{suite}-{variant}-{where}.zip"


def _train_task(
    env: Any, variant: str, path: Path, options: Options, where: int | str, suite: str
) -> Task:
    """Training the DQN of ``variant`` for one N (paper-grid) or one case (trace, replay)."""
    return Task(
        f"train {variant} {where}",
        _train,
        (env, variant, options.timesteps, options.seed, path),
        "train",
        ("train", variant, where, suite),
    )


class EvaluationTaskError(SparkscalerError, RuntimeError):
    """A task raised: its label, the error and the line it came from, in one line."""


@dataclass(frozen=True)
class _Failed:
    """What a task that raised returns instead: plain text, so that it comes back from any
    backend. joblibspark hands joblib a raised error wrapped in a way joblib 1.6 then tries to
    iterate, so its own message (``'_ExceptionWithTraceback' object is not iterable``) would
    hide the task's."""

    label: str
    error: str
    where: str

    def message(self) -> str:
        return f"evaluation task '{self.label}' failed: {self.error} ({self.where})"


def _call(task: Task) -> tuple[tuple[Any, ...], Any]:
    try:
        return task.key, task.fn(*task.args)
    except Exception as error:  # reported with its task's label, in the process that waits
        frames = traceback.extract_tb(error.__traceback__)
        ours = [f for f in frames if "sparkscaler" in PurePath(f.filename).parts]
        frame = (ours or frames)[-1]  # the line of ours that raised, or called what did
        where = f"at {PurePath(frame.filename).name}:{frame.lineno} in {frame.name}"
        return task.key, _Failed(task.label, f"{type(error).__name__}: {error}", where)


def _run_parallel(
    tasks: list[Task], n_jobs: int, done: Callable[[tuple[Any, ...], Any], None]
) -> None:
    """Run ``tasks`` on joblib's active backend, calling ``done(key, result)`` in this process
    as each one finishes; on a backend that can only return them all at once (joblibspark's),
    as they come in the end."""
    if not tasks:
        return
    try:
        runner = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    except ValueError:  # "Backend ... does not support return_as=generator_unordered"
        runner = Parallel(n_jobs=n_jobs, return_as="list")
    for key, value in runner(delayed(_call)(t) for t in tasks):
        if isinstance(value, _Failed):
            raise EvaluationTaskError(value.message())
        done(key, value)


@contextlib.contextmanager
def _backend(options: Options) -> Iterator[int]:
    """joblib's backend for the tasks, local processes or ``options.spark``; yields how many
    tasks run at once."""
    if options.spark is None:
        yield options.n_jobs if options.n_jobs != -1 else (os.cpu_count() or 1)
        return
    from sparkscaler.evaluation.spark_session import spark_backend

    with spark_backend(options.spark, options.n_jobs) as n_jobs:
        yield n_jobs


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in (
        "sparkscaler",
        "numpy",
        "scipy",
        "scikit-learn",
        "stable-baselines3",
        "gymnasium",
        "torch",
        "joblib",
    ):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def _best(rows: Iterable[dict[str, Any]], misses: str, cost: str) -> dict[str, Any] | None:
    candidates = [r for r in rows if r["policy"] in OURS]
    return min(candidates, key=lambda r: (r[misses], r[cost]), default=None)


def _paper_grid(
    options: Options,
    config: Config,
    calibration: Calibration,
    tasks_done: dict[tuple[Any, ...], Any],
    grid: GridSettings,
    sizes: tuple[float, float],
) -> dict[str, Any]:
    cells: dict[tuple[str, int, int], CellResult] = {
        (k[1], k[2], k[3]): v for k, v in tasks_done.items() if k[0] == "paper-grid"
    }
    rows = []
    for (_, t, n), cell in sorted(
        cells.items(), key=lambda kv: (grid.policies.index(kv[0][0]), kv[0][1], kv[0][2])
    ):
        rows.append(cell.summary(cells.get((ORACLE, t, n))))
    per_policy = []
    oracle_min = sum(r["worker_minutes"] for r in rows if r["policy"] == ORACLE)
    for key in grid.policies:
        mine = [r for r in rows if r["policy"] == key]
        if not mine:
            continue
        worker_min = sum(r["worker_minutes"] for r in mine)
        per_policy.append(
            {
                "policy": key,
                "failures": sum(r["failures"] for r in mine),
                "failure_pct": round(
                    100 * sum(r["failures"] for r in mine) / sum(r["rounds"] for r in mine), 3
                ),
                "avoidable_failures": sum(r.get("avoidable_failures", 0) for r in mine),
                "cells_with_avoidable_failures": sum(
                    1 for r in mine if r.get("avoidable_failures")
                ),
                "first_block_failures": sum(r["failures_per_block"][0] for r in mine),
                "worker_minutes": round(worker_min, 3),
                "ratio_to_oracle": round(worker_min / oracle_min, 4) if oracle_min else None,
            }
        )
    best = _best(per_policy, "avoidable_failures", "worker_minutes")
    goals = None
    if best is not None:
        goals = {
            "best_policy": best["policy"],
            "avoidable_failures": best["avoidable_failures"],
            "first_block_failures": best["first_block_failures"],
            "ratio_to_oracle": best["ratio_to_oracle"],
            "no_avoidable_failure": best["avoidable_failures"] == 0,
            "within_1_05_of_oracle": best["ratio_to_oracle"] is not None
            and best["ratio_to_oracle"] <= 1.05,
        }
    rounds = {
        f"{key}@T{t}N{n}": {
            "failed": [r.failed for r in cell.rounds],
            "worker_s": [round(r.worker_s, 3) for r in cell.rounds],
            "run_s": [round(r.run_s, 3) for r in cell.rounds],
        }
        for (key, t, n), cell in sorted(cells.items())
    }
    curves = {
        f"{k[1]}@N{k[2]}": v["learning_curve"]
        for k, v in tasks_done.items()
        if k[0] == "train" and k[3] == "paper-grid"
    }
    return {
        "settings": {
            "deadlines_min": list(grid.deadlines_min),
            "max_workers": list(grid.max_workers),
            "rounds": grid.rounds,
            "block": paper_grid.BLOCK,
            "sizes": list(sizes),
            "policies": list(grid.policies),
            "interval_s": config.scaling.interval_s,
            "dqn_interval_s": paper_grid.DQN_INTERVAL_S,
            "provisioning": config.simulation.provisioning,
            "dqn_timesteps": options.timesteps,
        },
        "cells": rows,
        "policies": per_policy,
        "goals": goals,
        "rounds": rounds,
        "dqn_learning_curves": curves,
    }


def _continuous(
    suite: str,
    cases: list[continuous.CaseData],
    tasks_done: dict[tuple[Any, ...], Any],
    policies: tuple[str, ...],
) -> dict[str, Any]:
    out_cases = []
    for data in cases:
        rows = [
            {k: v for k, v in tasks_done[(suite, key, data.case.name)].items() if k != "wall_s"}
            for key in policies
            if (suite, key, data.case.name) in tasks_done
        ]
        oracle = next((r for r in rows if r["policy"] == ORACLE), None)
        for row in rows:
            row["ratio_to_oracle"] = (
                round(row["worker_hours"] / oracle["worker_hours"], 4)
                if oracle and oracle["worker_hours"]
                else None
            )
        best = _best(rows, "miss_pct", "worker_hours")
        peers = [r for r in rows if r["policy"] in PEERS]
        best_peer = min(peers, key=lambda r: (r["miss_pct"], r["worker_hours"]), default=None)
        goals = None
        if best is not None and best_peer is not None:
            fewer = 1.0 - best["misses"] / best_peer["misses"] if best_peer["misses"] else None
            goals = {
                "best_policy": best["policy"],
                "miss_pct": best["miss_pct"],
                "ratio_to_oracle": best["ratio_to_oracle"],
                "best_peer": best_peer["policy"],
                "peer_miss_pct": best_peer["miss_pct"],
                "peer_worker_hours": best_peer["worker_hours"],
                "fewer_misses_than_peer": None if fewer is None else round(fewer, 4),
                "misses_at_most_1pct": best["miss_pct"] <= 1.0,
                "within_1_10_of_oracle": best["ratio_to_oracle"] is not None
                and best["ratio_to_oracle"] <= 1.10,
                "half_the_peer_misses_at_no_more_worker_hours": (
                    (
                        (best_peer["misses"] == 0 and best["misses"] == 0)
                        or (fewer is not None and fewer >= 0.5)
                    )
                    and best["worker_hours"] <= best_peer["worker_hours"]
                ),
            }
        out_cases.append(
            {
                "name": data.case.name,
                "settings": {
                    **asdict(data.case),
                    "jobs_per_hour": round(data.rate_per_hour, 4),
                    "n_jobs": len(data.workload),
                    "warm_up": data.previous is not None,
                    "interval_s": continuous.TRACE_INTERVAL_S,
                },
                "results": rows,
                "goals": goals,
            }
        )
    return {"cases": out_cases}


def evaluate(
    config: Config,
    options: Options,
    out: Path,
    progress: Callable[[int, int, str], None] | None = None,
    history: list[JobRecord] | None = None,
) -> dict[str, Any]:
    """Run the chosen suites and write ``results.json``, ``results.csv`` and ``report.html``."""
    started = time.perf_counter()
    check_policies(options.policies or ())
    out = Path(out).absolute()  # tasks write and read models there, from any working directory
    calibration = Calibration.load(options.model)
    grid = options.grid()
    sizes = options.sizes or calibration.default_sizes(
        60.0 * min(grid.deadlines_min), min(grid.max_workers)
    )
    notes: list[str] = []

    train: list[Task] = []
    continuous_keys = options.chosen(continuous.POLICY_KEYS)
    if "paper-grid" in options.suites:
        for variant in _pretrained(DQN_VARIANTS, grid.policies):
            for n in grid.max_workers:
                cell = paper_grid.cell_config(config, n, "dqn")
                env = paper_grid.env_config(
                    cell, calibration, sizes, n, [60.0 * t for t in grid.deadlines_min], variant
                )
                path = _model_path(out, "paper-grid", f"N{n}", variant)
                train.append(_train_task(env, variant, path, options, n, "paper-grid"))
    suites_cases: dict[str, list[continuous.CaseData]] = {}
    if "trace" in options.suites:
        trace, missing = trace_cases(options)
        notes += missing
        suites_cases["trace"] = [
            continuous.build_case(c, config, calibration, sizes, options.seed) for c in trace
        ]
    if "replay" in options.suites:
        if history is None:
            raise ValueError("the replay suite needs a history (--history PATH)")
        case = continuous.Case("replay", "replay", 0.0, config.scaling.max_workers)
        data = continuous.build_case(case, config, calibration, sizes, options.seed, history)
        span = max(j.arrival for j in data.workload) + max(j.deadline_s or 0 for j in data.workload)
        data = continuous.CaseData(
            continuous.Case(
                "replay", "replay", span, config.scaling.max_workers, str(options.history)
            ),
            data.workload,
            None,
            data.rate_per_hour,
        )
        suites_cases["replay"] = [data]
    for suite, datas in suites_cases.items():
        for data in datas:
            for variant in _pretrained(DQN_VARIANTS, continuous_keys):
                env = continuous.env_config(config, data, variant, calibration, sizes)
                path = _model_path(out, suite, data.case.name, variant)
                train.append(_train_task(env, variant, path, options, data.case.name, suite))

    total = len(train)
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    runs: list[Task] = []
    if "paper-grid" in options.suites:
        ctx_models: dict[str, str] = {}
        for variant in DQN_VARIANTS:
            for n in grid.max_workers:
                ctx_models[f"dqn-{variant}@{n}"] = str(
                    _model_path(out, "paper-grid", f"N{n}", variant)
                )
        ctx = paper_grid.RunContext(calibration, sizes, options.seed, grid.rounds, ctx_models)
        for key in grid.policies:
            for t in grid.deadlines_min:
                for n in grid.max_workers:
                    runs.append(
                        Task(
                            f"{key} T={t} N={n}",
                            paper_grid.run_cell,
                            (config, key, t, n, ctx),
                            "paper-grid",
                            ("paper-grid", key, t, n),
                        )
                    )
    for suite, datas in suites_cases.items():
        for data in datas:
            models = {
                f"dqn-{v}": str(_model_path(out, suite, data.case.name, v)) for v in DQN_VARIANTS
            }
            for key in continuous_keys:
                runs.append(
                    Task(
                        f"{key} {data.case.name}",
                        continuous.run_case,
                        (config, key, data, calibration, models, options.seed),
                        suite,
                        (suite, key, data.case.name),
                    )
                )
    total += len(runs)
    if progress is not None:
        progress(0, total, "training DQNs" if train else "running")

    report: dict[str, Any] = {
        "sparkscaler": versions().get("sparkscaler"),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "seed": options.seed,
        "quick": options.quick,
        "complete": False,
        "options": asdict(options),
        "config": config.model_dump(mode="json"),
        "versions": versions(),
        "calibration": {
            "source": calibration.source,
            "model": calibration.model,
            "runs": len(calibration.runs),
        },
        "notes": notes,
        "suites": {},
    }
    results: dict[tuple[Any, ...], Any] = {}

    def summarise() -> dict[str, Any]:
        """The report of the tasks done so far."""
        if "paper-grid" in options.suites:
            report["suites"]["paper-grid"] = _paper_grid(
                options, config, calibration, results, grid, sizes
            )
        for suite, datas in suites_cases.items():
            report["suites"][suite] = _continuous(suite, datas, results, continuous_keys)
        report["timing"] = {
            "wall_s": round(time.perf_counter() - started, 1),
            "processes": n_jobs,
            "tasks_s": {" ".join(map(str, k)): round(_wall(v), 3) for k, v in results.items()},
        }
        return report

    def finished(key: tuple[Any, ...], value: Any) -> None:
        results[key] = value
        write_results(summarise(), out)
        tick(str(key[0]))

    (out / "models").mkdir(parents=True, exist_ok=True)  # only now: the inputs are all read
    with _backend(options) as n_jobs:
        write_results(summarise(), out)  # a value JSON cannot hold fails now, not after the runs
        _run_parallel(train, n_jobs, finished)
        _run_parallel(runs, n_jobs, finished)
    report = summarise()
    report["complete"] = True
    write_results(report, out)
    from sparkscaler.evaluation.report import write_report  # matplotlib: not in every worker

    _write_atomic(out / "report.html", lambda path: write_report(report, path))
    return report


def _pretrained(variants: Iterable[str], policies: tuple[str, ...]) -> list[str]:
    """The DQN variants whose pretrained policy is among ``policies``: the ones to train."""
    return [v for v in variants if f"dqn-{v}" in policies]


def _wall(result: Any) -> float:
    if isinstance(result, CellResult):
        return result.wall_s
    return float(result.get("wall_s", 0.0))


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per suite, cell or case, and policy: the numbers of the tables."""
    rows = []
    grid = report["suites"].get("paper-grid")
    if grid:
        for r in grid["cells"]:
            rows.append(
                {
                    "suite": "paper-grid",
                    "case": f"T={r['T_min']}min N={r['N']}",
                    "policy": r["policy"],
                    "failures_or_misses": r["failures"],
                    "pct": r["failure_pct"],
                    "avoidable": r.get("avoidable_failures"),
                    "cost": r["worker_minutes"],
                    "cost_unit": "worker-minutes",
                    "ratio_to_oracle": r.get("ratio_to_oracle"),
                    "scale_actions": None,
                    "p95_slowdown": None,
                    "failures_per_block": "/".join(map(str, r["failures_per_block"])),
                }
            )
    for suite in ("trace", "replay"):
        for case in report["suites"].get(suite, {}).get("cases", []):
            for r in case["results"]:
                rows.append(
                    {
                        "suite": suite,
                        "case": case["name"],
                        "policy": r["policy"],
                        "failures_or_misses": r["misses"],
                        "pct": r["miss_pct"],
                        "avoidable": None,
                        "cost": r["worker_hours"],
                        "cost_unit": "worker-hours",
                        "ratio_to_oracle": r["ratio_to_oracle"],
                        "scale_actions": r["scale_actions"],
                        "p95_slowdown": r["p95_slowdown"],
                        "failures_per_block": None,
                    }
                )
    return rows


def _json_value(value: Any) -> Any:
    """What ``json`` cannot write itself: paths as strings, numpy numbers and arrays as
    Python's. Anything else is a bug in the report, and fails at the first write."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"results.json cannot hold a {type(value).__name__}: {value!r}")


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a temporary file beside ``path``, then rename it over ``path``: whoever reads
    ``path``, even after a crash, gets the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_results(report: dict[str, Any], out: Path) -> None:
    """Write ``results.json`` and ``results.csv`` (not the report: that is drawn once)."""
    text = json.dumps(report, indent=1, default=_json_value)
    _write_atomic(out / "results.json", lambda path: path.write_text(text))
    rows = csv_rows(report)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]) if rows else ["suite"])
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(out / "results.csv", lambda path: path.write_text(table.getvalue()))
