"""The main job (``make demo``): a real local cluster, the service with its dashboard, a short
warm-up of the recurring jobs, then a compressed day of them replayed twice.

0. **Warm-up.** Each of the four recurring jobs (the seeds' forecast, word count, PageRank and
   k-means, see :mod:`sparkscaler.workloads.replay`) runs once on the static cluster of N, side
   by side as far as their core caps allow. The loop's event-log watcher stores their finished
   applications, so the ``hybrid`` policy starts the day knowing each signature (a signature
   never seen starts reactive); each kind's deadline is set from its warm-up run time
   (:func:`~sparkscaler.workloads.replay.deadlines_from`), as a data engineer sets a recurring
   job's deadline from how long it has been taking. Its worker-seconds are charged to neither
   run. The cluster is then brought back to its minimum by hand (the service's manual mode).
1. **Autoscaled.** From the minimum, ``sparkscaler serve``'s loop runs the ``hybrid`` policy
   while the day's jobs arrive, each under its signature with its declared size and deadline,
   and the dashboard shows it live.
2. **Static.** The same replay on a static cluster of N workers (the policy is switched to
   ``static`` through the same runtime the API uses; the dashboard shows that too).

At the end a summary compares the two (deadlines met, worker-seconds and their ratio, whether
the goal was met: every deadline the static cluster meets, at no more than 75 % of its
worker-seconds), a table gives every job's deadline, the planner's predicted and the actual run
time, and an HTML report is written. Every process is stopped on the way out, whether the demo
finishes, fails or is interrupted.

The default day is sized for a 2-core machine: four small jobs, each holding one core
(``spark.cores.max``), so that all four run side by side on the largest cluster instead of each
later one waiting for the first to release every core (a standalone master's first come, first
served), and so that a job gets the same one core on either cluster: what differs is only when
its worker is there. A cap of two cores (``--cores-per-job 2``) lets a job use two workers,
but the master hands a free core to the oldest application that can take one, so a worker the
planner adds for a new job goes to an older job still short of its cap first.

What it prints is one line per event (a job submitted or ended, a scale action, a run's end),
the same in a terminal and in a log file, so that a log reads as well as the screen. A terminal
also gets a live view of the loop below those lines; a file gets no spinner or redraws, and its
tables at their full width rather than cut to 80 columns.

Exit code: 0 when both runs finished and every job succeeded, whether or not they met their
deadlines (missed deadlines are reported: they are the result, not a failure); 1 when a job
failed (in the warm-up too), a run did not finish within its time limit, or the cluster could
not be run; 130 when interrupted.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from sparkscaler.backends import open_backend
from sparkscaler.backends.base import BackendError
from sparkscaler.backends.daemons import WorkerPool
from sparkscaler.clock import WallClock
from sparkscaler.config import Config, default_state_dir
from sparkscaler.controller import Controller, Step
from sparkscaler.core import JobRecord
from sparkscaler.demo_report import (
    GOAL_RATIO,
    MET,
    JobRun,
    PhaseResult,
    WarmupJob,
    charged_window_s,
    failures,
    goal_met,
    job_rows,
    job_timelines,
    missed_but_met_by_static,
    worker_ratio,
    write_demo_report,
)
from sparkscaler.htmlpage import Cell
from sparkscaler.models.job_knowledge import JobKnowledge, job_slots, useful_workers
from sparkscaler.processes import free_port, signals_deferred
from sparkscaler.service.app import create_app
from sparkscaler.service.auth import resolve_token
from sparkscaler.service.runtime import Runtime
from sparkscaler.service.server import ServiceServer
from sparkscaler.store import Store
from sparkscaler.wiring import live_context, live_loop
from sparkscaler.workloads.replay import (
    DEADLINE_FACTOR,
    KINDS,
    PlannedJob,
    Replayer,
    daily_plan,
    deadlines_from,
    warmup_plan,
)
from sparkscaler.workloads.submit import JobSubmitter

#: A run whose jobs are still running this long after its last job was due is stopped, and
#: counts as not finished (a job that hangs, or a machine far too busy for the day).
DRAIN_LIMIT_S = 600.0
#: After its last job, the autoscaled run waits at most this long for the cluster to shrink back
#: to its minimum (its worker-seconds are charged up to then); not shrinking is reported.
SETTLE_LIMIT_S = 120.0
#: The static cluster must be up (all N workers alive) within this before its replay starts;
#: after the warm-up, the cluster must be back at its minimum within this too.
STATIC_READY_S = 180.0
#: After a job's driver has exited, the loop's event-log watcher should have stored its
#: application within this (it polls every step; Spark renames a finished log at once).
HISTORY_WAIT_S = 30.0
#: A scale action's line says when it was decided if that was at least this long before it was
#: done (a launch waits for its workers to be ALIVE: 10-30 s on a busy 2-core machine).
DECIDED_EARLIER_S = 5.0
#: Wide enough for any table's natural width when it is measured for a log file.
UNBOUNDED_WIDTH = 10_000
#: The exit codes (see the module's docstring).
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
#: The day's sizes: the warm-up's size give or take a fifth (new data of a recurring job).
DAY_SCALE_RANGE = (0.8, 1.2)


class DemoError(RuntimeError):
    """The demo cannot go on (a warm-up job failed, so its kind has no history or deadline)."""


@dataclass(frozen=True)
class DemoOptions:
    """How much work the demo replays: a warm-up of each of ``kinds`` once at ``size`` (unless
    not ``warmup``), then ``jobs`` of them over a day compressed into ``day_s`` seconds, each at
    ``size`` give or take a fifth and holding at most ``cores_per_job`` cores (None: every free
    core). Each job is due within ``deadline_factor`` times its kind's warm-up run time, or
    within ``deadline_s`` when that is set (which a day without warm-up needs); ``compare`` adds
    the static run.

    The defaults fit a 2-core machine (the whole demo in under 10 minutes there); the CLI's
    ``--full-day`` is the longer day of the first demo (8 jobs in 240 s at size 0.4).
    """

    jobs: int = 4
    day_s: float = 90.0
    size: float = 0.1
    cores_per_job: int | None = 1
    deadline_s: float | None = None
    deadline_factor: float = DEADLINE_FACTOR
    warmup: bool = True
    kinds: tuple[str, ...] = KINDS
    seed: int = 0
    compare: bool = True

    def __post_init__(self) -> None:
        if not self.warmup and self.deadline_s is None:
            raise ValueError("without a warm-up, every job needs a deadline (deadline_s)")
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"kinds must be some of {', '.join(KINDS)}, got {self.kinds}")

    def describe(self) -> str:
        cores = (
            f"each holding at most {self.cores_per_job} core(s)"
            if self.cores_per_job
            else "each taking every free core"
        )
        due = (
            f"each due within {self.deadline_s:.0f} s"
            if self.deadline_s is not None
            else f"each due within {self.deadline_factor:g}× its warm-up run time"
        )
        return (
            f"a day of {self.jobs} recurring PySpark job(s) compressed into {self.day_s:.0f} s, "
            f"{due} and {cores}, at size {self.size:g} ± 20 % (seed {self.seed})"
        )


def demo_config() -> Config:
    """The demo's settings: one to four one-core workers, quick to react and to release, so that a
    compressed day shows the cluster grow and shrink. Spark's own idle timeout is 60 s; the
    demo's reactive part uses 10 s (and says so)."""
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
            "policy": {"name": "hybrid", "params": {"reactive": {"idle_timeout_s": 10}}},
            "service": {"port": free_port(8765)},
        }
    )


