"""``calibrate``, ``simulate`` and ``train``: the runtime model, the simulator and the DQN."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sparkscaler.cli.common import ConfigOption, console, err, fail, load, sigterm_as_interrupt
from sparkscaler.policies import POLICY_NAMES

train_app = typer.Typer(help="Train learning policies in the simulator.", no_args_is_help=True)

JobsOption = Annotated[
    str,
    typer.Option(
        "--jobs",
        help="Job source: synthetic | tpch:DIR (Decima's TPC-H profiles) | model:FILE "
        "(a calibrated runtime model) | recorded[:RUNS] (the four PySpark jobs, each its own "
        "signature, from the package's recorded real runs, or RUNS: a .jsonl of recorded runs, "
        "a sparkscaler store or a directory of event logs; ,sizes=0.1-2 sets the sizes in GB).",
    ),
]


#: The registry's names as a choice, so that `--help` lists them and a typo is refused.
PolicyName = StrEnum("PolicyName", {name: name for name in POLICY_NAMES})  # type: ignore[misc]


class Variant(StrEnum):
    paper = "paper"
    paper_cost = "paper-cost"
    improved = "improved"
    residual = "residual"


def calibrate(
    runs: Annotated[
        Path,
        typer.Argument(
            help="Run records: a CSV with size,workers,seconds; the paper's thonglek-spark-runs "
            "folder or a workerN.csv; or a sparkscaler store (.db)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the model (JSON).")
    ] = Path("model.json"),
) -> None:
    """Fit the runtime model (Ernest: NNLS on 1, size/n, size, n, log n) to real runs."""
    import numpy as np
    from rich.table import Table

    from sparkscaler.evaluation.lineup import load_runs
    from sparkscaler.models.runtime_model import FEATURE_NAMES, fit_runs

    try:
        records = load_runs(runs)
        model = fit_runs(records, source=str(runs))
    except (OSError, ValueError) as error:
        raise fail(str(error)) from None
    model.save(out)
    sizes = np.array([r.size_gb for r in records])
    workers = np.array([r.workers for r in records])
    seconds = np.array([r.seconds for r in records])
    table = Table(title=f"runtime model from {len(records)} runs ({runs})", show_header=False)
    terms = ", ".join(f"{c:.4g}·{n}" for c, n in zip(model.coef_, FEATURE_NAMES, strict=True))
    table.add_row("seconds =", terms)
    table.add_row("fit error", f"{model.mape(sizes, workers, seconds):.2f} % MAPE")
    table.add_row("safety margin", f"+{model.margin(0.95):.1%} covers 95 % of runs")
    size = float(np.median(sizes))
    most = int(workers.max())
    verdict = "scales" if model.scales(size, most) else "does NOT speed up"
    table.add_row(
        f"at {size:g} (median size)",
        f"{verdict}: {most} workers {model.speedup(size, most):.2f}x as fast as 1",
    )
    console.print(table)
    console.print(f"wrote {out}")


def simulate(
    workload: Annotated[
        str,
        typer.Option(
            "--workload",
            "-w",
            help="Arrivals: poisson:rate=30 | daily:rate=30,peak=14,weekend=0.4 | "
            "csv:PATH,jobs_per_hour=30 | alibaba:PATH,time_scale=1",
        ),
    ] = "daily:rate=30",
    jobs: JobsOption = "synthetic",
    policy: Annotated[
        PolicyName | None,
        typer.Option(
            "--policy",
            "-p",
            help="Policy to run (its parameters then take their defaults).",
            show_default="policy.name of the config, hybrid",
        ),
    ] = None,
    duration: Annotated[str, typer.Option(help="Simulated time: 90m, 12h, 7d…")] = "1d",
    deadline_factor: Annotated[
        float, typer.Option(help="Deadline = factor × the job's run time on an idle cluster.")
    ] = 3.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed.", show_default="simulation.seed, 0")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the result as JSON here.", show_default="none"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the autoscaler against the simulator (same controller and guard as on Spark)."""
    import numpy as np
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from sparkscaler.config import PolicySettings
    from sparkscaler.evaluation.simulation import parse_duration, parse_jobs
    from sparkscaler.evaluation.simulation import simulate as run_simulation
    from sparkscaler.sim.arrivals import load_arrivals
    from sparkscaler.wiring import simulated_context

    cfg = load(config)
    try:
        seconds = parse_duration(duration)
        rng = np.random.default_rng(cfg.simulation.seed if seed is None else seed)
        arrivals = load_arrivals(workload, seconds, rng)
        source = parse_jobs(jobs)
        if policy is not None:
            cfg = cfg.model_copy(update={"policy": PolicySettings(name=policy.value)})
        chosen = simulated_context(cfg).build(cfg.policy.name, cfg.policy.params)
    except (OSError, ValueError) as error:
        raise fail(str(error), 2) from None
    columns = (
        TextColumn("simulating"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=seconds)
        try:
            result = run_simulation(
                cfg,
                arrivals,
                source,
                chosen,
                seconds,
                deadline_factor=deadline_factor,
                seed=seed,
                progress=lambda t: bar.update(task, completed=t, description=f"{t / 3600:.0f} h"),
            )
        except (OSError, ValueError) as error:
            raise fail(str(error), 2) from None
    table = Table(
        title=f"simulation: {duration} of {workload}, jobs {jobs}, policy {chosen.name}",
        show_header=False,
    )
    table.add_row("jobs", f"{result.jobs_arrived} arrived, {result.jobs_done} done")
    table.add_row("deadline misses", f"{result.misses} ({result.miss_pct:.2f} %)")
    table.add_row("worker-hours", f"{result.worker_hours:.1f}")
    table.add_row("scale actions", f"{result.scale_outs} out, {result.scale_ins} in")
    table.add_row("speed", f"{result.speed:,.0f} simulated s per wall s ({result.wall_s:.1f} s)")
    console.print(table)
    if out is not None:
        payload = {
            "config": cfg.model_dump(mode="json"),
            "workload": workload,
            "jobs": jobs,
            "seed": cfg.simulation.seed if seed is None else seed,
            **result.to_json(),
        }
        out.write_text(json.dumps(payload))
        console.print(f"wrote {out}")


@train_app.command("dqn")
def train_dqn_command(
    timesteps: Annotated[
        int, typer.Option(min=100, help="Environment steps to train for.")
    ] = 50_000,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Model file (.zip); metadata beside it.")
    ] = Path("models/dqn.zip"),
    variant: Annotated[
        Variant,
        typer.Option(
            help="paper: the OLA 2019 state and reward (our reading); paper-cost: the same, "
            "each step's reward less 1, so that a long, late round costs more (docs/dqn.md); "
            "improved: ours, with job knowledge; residual: the improved state and reward, each "
            "action a change to the planner's target (action 0 = the planner's decision)."
        ),
    ] = Variant.improved,
    jobs: JobsOption = "synthetic",
    seed: Annotated[
        int | None, typer.Option(help="Seed.", show_default="simulation.seed, 0")
    ] = None,
    from_store: Annotated[
        Path | None,
        typer.Option(
            "--from-store",
            help="Keep training --model on this store's transitions (a real cluster's "
            "observations and decisions) instead of in the simulator.",
        ),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="The model (.zip) that --from-store keeps training.")
    ] = None,
    gradient_steps: Annotated[
        int, typer.Option(min=1, help="Batches to train on the store's transitions.")
    ] = 1_000,
    config: ConfigOption = None,
) -> None:
    """Train the DQN agent in sparkscaler/SparkCluster-v0, sized by the config (N, interval, T);
    or, with --from-store, keep training a model on a store's transitions."""
    from sparkscaler.errors import MissingExtraError

    if from_store is not None:
        _continue_from_store(from_store, model, out, gradient_steps, seed or 0)
        return

    try:
        from sparkscaler.evaluation.simulation import parse_jobs
        from sparkscaler.rl.env import EnvConfig
        from sparkscaler.rl.training import train_dqn
    except ImportError as error:
        raise MissingExtraError("training the DQN", "rl", error.name) from None

    cfg = load(config)
    if out.suffix != ".zip":
        raise fail(f"--out must end in .zip (got {out})", 2)
    try:
        env_config = EnvConfig.from_config(
            cfg,
            min_workers=max(1, cfg.scaling.min_workers),
            initial_workers=max(1, cfg.scaling.min_workers),
            jobs=parse_jobs(jobs),
        )
    except (OSError, ValueError) as error:
        raise fail(str(error), 2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_as_interrupt():
        try:
            result = train_dqn(
                env_config,
                variant.value,
                timesteps,
                cfg.simulation.seed if seed is None else seed,
                out,
                progress=True,
            )
        except KeyboardInterrupt:
            raise fail("interrupted; no model written", 130) from None
    console.print(
        f"trained the {variant.value} DQN for {timesteps} steps ({result.episodes} episodes) in "
        f"{result.wall_time_s:.1f} s; mean reward of the last 20 episodes "
        f"{result.final_mean_reward:.3f}"
    )
    console.print(
        f"wrote {result.model_path} and {result.metadata_path}; use it with "
        f"policy: {{name: dqn, params: {{model_path: {result.model_path}}}}}"
    )


def _continue_from_store(
    store: Path, model: Path | None, out: Path, gradient_steps: int, seed: int
) -> None:
    from sparkscaler.errors import MissingExtraError

    try:
        from sparkscaler.rl.store_learning import continue_training
    except ImportError as error:
        raise MissingExtraError("training the DQN", "rl", error.name) from None
    if model is None:
        raise fail("--from-store needs --model, the model to keep training", 2)
    if out.suffix != ".zip":
        raise fail(f"--out must end in .zip (got {out})", 2)
    try:
        meta = continue_training(model, store, out, gradient_steps, seed)
    except (OSError, ValueError) as error:
        raise fail(str(error), 2) from None
    source = meta["trained_on"][-1]
    console.print(
        f"trained {model} on {source['transitions']} transitions of {store} "
        f"({gradient_steps} batches, {source['wall_time_s']:.1f} s); wrote {out} and "
        f"{out.with_suffix('.json')}"
    )
