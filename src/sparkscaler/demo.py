"""The main job (``make demo``): a real local cluster, the autoscaler and real PySpark jobs.

One worker to start with; a burst of jobs builds a backlog; Spark dynamic allocation's rule
scales out to at most four workers; when the jobs are done the idle workers are decommissioned
gracefully. Everything is live in a table, ends with a summary, and every process is stopped on
the way out, whether the demo finishes, fails or is interrupted.
"""

from __future__ import annotations

import collections
import shutil
import threading
import time
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.local import LocalCluster
from sparkscaler.clock import WallClock
from sparkscaler.config import Config, default_state_dir
from sparkscaler.controller import Controller, Step
from sparkscaler.processes import free_port, signals_deferred
from sparkscaler.store import Store
from sparkscaler.workloads.submit import JobSubmitter

#: (seconds after start, name, job arguments): two bursts, so the cluster grows, shrinks, grows.
JOB_PLAN: tuple[tuple[float, str, list[str]], ...] = (
    (5, "burst-1a", ["backlog", "--tasks", "24", "--task-seconds", "3"]),
    (10, "burst-1b", ["backlog", "--tasks", "12", "--task-seconds", "3"]),
    (75, "burst-2", ["backlog", "--tasks", "20", "--task-seconds", "3"]),
)
TIME_LIMIT_S = 270.0


def demo_config() -> Config:
    """The demo's settings: quick to react and to release, so that it fits in five minutes.

    Spark's own idle timeout is 60 s; the demo uses 10 s (and says so) to show a full cycle.
    """
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
                "scale_in_stabilization_s": 10,
                "decommission_timeout_s": 60,
            },
            "policy": {"name": "dra", "params": {"idle_timeout_s": 10}},
        }
    )


@dataclass
class DemoSummary:
    jobs: int
    succeeded: int
    worker_seconds: float
    static_worker_seconds: float
    scale_outs: int
    scale_ins: int
    peak_workers: int
    duration_s: float


def summarise(
    store: Store, since: float, jobs: int, succeeded: int, max_workers: int
) -> DemoSummary:
    """Worker-seconds by integrating the observed worker count over time (left Riemann sum)."""
    rows = store.observations(since)
    times = [r["time"] for r in rows]
    workers = [r["workers"] + r["decommissioning"] for r in rows]
    worker_seconds = sum(
        w * (t1 - t0) for w, t0, t1 in zip(workers, times, times[1:], strict=False)
    )
    duration = times[-1] - times[0] if len(times) > 1 else 0.0
    decisions = [d for d in store.decisions(100_000) if d["time"] >= since and d["acted"]]
    return DemoSummary(
        jobs=jobs,
        succeeded=succeeded,
        worker_seconds=worker_seconds,
        static_worker_seconds=max_workers * duration,
        scale_outs=sum(d["action"] == "scale_out" for d in decisions),
        scale_ins=sum(d["action"] == "scale_in" for d in decisions),
        peak_workers=max([r["workers"] for r in rows], default=0),
        duration_s=duration,
    )


