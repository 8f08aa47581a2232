"""The demo's results: what the warm-up taught, what each replay of the day did, and the HTML
report that compares them.

Worker-seconds integrate the observed worker count (alive plus decommissioning: a draining
worker is still paid for), observation to observation (a left Riemann sum at the loop's
interval). The runs are charged over the same window, the longer of the two: the autoscaled run
lasts until it has shrunk back after its last job, the static one until its last job ends, and a
cluster keeps its last size for the rest of the window (a static cluster does not go away when
its jobs are done). The warm-up before them is charged to neither. A job meets its deadline when
its driver exits within it, start-up included.

Per job the report shows what the planner predicted: each decision keeps the planner's projected
whole run time of every running job (``Decision.predicted_s``, the decisions' ``predicted``
column, by application id), and each observation the running jobs (the observations' ``jobs``
column, with their application id and name), so that a job's first projection after it started,
its last, and the cores it held over time are read back from the store (:func:`job_timelines`).

The demo's goal (:func:`goal_met`): the autoscaled run meets every deadline the static cluster
meets, at no more than :data:`GOAL_RATIO` of its worker-seconds.

What counts as a failure (:func:`failures`, and the demo's exit code): a job that failed, and a
run that did not finish (stopped at its time limit, its last jobs with it). A missed deadline is
a result to report, not a failure: on a busy 2-core machine it says how the cluster coped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from sparkscaler.config import Config
from sparkscaler.htmlpage import Cell, esc, figure_png, page, table

MET = "color:#1a7f37;font-weight:600"
MISSED = "color:#b42318;font-weight:600"
#: The most worker-seconds the autoscaled run may use, as a share of the static run's.
GOAL_RATIO = 0.75


@dataclass(frozen=True)
class JobTimeline:
    """One application as the store saw it run: its id, the planner's first and last projection
    of its whole run time (seconds from its start; None: never planned for), and the cores it
    held at each observation (epoch s, cores)."""

    app_id: str
    first_predicted_s: float | None = None
    last_predicted_s: float | None = None
    cores: tuple[tuple[float, int], ...] = ()


def job_timelines(
    decisions: Iterable[Mapping[str, Any]], observations: Iterable[Mapping[str, Any]]
) -> dict[str, JobTimeline]:
    """Each application in ``observations`` (store rows with a ``jobs`` column) by its name,
    with the projections the ``decisions`` (rows with a ``predicted`` column) made of it, in
    time order. A name seen under two ids (an app resubmitted) keeps the later one."""
    ids: dict[str, str] = {}
    cores: dict[str, list[tuple[float, int]]] = {}
    for row in sorted(observations, key=lambda r: r["time"]):
        for job in json.loads(row.get("jobs") or "[]"):
            ids[job["name"]] = job["app_id"]
            cores.setdefault(job["app_id"], []).append((float(row["time"]), int(job["cores"])))
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for row in sorted(decisions, key=lambda r: r["time"]):
        for app_id, seconds in json.loads(row.get("predicted") or "{}").items():
            first.setdefault(app_id, float(seconds))
            last[app_id] = float(seconds)
    return {
        name: JobTimeline(app_id, first.get(app_id), last.get(app_id), tuple(cores[app_id]))
        for name, app_id in ids.items()
    }


@dataclass(frozen=True)
class JobRun:
    """One replayed job: when it was submitted (s after the phase began) and how it went;
    ``stopped``: still running at the run's time limit, and stopped then (so not succeeded).
    ``duration_s`` is its driver's time (what the deadline is checked against); ``app_s`` its
    application's run time from its event log (what the planner projects), when known;
    ``cores`` what it held over time (s after the phase began, cores)."""

    name: str
    kind: str
    offset_s: float
    duration_s: float
    deadline_s: float | None
    succeeded: bool
    stopped: bool = False
    signature: str = ""
    scale: float | None = None
    app_id: str | None = None
    first_predicted_s: float | None = None
    last_predicted_s: float | None = None
    app_s: float | None = None
    cores: tuple[tuple[float, int], ...] = ()

    @property
    def met(self) -> bool:
        return self.succeeded and (self.deadline_s is None or self.duration_s <= self.deadline_s)

    @property
    def state(self) -> str:
        """One word for the job's end: succeeded, failed, or stopped (at the time limit)."""
        return "succeeded" if self.succeeded else ("stopped" if self.stopped else "failed")

    @property
    def predicted(self) -> str:
        """The planner's first and last projection, as the tables show them."""
        if self.first_predicted_s is None or self.last_predicted_s is None:
            return "-"
        return f"{self.first_predicted_s:.0f} → {self.last_predicted_s:.0f}"


