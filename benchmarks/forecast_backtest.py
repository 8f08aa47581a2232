"""Backtest of the capacity forecaster against seasonal naive on the trace suite's workloads.

The series forecast is the one the ``predictive`` policy (and ``hybrid``'s floor) learns live:
the busy task slots per 5-minute step (mean running tasks; :mod:`sparkscaler.models.
capacity_forecast` says why not task demand). Each case's series is taken from the evaluation's
own workload of that case (:func:`sparkscaler.evaluation.continuous.build_case`, seed 0, N = 10,
the calibrated jobs), the period before the evaluated one (when the trace has one) and the
evaluated period, each served by a static cluster of N through the real controller: busy slots
are what the load brought whatever the cluster's size, so the static cluster shows them whole.

Walk-forward, as the policy runs: at the start of every day from the second on, each forecaster
is fitted on the steps before (at most 28 days, the policy's buffer) and forecasts every step
of that day from the steps before it. A forecast at step ``b`` is of the window the policy
provisions for, ``b .. b + window - 1`` (``window = 1 + ceil(lead / step)``, the lead being the
simulation's provisioning delay plus executor start-up). Scored per quantile: the pinball loss
(workers) and the coverage (share of windows at or below the forecast), for

- ``forecaster``: :class:`~sparkscaler.models.capacity_forecast.CapacityForecaster` as the
  policy uses it (seasonal naive while it has under ``min_history_s``, the quantile forest
  after), and
- ``seasonal naive``: :class:`~sparkscaler.models.capacity_forecast.SeasonalNaiveForecaster`
  (the same time yesterday and last week, +- 30 min), on the same steps;

over every forecast step, and over the steps on which the forest forecast ("forest steps").
Cases whose trace is not in ``../shared/data`` are skipped with a note.

    .venv/bin/python benchmarks/forecast_backtest.py [--cases daily,nasa,alibaba,alibaba2018]

Writes ``benchmarks/results/forecast_backtest.json`` and prints a table. About 35 s for the four
cases on this machine (the static simulations and the daily refits; 22 s of CPU).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from _cluster import save

from sparkscaler.config import Config
from sparkscaler.evaluation import continuous
from sparkscaler.evaluation.lineup import Calibration
from sparkscaler.evaluation.simulation import simulate_workload
from sparkscaler.models.capacity_forecast import (
    DAY_S,
    CapacityForecaster,
    SeasonalNaiveForecaster,
    coverage,
    pinball_loss,
    window_max,
    window_steps,
)
from sparkscaler.wiring import simulated_context, simulated_provisioning_s

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "traces"
STEP_S = 300.0
BUFFER_DAYS = 28
QUANTILES = (0.5, 0.75, 0.9, 0.95)
CASES: dict[str, dict[str, Any]] = {
    "daily": {"kind": "daily"},
    "nasa": {"kind": "csv", "path": DATA / "nasa-http-1995" / "requests_per_minute.csv"},
    "alibaba": {"kind": "alibaba", "path": DATA / "alibaba2017-batch" / "batch_task.csv"},
    "alibaba2018": {
        "kind": "csv",
        "path": DATA / "alibaba2018" / "machine_usage_days_1_to_8_grouped_300_seconds.csv",
        "column": "cpu_util_percent",
        "step_s": 300.0,
    },
}


def busy_series(name: str, config: Config, seed: int, max_workers: int) -> np.ndarray | None:
    """Busy slots per step over the case's periods (previous, then evaluated); None when its
    trace is absent."""
    spec = dict(CASES[name])
    path = spec.pop("path", None)
    if path is not None and not Path(path).is_file():
        return None
    case = continuous.Case(
        name,
        duration_s=7 * DAY_S,
        max_workers=max_workers,
        path=str(path) if path else None,
        **spec,
    )
    calibration = Calibration.load()
    sizes = calibration.default_sizes(300.0, 5)  # the evaluation's trace sizes (its grid's)
    data = continuous.build_case(case, config, calibration, sizes, seed)
    cfg = continuous.case_config(config, case)
    periods = [data.previous, data.workload] if data.previous is not None else [data.workload]
    steps = round(case.duration_s / STEP_S)
    out = []
    for jobs in periods:
        static = simulated_context(cfg).build("static", {})
        run = simulate_workload(cfg, list(jobs), static, case.duration_s, seed=seed)
        t = np.asarray(run.timeline["time_s"])
        busy = np.asarray(run.timeline["running"], dtype=float)
        index = np.minimum((t // STEP_S).astype(int), steps - 1)
        total = np.bincount(index, weights=busy, minlength=steps)
        count = np.bincount(index, minlength=steps)
        out.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    return np.concatenate(out) / config.cluster.worker_cores


def walk_forward(
    y: np.ndarray, first_step: int, window: int, forecaster: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Forecasts, actuals, a forest mask and fit times of day-by-day refits over ``y``."""
    day = round(DAY_S / STEP_S)
    actual_all = window_max(y, window)
    forecasts, actuals, forest, fits = [], [], [], []
    for start in range(day, len(y), day):
        lo = max(0, start - BUFFER_DAYS * day)
        began = time.perf_counter()
        forecaster.fit(y[lo:start], first_step + lo)
        fits.append(time.perf_counter() - began)
        rows = np.arange(start, min(start + day, len(y)))
        f = forecaster.predict(y[lo : rows[-1] + 1], first_step + lo, rows - lo)
        keep = ~np.isnan(actual_all[rows]) & ~np.any(np.isnan(f), axis=1)
        forecasts.append(f[keep])
        actuals.append(actual_all[rows][keep])
        uses_forest = getattr(forecaster, "model_", None) is not None
        forest.append(np.full(int(keep.sum()), uses_forest))
    return (
        np.concatenate(forecasts),
        np.concatenate(actuals),
        np.concatenate(forest),
        np.asarray(fits),
    )


