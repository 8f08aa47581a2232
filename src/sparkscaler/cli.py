"""The ``sparkscaler`` command line.

Every command turns SIGTERM into the same clean shutdown as Ctrl-C, so that a supervisor
stopping sparkscaler leaves no JVM behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sparkscaler import __version__
from sparkscaler.backends.base import BackendError
from sparkscaler.backends.local import LocalCluster
from sparkscaler.clock import WallClock
from sparkscaler.config import Config, ConfigError, config_from_dict, load_config
from sparkscaler.controller import Controller, Step
from sparkscaler.core import ClusterState, choose_victims
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable
from sparkscaler.policies import make_policy
from sparkscaler.processes import port_free
from sparkscaler.store import Store

app = typer.Typer(
    help="Keep a Spark standalone cluster at the right size: scale out before the backlog "
    "builds, scale in gracefully, explain every decision.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
cluster_app = typer.Typer(help="Start, inspect, resize and stop the local Spark cluster.")
app.add_typer(cluster_app, name="cluster")
train_app = typer.Typer(help="Train learning policies in the simulator.")
app.add_typer(train_app, name="train")
console = Console(soft_wrap=True)  # a path must not be split across lines
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (see `sparkscaler init`); default: built-in"),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _load(config: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """The config file (or the defaults) with command-line overrides; exit 2 when invalid."""
    try:
        base = load_config(config) if config else Config()
        if overrides:
            # Python mode: a JSON dump would mask service.token, and the mask would become it.
            data = base.model_dump(exclude_none=True)
            for section, values in overrides.items():
                data.setdefault(section, {}).update(values)
            base = config_from_dict(data, str(config or "command line"))
    except ConfigError as error:
        for problem in error.problems:
            err.print(
                f"[red]invalid config[/red] {escape(error.source)}: {escape(problem)}",
                highlight=False,
            )
        raise typer.Exit(2) from None
    return base


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM and SIGHUP (a closed terminal) raise KeyboardInterrupt, so that one
    cleanup path serves all three."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _require_java() -> None:
    if shutil.which("java") is None:
        raise _fail(
            "java is not on PATH; Spark needs Java 17 (`apt-get install openjdk-17-jre-headless`)"
        )


def _version(value: bool) -> None:
    if value:
        console.print(f"sparkscaler {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """sparkscaler: a deadline-aware autoscaler for Spark standalone clusters."""


# ---------------------------------------------------------------------------------- cluster
@cluster_app.command("start")
def cluster_start(
    workers: Annotated[int, typer.Option("--workers", "-n", min=0, help="Workers to run.")] = 1,
    worker_cores: Annotated[int | None, typer.Option(help="Cores per worker.")] = None,
    worker_memory: Annotated[str | None, typer.Option(help="Memory per worker, e.g. 1g.")] = None,
    config: ConfigOption = None,
) -> None:
    """Start a local master and WORKERS workers (each on its own 127.0.0.x address)."""
    overrides = {
        k: v
        for k, v in {"worker_cores": worker_cores, "worker_memory": worker_memory}.items()
        if v is not None
    }
    cfg = _load(config, {"cluster": overrides} if overrides else None)
    _require_java()
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    with _sigterm_as_interrupt():
        try:
            with console.status(f"starting the master and {workers} worker(s)…"):
                cluster.start(workers)
        except KeyboardInterrupt:
            raise _fail("interrupted; stopped what this command had started", 130) from None
        except BackendError as error:
            raise _fail(str(error)) from None
    console.print(
        f"cluster up: master {cfg.cluster.master_url}, UI {cfg.cluster.master_ui_url}, "
        f"{len(cluster.workers())} worker(s); state in {cfg.state_dir}"
    )


def _status_table(cluster: LocalCluster, cfg: Config) -> tuple[Table, dict[str, Any]]:
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
    cfg = _load(config)
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    try:
        table, data = _status_table(cluster, cfg)
    except MasterUnavailable as error:
        if as_json:
            console.print_json(json.dumps({"running": False, "error": str(error)}))
            raise typer.Exit(1) from None
        raise _fail(f"{error}\n(start one with `sparkscaler cluster start`)") from None
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
        typer.Option(help="Seconds a removed worker may take to drain [default: from config]."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set the number of workers by hand; removals are graceful decommissions (idle first)."""
    cfg = _load(config)
    drain_s = cfg.scaling.decommission_timeout_s if timeout is None else timeout
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    with _sigterm_as_interrupt():
        try:
            if not cluster.running:
                raise _fail(
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
            raise _fail(str(error)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
    console.print(f"{len([w for w in cluster.workers() if w.serving])} worker(s) alive")


@cluster_app.command("stop")
def cluster_stop(config: ConfigOption = None) -> None:
    """Stop every worker and the master started from this state directory."""
    cfg = _load(config)
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    pids = cluster.pids
    with _sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        cluster.stop()
    console.print(f"stopped {len(pids)} process(es)" if pids else "no cluster was running")


# ---------------------------------------------------------------------------------- run
def step_line(step: Step) -> str:
    o, g = step.observation, step.outcome
    mark = {
        "scale_out": "[green]▲[/green]",
        "scale_in": "[yellow]▼[/yellow]",
        "hold": "[red]‖[/red]",
    }.get(g.action, " ")
    extra = f" [red]{step.error}[/red]" if step.error else ""
    return (
        f"{mark} workers {o.workers}→{g.target}  running {o.running_tasks:3d}  pending "
        f"{o.pending_tasks:3d}  {g.reason}{extra}"
    )


@contextlib.contextmanager
def _local_controller(
    cfg: Config, store: Store, clock: WallClock, *, dry_run: bool
) -> Iterator[Controller]:
    """The controller of the local cluster that `cluster start` left running. When none is
    running (and this is not a dry run), one is started here and stopped again on the way out,
    Ctrl-C and SIGTERM included: a command leaves behind only what it found."""
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    owned = False
    controller: Controller | None = None
    try:
        if not cluster.running and not dry_run:
            owned = True
            with console.status("no cluster running: starting one…"):
                cluster.start(max(cfg.scaling.min_workers, 1))
        controller = Controller.from_config(cfg, cluster, store, clock, dry_run=dry_run)
        yield controller
    except KeyboardInterrupt:
        console.print("stopping…")
        raise
    finally:
        if controller is not None:
            controller.close()
        if owned:
            cluster.stop()


def _policy_line(cfg: Config, extra: str = "") -> str:
    s = cfg.scaling
    return (
        f"policy [bold]{cfg.policy.name}[/bold], {s.min_workers}–{s.max_workers} workers, "
        f"every {s.interval_s:g} s{extra}; Ctrl-C to stop"
    )


@app.command()
def run(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Record decisions, change nothing.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Run a single iteration and exit.")] = False,
) -> None:
    """Run the autoscaler against the local cluster (started here if none is running)."""
    cfg = _load(config)
    _require_java()
    with _sigterm_as_interrupt(), Store(cfg.store_path) as store:
        try:
            with _local_controller(cfg, store, WallClock(), dry_run=dry_run) as controller:
                console.print(_policy_line(cfg, " (dry run)" if dry_run else ""))
                controller.run(
                    iterations=1 if once else None,
                    on_step=lambda s: console.print(step_line(s), highlight=False),
                )
        except KeyboardInterrupt:
            pass
        except BackendError as error:
            raise _fail(str(error)) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Address to bind [default: service.host, 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port [default: service.port, 8765]."),
    ] = None,
) -> None:
    """Run the autoscaler with its REST API (/docs) and /metrics, in one process.

    Like `run`, it drives the local cluster that is running, or starts one and stops it on
    exit. Changes through the API need the bearer token, from service.token or generated into
    <state_dir>/service-token at the first start.
    """
    try:
        from sparkscaler.service.app import create_app
        from sparkscaler.service.auth import TokenError, resolve_token
        from sparkscaler.service.runtime import Runtime
        from sparkscaler.service.server import ServerError, ServiceServer
    except ImportError as error:
        raise _fail(
            f"the service needs its extra dependencies ({error.name} is missing): "
            "pip install 'sparkscaler[service]'"
        ) from None

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    cfg = _load(config, {"service": overrides} if overrides else None)
    service = cfg.service
    if not port_free(service.host, service.port):  # found out before a cluster is started
        raise _fail(
            f"cannot listen on {service.host}:{service.port} (in use by another program?); "
            "choose another with --port or service.port"
        )
    try:
        token, token_source = resolve_token(cfg)
    except TokenError as error:
        raise _fail(str(error), 2) from None
    _require_java()
    with _sigterm_as_interrupt(), Store(cfg.store_path) as store:
        try:
            with _local_controller(cfg, store, WallClock(), dry_run=False) as controller:
                runtime = Runtime(controller)
                server = ServiceServer(create_app(runtime, token=token), service.host, service.port)
                with runtime, server:
                    console.print(
                        f"serving on {server.url} (API docs {server.url}/docs, metrics "
                        f"{server.url}/metrics)"
                    )
                    console.print(f"token for changes: {escape(token_source)}", highlight=False)
                    console.print(_policy_line(cfg, ", mode auto"))
                    server.wait()
        except KeyboardInterrupt:
            pass
        except (BackendError, ServerError) as error:
            raise _fail(str(error)) from None


@app.command()
def history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many decisions.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = None,
) -> None:
    """Recent decisions with their reasons, newest first."""
    cfg = _load(config)
    if not cfg.store_path.exists():
        raise _fail(f"no store at {cfg.store_path} yet (run `sparkscaler run` first)")
    with Store(cfg.store_path) as store:
        rows = store.decisions(limit)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"last {len(rows)} decisions ({cfg.store_path})")
    for column in ("time", "policy", "workers", "action", "reason"):
        table.add_column(column, overflow="fold")
    import datetime as dt

    for r in rows:
        when = dt.datetime.fromtimestamp(r["time"]).strftime("%Y-%m-%d %H:%M:%S")
        acted = "" if r["acted"] or r["action"] in ("none", "hold") else " (not done)"
        table.add_row(
            when,
            r["policy"] or "-",
            f"{r['current']}→{r['target']}",
            r["action"] + acted,
            r["reason"],
        )
    console.print(table)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(
        "sparkscaler.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example config with every setting and its default."""
    if path.exists() and not force:
        raise _fail(f"{path} exists (use --force to overwrite)")
    path.write_text(resources.files("sparkscaler").joinpath("example-config.yaml").read_text())
    console.print(f"wrote {path}; check it with `sparkscaler run --config {path} --dry-run --once`")


@app.command()
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
    from sparkscaler.sim.runtime_model import FEATURE_NAMES, fit_runs, load_runs

    try:
        records = load_runs(runs)
        model = fit_runs(records, source=str(runs))
    except (OSError, ValueError) as error:
        raise _fail(str(error)) from None
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


@app.command()
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
    jobs: Annotated[
        str, typer.Option("--jobs", "-j", help="Job source: synthetic | tpch:DIR | model:FILE")
    ] = "synthetic",
    policy: Annotated[
        str | None, typer.Option("--policy", "-p", help="Policy name [default: from config]")
    ] = None,
    duration: Annotated[str, typer.Option(help="Simulated time: 90m, 12h, 7d…")] = "1d",
    deadline_factor: Annotated[
        float, typer.Option(help="Deadline = factor × the job's run time on an idle cluster.")
    ] = 3.0,
    seed: Annotated[int | None, typer.Option(help="Seed [default: simulation.seed]")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write result JSON here.")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the autoscaler against the simulator (same controller and guard as on Spark)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from sparkscaler.sim.arrivals import load_arrivals
    from sparkscaler.sim.runner import parse_duration, parse_jobs
    from sparkscaler.sim.runner import simulate as run_simulation

    cfg = _load(config)
    try:
        seconds = parse_duration(duration)
        rng = np.random.default_rng(cfg.simulation.seed if seed is None else seed)
        arrivals = load_arrivals(workload, seconds, rng)
        source = parse_jobs(jobs)
        chosen = make_policy(policy or cfg.policy.name, cfg.policy.params if policy is None else {})
    except (OSError, ValueError) as error:
        raise _fail(str(error), 2) from None
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
            raise _fail(str(error), 2) from None
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
        str, typer.Option(help="paper: the OLA 2019 state and reward; improved: ours.")
    ] = "improved",
    jobs: Annotated[
        str, typer.Option("--jobs", "-j", help="Job source: synthetic | tpch:DIR | model:FILE")
    ] = "synthetic",
    seed: Annotated[int | None, typer.Option(help="Seed [default: simulation.seed]")] = None,
    config: ConfigOption = None,
) -> None:
    """Train the DQN agent in sparkscaler/SparkCluster-v0, sized by the config (N, interval, T)."""
    from sparkscaler.sim.env import EnvConfig
    from sparkscaler.sim.runner import parse_jobs
    from sparkscaler.training import train_dqn

    cfg = _load(config)
    if variant not in ("paper", "improved"):
        raise _fail(f"--variant must be paper or improved, not {variant!r}", 2)
    if out.suffix != ".zip":
        raise _fail(f"--out must end in .zip (got {out})", 2)
    try:
        env_config = EnvConfig(
            max_workers=cfg.scaling.max_workers,
            min_workers=max(1, cfg.scaling.min_workers),
            initial_workers=max(1, cfg.scaling.min_workers),
            cores_per_worker=cfg.cluster.worker_cores,
            interval_s=cfg.scaling.interval_s,
            deadline_s=cfg.deadline_s or 300.0,
            provisioning=cfg.simulation.provisioning,
            executor_startup_s=cfg.simulation.executor_startup_s,
            decommission_timeout_s=cfg.scaling.decommission_timeout_s,
            jobs=parse_jobs(jobs),
        )
    except (OSError, ValueError) as error:
        raise _fail(str(error), 2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with _sigterm_as_interrupt():
        try:
            result = train_dqn(
                env_config,
                variant,
                timesteps,  # type: ignore[arg-type]
                cfg.simulation.seed if seed is None else seed,
                out,
                progress=True,
            )
        except KeyboardInterrupt:
            raise _fail("interrupted; no model written", 130) from None
    console.print(
        f"trained the {variant} DQN for {timesteps} steps ({result.episodes} episodes) in "
        f"{result.wall_time_s:.1f} s; mean reward of the last 20 episodes "
        f"{result.final_mean_reward:.3f}"
    )
    console.print(
        f"wrote {result.model_path} and {result.metadata_path}; use it with "
        f"policy: {{name: dqn, params: {{model_path: {result.model_path}}}}}"
    )


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


@app.command()
def evaluate(
    suites: Annotated[
        list[str] | None,
        typer.Argument(help="paper-grid, trace and/or replay [default: paper-grid and trace]"),
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
            "store .db) or a saved model .json [default: the project's own recorded runs]"
        ),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(
            help="Input sizes of paper-grid jobs, LOW-HIGH in the model's unit "
            "[default: from the model, in the paper's proportions]"
        ),
    ] = None,
    trace: Annotated[
        list[Path] | None,
        typer.Option(
            help="A NASA-layout per-minute CSV or an Alibaba batch_task.csv; repeat "
            "for several [default: the reference traces in ../shared/data]"
        ),
    ] = None,
    history: Annotated[
        Path | None,
        typer.Option(
            help="For replay: a sparkscaler store (.db) or a Spark event-log directory "
            "[default: the config's store]"
        ),
    ] = None,
    max_workers: Annotated[int, typer.Option(min=2, help="N of the trace cases")] = 10,
    dqn_timesteps: Annotated[
        int | None, typer.Option(min=100, help="DQN training steps [default: 30000; 3000 quick]")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every workload and model")] = 0,
    n_jobs: Annotated[
        int, typer.Option("--n-jobs", "-j", help="Processes [default: one per core]")
    ] = -1,
    config: ConfigOption = None,
) -> None:
    """Run policies side by side on the same seeded workloads in the simulator, with the oracle.

    paper-grid reproduces the OLA 2019 experiment (T = 5..10 min x N = 5..10 workers, 100
    rounds); trace runs a week of arrivals from real traces; replay runs your own job history.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sparkscaler.evaluation.continuous import load_history
    from sparkscaler.evaluation.harness import SUITES, Options
    from sparkscaler.evaluation.harness import evaluate as run_evaluation

    cfg = _load(config)
    chosen = tuple(suites or ("paper-grid", "trace"))
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        raise _fail(f"unknown suite {', '.join(unknown)}; choose from {', '.join(SUITES)}", 2)
    records = None
    if "replay" in chosen:
        source = history or cfg.store_path
        try:
            records = load_history(source)
        except (OSError, ValueError) as error:
            raise _fail(f"replay: {error}", 2) from None
        if not records:
            raise _fail(f"replay: {source} holds no finished job to replay", 2)
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
    )
    columns = (
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with _sigterm_as_interrupt(), Progress(*columns, console=err, transient=True) as bar:
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
            raise _fail(str(error), 2) from None
    for note in report["notes"]:
        err.print(f"note: {escape(note)}")
    _print_headline(report)
    console.print(f"wrote {out}/results.json, results.csv, report.html")


def _print_headline(report: dict[str, Any]) -> None:
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


@app.command()
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
            help="Where to write the HTML report [default: <state_dir>/demo-report.html]."
        ),
    ] = None,
) -> None:
    """The main job: a local cluster, the service and its dashboard, the hybrid policy, and a
    compressed day of real PySpark jobs, then the same day on a static cluster (≈12 minutes).

    Open the dashboard URL it prints to watch and steer it; at the end it prints a summary and
    writes an HTML report.
    """
    from sparkscaler.demo import DemoOptions, run_demo

    cfg = _load(config) if config else None
    options = DemoOptions(
        jobs=jobs, day_s=day_seconds, deadline_s=deadline, size=size, seed=seed, compare=compare
    )
    _require_java()
    with _sigterm_as_interrupt():
        code = run_demo(console, cfg, options, report)
    raise typer.Exit(code)


def main() -> None:
    app()
