"""The demo's results: what each replay of the day did, and the HTML report that compares them.

Worker-seconds integrate the observed worker count (alive plus decommissioning: a draining
worker is still paid for), observation to observation (a left Riemann sum at the loop's
interval). The runs are charged over the same window, the longer of the two: the autoscaled run
lasts until it has shrunk back after its last job, the static one until its last job ends, and a
cluster keeps its last size for the rest of the window (a static cluster does not go away when
its jobs are done). A job meets its deadline when its driver exits within it, start-up included.

What counts as a failure (:func:`failures`, and the demo's exit code): a job that failed, and a
run that did not finish (stopped at its time limit, its last jobs with it). A missed deadline is
a result to report, not a failure: on a busy 2-core machine it says how the cluster coped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sparkscaler.config import Config
from sparkscaler.htmlpage import Cell, esc, figure_png, page, table

MET = "color:#1a7f37;font-weight:600"
MISSED = "color:#b42318;font-weight:600"


@dataclass(frozen=True)
class JobRun:
    """One replayed job: when it was submitted (s after the phase began) and how it went;
    ``stopped``: still running at the run's time limit, and stopped then (so not succeeded)."""

    name: str
    kind: str
    offset_s: float
    duration_s: float
    deadline_s: float
    succeeded: bool
    stopped: bool = False

    @property
    def met(self) -> bool:
        return self.succeeded and self.duration_s <= self.deadline_s

    @property
    def state(self) -> str:
        """One word for the job's end: succeeded, failed, or stopped (at the time limit)."""
        return "succeeded" if self.succeeded else ("stopped" if self.stopped else "failed")


@dataclass(frozen=True)
class PhaseResult:
    """One replay of the day: its observed timeline (s after it began) and its jobs;
    ``finished`` is False when the run reached its time limit with jobs still running."""

    label: str
    policy: str
    started: float
    ended: float
    times: list[float]
    workers: list[int]
    demand: list[int]
    scale_outs: int
    scale_ins: int
    jobs: list[JobRun] = field(default_factory=list)
    finished: bool = True

    @property
    def duration_s(self) -> float:
        return self.ended - self.started

    def worker_seconds(self, window_s: float) -> float:
        """Worker-seconds over the first ``window_s`` seconds, the last size held to its end."""
        edges = [*self.times, max(window_s, self.times[-1] if self.times else 0.0)]
        return sum(
            w * (min(t1, window_s) - min(t0, window_s))
            for w, t0, t1 in zip(self.workers, edges, edges[1:], strict=False)
        )

    @property
    def succeeded(self) -> int:
        return sum(j.succeeded for j in self.jobs)

    @property
    def deadlines_met(self) -> int:
        return sum(j.met for j in self.jobs)

    @property
    def peak_workers(self) -> int:
        return max(self.workers, default=0)

    @property
    def p95_duration_s(self) -> float:
        durations = [j.duration_s for j in self.jobs]
        return float(np.percentile(durations, 95)) if durations else math.nan


def _timelines(phases: list[PhaseResult], max_workers: int) -> str:
    fig, axes = plt.subplots(len(phases), 1, figsize=(10, 2.8 * len(phases)), squeeze=False)
    span = charged_window_s(phases)
    top = max([max(p.demand, default=0) for p in phases] + [max_workers])
    for ax, p in zip(axes[:, 0], phases, strict=True):
        ax.step(p.times, p.workers, where="post", color="#0969da", label="workers")
        ax.set_ylim(0, max_workers + 0.5)
        ax.set_ylabel("workers")
        ax.set_xlim(0, span)
        for job in p.jobs:
            ax.axvline(job.offset_s, color="#8c959f", lw=0.6, ls=":")
        demand = ax.twinx()
        demand.plot(p.times, p.demand, color="#bc4c00", lw=1, label="running + pending tasks")
        demand.set_ylim(0, top * 1.05 + 1)
        demand.set_ylabel("tasks")
        ax.set_title(f"{p.label} ({p.policy}): dotted lines are job submissions", fontsize=10)
        lines = ax.get_legend_handles_labels()
        more = demand.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds since the replay began")
    fig.tight_layout()
    return figure_png(fig, "workers and task demand over time, per run")


def failures(phases: list[PhaseResult]) -> list[str]:
    """Why the demo failed, one line per run that went wrong; empty when every run finished
    and every job in it succeeded (missed deadlines included: they are not failures)."""
    lines = []
    for p in phases:
        failed = [j.name for j in p.jobs if j.state == "failed"]
        stopped = [j.name for j in p.jobs if j.state == "stopped"]
        if failed:
            lines.append(f"{p.label}: {len(failed)} job(s) failed: {', '.join(failed)}")
        if not p.finished:
            still = f", stopping {', '.join(stopped)}" if stopped else ""
            lines.append(f"{p.label}: did not finish within its time limit{still}")
    return lines


