"""What a perfect forecast of the busy slots would buy ``hybrid`` on one trace case.

``hybrid``'s floor is a forecast of the busy task slots of the next window
(:mod:`sparkscaler.models.capacity_forecast`). How much of its gap to the oracle is the
forecast's error, and how much is the floor itself? This replaces the forecast with the truth:
the busy slots that ``planner`` alone made in the same week (the work is the same; the busy
slots of a policy that meets the deadlines are a close stand-in for any other's), read from the
future. The floor is then that window's highest step mean (what the forecaster forecasts) or
its mean, times a factor. Everything else is ``hybrid`` as ``sparkscaler evaluate trace`` runs
it (:func:`~sparkscaler.evaluation.continuous.run_case`'s steps, seed 0, N = 10).

    flock /tmp/sparkscaler-heavy.lock .venv/bin/python benchmarks/forecast_value.py \\
        [--case daily] [--floors max:1.0,max:0.8,mean:1.0,mean:1.2]

Writes ``benchmarks/results/forecast_value.json`` (``forecast_value_CASE.json`` for another
case). About 30 s a run.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _cluster import save
from rich.console import Console

from sparkscaler.config import Config
from sparkscaler.evaluation import continuous
from sparkscaler.evaluation.harness import Options, trace_cases
from sparkscaler.evaluation.lineup import ORACLE, Calibration
from sparkscaler.evaluation.simulation import simulate_workload
from sparkscaler.policies.hybrid import HybridPolicy
from sparkscaler.policies.predictive import PredictivePolicy
from sparkscaler.wiring import simulated_context

#: Where the evaluated week starts in epoch seconds (run_case's simulated clock).
EPOCH = 1_767_571_200.0


class PerfectForecast(PredictivePolicy):
    """The forecaster, with :meth:`forecast_at` answered from a known future series."""

    def __init__(
        self, times: np.ndarray, busy: np.ndarray, mode: str, factor: float, **params: Any
    ) -> None:
        super().__init__(**params)
        self.times, self.busy, self.mode, self.factor = times, busy, mode, factor

    def forecast_at(self, step: int) -> tuple[float, float] | None:
        s = self.params.step_s
        start = step * s - EPOCH
        means = []
        for k in range(self._window):
            inside = (self.times >= start + k * s) & (self.times < start + (k + 1) * s)
            means.append(float(self.busy[inside].mean()) if inside.any() else 0.0)
        value = (max(means) if self.mode == "max" else float(np.mean(means))) * self.factor
        return value, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="daily")
    parser.add_argument("--floors", default="max:1.0,max:0.9,max:0.8,mean:1.0,mean:1.2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    console = Console()
    started = time.perf_counter()
    calibration = Calibration.load()
    grid = Options().grid()
    sizes = calibration.default_sizes(60.0 * min(grid.deadlines_min), min(grid.max_workers))
    (case,) = [c for c in trace_cases(Options(seed=args.seed))[0] if c.name == args.case]
    data = continuous.build_case(case, Config(), calibration, sizes, args.seed)
    config = continuous.case_config(Config(), case)
    rows: list[dict[str, Any]] = []
    for key in (ORACLE, "planner", "hybrid"):
        row = continuous.run_case(Config(), key, data, calibration, {}, args.seed)
        rows.append({"floor": key, "misses": row["misses"], "worker_hours": row["worker_hours"]})
        console.print(f"{key:>20}: misses {row['misses']:>3}, worker-h {row['worker_hours']:.1f}")

    context = simulated_context(config, calibration.runtime_model)
    reference = simulate_workload(
        config,
        list(data.workload),
        context.build("planner", {}),
        case.duration_s,
        seed=args.seed,
        learn=continuous.learns(case),
        history=data.history,
    ).timeline
    times = np.asarray(reference["time_s"], dtype=float)
    busy = np.asarray(reference["running"], dtype=float)
    for spec in args.floors.split(","):
        mode, _, factor = spec.partition(":")
        policy = context.build("hybrid", {})
        assert isinstance(policy, HybridPolicy)
        forecaster = policy.predictive_
        policy.predictive_ = PerfectForecast(
            times, busy, mode, float(factor), **forecaster.params.model_dump()
        )
        result = simulate_workload(
            config,
            list(data.workload),
            policy,
            case.duration_s,
            seed=args.seed,
            learn=continuous.learns(case),
            history=data.history,
        )
        name = f"hybrid, perfect window {mode} x {factor}"
        rows.append(
            {"floor": name, "misses": result.misses, "worker_hours": round(result.worker_hours, 4)}
        )
        console.print(f"{name:>20}: misses {result.misses:>3}, worker-h {result.worker_hours:.1f}")

    oracle = rows[0]["worker_hours"]
    for row in rows:
        row["x_oracle"] = round(row["worker_hours"] / oracle, 3)
    wall = time.perf_counter() - started
    out = {"case": args.case, "seed": args.seed, "rows": rows, "wall_s": wall}
    path = save("forecast_value" if args.case == "daily" else f"forecast_value_{args.case}", out)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