def _clean_state(cfg: Config) -> None:
    """A fresh store and event logs for the demo's own state directory (never a user's)."""
    for leftover in ("events", "work", "logs"):
        shutil.rmtree(cfg.state_dir / leftover, ignore_errors=True)
    for leftover in ("sparkscaler.db", "sparkscaler.db-wal", "sparkscaler.db-shm"):
        (cfg.state_dir / leftover).unlink(missing_ok=True)


def print_full(console: Console, renderable: RenderableType) -> None:
    """Print ``renderable`` to fit a terminal, or at its natural width anywhere else: a log file
    has no width to fit, and a cell cut to "autoscal…" there is lost for good (rich assumes 80
    columns when stdout is not a terminal and ``COLUMNS`` is unset)."""
    if console.is_terminal:
        console.print(renderable)
        return
    options = console.options.update_width(UNBOUNDED_WIDTH)
    natural = Measurement.get(console, options, renderable).maximum
    wide = Console(file=console.file, width=max(natural, console.width), soft_wrap=True)
    wide.print(renderable)


@contextlib.contextmanager
def _waiting(console: Console, what: str) -> Iterator[None]:
    """Say what the demo is waiting for, on a line of its own (a log needs it too); a terminal
    also gets a spinner, which a file would only fill with redraws."""
    console.print(f"{what}…", highlight=False)
    with console.status("waiting…") if console.is_terminal else contextlib.nullcontext():
        yield