def charged_window_s(phases: list[PhaseResult]) -> float:
    """The window every run is charged over: the longest run."""
    return max(p.duration_s for p in phases)


def saved_share(phases: list[PhaseResult]) -> float | None:
    """How much fewer worker-seconds the first run used than the second, or None."""
    if len(phases) != 2:
        return None
    window = charged_window_s(phases)
    baseline = phases[1].worker_seconds(window)
    return 1 - phases[0].worker_seconds(window) / baseline if baseline else None


def _summary(phases: list[PhaseResult]) -> str:
    window = charged_window_s(phases)
    rows = []
    for p in phases:
        rows.append(
            [
                p.label,
                p.policy,
                "yes" if p.finished else "no: time limit",
                f"{p.succeeded}/{len(p.jobs)}",
                f"{p.deadlines_met}/{len(p.jobs)}",
                f"{p.worker_seconds(window):,.0f}",
                str(p.peak_workers),
                f"{p.scale_outs} / {p.scale_ins}",
                f"{p.p95_duration_s:.0f}",
                f"{p.duration_s:.0f}",
            ]
        )
    headers = [
        "run",
        "policy",
        "finished",
        "jobs succeeded",
        "deadlines met",
        f"worker-seconds over {window:.0f} s",
        "peak workers",
        "scale out / in",
        "p95 job (s)",
        "duration (s)",
    ]
    return table(headers, rows)


def _jobs(phases: list[PhaseResult]) -> str:
    by_name = {p.label: {j.name: j for j in p.jobs} for p in phases}
    names = [j.name for j in phases[0].jobs]
    rows = []
    for name in names:
        first = by_name[phases[0].label][name]
        row: list[str | Cell] = [name, f"{first.offset_s:.0f}", f"{first.deadline_s:.0f}"]
        for p in phases:
            job = by_name[p.label].get(name)
            if job is None:
                row.append("not run")
                continue
            state = f"{job.duration_s:.0f}" if job.succeeded else job.state
            row.append(Cell(state, MET if job.met else MISSED))
        rows.append(row)
    headers = ["job", "submitted (s)", "deadline (s)"] + [f"{p.label}: run (s)" for p in phases]
    return table(headers, rows)


def write_demo_report(
    phases: list[PhaseResult], cfg: Config, path: Path, day: str | None = None
) -> None:
    """One self-contained page: the outcome, the summary, the timelines and every job of every
    run; ``day`` is a sentence describing the replayed day (jobs, arrivals, deadline, cores)."""
    s = cfg.scaling
    problems = failures(phases)
    outcome = (
        "<p><b>Failed:</b> " + "; ".join(esc(line) for line in problems) + ".</p>"
        if problems
        else "<p><b>Every run finished and every job succeeded.</b> Missed deadlines, if any, "
        "are results, not failures.</p>"
    )
    verdict = ""
    saved = saved_share(phases)
    if saved is not None:
        verdict = (
            f"<p>The autoscaled run used <b>{abs(saved):.0%}</b> "
            f"{'fewer' if saved >= 0 else 'more'} worker-seconds than a static "
            f"cluster of {s.max_workers} workers on the same jobs, and met "
            f"{phases[0].deadlines_met} deadlines against {phases[1].deadlines_met}.</p>"
        )
    body = "\n".join(
        [
            "<h1>sparkscaler demo</h1>",
            f"<p class='settings'>{esc(len(phases[0].jobs))} real PySpark jobs (forecast, word "
            f"count, PageRank, k-means) replayed as a compressed day on a local Spark cluster of "
            f"{s.min_workers}–{s.max_workers} workers with {esc(cfg.cluster.worker_cores)} "
            f"core(s) each; the loop decides every {s.interval_s:g} s.</p>",
            f"<p class='settings'>Replayed: {esc(day)}.</p>" if day else "",
            outcome,
            verdict,
            "<h2>Summary</h2>",
            _summary(phases),
            "<h2>Workers and demand</h2>",
            _timelines(phases, s.max_workers),
            "<h2>Jobs</h2>",
            "<p>Green: done within its deadline; red: late, failed or stopped at the run's "
            "time limit.</p>",
            _jobs(phases),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page("sparkscaler demo", body), encoding="utf-8")
