"""The main job (``make demo``): a real local cluster, the service with its dashboard, and a
compressed day of real PySpark jobs, replayed twice.

1. **Autoscaled.** One worker to start with; ``sparkscaler serve``'s loop runs the ``hybrid``
   policy while the day's jobs (the seeds' forecast, word count, PageRank and k-means, see
   :mod:`sparkscaler.workloads.replay`) arrive, and the dashboard shows it live.
2. **Static.** The same replay on a static cluster of N workers (the policy is switched to
   ``static`` through the same runtime the API uses; the dashboard shows that too).

At the end a summary compares the two and an HTML report is written. Every process is stopped
on the way out, whether the demo finishes, fails or is interrupted.
"""

from __future__ import annotations

import collections
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.local import LocalCluster
from sparkscaler.clock import WallClock
from sparkscaler.config import Config, default_state_dir
from sparkscaler.controller import Controller, Step
from sparkscaler.demo_report import (
    JobRun,
    PhaseResult,
    charged_window_s,
    saved_share,
    write_demo_report,
)
from sparkscaler.processes import free_port, signals_deferred, wait_until
from sparkscaler.service.app import create_app
from sparkscaler.service.auth import resolve_token
from sparkscaler.service.runtime import Runtime
from sparkscaler.service.server import ServiceServer
from sparkscaler.store import Store
from sparkscaler.workloads.replay import PlannedJob, Replayer, daily_plan
from sparkscaler.workloads.submit import JobSubmitter

#: A phase ends this long after its last job was due, done or not (a job that hangs).
DRAIN_LIMIT_S = 600.0
#: The static cluster must be up (all N workers alive) within this before its replay starts.
STATIC_READY_S = 180.0


@dataclass(frozen=True)
class DemoOptions:
    """How much work the demo replays: ``jobs`` over a day compressed into ``day_s`` seconds,
    each due within ``deadline_s``; ``size`` scales every job; ``compare`` adds the static run."""

    jobs: int = 8
    day_s: float = 240.0
    deadline_s: float = 180.0
    size: float = 0.4
    seed: int = 0
    compare: bool = True


def demo_config() -> Config:
    """The demo's settings: one to four one-core workers, quick to react and to release, so that a
    compressed day shows the cluster grow and shrink. Spark's own idle timeout is 60 s; the
    demo's reactive part uses 15 s (and says so)."""
    return Config.model_validate(
        {
            "state_dir": str(default_state_dir() / "demo"),
            "cluster": {
                "master_port": free_port(7077),
                "master_ui_port": free_port(8080),
                "worker_cores": 1,
                "worker_memory": "1g",
            },
            "scaling": {
                "min_workers": 1,
                "max_workers": 4,
                "interval_s": 2,
                "scale_out_cooldown_s": 4,
                "scale_in_cooldown_s": 6,
                "scale_in_stabilization_s": 15,
                "decommission_timeout_s": 60,
            },
            "policy": {"name": "hybrid", "params": {"reactive": {"idle_timeout_s": 15}}},
            "service": {"port": free_port(8765)},
        }
    )


def _clean_state(cfg: Config) -> None:
    """A fresh store and event logs for the demo's own state directory (never a user's)."""
    for leftover in ("events", "work", "logs"):
        shutil.rmtree(cfg.state_dir / leftover, ignore_errors=True)
    for leftover in ("sparkscaler.db", "sparkscaler.db-wal", "sparkscaler.db-shm"):
        (cfg.state_dir / leftover).unlink(missing_ok=True)


class _Steps:
    """The loop's steps as the runtime publishes them, for the live view (newest last)."""

    def __init__(self, runtime: Runtime, keep: int = 12) -> None:
        self.runtime = runtime
        self.recent: collections.deque[Step] = collections.deque(maxlen=keep)

    def refresh(self) -> Step | None:
        step = self.runtime.snapshot().last_step
        if step is not None and (not self.recent or self.recent[-1] is not step):
            self.recent.append(step)
        return step