class _Steps:
    """The loop's steps as the runtime publishes them, for the live view (newest last)."""

    def __init__(self, runtime: Runtime, keep: int = 8) -> None:
        self.runtime = runtime
        self.recent: collections.deque[Step] = collections.deque(maxlen=keep)

    def poll(self) -> Step | None:
        """The loop's newest step if it was not seen before, else None."""
        step = self.runtime.snapshot().last_step
        if step is None or (self.recent and self.recent[-1] is step):
            return None
        self.recent.append(step)
        return step


def _view(title: str, steps: _Steps, replay: Replayer, started: float) -> Group:
    """The terminal's live view: the loop's last steps and the jobs that are running."""
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
    running = [planned.name for planned, job in replay.submitted if not job.poll()]
    due = len(replay.plan) - len(replay.submitted)
    return Group(table, f"running: {', '.join(running) or 'none'}; {due} more job(s) to come")


class _Reporter:
    """Prints a run's events as they happen, one line each, stamped with the seconds since the
    run began: job submissions and ends, scale actions, and loop errors."""

    def __init__(self, console: Console, label: str, started: float, store: Store) -> None:
        self.console = console
        self.label = label
        self.started = started
        self.store = store
        self.ended: set[str] = set()
        self.last_error: str | None = None
        self.last_decision = max((d["id"] for d in store.decisions(1)), default=0)

    def line(self, text: str) -> None:
        elapsed = time.time() - self.started
        self.console.print(f"{self.label} {elapsed:5.0f} s  {text}", highlight=False)

    def submitted(self, planned: PlannedJob) -> None:
        due = "" if planned.deadline_s is None else f", due in {planned.deadline_s:.0f} s"
        self.line(
            f"{escape(planned.name)} submitted (signature {planned.signature or planned.kind}, "
            f"scale {planned.scale:g}{due})"
        )

    def jobs(self, replay: Replayer) -> None:
        for planned, job in replay.submitted:
            if planned.name in self.ended or not job.poll():
                continue
            self.ended.add(planned.name)
            took = (job.finished_at or time.time()) - job.submitted_at
            if job.succeeded and planned.deadline_s is None:
                self.line(f"{escape(planned.name)} [green]succeeded[/green] in {took:.0f} s")
            elif job.succeeded:
                late = took - planned.deadline_s
                met = "met" if late <= 0 else f"[red]missed by {late:.0f} s[/red]"
                self.line(
                    f"{escape(planned.name)} [green]succeeded[/green] in {took:.0f} s "
                    f"(deadline {planned.deadline_s:.0f} s {met})"
                )
            else:
                self.line(
                    f"{escape(planned.name)} [red]failed[/red] with exit code {job.returncode} "
                    f"after {took:.0f} s; driver log {escape(str(job.log))}"
                )

    def decisions(self) -> None:
        """The loop's scale actions since the last call, and its errors when they change. They
        are read from the store, which has every step: the loop's latest step alone, polled,
        would miss those that follow each other closely. They are stamped when read, so that the
        lines stay in order: that is when the action was done (the loop stores a step once it
        is, and the local backend's launch returns once the new workers are ALIVE). When the
        decision itself was made much earlier, the line says so."""
        new = [d for d in self.store.decisions(100) if d["id"] > self.last_decision]
        for d in reversed(new):  # oldest first
            self.last_decision = d["id"]
            if d["acted"] and d["action"] in ("scale_out", "scale_in"):
                verb = "scaled out" if d["action"] == "scale_out" else "scaled in"
                took = time.time() - d["time"]
                earlier = f" (decided {took:.0f} s earlier)" if took >= DECIDED_EARLIER_S else ""
                self.line(
                    f"{verb} {d['current']} → {d['target']} worker(s){earlier}: "
                    f"{escape(d['reason'])}"
                )
            if d["error"] and d["error"] != self.last_error:
                self.line(f"[red]loop error:[/red] {escape(d['error'])}")
            self.last_error = d["error"]


