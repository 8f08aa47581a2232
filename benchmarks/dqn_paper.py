"""The paper's table for the DQNs: paper-grid at N = 5, T = 5..10 min, 100 rounds per cell.

Runs each policy through :func:`sparkscaler.evaluation.paper_grid.run_cell`, the function the
full evaluation runs, with the evaluation's defaults (``Config()``: ``vm`` provisioning, the
calibrated runtime model of the package's recorded runs, the grid's input sizes, seed 0), and
prints per cell the failures per block of 25 rounds, L (the last failing round), the last round
with an *avoidable* failure (one the oracle does not have), the failures, worker-minutes and the
ratio to the oracle's worker-minutes. Pretrained keys (``dqn-paper``, ``dqn-improved`` ...) are
trained first with :func:`sparkscaler.rl.training.train_dqn`, as the evaluation trains them.

It also measures what the paper's reward pays: the return of fixed behaviours ("stay at 1
worker", "go to N at once") under each reward, on the grid's own 100 rounds (docs/dqn.md).

    flock /tmp/sparkscaler-heavy.lock nice .venv/bin/python benchmarks/dqn_paper.py \\
        [--policies regression,dqn-paper-online,...] [--timesteps 30000] [--plot]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from _cluster import add_dqn_training_options, save, train_seed

from sparkscaler.config import Config
from sparkscaler.evaluation import paper_grid
from sparkscaler.evaluation.lineup import ONLINE_SUFFIX, ORACLE, Calibration
from sparkscaler.evaluation.paper_grid import CellResult, RunContext, run_cell
from sparkscaler.rl.env import SparkClusterEnv
from sparkscaler.rl.training import train_dqn

N = 5
DEADLINES_MIN = (5, 6, 7, 8, 9, 10)
DEFAULT_POLICIES = (
    "regression",
    "dqn-paper-online",
    "dqn-paper-cost-online",
    "dqn-paper",
    "dqn-paper-cost",
)
PLOT = Path(__file__).resolve().parents[1] / "docs" / "dqn_paper_online.png"


def last_avoidable(cell: CellResult, oracle: CellResult) -> int | None:
    """The last round that failed where the oracle did not."""
    pairs = zip(cell.rounds, oracle.rounds, strict=True)
    return max((i + 1 for i, (r, o) in enumerate(pairs) if r.failed and not o.failed), default=None)


def fixed_returns(
    config: Config, calibration: Calibration, sizes: tuple[float, float], ctx: RunContext
) -> list[dict[str, Any]]:
    """The return per round of two fixed behaviours under each paper-style reward, on the
    grid's 100 rounds: "stay at 1 worker" (do nothing) and "go to N" (scale out by N - 1)."""
    out = []
    cell = paper_grid.cell_config(config, N, "dqn")
    for t in (5, 7, 10):
        jobs = [
            job.with_arrival(i, 0.0, 60.0 * t)
            for i, job in enumerate(
                paper_grid.round_jobs(calibration.runtime_model, sizes, ctx.rounds, ctx.seed)
            )
        ]
        for reward in ("paper", "paper-cost"):
            base = paper_grid.env_config(cell, calibration, sizes, N, [60.0 * t], "paper")
            config_ = replace(base, reward=reward, jobs=paper_grid._Rounds(jobs))
            for name, action in (("stay at 1 worker", 0), ("go to N", N - 1)):
                env = SparkClusterEnv(config_)
                returns, steps, missed, worker_s = [], [], 0, 0.0
                env.reset(seed=ctx.seed)
                for r in range(len(jobs)):
                    if r:
                        env.reset()
                    total, n = 0.0, 0
                    while True:
                        _, reward_, terminated, truncated, info = env.step(action)
                        total, n = total + reward_, n + 1
                        if terminated or truncated:
                            break
                    returns.append(total)
                    steps.append(n)
                    missed += info["misses"]
                    worker_s += info["worker_seconds"]
                env.close()
                out.append(
                    {
                        "T_min": t,
                        "reward": reward,
                        "behaviour": name,
                        "mean_return": round(float(np.mean(returns)), 3),
                        "mean_steps": round(float(np.mean(steps)), 2),
                        "mean_reward_per_step": round(float(np.sum(returns) / np.sum(steps)), 4),
                        "failures": missed,
                        "worker_minutes": round(worker_s / 60.0, 1),
                    }
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default=",".join(DEFAULT_POLICIES))
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-envs", type=int, default=4, help="vector envs for pretraining")
    parser.add_argument("--subproc", action="store_true", help="one process per env")
    add_dqn_training_options(parser)
    parser.add_argument("--rounds", type=int, default=paper_grid.ROUNDS)
    parser.add_argument("--plot", action="store_true", help=f"write {PLOT}")
    parser.add_argument("--name", default="dqn_paper", help="benchmarks/results/NAME.json")
    args = parser.parse_args()
    policies = [p for p in args.policies.split(",") if p]

    config = Config()
    calibration = Calibration.load()
    sizes = calibration.default_sizes(60.0 * min(DEADLINES_MIN), N)
    training: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models: dict[str, str] = {}
        for key in policies:
            if not key.startswith("dqn-") or key.endswith(ONLINE_SUFFIX):
                continue
            variant = key.removeprefix("dqn-")
            cell = paper_grid.cell_config(config, N, key)
            env = paper_grid.env_config(
                cell, calibration, sizes, N, [60.0 * t for t in DEADLINES_MIN], variant
            )
            if args.cost_weight is not None:
                env = replace(env, cost_weight=args.cost_weight)
            trained = train_dqn(
                env,
                variant,  # type: ignore[arg-type]
                args.timesteps,
                train_seed(args),
                Path(tmp) / f"{key}.zip",
                n_envs=args.n_envs,
                subprocesses=args.subproc,
                hyperparameters=args.hyperparameters,
            )
            models[f"{key}@{N}"] = str(trained.model_path)
            training[key] = {
                "timesteps": args.timesteps,
                "train_seed": train_seed(args),
                "hyperparameters": args.hyperparameters,
                "n_envs": args.n_envs,
                "vec_env": "SubprocVecEnv" if args.subproc else "DummyVecEnv",
                "episodes": trained.episodes,
                "wall_time_s": round(trained.wall_time_s, 1),
                "final_mean_reward": round(trained.final_mean_reward, 4),
            }
            print(f"trained {key}: {training[key]}", flush=True)
        ctx = RunContext(calibration, sizes, args.seed, args.rounds, models)
        cells: dict[tuple[str, int], CellResult] = {}
        for key in (ORACLE, *policies):
            for t in DEADLINES_MIN:
                cells[key, t] = run_cell(config, key, t, N, ctx)
    rows = []
    print(
        f"{'policy':24} {'T':>3} {'per block of 25':>16} {'L':>4} {'L avoid':>7} "
        f"{'fail':>5} {'avoid':>5} {'worker-min':>10} {'x oracle':>8} {'wall s':>6}"
    )
    for (key, t), cell in cells.items():
        oracle = cells[ORACLE, t]
        row = cell.summary(oracle)
        row["last_avoidable_failure_round"] = last_avoidable(cell, oracle)
        row["wall_s"] = round(cell.wall_s, 1)
        row["failed_rounds"] = [i + 1 for i, r in enumerate(cell.rounds) if r.failed]
        rows.append(row)
        blocks = "/".join(map(str, row["failures_per_block"]))
        print(
            f"{key:24} {t:>3} {blocks:>16} {row['last_failure_round'] or '-':>4} "
            f"{row['last_avoidable_failure_round'] or '-':>7} {row['failures']:>5} "
            f"{row['avoidable_failures']:>5} {row['worker_minutes']:>10.1f} "
            f"{row['ratio_to_oracle']:>8.3f} {row['wall_s']:>6}",
            flush=True,
        )
    totals = []
    oracle_min = sum(r["worker_minutes"] for r in rows if r["policy"] == ORACLE)
    for key in (ORACLE, *policies):
        mine = [r for r in rows if r["policy"] == key]
        worker_min = sum(r["worker_minutes"] for r in mine)
        totals.append(
            {
                "policy": key,
                "failures": sum(r["failures"] for r in mine),
                "avoidable_failures": sum(r["avoidable_failures"] for r in mine),
                "first_block_failures": sum(r["failures_per_block"][0] for r in mine),
                "later_block_failures": sum(sum(r["failures_per_block"][1:]) for r in mine),
                "worker_minutes": round(worker_min, 1),
                "ratio_to_oracle": round(worker_min / oracle_min, 4),
                "L_max": max((r["last_failure_round"] or 0 for r in mine), default=0) or None,
                "wall_s": round(sum(r["wall_s"] for r in mine), 1),
            }
        )
    print()
    for total in totals:
        print(total)
    started = time.perf_counter()
    returns = fixed_returns(config, calibration, sizes, ctx)
    print(f"\nfixed behaviours ({time.perf_counter() - started:.1f} s):")
    for r in returns:
        print(r)
    if args.plot:
        plot(cells, [p for p in (ORACLE, *policies)])
    print(
        "written to",
        save(
            args.name,
            {
                "command": f"benchmarks/dqn_paper.py --policies {args.policies} "
                f"--timesteps {args.timesteps} --seed {args.seed} --n-envs {args.n_envs}"
                + (" --subproc" if args.subproc else "")
                + (f" --cost-weight {args.cost_weight}" if args.cost_weight is not None else "")
                + (f" --train-seed {args.train_seed}" if args.train_seed is not None else ""),
                "settings": {
                    "N": N,
                    "deadlines_min": list(DEADLINES_MIN),
                    "rounds": args.rounds,
                    "block": paper_grid.BLOCK,
                    "sizes": list(sizes),
                    "provisioning": config.simulation.provisioning,
                    "dqn_interval_s": paper_grid.DQN_INTERVAL_S,
                    "seed": args.seed,
                },
                "training": training,
                "cells": rows,
                "totals": totals,
                "fixed_behaviour_returns": returns,
            },
        ),
    )


def plot(cells: dict[tuple[str, int], CellResult], keys: list[str]) -> None:
    """Cumulative failures against the round, one panel per T."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for axis, t in zip(axes.flat, DEADLINES_MIN, strict=True):
        for key in keys:
            if (key, t) not in cells:
                continue
            failed = np.cumsum([r.failed for r in cells[key, t].rounds])
            style = "--" if key == ORACLE else "-"
            axis.plot(np.arange(1, len(failed) + 1), failed, style, label=key)
        axis.axvline(paper_grid.BLOCK, color="grey", linewidth=0.5)
        axis.set_title(f"T = {t} min, N = {N}")
        axis.set_xlabel("round")
        axis.set_ylabel("failures so far")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    print(f"plot: {PLOT}")


if __name__ == "__main__":
    main()
