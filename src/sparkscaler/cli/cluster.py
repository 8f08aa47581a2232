"""``sparkscaler cluster``: start, inspect, resize and stop the local Spark cluster."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sparkscaler.cli.common import (
    ConfigOption,
    console,
    fail,
    load,
    require_java,
    sigterm_as_interrupt,
)

if TYPE_CHECKING:
    from rich.table import Table

    from sparkscaler.backends.local import LocalCluster
    from sparkscaler.config import Config

cluster_app = typer.Typer(
    help="Start, inspect, resize and stop the local Spark cluster.", no_args_is_help=True
)


@cluster_app.command("start")
def cluster_start(
    workers: Annotated[int, typer.Option("--workers", "-n", min=0, help="Workers to run.")] = 1,
    worker_cores: Annotated[
        int | None, typer.Option(help="Cores per worker.", show_default="cluster.worker_cores, 1")
    ] = None,
    worker_memory: Annotated[
        str | None,
        typer.Option(
            help="Memory per worker, as Spark writes it (512m, 2g).",
            show_default="cluster.worker_memory, 1g",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Start a local master and WORKERS workers (each on its own 127.0.0.x address)."""
    from sparkscaler.backends.base import BackendError
    from sparkscaler.backends.local import LocalCluster

    overrides = {
        k: v
        for k, v in {"worker_cores": worker_cores, "worker_memory": worker_memory}.items()
        if v is not None
    }
    cfg = load(config, {"cluster": overrides} if overrides else None)
    require_java()
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    with sigterm_as_interrupt():
        try:
            with console.status(f"starting the master and {workers} worker(s)…"):
                cluster.start(workers)
        except KeyboardInterrupt:
            raise fail("interrupted; stopped what this command had started", 130) from None
        except BackendError as error:
            raise fail(str(error)) from None
    console.print(
        f"cluster up: master {cfg.cluster.master_url}, UI {cfg.cluster.master_ui_url}, "
        f"{len(cluster.workers())} worker(s); state in {cfg.state_dir}"
    )


def _status_table(cluster: LocalCluster, cfg: Config) -> tuple[Table, dict[str, Any]]:
    from rich.table import Table

    from sparkscaler.observe.spark_master import MasterClient

    raw = MasterClient(cfg.cluster.master_ui_url).fetch()
    state = MasterClient.cluster_state(raw)
    table = Table(title=f"Spark master {cfg.cluster.master_url}")
    for column in ("worker", "state", "cores used", "memory used (MB)"):
        table.add_column(column)
    for w in state.workers:
        table.add_row(
            w.id, w.state, f"{w.cores_used}/{w.cores}", f"{w.memory_used_mb}/{w.memory_mb}"
        )
    data = {
        "master_url": cfg.cluster.master_url,
        "managed_pids": cluster.pids,
        "alive_workers": state.alive_workers,
        "decommissioning_workers": state.decommissioning_workers,
        "workers": [dataclasses.asdict(w) for w in state.workers],
        "active_apps": [dataclasses.asdict(a) for a in state.active_apps],
    }
    return table, data


@cluster_app.command("status")
def cluster_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show the workers and running applications."""
    from sparkscaler.backends.local import LocalCluster
    from sparkscaler.observe.spark_master import MasterUnavailable

    cfg = load(config)
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    try:
        table, data = _status_table(cluster, cfg)
    except MasterUnavailable as error:
        if as_json:
            console.print_json(json.dumps({"running": False, "error": str(error)}))
            raise typer.Exit(1) from None
        raise fail(f"{error}\n(start one with `sparkscaler cluster start`)") from None
    if as_json:
        console.print_json(json.dumps({"running": True, **data}))
    else:
        console.print(table)
        console.print(
            f"{data['alive_workers']} alive, {data['decommissioning_workers']} decommissioning, "
            f"{len(data['active_apps'])} running app(s)"
        )


@cluster_app.command("scale")
def cluster_scale(
    workers: Annotated[int, typer.Argument(min=0, help="Target number of workers.")],
    timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a removed worker may take to drain.",
            show_default="scaling.decommission_timeout_s, 120",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set the number of workers by hand; removals are graceful decommissions (idle first)."""
    from sparkscaler.backends.base import BackendError
    from sparkscaler.backends.local import LocalCluster
    from sparkscaler.core import ClusterState, choose_victims

    cfg = load(config)
    drain_s = cfg.scaling.decommission_timeout_s if timeout is None else timeout
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    with sigterm_as_interrupt():
        try:
            if not cluster.running:
                raise fail(
                    "no local cluster is running (start one with `sparkscaler cluster start`)"
                )
            state = ClusterState(workers=tuple(cluster.workers()))
            alive = state.alive_workers
            if workers > alive:
                with console.status(f"adding {workers - alive} worker(s)…"):
                    cluster.launch(workers - alive)
            elif workers < alive:
                cluster.decommission(choose_victims(state, alive - workers), drain_s)
                with console.status("decommissioning (waiting for running tasks to finish)…"):
                    cluster.wait_drained(drain_s + 30)
        except BackendError as error:
            raise fail(str(error)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
    console.print(f"{len([w for w in cluster.workers() if w.serving])} worker(s) alive")


@cluster_app.command("stop")
def cluster_stop(config: ConfigOption = None) -> None:
    """Stop every worker and the master started from this state directory."""
    from sparkscaler.backends.local import LocalCluster

    cfg = load(config)
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    pids = cluster.pids
    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        cluster.stop()
    console.print(f"stopped {len(pids)} process(es)" if pids else "no cluster was running")