@dataclass
class _Run:
    """What one replay did, for :func:`_phase`."""

    replay: Replayer
    started: float
    ended: float
    stopped: list[str]


def _replay(
    label: str,
    title: str,
    console: Console,
    plan: list[PlannedJob],
    submitter: JobSubmitter,
    steps: _Steps,
    store: Store,
    settled: Callable[[Step], bool],
    max_running: int | None = None,
) -> _Run:
    """Run one replay until its jobs are done and the cluster has ``settled`` (or
    :data:`SETTLE_LIMIT_S` has passed), or until its time limit, which stops the jobs still
    running; at most ``max_running`` of its jobs at once."""
    replay = Replayer(plan, submitter, max_running)
    limit = max(j.offset_s for j in plan) + DRAIN_LIMIT_S
    replay.start()
    started = time.time()
    events = _Reporter(console, label, started, store)
    jobs_done_at: float | None = None
    live = (
        Live(
            _view(title, steps, replay, started),
            console=console,
            refresh_per_second=2,
            transient=True,
        )
        if console.is_terminal
        else None
    )
    with live or contextlib.nullcontext():
        while time.time() - started < limit:
            events.jobs(replay)  # ends first: a job waiting for room is submitted after
            before = len(replay.submitted)
            replay.poll()
            for planned, _ in replay.submitted[before:]:
                events.submitted(planned)
            events.decisions()
            step = steps.poll()
            if replay.done:
                jobs_done_at = jobs_done_at or time.time()
                if step is not None and step.observation.time >= jobs_done_at and settled(step):
                    break
                if time.time() - jobs_done_at > SETTLE_LIMIT_S:
                    events.line(
                        f"the cluster has not settled {SETTLE_LIMIT_S:.0f} s after the last job "
                        "ended; ending the run here"
                    )
                    break
            if live is not None:
                live.update(_view(title, steps, replay, started))
            time.sleep(0.5)
    stopped = [planned.name for planned, job in replay.submitted if not job.poll()]
    if not replay.done:
        events.line(
            f"[red]time limit reached[/red] ({DRAIN_LIMIT_S:.0f} s after the last job was "
            f"due); stopping the job(s) still running: {', '.join(stopped) or 'none'}"
        )
        submitter.stop_all()
    return _Run(replay, started, time.time(), stopped)


def _stored(store: Store, names: set[str], since: float) -> dict[str, JobRecord]:
    """The applications named ``names`` submitted after ``since`` that the loop has stored from
    their event logs, waiting up to :data:`HISTORY_WAIT_S` for those not stored yet."""
    deadline = time.monotonic() + HISTORY_WAIT_S
    while True:
        found = {r.name: r for r in store.jobs(since) if r.name in names}
        if set(found) >= names or time.monotonic() > deadline:
            return found
        time.sleep(1.0)