@dataclass(frozen=True)
class WarmupJob:
    """One warm-up run: how long it took, the deadline its kind was given from that, and a line
    saying what sparkscaler learned of it."""

    name: str
    kind: str
    scale: float
    duration_s: float
    succeeded: bool
    deadline_s: float | None = None
    learned: str = ""


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


def _lanes(phases: list[PhaseResult]) -> str:
    """One lane per job and run: a bar from submission to end, as dark as the cores the job
    held (white: its driver starting, or waiting for cores), a tick at its deadline."""
    names = [j.name for j in phases[0].jobs]
    fig, axes = plt.subplots(
        len(phases), 1, figsize=(10, 0.45 * len(names) + 1.2), squeeze=False, sharex=True
    )
    span = charged_window_s(phases)
    most = max([c for p in phases for j in p.jobs for _, c in j.cores] + [1])
    for ax, p in zip(axes[:, 0], phases, strict=True):
        for lane, job in enumerate(reversed(p.jobs)):
            end = job.offset_s + job.duration_s
            colour = "#1a7f37" if job.met else "#b42318"
            ax.broken_barh(
                [(job.offset_s, job.duration_s)], (lane - 0.35, 0.7), fc="white", ec=colour
            )
            edges = [*(t for t, _ in job.cores), end]
            for (t0, held), t1 in zip(job.cores, edges[1:], strict=True):
                if held > 0 and t1 > t0:
                    shade = plt.cm.Blues(0.3 + 0.6 * held / most)
                    ax.broken_barh([(t0, t1 - t0)], (lane - 0.35, 0.7), fc=shade, ec="none")
            if job.deadline_s is not None:
                due = job.offset_s + job.deadline_s
                ax.plot([due, due], [lane - 0.45, lane + 0.45], color="#57606a", lw=1.5)
        ax.set_yticks(range(len(p.jobs)), [j.name for j in reversed(p.jobs)], fontsize=8)
        ax.set_xlim(0, span)
        ax.set_title(
            f"{p.label}: each job's run (darker: more cores held, up to {most}); "
            "grey tick: its deadline; outline green if met",
            fontsize=9,
        )
    axes[-1, 0].set_xlabel("seconds since the replay began")
    fig.tight_layout()
    return figure_png(fig, "each job's run and the cores it held, per run")


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


def worker_ratio(phases: list[PhaseResult]) -> float | None:
    """The first run's worker-seconds over the second's (same window), or None."""
    if len(phases) != 2:
        return None
    window = charged_window_s(phases)
    baseline = phases[1].worker_seconds(window)
    return phases[0].worker_seconds(window) / baseline if baseline else None


def saved_share(phases: list[PhaseResult]) -> float | None:
    """How much fewer worker-seconds the first run used than the second, or None."""
    ratio = worker_ratio(phases)
    return None if ratio is None else 1 - ratio


def missed_but_met_by_static(phases: list[PhaseResult]) -> list[str]:
    """The jobs whose deadline the second run (static) met and the first (autoscaled) did
    not."""
    if len(phases) != 2:
        return []
    static = {j.name for j in phases[1].jobs if j.met}
    return [j.name for j in phases[0].jobs if j.name in static and not j.met]


def goal_met(phases: list[PhaseResult]) -> bool | None:
    """Whether the autoscaled run met every deadline the static run met, at no more than
    :data:`GOAL_RATIO` of its worker-seconds; None without both runs."""
    ratio = worker_ratio(phases)
    if ratio is None:
        return None
    return not missed_but_met_by_static(phases) and ratio <= GOAL_RATIO


