"""``demo``: the main job on a local cluster, the service and its dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sparkscaler.cli.common import ConfigOption, console, load, require_java, sigterm_as_interrupt


def demo(
    config: ConfigOption = None,
    jobs: Annotated[int, typer.Option(min=1, help="Jobs in the replayed day.")] = 8,
    day_seconds: Annotated[
        float, typer.Option(min=10, help="The day compressed into this many seconds.")
    ] = 240.0,
    deadline: Annotated[
        float, typer.Option(min=1, help="Each job is due this many seconds after submission.")
    ] = 180.0,
    size: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Multiplies every job's size (1.0: about a minute alone on one worker). The "
            "default keeps a 2-core machine busy without drowning it.",
        ),
    ] = 0.4,
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
    compressed day of real PySpark jobs, then the same day on a static cluster (≈12 minutes).

    Open the dashboard URL it prints to watch and steer it; at the end it prints a summary and
    writes an HTML report.
    """
    from sparkscaler.demo import DemoOptions, run_demo

    cfg = load(config) if config else None
    options = DemoOptions(
        jobs=jobs, day_s=day_seconds, deadline_s=deadline, size=size, seed=seed, compare=compare
    )
    require_java()
    with sigterm_as_interrupt():
        code = run_demo(console, cfg, options, report)
    raise typer.Exit(code)