def _phase(label: str, policy: str, run: _Run, store: Store) -> PhaseResult:
    started, ended = run.started, run.ended
    rows = [r for r in store.observations(started - 1e-6, 1_000_000) if r["time"] <= ended]
    every = [d for d in store.decisions(1_000_000) if started <= d["time"] <= ended]
    decisions = [d for d in every if d["acted"] and d["action"] in ("scale_out", "scale_in")]
    timelines = job_timelines(every, rows)
    records = _stored(store, {planned.name for planned, _ in run.replay.submitted}, started)
    jobs = []
    for planned, job in run.replay.submitted:
        seen = timelines.get(planned.name)
        record = records.get(planned.name)
        jobs.append(
            JobRun(
                name=planned.name,
                kind=planned.kind,
                offset_s=job.submitted_at - started,
                duration_s=(job.finished_at or ended) - job.submitted_at,
                deadline_s=planned.deadline_s,
                succeeded=job.succeeded and planned.name not in run.stopped,
                stopped=planned.name in run.stopped,
                signature=planned.signature or planned.kind,
                scale=planned.scale,
                app_id=seen.app_id if seen else None,
                first_predicted_s=seen.first_predicted_s if seen else None,
                last_predicted_s=seen.last_predicted_s if seen else None,
                app_s=record.duration_s if record else None,
                cores=tuple((t - started, c) for t, c in seen.cores) if seen else (),
            )
        )
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
        finished=not run.stopped,
    )


def _await_static(runtime: Runtime, cluster: WorkerPool, n: int, setup: _Reporter) -> None:
    """Wait until ``n`` workers are alive and the loop has stepped since, so that the scale-out
    that launched them (stored only once they are ALIVE) is reported here, not as part of the
    static run."""
    deadline = time.monotonic() + STATIC_READY_S
    alive_at: float | None = None
    while time.monotonic() < deadline:
        setup.decisions()
        if alive_at is None and sum(w.state == "ALIVE" for w in cluster.workers()) >= n:
            alive_at = time.time()
        step = runtime.snapshot().last_step
        if alive_at is not None and step is not None and step.observation.time > alive_at:
            setup.decisions()
            return
        time.sleep(0.5)
    raise BackendError(f"the static cluster did not reach {n} workers in {STATIC_READY_S:.0f} s")


def _finished(console: Console, p: PhaseResult) -> None:
    """One line at the end of a run: how it ended and what its jobs did."""
    n = len(p.jobs)
    ended = "finished" if p.finished else "[red]did not finish[/red] (time limit)"
    console.print(
        f"{p.label} run {ended} after {p.duration_s:.0f} s: {p.succeeded}/{n} job(s) succeeded, "
        f"{p.deadlines_met}/{n} met their deadline, peak {p.peak_workers} worker(s)",
        highlight=False,
    )


def _await_minimum(runtime: Runtime, low: int, reporter: _Reporter) -> None:
    """Bring the cluster back to ``low`` workers by hand (the service's manual mode, as an
    operator would), wait until the loop observes exactly that with none still draining, then
    hand the size back to the policy."""
    runtime.set_mode("manual")
    runtime.scale_to(low)
    deadline = time.monotonic() + STATIC_READY_S
    since = time.time()
    while time.monotonic() < deadline:
        reporter.decisions()
        step = runtime.snapshot().last_step
        if step is not None and step.observation.time > since:
            o = step.observation
            if o.workers == low and o.cluster.decommissioning_workers == 0:
                runtime.set_mode("auto")
                return
        time.sleep(0.5)
    raise BackendError(f"the cluster did not shrink to {low} worker(s) in {STATIC_READY_S:.0f} s")


def learned_line(
    record: JobRecord | None, knowledge: JobKnowledge, cores_per_worker: float, most: int
) -> str:
    """What sparkscaler learned of a warm-up run: what its event log says (the history its
    signature starts the day with) and the run time that history predicts for a run of its size
    on each worker count it can use (the per-signature knowledge the planner plans with)."""
    if record is None:
        return f"no event log stored within {HISTORY_WAIT_S:.0f} s: its signature starts unknown"
    seen = (
        f"application {record.duration_s:.0f} s on {record.executors} executor(s): "
        f"{len(record.stages)} stage(s), {record.tasks} task(s), {record.task_seconds:.0f} "
        f"task-s, {record.serial_s:.0f} s serial, {record.input_bytes / 1e6:.0f} MB declared"
    )
    known = knowledge.knowledge(record.key)
    if known is None:
        return seen
    size_gb = record.input_bytes / 1e9 if record.input_bytes > 0 else known.size_gb
    usable = useful_workers(record.max_cores, cores_per_worker, most)
    cpw, cap = cores_per_worker, record.max_cores
    times = ", ".join(
        f"{n} worker(s) {known.whole_s(size_gb, job_slots(n, cpw, cap), cpw):.0f} s"
        for n in range(1, usable + 1)
    )
    return f"{seen}; {known.source}: {times}"