def _summary(phases: list[PhaseResult]) -> str:
    window = charged_window_s(phases)
    ratio = worker_ratio(phases)
    rows = []
    for i, p in enumerate(phases):
        share = "-" if ratio is None else (f"{ratio:.2f}" if i == 0 else "1.00")
        rows.append(
            [
                p.label,
                p.policy,
                "yes" if p.finished else "no: time limit",
                f"{p.succeeded}/{len(p.jobs)}",
                f"{p.deadlines_met}/{len(p.jobs)}",
                f"{p.worker_seconds(window):,.0f}",
                share,
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
        "worker-s ratio",
        "peak workers",
        "scale out / in",
        "p95 job (s)",
        "duration (s)",
    ]
    return table(headers, rows)


def job_rows(phases: list[PhaseResult]) -> tuple[list[str], list[list[str | Cell]]]:
    """The per-job table of the summary and the report: each job of the day with its signature,
    size and deadline, then per run the planner's first and last projection (not for a static
    run) and its actual run time (green when within the deadline)."""
    by_name = {p.label: {j.name: j for j in p.jobs} for p in phases}
    rows: list[list[str | Cell]] = []
    for first in phases[0].jobs:
        deadline = "-" if first.deadline_s is None else f"{first.deadline_s:.0f}"
        scale = "-" if first.scale is None else f"{first.scale:g}"
        row: list[str | Cell] = [
            first.name,
            first.signature or first.kind,
            scale,
            f"{first.offset_s:.0f}",
            deadline,
        ]
        for p in phases:
            job = by_name[p.label].get(first.name)
            if job is None:
                row += ["-", "not run"] if _plans(p) else ["not run"]
                continue
            state = f"{job.duration_s:.0f}" if job.succeeded else job.state
            row += [job.predicted] if _plans(p) else []
            row.append(Cell(state, MET if job.met else MISSED))
        rows.append(row)
    headers = ["job", "signature", "scale", "submitted (s)", "deadline (s)"]
    for p in phases:
        headers += [f"{p.label}: predicted (s)"] if _plans(p) else []
        headers.append(f"{p.label}: actual (s)")
    return headers, rows


def _plans(phase: PhaseResult) -> bool:
    """Whether a run's policy may predict run times (a static cluster predicts nothing)."""
    return phase.policy != "static"


def _warmup(warmup: list[WarmupJob]) -> str:
    rows = [
        [
            w.name,
            f"{w.scale:g}",
            f"{w.duration_s:.0f}" if w.succeeded else "failed",
            "-" if w.deadline_s is None else f"{w.deadline_s:.0f}",
            w.learned,
        ]
        for w in warmup
    ]
    return table(["warm-up job", "scale", "run (s)", "deadline set (s)", "learned"], rows)


def write_demo_report(
    phases: list[PhaseResult],
    cfg: Config,
    path: Path,
    day: str | None = None,
    warmup: list[WarmupJob] | None = None,
) -> None:
    """One self-contained page: the outcome, the warm-up, the summary, the timelines and every
    job of every run; ``day`` is a sentence describing the replayed day (jobs, arrivals,
    deadlines, cores)."""
    s = cfg.scaling
    problems = failures(phases)
    outcome = (
        "<p><b>Failed:</b> " + "; ".join(esc(line) for line in problems) + ".</p>"
        if problems
        else "<p><b>Every run finished and every job succeeded.</b> Missed deadlines, if any, "
        "are results, not failures.</p>"
    )
    verdict = ""
    ratio = worker_ratio(phases)
    if ratio is not None:
        missed = missed_but_met_by_static(phases)
        goal = goal_met(phases)
        verdict = (
            f"<p>The autoscaled run used <b>{ratio:.0%}</b> of the worker-seconds of a static "
            f"cluster of {s.max_workers} workers on the same jobs, and met "
            f"{phases[0].deadlines_met} deadlines against {phases[1].deadlines_met}. Goal "
            f"(every deadline the static cluster meets, at most {GOAL_RATIO:.0%} of its "
            f"worker-seconds): <b>{'met' if goal else 'not met'}</b>"
            + (f" (missed where static met: {esc(', '.join(missed))})" if missed else "")
            + ".</p>"
        )
    headers, rows = job_rows(phases)
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
            *(
                [
                    "<h2>Warm-up</h2>",
                    "<p>Each recurring job once before the day, on the static cluster (charged "
                    "to neither run): its event log is the history the policy starts the day "
                    "with, and its run time sets its deadline.</p>",
                    _warmup(warmup),
                ]
                if warmup
                else []
            ),
            "<h2>Summary</h2>",
            _summary(phases),
            "<h2>Jobs</h2>",
            "<p>Predicted: the planner's projection of the job's whole run time (from its "
            "application's start), the first after the job started and the last; "
            "- when it was not planned for. Actual: the driver's time from submission to exit, "
            "what the deadline is checked against. Green: within its deadline; red: late, "
            "failed or stopped at the run's time limit.</p>",
            table(headers, rows),
            "<h2>Jobs over time</h2>",
            _lanes(phases),
            "<h2>Workers and demand</h2>",
            _timelines(phases, s.max_workers),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page("sparkscaler demo", body), encoding="utf-8")
