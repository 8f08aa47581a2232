"""Decision latency of every registered policy: p50 and p99 over 10,000 decisions.

The observations are real ones in shape: recorded from a simulated day of a 20-worker cluster
under a daily load pattern (so they include bursts, backlogs and idle nights), then fed to each
policy in order, as the controller would.

    .venv/bin/python benchmarks/decision_latency.py [--decisions 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _cluster import save

from sparkscaler.backends.simulated import SimObserver
from sparkscaler.core import Observation
from sparkscaler.evaluation.lineup import load_runs
from sparkscaler.models.runtime_model import LOCAL_RUNS, fit_runs
from sparkscaler.policies import POLICIES, make_policy
from sparkscaler.policies.dqn import DqnPolicy
from sparkscaler.policies.hybrid import HybridPolicy
from sparkscaler.policies.planner import PlannerPolicy
from sparkscaler.policies.predictive import PredictivePolicy
from sparkscaler.rl.env import EnvConfig
from sparkscaler.rl.training import train_dqn
from sparkscaler.sim.arrivals import daily_weekly, daily_weekly_rate
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import SyntheticJobs, make_workload


def recorded_observations(count: int) -> list[Observation]:
    """``count`` observations of a simulated cluster, one every 10 s."""
    rng = np.random.default_rng(3)
    arrivals = daily_weekly(30, count * 10.0, rng)
    jobs = make_workload(arrivals, SyntheticJobs(), rng, deadline_factor=3.0, slots=80)
    sim = SimCluster(jobs, cores_per_worker=4, initial_workers=20, provisioning="vm", seed=3)
    observer = SimObserver(sim, default_deadline_s=600.0)
    observations = []
    for step in range(count):
        sim.run_until(step * 10.0)
        obs = observer.observe()
        observations.append(dataclasses.replace(obs, min_workers=1, max_workers=40))
    return observations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    args = parser.parse_args()
    observations = recorded_observations(args.decisions)
    results = {}
    # The planner without a model only says "no runtime model yet": give it the one fitted to
    # this machine's recorded runs, so that what is timed is a real plan.
    model = fit_runs(load_runs(LOCAL_RUNS))
    # Likewise the predictive policy falls back to a reactive rule until it has two days of
    # history: give it four weeks of daily-pattern demand that end where the observations start.
    start = observations[0].time
    past = np.arange(start - 28 * 86400, start, 300.0)
    demand = 40 * daily_weekly_rate(past - past[0], 1.0) + np.random.default_rng(5).normal(
        0, 2, len(past)
    )
    # and the DQN needs a model: a short training run is enough to time its forward pass.
    tmp = Path(tempfile.mkdtemp(prefix="sparkscaler-bench-"))
    dqn = train_dqn(EnvConfig(max_workers=5), "improved", 2000, 0, tmp / "dqn.zip").model_path
    hybrid = HybridPolicy(planner_model=model)
    hybrid.predictive_.fit_series(past, np.clip(demand, 0, None))
    trained = {
        "planner": PlannerPolicy(model=model),
        "predictive": PredictivePolicy().fit_series(past, np.clip(demand, 0, None)),
        "dqn": DqnPolicy(model_path=str(dqn)),
        "hybrid": hybrid,
    }
    shutil.rmtree(tmp)  # the policies hold their models in memory now
    for name in sorted(POLICIES):
        policy = trained.get(name) or make_policy(name)
        latencies = []
        for obs in observations:
            started = time.perf_counter_ns()
            policy.decide(obs)
            latencies.append((time.perf_counter_ns() - started) / 1e6)
        p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
        results[name] = {"p50_ms": round(statistics.median(latencies), 4), "p99_ms": round(p99, 4)}
        print(f"{name:12s} p50 {results[name]['p50_ms']:.4f} ms, p99 {p99:.4f} ms")
    print(
        f"written to {save('decision_latency', {'decisions': args.decisions, 'policies': results})}"
    )


if __name__ == "__main__":
    main()