def _warm_up(
    console: Console,
    cfg: Config,
    opts: DemoOptions,
    submitter: JobSubmitter,
    steps: _Steps,
    store: Store,
) -> tuple[list[WarmupJob], dict[str, float]]:
    """Each kind once on the static cluster, as many side by side as their core caps allow;
    returns what each run taught and each kind's deadline. DemoError when a run failed."""
    n = cfg.scaling.max_workers
    plan = warmup_plan(size=opts.size, kinds=opts.kinds, cores_per_job=opts.cores_per_job)
    slots = n * cfg.cluster.worker_cores
    side = max(1, slots // opts.cores_per_job) if opts.cores_per_job else 1
    console.print(
        f"[bold]warm-up[/bold]: each recurring job once at scale {opts.size:g} on the static "
        f"{n} worker(s), {side} at a time, so that the policy starts the day with their history "
        "(charged to neither run)",
        highlight=False,
    )
    run = _replay(
        "warm-up",
        f"warm-up: static {n}",
        console,
        plan,
        submitter,
        steps,
        store,
        lambda _: True,
        side,
    )
    failed = [planned.name for planned, job in run.replay.submitted if not job.succeeded]
    if failed:
        raise DemoError(f"warm-up job(s) failed: {', '.join(failed)}")
    records = _stored(store, {planned.name for planned in plan}, run.started)
    cpw = float(cfg.cluster.worker_cores)
    knowledge = JobKnowledge(cores_per_worker=cpw).fit(store.jobs())
    took = {
        planned.kind: (job.finished_at or run.ended) - job.submitted_at
        for planned, job in run.replay.submitted
    }
    deadlines = (
        deadlines_from(took, opts.deadline_factor)
        if opts.deadline_s is None
        else dict.fromkeys(took, opts.deadline_s)
    )
    warmup = [
        WarmupJob(
            planned.name,
            planned.kind,
            planned.scale,
            took[planned.kind],
            True,
            deadlines[planned.kind],
            learned_line(records.get(planned.name), knowledge, cpw, n),
        )
        for planned, _ in run.replay.submitted
    ]
    for w in warmup:
        console.print(
            f"  {w.name}: {w.duration_s:.0f} s, deadline set to {w.deadline_s:.0f} s; "
            f"learned: {escape(w.learned)}",
            highlight=False,
        )
    return warmup, deadlines


def run_demo(
    console: Console,
    config: Config | None = None,
    options: DemoOptions | None = None,
    report_path: Path | None = None,
) -> int:
    """Run the main job; ``config`` replaces the demo's own settings. Returns the exit code
    (see the module's docstring)."""
    cfg = config or demo_config()
    opts = options or DemoOptions()
    cluster = open_backend(cfg)
    if cluster.running:
        console.print(
            f"[red]a cluster from {cfg.state_dir} is still running; stop it with "
            f"`SPARKSCALER_HOME={cfg.state_dir} sparkscaler cluster stop`[/red]"
        )
        return EXIT_FAILED
    if config is None:
        _clean_state(cfg)
    report_path = report_path or cfg.state_dir / "demo-report.html"
    n, low = cfg.scaling.max_workers, cfg.scaling.min_workers
    token, token_source = resolve_token(cfg)
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    store = Store(cfg.store_path)
    controller: Controller | None = None
    runtime: Runtime | None = None
    server: ServiceServer | None = None
    phases: list[PhaseResult] = []
    warmup: list[WarmupJob] = []
    code = EXIT_OK
    error: str | None = None
    began = time.time()
    try:
        first = n if opts.warmup else low
        with _waiting(console, f"starting a local Spark master and {first} worker(s)"):
            cluster.start(first)
        controller = live_loop(cfg, store, WallClock(), backend=cluster)
        runtime = Runtime(controller, live_context())
        if opts.warmup:
            runtime.switch_policy("static", {"workers": n})
        server = ServiceServer(create_app(runtime, token=token), cfg.service.host, cfg.service.port)
        server.start()
        runtime.start()
        console.print(
            f"cluster up in {time.time() - began:.0f} s: master UI {cfg.cluster.master_ui_url}  "
            f"(state {cfg.state_dir})",
            highlight=False,
        )
        console.print(
            f"[bold]dashboard: {server.url}/[/bold]  (API {server.url}/docs; token for changes: "
            f"{escape(token_source)})",
            highlight=False,
        )
        steps = _Steps(runtime)
        if opts.warmup:
            warmup, deadlines = _warm_up(console, cfg, opts, submitter, steps, store)
            runtime.switch_policy(cfg.policy.name, dict(cfg.policy.params))
            console.print(
                f"policy {cfg.policy.name} refit on the {len(store.jobs())} finished job(s) in "
                f"the store; back to {low} worker(s) by hand for the day",
                highlight=False,
            )
            _await_minimum(runtime, low, _Reporter(console, "warm-up", time.time(), store))
        else:
            deadlines = dict.fromkeys(opts.kinds, opts.deadline_s)
        plan = daily_plan(
            opts.jobs,
            opts.day_s,
            deadline_s=deadlines,
            seed=opts.seed,
            size=opts.size,
            scale_range=DAY_SCALE_RANGE,
            cores_per_job=opts.cores_per_job,
            kinds=opts.kinds,
        )
        console.print(f"replaying {opts.describe()}:", highlight=False)
        console.print(
            "  "
            + ", ".join(
                f"{j.name} at {j.offset_s:.0f} s (due in {j.deadline_s:.0f} s)" for j in plan
            ),
            highlight=False,
        )

        def shrunk(step: Step) -> bool:
            o = step.observation
            return o.workers == low and o.cluster.decommissioning_workers == 0

        console.print(
            f"[bold]autoscaled run[/bold]: policy {cfg.policy.name}, {low}–{n} worker(s) of "
            f"{cfg.cluster.worker_cores} core(s); it ends once the cluster is back at {low}",
            highlight=False,
        )
        title = f"autoscaled: policy {cfg.policy.name}, {low}–{n} workers"
        run = _replay("autoscaled", title, console, plan, submitter, steps, store, shrunk)
        phases.append(_phase("autoscaled", cfg.policy.name, run, store))
        _finished(console, phases[-1])
        if opts.compare:
            label = f"static {n}"
            waited = time.time()
            setup = _Reporter(console, f"{label} setup", waited, store)
            runtime.set_mode("auto")
            runtime.switch_policy("static", {"workers": n})
            with _waiting(console, f"static run: policy static, waiting for {n} workers"):
                _await_static(runtime, cluster, n, setup)
            console.print(
                f"[bold]static run[/bold]: {n} workers alive after {time.time() - waited:.0f} s",
                highlight=False,
            )
            run = _replay(
                label,
                f"static: {n} workers",
                console,
                plan,
                submitter,
                steps,
                store,
                lambda _: True,
            )
            phases.append(_phase(label, "static", run, store))
            _finished(console, phases[-1])
    except (BackendError, DemoError) as problem:
        error = str(problem)
        console.print(f"[red]error:[/red] {escape(error)}")
        code = EXIT_FAILED
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted: stopping jobs, service, autoscaler and cluster…[/yellow]"
        )
        code = EXIT_INTERRUPTED
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
    if code == EXIT_OK:
        code = demo_exit_code(phases)
    if phases:
        print_full(console, summary_table(phases))
        print_full(console, jobs_table(phases))
        for line in result_lines(phases, code, error):
            console.print(line, highlight=False)
        write_demo_report(phases, cfg, report_path, day=opts.describe(), warmup=warmup)
        console.print(f"report: {report_path}", highlight=False)
        console.print(
            f"decisions: SPARKSCALER_HOME={cfg.state_dir} sparkscaler history",
            highlight=False,
        )
    console.print(
        f"demo took {time.time() - began:.0f} s; every process it started is stopped; "
        f"exit code {code}",
        highlight=False,
    )
    return code


