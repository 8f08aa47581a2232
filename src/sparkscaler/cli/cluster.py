"""``sparkscaler cluster``: start, inspect, resize and stop the cluster of the config's backend
(``local``: JVMs on this machine; ``hosts``: one worker per machine over SSH)."""

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

    from sparkscaler.backends.daemons import WorkerPool
    from sparkscaler.config import Config

cluster_app = typer.Typer(
    help="Start, inspect, resize and stop the Spark cluster (local, or on the config's hosts).",
    no_args_is_help=True,
)

#: Problems younger than this are shown by `cluster status`.
RECENT_PROBLEMS_S = 3600.0


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
    """Start a master (unless one answers at cluster.master_url) and WORKERS workers: each on
    its own 127.0.0.x address, or one per machine of `hosts`; wait until they are ALIVE."""
    from sparkscaler.backends import open_backend
    from sparkscaler.backends.base import BackendError

    overrides = {
        k: v
        for k, v in {"worker_cores": worker_cores, "worker_memory": worker_memory}.items()
        if v is not None
    }
    cfg = load(config, {"cluster": overrides} if overrides else None)
    require_java()
    with sigterm_as_interrupt():
        try:
            cluster = open_backend(cfg)
            with console.status(f"starting the master and {workers} worker(s)…"):
                cluster.start(workers, start_attached=True)
        except KeyboardInterrupt:
            raise fail("interrupted; stopped what this command had started", 130) from None
        except BackendError as error:
            raise fail(str(error)) from None
    console.print(
        f"cluster up: master {cfg.cluster.master_url}, UI {cfg.cluster.master_ui_url}, "
        f"{len(cluster.workers())} worker(s); state in {cfg.state_dir}"
    )


def _status_table(cluster: WorkerPool, cfg: Config) -> tuple[Table, dict[str, Any]]:
    """The master's workers and applications, with ours that are still PROVISIONING."""
    import time

    from rich.table import Table

    from sparkscaler.core import ClusterState
    from sparkscaler.observe.spark_master import MasterClient

    raw = MasterClient(cfg.cluster.master_ui_url).fetch()
    state = MasterClient.cluster_state(raw)
    provisioning = [w for w in cluster.workers() if w.state == "PROVISIONING"]
    state = ClusterState(
        workers=state.workers + tuple(provisioning),
        active_apps=state.active_apps,
        waiting_apps=state.waiting_apps,
        waiting_drivers=state.waiting_drivers,
    )
    table = Table(title=f"Spark master {cfg.cluster.master_url}")
    for column in ("worker", "state", "cores used", "memory used (MB)"):
        table.add_column(column)
    for w in state.workers:
        shown = f"{w.state} ({w.pending_s:.0f} s)" if w.state == "PROVISIONING" else w.state
        table.add_row(w.id, shown, f"{w.cores_used}/{w.cores}", f"{w.memory_used_mb}/{w.memory_mb}")
    problems = cluster.problems(since=time.time() - RECENT_PROBLEMS_S)
    data = {
        "master_url": cfg.cluster.master_url,
        "backend": cfg.backend,
        "managed_pids": cluster.pids,
        "alive_workers": state.alive_workers,
        "provisioning_workers": state.provisioning_workers,
        "decommissioning_workers": state.decommissioning_workers,
        "workers": [dataclasses.asdict(w) for w in state.workers],
        "active_apps": [dataclasses.asdict(a) for a in state.active_apps],
        "problems": [dataclasses.asdict(p) for p in problems],
    }
    return table, data


@cluster_app.command("status")
def cluster_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show the workers (PROVISIONING ones too), the running applications and recent problems."""
    from sparkscaler.backends import open_backend
    from sparkscaler.backends.base import BackendError
    from sparkscaler.backends.daemons import StateFileError
    from sparkscaler.observe.spark_master import MasterUnavailable

    cfg = load(config)
    cluster = open_backend(cfg)
    try:
        table, data = _status_table(cluster, cfg)
    except StateFileError:
        raise  # one line of its own: not a cluster that is down
    except (MasterUnavailable, BackendError) as error:  # the master is down
        if as_json:
            console.print_json(json.dumps({"running": False, "error": str(error)}))
            raise typer.Exit(1) from None
        raise fail(f"{error}\n(start one with `sparkscaler cluster start`)") from None
    if as_json:
        console.print_json(json.dumps({"running": True, **data}))
        return
    console.print(table)
    console.print(
        f"{data['alive_workers']} alive, {data['provisioning_workers']} provisioning, "
        f"{data['decommissioning_workers']} decommissioning, "
        f"{len(data['active_apps'])} running app(s)"
    )
    for problem in data["problems"]:
        console.print(f"[yellow]problem:[/yellow] {problem['message']}", highlight=False)


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
    """Set the number of workers by hand and wait until it holds: added workers ALIVE, removed
    ones (graceful decommissions, idle first) drained and stopped. Drains that an interrupted
    command left behind are finished too."""
    from sparkscaler.backends import open_backend
    from sparkscaler.backends.base import BackendError
    from sparkscaler.core import ClusterState, choose_victims

    cfg = load(config)
    drain_s = cfg.scaling.decommission_timeout_s if timeout is None else timeout
    with sigterm_as_interrupt():
        try:
            cluster = open_backend(cfg)
            if not cluster.running:
                raise fail("no cluster is running (start one with `sparkscaler cluster start`)")
            state = ClusterState(workers=tuple(cluster.workers()))
            present = state.alive_workers + state.provisioning_workers
            if workers > present:
                with console.status(f"adding {workers - present} worker(s)…"):
                    cluster.start(workers)
            elif workers < present:
                cluster.decommission(choose_victims(state, present - workers), drain_s)
            with console.status("waiting for workers to start"):
                cluster.wait_alive(cfg.cluster.startup_timeout_s + 30)
            with console.status("decommissioning (waiting for running tasks to finish)…"):
                if not cluster.wait_drained():
                    raise fail("decommissioned workers are still draining; see `cluster status`")
        except BackendError as error:
            raise fail(str(error)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
    console.print(f"{len([w for w in cluster.workers() if w.serving])} worker(s) alive")


@cluster_app.command("stop")
def cluster_stop(config: ConfigOption = None) -> None:
    """Stop every worker started from this state directory, and the master if it was started
    from here (never a master that cluster.master_url names and something else started)."""
    from sparkscaler.backends import open_backend
    from sparkscaler.backends.base import BackendError

    cfg = load(config)
    cluster = open_backend(cfg)
    pids = cluster.pids
    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        try:
            cluster.stop()
        except BackendError as error:
            raise fail(str(error)) from None
    console.print(f"stopped {len(pids)} process(es)" if pids else "no cluster was running")
