"""Simulator speed, and Gymnasium env steps per second.

1. One simulated week on a cluster of up to 100 four-core workers: arrivals shaped by the NASA
   trace's daily and weekly demand (``../shared/data``; a synthetic daily/weekly process when it
   is absent) at 60 jobs an hour on average, synthetic map-reduce jobs, the ``dra`` policy, the
   real controller and guard every 30 s (and every 60 s). Reports the median wall time of
   ``--repeat`` runs and simulated seconds per wall second: this VM's speed varies by about
   ±20 % from run to run, with no steal time showing.
2. ``sparkscaler/SparkCluster-v0`` stepped with random actions (N = 5 and N = 10).

    .venv/bin/python benchmarks/sim_speed.py [--days 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from _cluster import save

import sparkscaler.rl.env  # noqa: F401  (registers the environment)
from sparkscaler.config import Config
from sparkscaler.evaluation.simulation import simulate
from sparkscaler.policies import make_policy
from sparkscaler.sim.arrivals import daily_weekly, from_demand_csv
from sparkscaler.sim.workload import SyntheticJobs

NASA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "traces"
    / "nasa-http-1995"
    / "requests_per_minute.csv"
)


def week(days: float, interval_s: float = 30.0) -> dict[str, float | str]:
    seconds = days * 86400
    rng = np.random.default_rng(7)
    if NASA.exists():
        source = "NASA 1995 demand shape"
        arrivals = from_demand_csv(
            NASA, seconds, rng, jobs_per_hour=60, start="1995-07-03T00:00:00"
        )
    else:
        source = "synthetic daily/weekly process"
        arrivals = daily_weekly(60, seconds, rng)
    config = Config.model_validate(
        {
            "state_dir": tempfile.mkdtemp(prefix="sparkscaler-bench-"),
            "cluster": {"worker_cores": 4, "worker_memory": "8g"},
            "scaling": {
                "min_workers": 2,
                "max_workers": 100,
                "interval_s": interval_s,
                "scale_out_cooldown_s": 60,
                "scale_in_cooldown_s": 120,
                "scale_in_stabilization_s": 300,
            },
            "simulation": {"provisioning": "vm", "initial_workers": 2},
        }
    )
    result = simulate(config, arrivals, SyntheticJobs(), make_policy("dra"), seconds, seed=7)
    return {
        "arrivals": source,
        "simulated_days": days,
        "jobs": result.jobs_arrived,
        "jobs_done": result.jobs_done,
        "misses": result.misses,
        "worker_hours": round(result.worker_hours, 1),
        "controller_steps": len(result.timeline["time_s"]),
        "peak_workers": max(result.timeline["workers"]),
        "wall_s": round(result.wall_s, 2),
        "sim_seconds_per_wall_second": round(result.speed),
    }


def env_speed(max_workers: int, steps: int = 20_000) -> float:
    env = gym.make("sparkscaler/SparkCluster-v0", max_workers=max_workers)
    env.reset(seed=0)
    env.action_space.seed(0)
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per interval (median)")
    args = parser.parse_args()
    sims = {}
    for interval in (30.0, 60.0):
        runs = [week(args.days, interval) for _ in range(args.repeat)]
        walls = sorted(float(r["wall_s"]) for r in runs)
        median = statistics.median(walls)
        sims[f"interval {interval:g} s"] = {
            **runs[0],
            "wall_s_median": median,
            "wall_s_range": [walls[0], walls[-1]],
            "sim_seconds_per_wall_second": round(args.days * 86400 / median),
        }
        print(f"simulator, decisions every {interval:g} s:", sims[f"interval {interval:g} s"])
    envs = {f"N={n}": round(env_speed(n)) for n in (5, 10)}
    print("env steps per second (random policy):", envs)
    print(f"written to {save('sim_speed', {'simulator': sims, 'env_steps_per_s': envs})}")


if __name__ == "__main__":
    main()