def demo_exit_code(phases: list[PhaseResult]) -> int:
    """0 when there are runs, each finished, and every job succeeded; 1 otherwise. Missed
    deadlines do not count: they are what the demo reports, not a sign that it broke."""
    return EXIT_OK if phases and not failures(phases) else EXIT_FAILED


def summary_table(phases: list[PhaseResult]) -> Table:
    """Both runs side by side: the table the demo ends with."""
    window = charged_window_s(phases)
    ratio = worker_ratio(phases)
    table = Table(title="summary: the same day of jobs, autoscaled and static")
    for column in (
        "run",
        "finished",
        "jobs succeeded",
        "deadlines met",
        f"worker-s over {window:.0f} s",
        "worker-s ratio",
        "peak workers",
        "scale out / in",
        "p95 job (s)",
        "run (s)",
    ):
        table.add_column(column, justify="right")
    # A run's name is never cut: in a narrow terminal the other columns' headers wrap instead.
    run = table.columns[0]
    run.justify, run.no_wrap, run.min_width = "left", True, max(len(p.label) for p in phases)
    for i, p in enumerate(phases):
        table.add_row(
            p.label,
            "yes" if p.finished else "no",
            f"{p.succeeded}/{len(p.jobs)}",
            f"{p.deadlines_met}/{len(p.jobs)}",
            f"{p.worker_seconds(window):.0f}",
            "-" if ratio is None else (f"{ratio:.2f}" if i == 0 else "1.00"),
            str(p.peak_workers),
            f"{p.scale_outs} / {p.scale_ins}",
            f"{p.p95_duration_s:.0f}",
            f"{p.duration_s:.0f}",
        )
    return table