def scores(forecasts: np.ndarray, actuals: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        f"q{round(100 * q)}": {
            "pinball": round(pinball_loss(actuals, forecasts[:, i], q), 4),
            "coverage": round(coverage(actuals, forecasts[:, i]), 4),
        }
        for i, q in enumerate(QUANTILES)
    }


def backtest(name: str, y: np.ndarray, window: int, seed: int) -> dict[str, Any]:
    first_step = round(1_767_571_200.0 / STEP_S) - (len(y) - round(7 * DAY_S / STEP_S))
    model = CapacityForecaster(STEP_S, window, QUANTILES, random_state=seed)
    naive = SeasonalNaiveForecaster(STEP_S, window, QUANTILES)
    f_model, actual, forest, fits = walk_forward(y, first_step, window, model)
    f_naive, actual_n, _, _ = walk_forward(y, first_step, window, naive)
    # Both score the same steps: those where both had a forecast (the forecaster's seasonal
    # naive cold start is the naive itself, so the sets coincide).
    assert len(actual) == len(actual_n)
    out: dict[str, Any] = {
        "days": round(len(y) * STEP_S / DAY_S, 2),
        "mean_busy_workers": round(float(np.nanmean(y)), 3),
        "forecast_steps": len(actual),
        "forest_steps": int(forest.sum()),
        "fit_s_max": round(float(fits.max()), 3) if len(fits) else None,
        "all": {"forecaster": scores(f_model, actual), "seasonal naive": scores(f_naive, actual)},
    }
    if forest.any():
        out["forest"] = {
            "forecaster": scores(f_model[forest], actual[forest]),
            "seasonal naive": scores(f_naive[forest], actual[forest]),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-workers", type=int, default=10)
    parser.add_argument(
        "--cache", type=Path, help="an .npz to keep the busy series in (read if it has them)"
    )
    args = parser.parse_args()
    config = Config()
    lead = simulated_provisioning_s(config)
    window = window_steps(lead, STEP_S)
    results: dict[str, Any] = {}
    notes = []
    cached = dict(np.load(args.cache)) if args.cache and args.cache.is_file() else {}
    for name in args.cases.split(","):
        y = cached.get(name)
        if y is None:
            y = busy_series(name, config, args.seed, args.max_workers)
            if y is not None and args.cache:
                cached[name] = y
                np.savez(args.cache, **cached)
        if y is None:
            notes.append(f"{name}: trace not found under {DATA}, skipped")
            print(notes[-1])
            continue
        results[name] = backtest(name, y, window, args.seed)
    print(f"lead {lead:g} s -> window {window} x {STEP_S:g} s; pinball loss (workers) / coverage")
    header = (
        "case".ljust(12)
        + "steps".rjust(7)
        + "  "
        + "".join(f"{'q' + str(round(100 * q)):>26}" for q in QUANTILES)
    )
    print(header)
    for name, r in results.items():
        for scope in ("all", "forest"):
            if scope not in r:
                continue
            for method, by_q in r[scope].items():
                cells = "".join(
                    f"{v['pinball']:>15.3f} / {v['coverage']:.3f}" for v in by_q.values()
                )
                steps = r["forecast_steps"] if scope == "all" else r["forest_steps"]
                label = f"{name} {scope}"
                print(f"{label:<20}{method:<16}{steps:>6}{cells}")
    save(
        "forecast_backtest",
        {
            "step_s": STEP_S,
            "lead_s": lead,
            "window_steps": window,
            "quantiles": list(QUANTILES),
            "buffer_days": BUFFER_DAYS,
            "seed": args.seed,
            "max_workers": args.max_workers,
            "notes": notes,
            "cases": results,
            "window_minutes": math.ceil(window * STEP_S / 60),
        },
    )


if __name__ == "__main__":
    main()