def _view(title: str, steps: _Steps, replay: Replayer, started: float) -> Group:
    table = Table(title=title)
    for column, justify in (
        ("t", "right"),
        ("workers", "left"),
        ("running", "right"),
        ("pending", "right"),
        ("action", "left"),
        ("reason", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in steps.recent:
        o, g = s.observation, s.outcome
        bar = "█" * o.workers + "░" * o.cluster.decommissioning_workers
        action = {
            "scale_out": "[green]scale out[/green]",
            "scale_in": "[yellow]scale in[/yellow]",
            "hold": "[red]hold[/red]",
        }.get(g.action, "")
        if g.action in ("scale_out", "scale_in"):
            action += f" → {g.target}"
        table.add_row(
            f"{o.time - started:5.0f}s",
            bar,
            str(o.running_tasks),
            str(o.pending_tasks),
            action,
            escape(g.reason),
        )
    jobs = Table.grid(padding=(0, 2))
    due = len(replay.plan) - len(replay.submitted)
    for planned, job in replay.submitted[-8:]:
        state = (
            "running"
            if not job.poll()
            else ("[green]done[/green]" if job.succeeded else "[red]failed[/red]")
        )
        jobs.add_row(planned.name, state)
    jobs.add_row(f"{due} more job(s) to come", "")
    return Group(table, jobs)


def _replay(
    title: str,
    console: Console,
    plan: list[PlannedJob],
    submitter: JobSubmitter,
    steps: _Steps,
    settled: Callable[[Step], bool],
) -> tuple[Replayer, float, float]:
    """Run one replay live until its jobs are done and the cluster has ``settled``; returns the
    replay and its start and end (epoch s)."""
    replay = Replayer(plan, submitter)
    limit = max(j.offset_s for j in plan) + DRAIN_LIMIT_S
    replay.start()
    started = time.time()
    with Live(_view(title, steps, replay, started), console=console, refresh_per_second=2) as live:
        while time.time() - started < limit:
            replay.poll()
            last = steps.refresh()
            if replay.done and last is not None and settled(last):
                break
            live.update(_view(title, steps, replay, started))
            time.sleep(0.5)
        live.update(_view(title, steps, replay, started))
    if not replay.done:
        console.print(f"[yellow]time limit of {limit:.0f} s reached; stopping its jobs[/yellow]")
        submitter.stop_all()
    return replay, started, time.time()


def _phase(
    label: str, policy: str, replay: Replayer, store: Store, started: float, ended: float
) -> PhaseResult:
    rows = [r for r in store.observations(started - 1e-6, 1_000_000) if r["time"] <= ended]
    decisions = [
        d
        for d in store.decisions(1_000_000)
        if started <= d["time"] <= ended and d["acted"] and d["action"] in ("scale_out", "scale_in")
    ]
    jobs = [
        JobRun(
            name=planned.name,
            kind=planned.kind,
            offset_s=job.submitted_at - started,
            duration_s=(job.finished_at or ended) - job.submitted_at,
            deadline_s=planned.deadline_s,
            succeeded=job.succeeded,
        )
        for planned, job in replay.submitted
    ]
    return PhaseResult(
        label=label,
        policy=policy,
        started=started,
        ended=ended,
        times=[r["time"] - started for r in rows],
        workers=[r["workers"] + r["decommissioning"] for r in rows],
        demand=[r["running_tasks"] + r["pending_tasks"] for r in rows],
        scale_outs=sum(d["action"] == "scale_out" for d in decisions),
        scale_ins=sum(d["action"] == "scale_in" for d in decisions),
        jobs=jobs,
    )


def run_demo(
    console: Console,
    config: Config | None = None,
    options: DemoOptions | None = None,
    report_path: Path | None = None,
) -> int:
    """Run the main job; ``config`` replaces the demo's own settings. Returns the exit code."""
    cfg = config or demo_config()
    opts = options or DemoOptions()
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    if cluster.running:
        console.print(
            f"[red]a cluster from {cfg.state_dir} is still running; stop it with "
            f"`SPARKSCALER_HOME={cfg.state_dir} sparkscaler cluster stop`[/red]"
        )
        return 1
    if config is None:
        _clean_state(cfg)
    report_path = report_path or cfg.state_dir / "demo-report.html"
    plan = daily_plan(
        opts.jobs, opts.day_s, deadline_s=opts.deadline_s, seed=opts.seed, size=opts.size
    )
    n, low = cfg.scaling.max_workers, cfg.scaling.min_workers
    token, token_source = resolve_token(cfg)
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    store = Store(cfg.store_path)
    controller: Controller | None = None
    runtime: Runtime | None = None
    server: ServiceServer | None = None
    phases: list[PhaseResult] = []
    code = 0
    try:
        with console.status(f"starting a local Spark master and {low} worker(s)…"):
            cluster.start(low)
        controller = Controller.from_config(cfg, cluster, store, WallClock())
        runtime = Runtime(controller)
        server = ServiceServer(create_app(runtime, token=token), cfg.service.host, cfg.service.port)
        server.start()
        runtime.start()
        console.print(f"cluster up: master UI {cfg.cluster.master_ui_url}  (state {cfg.state_dir})")
        console.print(
            f"[bold]dashboard: {server.url}/[/bold]  (API {server.url}/docs; token for changes: "
            f"{escape(token_source)})",
            highlight=False,
        )
        console.print(
            f"replaying a day of {opts.jobs} PySpark jobs compressed into {opts.day_s:.0f} s, "
            f"each due within {opts.deadline_s:.0f} s"
        )
        steps = _Steps(runtime)

        def shrunk(step: Step) -> bool:
            o = step.observation
            return o.workers == low and o.cluster.decommissioning_workers == 0

        title = f"autoscaled: policy {cfg.policy.name}, {low}–{n} workers"
        replay, started, ended = _replay(title, console, plan, submitter, steps, shrunk)
        phases.append(_phase("autoscaled", cfg.policy.name, replay, store, started, ended))
        if opts.compare:
            runtime.set_mode("auto")
            runtime.switch_policy("static", {"workers": n})
            with console.status(f"static baseline: waiting for {n} workers…"):
                ready = wait_until(
                    lambda: sum(w.state == "ALIVE" for w in cluster.workers()) >= n,
                    STATIC_READY_S,
                )
            if not ready:
                raise BackendError(f"the static cluster did not reach {n} workers")
            replay, started, ended = _replay(
                f"static: {n} workers", console, plan, submitter, steps, lambda _: True
            )
            phases.append(_phase(f"static {n}", "static", replay, store, started, ended))
    except BackendError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        code = 1
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: stopping jobs, service, autoscaler and cluster…[/yellow]"
        )
        code = 130
    finally:
        with signals_deferred():
            if server is not None:
                server.stop()
            if runtime is not None:
                runtime.stop()
            submitter.stop_all()
            cluster.stop()  # also ends a launch the loop may be waiting on
            if controller is not None:
                controller.close()
            store.close()
    if phases:
        _print_summary(console, phases)
        write_demo_report(phases, cfg, report_path)
        console.print(f"report: {report_path}")
        console.print(
            f"decisions: SPARKSCALER_HOME={cfg.state_dir.parent} sparkscaler history "
            f"(store {cfg.store_path})"
        )
    if code:
        return code
    failed = sum(not j.succeeded for p in phases for j in p.jobs)
    return 0 if phases and not failed else 1


def _print_summary(console: Console, phases: list[PhaseResult]) -> None:
    window = charged_window_s(phases)
    table = Table(title="summary: the same day of jobs")
    for column in (
        "run",
        "jobs ok",
        "deadlines met",
        f"worker-s over {window:.0f} s",
        "peak workers",
        "scale out / in",
        "p95 job s",
    ):
        table.add_column(column, justify="right" if column != "run" else "left")
    for p in phases:
        table.add_row(
            p.label,
            f"{p.succeeded}/{len(p.jobs)}",
            f"{p.deadlines_met}/{len(p.jobs)}",
            f"{p.worker_seconds(window):.0f}",
            str(p.peak_workers),
            f"{p.scale_outs} / {p.scale_ins}",
            f"{p.p95_duration_s:.0f}",
        )
    console.print()
    console.print(table)
    saved = saved_share(phases)
    if saved is not None:
        more_or_less = "fewer" if saved >= 0 else "more"
        console.print(
            f"the autoscaled run used {abs(saved):.0%} {more_or_less} worker-seconds than the "
            "static one (both charged over the same window; see the report)"
        )