def jobs_table(phases: list[PhaseResult]) -> Table:
    """Every job of the day: signature, size, deadline, and per run the planner's predicted
    run time (first → last projection) and the actual one, green when within the deadline."""
    headers, rows = job_rows(phases)
    table = Table(title="jobs: deadline, predicted (first → last projection) and actual run time")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for row in rows:
        table.add_row(
            *(
                f"[{'green' if cell.style == MET else 'red'}]{escape(cell.text)}[/]"
                if isinstance(cell, Cell)
                else escape(cell)
                for cell in row
            )
        )
    return table


def result_lines(phases: list[PhaseResult], code: int, error: str | None = None) -> list[str]:
    """The verdict under the summary: whether the demo worked (and why not), the deadlines, the
    worker-seconds compared, and whether the goal was met."""
    problems = failures(phases)
    if code == EXIT_INTERRUPTED:
        lines = [f"result: interrupted (exit code {code}); the summary covers the runs so far"]
    elif code == EXIT_OK:
        lines = [
            f"result: {'both runs' if len(phases) > 1 else 'the run'} finished and every job "
            f"succeeded (exit code {code})"
        ]
    else:
        lines = [f"result: [red]failed[/red] (exit code {code})"]
        lines += [f"  {escape(problem)}" for problem in problems]
        if error:
            lines.append(f"  {escape(error)}")
    met = ", ".join(f"{p.label} {p.deadlines_met}/{len(p.jobs)}" for p in phases)
    lines.append(f"deadlines met: {met} (a missed deadline is reported, not counted as a failure)")
    ratio = worker_ratio(phases)
    if ratio is not None:
        more_or_less = "fewer" if ratio <= 1 else "more"
        lines.append(
            f"the autoscaled run used {ratio:.0%} of the static run's worker-seconds "
            f"({abs(1 - ratio):.0%} {more_or_less}; both charged over the same window)"
        )
        missed = missed_but_met_by_static(phases)
        verdict = "[green]met[/green]" if goal_met(phases) else "[red]not met[/red]"
        why = []
        if missed:
            why.append(f"missed where static met: {', '.join(missed)}")
        if ratio > GOAL_RATIO:
            why.append(f"ratio {ratio:.2f} > {GOAL_RATIO:.2f}")
        lines.append(
            f"goal (every deadline the static run met, at most {GOAL_RATIO:.0%} of its "
            f"worker-seconds): {verdict}" + (f" ({escape('; '.join(why))})" if why else "")
        )
    return lines
