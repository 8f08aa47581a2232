"""``evaluate``: every policy side by side on the same seeded workloads, with the oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from sparkscaler.cli.common import ConfigOption, console, err, fail, load, sigterm_as_interrupt


def _pair(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    low, _, high = text.partition("-")
    try:
        pair = (float(low), float(high or low))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use LOW-HIGH, e.g. 0.5-3") from None
    if not 0 < pair[0] <= pair[1]:
        raise typer.BadParameter(f"{text!r}: need 0 < LOW <= HIGH")
    return pair


def _master(url: str | None) -> str | None:
    """Reject a malformed or unreachable ``--spark`` master before any work."""
    if url is None:
        return None
    from sparkscaler.errors import SparkscalerError
    from sparkscaler.evaluation.spark_session import check_master

    try:
        check_master(url)
    except SparkscalerError as error:
        raise typer.BadParameter(str(error)) from None
    return url


def evaluate(
    suites: Annotated[
        list[str] | None,
        typer.Argument(
            help="paper-grid, trace and/or replay.", show_default="paper-grid and trace"
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory for results.json, results.csv, report.html"),
    ] = Path("evaluation"),
    quick: Annotated[
        bool, typer.Option(help="A reduced grid and a one-day trace (under 2 minutes)")
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Runs to calibrate the runtime model from (CSV, thonglek-spark-runs folder, "
            "store .db) or a saved model .json.",
            show_default="the project's own recorded runs",
        ),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(
            help="Input sizes of paper-grid jobs, LOW-HIGH in the model's unit.",
            show_default="from the model, in the paper's proportions",
        ),
    ] = None,
    trace: Annotated[
        list[Path] | None,
        typer.Option(
            help="A demand CSV (a time column of ISO 8601 times, seconds or minutes, or none "
            "with --trace-step) or an Alibaba batch_task.csv; repeat for several.",
            show_default="the reference traces in ../shared/data",
        ),
    ] = None,
    trace_column: Annotated[
        str | None,
        typer.Option(
            help="The demand column of the --trace CSVs (for a file without a header: its "
            "number, from 1).",
            show_default="the first numeric column that is not time",
        ),
    ] = None,
    trace_step: Annotated[
        str | None,
        typer.Option(
            help="The step between rows of a --trace CSV without a time column: seconds, or "
            "300s, 5m, 5min, 1h; with a time column, demand is summed per step.",
            show_default="none; with a time column, the most common gap between its times",
        ),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="A policy to run (repeat for several); the oracle always runs.",
            show_default="every policy",
        ),
    ] = None,
    history: Annotated[
        Path | None,
        typer.Option(
            help="For replay: a sparkscaler store (.db) or a Spark event-log directory.",
            show_default="the config's store",
        ),
    ] = None,
    max_workers: Annotated[int, typer.Option(min=2, help="N of the trace cases")] = 10,
    dqn_timesteps: Annotated[
        int | None,
        typer.Option(min=100, help="DQN training steps.", show_default="30000; 3000 with --quick"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every workload and model")] = 0,
    n_jobs: Annotated[
        int,
        typer.Option(
            "--n-jobs", "-j", help="Parallel processes; -1: one per core.", show_default=True
        ),
    ] = -1,
    spark: Annotated[
        str | None,
        typer.Option(
            "--spark",
            metavar="MASTER_URL",
            callback=_master,
            help="Run the tasks on the Spark standalone cluster at spark://HOST:PORT (through "
            "joblibspark, the 'spark-eval' extra) instead of local processes; the results are "
            "the same as a local run's with the same seed. Every worker must run this Python "
            "(its path, or PYSPARK_PYTHON's) with sparkscaler and the same library versions "
            "importable, and see --out at the same path (DQN models are written and read "
            "there). --n-jobs tasks run at once (the app takes that many cores); -1: as many "
            "as the cluster's free cores. results.json is written once, at the end of each "
            "phase (training, then runs).",
            show_default="local processes",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run policies side by side on the same seeded workloads in the simulator, with the oracle.

    paper-grid reproduces the OLA 2019 experiment (T = 5..10 min x N = 5..10 workers, 100
    rounds); trace runs a week of arrivals from real traces; replay runs your own job history.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sparkscaler.errors import SparkscalerError
    from sparkscaler.evaluation.continuous import load_history
    from sparkscaler.evaluation.harness import SUITES, Options, check_policies
    from sparkscaler.evaluation.harness import evaluate as run_evaluation
    from sparkscaler.sim.traces import parse_step

    cfg = load(config)
    chosen = tuple(suites or ("paper-grid", "trace"))
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        raise fail(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}", 2)
    try:
        check_policies(policy or ())
        step_s = None if trace_step is None else parse_step(trace_step)
    except ValueError as error:
        raise fail(str(error), 2) from None
    records = None
    if "replay" in chosen:
        source = history or cfg.store_path
        try:
            records = load_history(source)
        except (OSError, ValueError) as error:
            raise fail(f"replay: {error}", 2) from None
        if not records:
            raise fail(f"replay: {source} holds no finished job to replay", 2)
        history = source
    options = Options(
        suites=chosen,
        quick=quick,
        seed=seed,
        n_jobs=n_jobs,
        model=model,
        sizes=_pair(sizes),
        traces=tuple(trace) if trace else None,
        history=history,
        max_workers=max_workers,
        dqn_timesteps=dqn_timesteps,
        trace_column=trace_column,
        trace_step_s=step_s,
        policies=tuple(policy) if policy else None,
        spark=spark,
    )
    columns = (
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with sigterm_as_interrupt(), Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("planning", total=None)
        try:
            report = run_evaluation(
                cfg,
                options,
                out,
                progress=lambda done, total, label: bar.update(
                    task, completed=done, total=total, description=label
                ),
                history=records,
            )
        except (OSError, ValueError) as error:
            raise fail(str(error), 2) from None
        except SparkscalerError as error:  # no executor from the Spark master, or a task failed
            raise fail(str(error), error.exit_code) from None
    for note in report["notes"]:
        err.print(f"note: {escape(note)}")
    _print_headline(report)
    console.print(f"wrote {out}/results.json, results.csv, report.html")


def _print_headline(report: dict[str, Any]) -> None:
    from rich.table import Table

    grid = report["suites"].get("paper-grid")
    if grid:
        table = Table(title="paper-grid (all cells)")
        for column in ("policy", "failures", "avoidable", "1st block", "worker-min", "× oracle"):
            table.add_column(column, justify="left" if column == "policy" else "right")
        for row in grid["policies"]:
            table.add_row(
                row["policy"],
                f"{row['failures']} ({row['failure_pct']:.1f} %)",
                str(row["avoidable_failures"]),
                str(row["first_block_failures"]),
                f"{row['worker_minutes']:,.0f}",
                "" if row["ratio_to_oracle"] is None else f"{row['ratio_to_oracle']:.3f}",
            )
        console.print(table)
    for suite in ("trace", "replay"):
        for case in report["suites"].get(suite, {}).get("cases", []):
            table = Table(title=f"{suite}: {case['name']} ({case['settings']['n_jobs']} jobs)")
            for column in ("policy", "misses", "worker-h", "× oracle", "actions", "p95 slowdown"):
                table.add_column(column, justify="left" if column == "policy" else "right")
            for row in case["results"]:
                table.add_row(
                    row["policy"],
                    f"{row['misses']} ({row['miss_pct']:.2f} %)",
                    f"{row['worker_hours']:.1f}",
                    "" if row["ratio_to_oracle"] is None else f"{row['ratio_to_oracle']:.3f}",
                    "" if row["scale_actions"] is None else str(row["scale_actions"]),
                    "" if row["p95_slowdown"] is None else f"{row['p95_slowdown']:.2f}",
                )
            console.print(table)
