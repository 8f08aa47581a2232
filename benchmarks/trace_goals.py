"""The trace suite's goals for ``hybrid``, and the settings that reach them, on every case.

Issue 14's goal on the trace suite: ``hybrid`` misses no more deadlines than the best of
``hpa``, ``dra`` and ``dataproc``, at no more than 1.25 times the oracle's worker-hours. This
runs the suite's own cases (:func:`sparkscaler.evaluation.harness.trace_cases`: the daily
shape, the generated bursty shape, NASA, Alibaba 2017, Alibaba 2018; the traces from
``../shared/data`` where present) exactly as ``sparkscaler evaluate trace`` does
(:func:`~sparkscaler.evaluation.continuous.run_case`, seed 0, N = 10), for the oracle, the
rule policies, ``planner`` and ``hybrid``, plus any number of ``hybrid`` variants given as
JSON parameters (``--variant NAME='{"predictive": {...}}'``), and prints per case whether each
meets the goal. ``--scaling`` sets the guard for every run (a longer scale-in stabilisation
keeps idle workers warm for longer, for instance). A ``dqn-<variant>`` policy (``dqn-residual``,
``dqn-improved`` ...) is first trained per case in that case's env, as the evaluation trains it
(:func:`~sparkscaler.evaluation.continuous.env_config`, ``--dqn-timesteps`` steps on
``--n-envs`` vector envs), and the model paths and training times are kept in the results.

    flock /tmp/sparkscaler-heavy.lock .venv/bin/python benchmarks/trace_goals.py \\
        [--cases daily,nasa] [--policies hpa,hybrid] \\
        [--variant q8='{"predictive": {"quantile": 0.8}}'] \\
        [--scaling '{"scale_in_stabilization_s": 300}'] [--out NAME] \\
        [--policies planner,dqn-residual --dqn-timesteps 30000]

Writes ``benchmarks/results/trace_goals.json`` (or ``NAME.json``). A week per policy and case
takes 20-60 s of CPU; the whole suite with the default policies about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from typing import Any

from _cluster import RESULTS, add_dqn_training_options, save, train_seed
from joblib import Parallel, delayed
from rich.console import Console
from rich.table import Table

from sparkscaler.config import Config
from sparkscaler.evaluation import continuous
from sparkscaler.evaluation.harness import Options, trace_cases
from sparkscaler.evaluation.lineup import DQN_VARIANTS, ORACLE, Calibration

PEERS = ("hpa", "dra", "dataproc")
POLICIES = (ORACLE, *PEERS, "planner", "hybrid")
RATIO_GOAL = 1.25


def _run(
    config: Config,
    data: continuous.CaseData,
    key: str,
    params: dict[str, Any] | None,
    seed: int,
    models: dict[str, str],
) -> dict[str, Any]:
    calibration = Calibration.load()
    row = continuous.run_case(config, key.split("=")[0], data, calibration, models, seed, params)
    row["policy"] = key
    row.pop("timeline", None)
    return row


def _goals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per policy: its ratio to the oracle, and whether it meets the goal."""
    by = {r["policy"]: r for r in rows}
    oracle = by.get(ORACLE)
    peers = [by[p] for p in PEERS if p in by]
    best = min((p["misses"] for p in peers), default=None)
    out = {}
    for key, row in by.items():
        ratio = row["worker_hours"] / oracle["worker_hours"] if oracle else None
        meets = (
            best is not None and ratio is not None and row["misses"] <= best and ratio <= RATIO_GOAL
        )
        out[key] = {"ratio": None if ratio is None else round(ratio, 3), "meets": meets}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a hybrid variant: its name and its parameters as JSON",
    )
    parser.add_argument(
        "--scaling",
        default="{}",
        metavar="JSON",
        help="guard settings for every run (the config's scaling section), e.g. "
        "'{\"scale_in_stabilization_s\": 300}'",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dqn-timesteps", type=int, default=30_000)
    parser.add_argument("--n-envs", type=int, default=4, help="vector envs to train a DQN on")
    add_dqn_training_options(parser)
    parser.add_argument("--out", default="trace_goals", help="name under benchmarks/results/")
    args = parser.parse_args()

    cases, notes = trace_cases(Options(seed=args.seed))
    if args.cases:
        wanted = args.cases.split(",")
        cases = [c for c in cases if c.name in wanted]
    calibration = Calibration.load()
    grid = Options().grid()
    sizes = calibration.default_sizes(60.0 * min(grid.deadlines_min), min(grid.max_workers))
    config = Config.model_validate({"scaling": json.loads(args.scaling)})
    datas = [continuous.build_case(c, config, calibration, sizes, args.seed) for c in cases]
    runs: list[tuple[str, dict[str, Any] | None]] = [
        (p, None) for p in args.policies.split(",") if p
    ]
    for spec in args.variant:
        name, _, text = spec.partition("=")
        runs.append((f"hybrid={name}", json.loads(text)))

    console = Console()
    started = time.perf_counter()
    variants = [v for v in DQN_VARIANTS if f"dqn-{v}" in args.policies.split(",")]
    trainings = Parallel(n_jobs=args.jobs)(
        delayed(_train)(config, d, v, calibration, sizes, args) for d in datas for v in variants
    )
    models: dict[str, dict[str, str]] = {d.case.name: {} for d in datas}
    for t in trainings:
        models[t["case"]][f"dqn-{t['variant']}"] = t["model"]
        console.print(f"trained dqn-{t['variant']} for {t['case']} in {t['wall_s']:.0f} s")
    jobs = [(d, key, params) for d in datas for key, params in runs]
    rows = Parallel(n_jobs=args.jobs, return_as="generator_unordered")(
        delayed(_run)(config, d, key, params, args.seed, models[d.case.name])
        for d, key, params in jobs
    )
    results: dict[str, list[dict[str, Any]]] = {d.case.name: [] for d in datas}
    for row in rows:
        results[row["case"]].append(row)
        console.print(
            f"{row['case']:>15} {row['policy']:<24} misses {row['misses']:>4} "
            f"worker-h {row['worker_hours']:8.1f} ({row['wall_s']:.0f} s)"
        )

    out: dict[str, Any] = {"seed": args.seed, "notes": notes, "variants": args.variant}
    out["scaling"] = json.loads(args.scaling)
    out["dqn_training"] = trainings
    out["cases"] = {}
    for name, case_rows in results.items():
        order = {key: i for i, (key, _) in enumerate(runs)}
        case_rows.sort(key=lambda r: order.get(r["policy"], -1))
        goals = _goals(case_rows)
        table = Table(
            title=f"{name}: hybrid's goal is misses <= best of {PEERS}, "
            f"worker-h <= {RATIO_GOAL}x the oracle"
        )
        for column in ("policy", "misses", "miss %", "worker-h", "x oracle", "goal"):
            table.add_column(column)
        for row in case_rows:
            g = goals[row["policy"]]
            table.add_row(
                row["policy"],
                str(row["misses"]),
                f"{row['miss_pct']:.2f}",
                f"{row['worker_hours']:.1f}",
                "-" if g["ratio"] is None else f"{g['ratio']:.3f}",
                "met" if g["meets"] else "",
            )
        console.print(table)
        out["cases"][name] = {
            "jobs": case_rows[0]["jobs"] if case_rows else 0,
            "results": [{**r, **goals[r["policy"]]} for r in case_rows],
        }
    out["wall_s"] = round(time.perf_counter() - started, 1)
    path = save(args.out, out)
    console.print(f"wrote {path} ({out['wall_s']:.0f} s)")


def _train(
    config: Config,
    data: continuous.CaseData,
    variant: str,
    calibration: Calibration,
    sizes: tuple[float, float],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Train the case's DQN of ``variant`` as the evaluation does (its env, seed)."""
    from sparkscaler.rl.training import train_dqn

    env = continuous.env_config(config, data, variant, calibration, sizes)
    if args.cost_weight is not None:
        env = replace(env, cost_weight=args.cost_weight)
    path = RESULTS / "models" / f"{args.out}-{data.case.name}-{variant}.zip"
    result = train_dqn(
        env,
        variant,  # type: ignore[arg-type]
        args.dqn_timesteps,
        train_seed(args),
        path,
        n_envs=args.n_envs,
        hyperparameters=args.hyperparameters,
    )
    return {
        "case": data.case.name,
        "variant": variant,
        "model": str(path),
        "timesteps": args.dqn_timesteps,
        "n_envs": args.n_envs,
        "cost_weight": env.cost_weight,
        "hyperparameters": args.hyperparameters,
        "train_seed": train_seed(args),
        "wall_s": round(result.wall_time_s, 1),
        "final_mean_reward": result.final_mean_reward,
    }


if __name__ == "__main__":
    main()