def _view(steps: collections.deque[Step], submitter: JobSubmitter, started: float) -> Group:
    table = Table(title="sparkscaler demo: policy dra (Spark dynamic allocation), 1–4 workers")
    for column, justify in (
        ("t", "right"),
        ("workers", "left"),
        ("running", "right"),
        ("pending", "right"),
        ("action", "left"),
        ("reason", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for s in steps:
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
            g.reason,
        )
    jobs = Table.grid(padding=(0, 2))
    for job in submitter.jobs:
        state = (
            "running"
            if not job.poll()
            else ("[green]done[/green]" if job.succeeded else "[red]failed[/red]")
        )
        jobs.add_row(job.name, state)
    return Group(table, jobs)


def run_demo(console: Console, config: Config | None = None) -> int:
    """Run the main job; ``config`` replaces the demo's own settings. Returns the exit code."""
    cfg = config or demo_config()
    cluster = LocalCluster(cfg.cluster, cfg.state_dir)
    if cluster.running:
        console.print(
            f"[red]a cluster from {cfg.state_dir} is still running; stop it with "
            f"`SPARKSCALER_HOME={cfg.state_dir} sparkscaler cluster stop`[/red]"
        )
        return 1
    if config is None:
        for leftover in ("events", "work"):
            shutil.rmtree(cfg.state_dir / leftover, ignore_errors=True)
        for leftover in ("sparkscaler.db", "sparkscaler.db-wal", "sparkscaler.db-shm"):
            (cfg.state_dir / leftover).unlink(missing_ok=True)
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    clock, stop = WallClock(), threading.Event()
    steps: collections.deque[Step] = collections.deque(maxlen=14)
    thread: threading.Thread | None = None
    controller: Controller | None = None
    store = Store(cfg.store_path)
    started = time.time()
    code: int | None = None
    try:
        with console.status("starting a local Spark master and 1 worker…"):
            cluster.start(1)
        console.print(
            f"cluster up: master UI {cfg.cluster.master_ui_url}  (state in {cfg.state_dir})"
        )
        controller = Controller.from_config(cfg, cluster, store, clock)
        thread = threading.Thread(
            target=controller.run, kwargs={"stop": stop, "on_step": steps.append}, daemon=True
        )
        started = time.time()
        thread.start()
        plan = list(JOB_PLAN)
        with Live(_view(steps, submitter, started), console=console, refresh_per_second=2) as live:
            while time.time() - started < TIME_LIMIT_S:
                elapsed = time.time() - started
                while plan and plan[0][0] <= elapsed:
                    _, name, args = plan.pop(0)
                    submitter.submit(name, args)
                last = steps[-1].observation if steps else None
                settled = (
                    last is not None
                    and last.workers == cfg.scaling.min_workers
                    and last.cluster.decommissioning_workers == 0
                )
                if not plan and not submitter.running() and settled:
                    break
                live.update(_view(steps, submitter, started))
                time.sleep(0.5)
            live.update(_view(steps, submitter, started))
        finished = not plan and not submitter.running()
        if not finished:
            console.print(f"[yellow]time limit of {TIME_LIMIT_S:.0f} s reached; stopping[/yellow]")
    except BackendError as error:
        console.print(f"[red]error:[/red] {error}")
        code = 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping jobs, autoscaler and cluster…[/yellow]")
        code = 130
    finally:
        with signals_deferred():
            stop.set()
            clock.interrupt()
            submitter.stop_all()
            cluster.stop()  # also ends a launch the controller may be waiting on
            if thread is not None:
                thread.join(timeout=60)
            if controller is not None:
                controller.close()
            succeeded = sum(j.succeeded for j in submitter.jobs)
            if thread is not None:
                summary = summarise(
                    store, started, len(submitter.jobs), succeeded, cfg.scaling.max_workers
                )
                _print_summary(console, summary, cfg)
            store.close()
    if code is not None:
        return code
    return 0 if submitter.jobs and succeeded == len(submitter.jobs) else 1


def _print_summary(console: Console, s: DemoSummary, cfg: Config) -> None:
    table = Table(title="summary", show_header=False)
    table.add_row(
        "jobs", f"{s.jobs} submitted, {s.succeeded} succeeded, {s.jobs - s.succeeded} failed"
    )
    table.add_row("duration", f"{s.duration_s:.0f} s")
    table.add_row(
        "workers",
        f"peak {s.peak_workers}; {s.scale_outs} scale-out and {s.scale_ins} scale-in actions",
    )
    saved = 1 - s.worker_seconds / s.static_worker_seconds if s.static_worker_seconds else 0.0
    table.add_row(
        "worker-seconds",
        f"{s.worker_seconds:.0f} (a static cluster of {cfg.scaling.max_workers} workers: "
        f"{s.static_worker_seconds:.0f}, {saved:.0%} saved)",
    )
    table.add_row(
        "decisions",
        f"SPARKSCALER_HOME={cfg.state_dir} sparkscaler history  (store: {cfg.store_path})",
    )
    console.print()
    console.print(table)
