"""``demo``: the main job on a local cluster, the service and its dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sparkscaler.cli.common import ConfigOption, console, load, require_java, sigterm_as_interrupt


def demo(
    config: ConfigOption = None,
    jobs: Annotated[int, typer.Option(min=1, help="Jobs in the replayed day.")] = 3,
    day_seconds: Annotated[
        float, typer.Option(min=10, help="The day compressed into this many seconds.")
    ] = 75.0,
    deadline: Annotated[
        float,
        typer.Option(
            min=1,
            help="Each job is due this many seconds after submission. A missed deadline is "
            "reported, not counted as a failure.",
        ),
    ] = 90.0,
    size: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Multiplies every job's size (1.0: about a minute alone on one worker). The "
            "default keeps a 2-core machine busy without drowning it.",
        ),
    ] = 0.1,
    cores_per_job: Annotated[
        int,
        typer.Option(
            min=0,
            help="The most cores each job holds (spark.cores.max), so that jobs share the "
            "cluster; 0: every free core, which makes later jobs wait for earlier ones.",
        ),
    ] = 2,
    seed: Annotated[int, typer.Option(help="Seeds the jobs' order, sizes and arrivals.")] = 0,
    compare: Annotated[
        bool,
        typer.Option(help="Replay the day again on a static cluster of max_workers, to compare."),
    ] = True,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the HTML report.",
            show_default="<state_dir>/demo-report.html (state_dir: ~/.sparkscaler/demo)",
        ),
    ] = None,
) -> None:
    """The main job: a local cluster, the service and its dashboard, the hybrid policy, and a
    compressed day of real PySpark jobs, then the same day on a static cluster (about 8 minutes
    on 2 cores with the defaults).

    Open the dashboard URL it prints to watch and steer it; at the end it prints a summary and
    writes an HTML report. A longer day: --jobs 8 --day-seconds 240 --size 0.4 (more than 20
    minutes on 2 cores).

    Exit code 0: both runs finished and every job succeeded, deadlines met or not. 1: a job
    failed, a run did not finish (jobs still running 600 s after the last one was due are
    stopped), or the cluster could not be run. 130: interrupted (Ctrl-C); every process it
    started is stopped in every case.
    """
    from sparkscaler.demo import DemoOptions, run_demo

    cfg = load(config) if config else None
    options = DemoOptions(
        jobs=jobs,
        day_s=day_seconds,
        deadline_s=deadline,
        size=size,
        cores_per_job=cores_per_job or None,
        seed=seed,
        compare=compare,
    )
    require_java()
    with sigterm_as_interrupt():
        code = run_demo(console, cfg, options, report)
    raise typer.Exit(code)
