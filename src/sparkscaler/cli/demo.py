"""``demo``: the main job on a local cluster, the service and its dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sparkscaler.cli.common import ConfigOption, console, load, require_java, sigterm_as_interrupt

#: The default day, and the --full-day one (the first demo's: 8 jobs in 240 s at size 0.4).
DAY = {"jobs": 4, "day_s": 90.0, "size": 0.1}
FULL_DAY = {"jobs": 8, "day_s": 240.0, "size": 0.4}


def demo(
    config: ConfigOption = None,
    full_day: Annotated[
        bool,
        typer.Option(
            "--full-day",
            help="The longer day of the first demo: 8 jobs in 240 s at size 0.4, warm-up at "
            "that size too (about 25 minutes on 2 cores). --jobs, --day-seconds and --size "
            "still override it.",
        ),
    ] = False,
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Jobs in the replayed day.", show_default="4")
    ] = None,
    day_seconds: Annotated[
        float | None,
        typer.Option(min=10, help="The day compressed into this many seconds.", show_default="90"),
    ] = None,
    size: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="Every job's size (--scale; 1.0: about a minute alone on one worker): the "
            "warm-up's, and the day's give or take 20 %. The default keeps a 2-core machine "
            "busy without drowning it.",
            show_default="0.1",
        ),
    ] = None,
    deadline_factor: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Each job is due within this many times its kind's warm-up run time (rounded "
            "up to 5 s), as a data engineer sets a recurring job's deadline from how long it "
            "has been taking. A missed deadline is reported, not counted as a failure.",
        ),
    ] = 1.5,
    deadline: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Every job's deadline in seconds after its submission, instead of each "
            "kind's from its warm-up (needed with --no-warm-up).",
        ),
    ] = None,
    warm_up: Annotated[
        bool,
        typer.Option(
            help="Run each recurring job once before the day, on the static cluster, so that "
            "the policy starts the day with their history (charged to neither run).",
        ),
    ] = True,
    kinds: Annotated[
        str,
        typer.Option(
            help="The recurring jobs of the warm-up and the day, comma separated, from "
            "forecast, wordcount, pagerank, kmeans.",
        ),
    ] = "wordcount,forecast,pagerank,kmeans",
    cores_per_job: Annotated[
        int,
        typer.Option(
            min=0,
            help="The most cores each job holds (spark.cores.max), so that jobs share the "
            "cluster: 1 runs four side by side on 4 one-core workers; 0: every free core, which "
            "makes later jobs wait for earlier ones.",
        ),
    ] = 1,
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
    """The main job: a local cluster, the service and its dashboard, the hybrid policy; a
    warm-up of four recurring PySpark jobs (forecast, word count, PageRank, k-means), then a
    compressed day of them with deadlines, autoscaled and then on a static cluster of N (under
    10 minutes on 2 cores with the defaults).

    Open the dashboard URL it prints to watch and steer it. At the end it prints a summary
    (deadlines met, worker-seconds, their ratio; the goal: every deadline the static cluster
    meets, at no more than 75 % of its worker-seconds), every job's deadline, predicted and
    actual run time, and writes an HTML report.

    Exit code 0: both runs finished and every job succeeded, deadlines met or not. 1: a job
    failed (a warm-up job too), a run did not finish (jobs still running 600 s after the last
    one was due are stopped), or the cluster could not be run. 130: interrupted (Ctrl-C); every
    process it started is stopped in every case.
    """
    from sparkscaler.demo import DemoOptions, run_demo

    if not warm_up and deadline is None:
        raise typer.BadParameter("--no-warm-up needs --deadline", param_hint="--deadline")
    day = FULL_DAY if full_day else DAY
    cfg = load(config) if config else None
    try:
        options = DemoOptions(
            jobs=jobs if jobs is not None else int(day["jobs"]),
            day_s=day_seconds if day_seconds is not None else day["day_s"],
            size=size if size is not None else day["size"],
            cores_per_job=cores_per_job or None,
            deadline_s=deadline,
            deadline_factor=deadline_factor,
            warmup=warm_up,
            kinds=tuple(kind.strip() for kind in kinds.split(",") if kind.strip()),
            seed=seed,
            compare=compare,
        )
    except ValueError as problem:
        raise typer.BadParameter(str(problem)) from None
    require_java()
    with sigterm_as_interrupt():
        code = run_demo(console, cfg, options, report)
    raise typer.Exit(code)
