"""A compressed day of real PySpark jobs for the real cluster: the plan, and the loop that
submits it.

The plan squeezes a working day's arrivals into a few minutes so that a demo (or a test) shows
the cluster grow into the afternoon peak and shrink through the night. Arrival *i* of *n* is
placed at the ``(i + u) / n`` quantile of the office-hours rate of
:func:`sparkscaler.sim.arrivals.daily_weekly_rate` (the simulator's daily shape), with a seeded
``u`` in [0.2, 0.8): the count is exact and the day's shape is kept, which a Poisson draw of a
dozen jobs would not guarantee. The jobs are the seeds' PySpark programs in
:mod:`sparkscaler.workloads.jobs`, in a seeded order with a seeded size, so that two replays
of one seed (an autoscaled cluster and a static one) run exactly the same work. Each job may
hold at most ``cores`` cores (``spark.cores.max``), so that jobs whose runs overlap share the
cluster instead of queueing behind the first one, which a standalone master would otherwise
give every core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sparkscaler.sim.arrivals import SECONDS_PER_DAY, daily_weekly_rate
from sparkscaler.workloads.submit import JobSubmitter, SubmittedJob

#: The seeds' jobs: word count, a Random-Forest time-series forecast (Spark MLlib), PageRank,
#: k-means. A day of one job runs the first, the quickest (the tests' short day).
KINDS: tuple[str, ...] = ("wordcount", "forecast", "pagerank", "kmeans")
#: Job sizes are ``--scale`` in this range (1.0 is about a minute on one 1-core worker).
SCALE_RANGE = (0.6, 1.2)


@dataclass(frozen=True)
class PlannedJob:
    """One job of the replay: when (seconds after the replay starts), what, its deadline and
    the most cores it may hold (None: every free core, Spark's default)."""

    offset_s: float
    name: str
    kind: str
    args: tuple[str, ...]
    deadline_s: float
    cores: int | None = None


def daily_plan(
    jobs: int,
    day_s: float,
    *,
    deadline_s: float,
    seed: int = 0,
    peak_hour: float = 14.0,
    partitions: int = 8,
    size: float = 1.0,
    cores_per_job: int | None = None,
) -> list[PlannedJob]:
    """``jobs`` arrivals of one weekday compressed into ``day_s`` seconds, earliest first;
    ``size`` multiplies every job's ``--scale`` (less work on a slow machine, or in a test);
    ``cores_per_job`` caps the cores each job holds."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if cores_per_job is not None and cores_per_job < 1:
        raise ValueError(f"cores_per_job must be at least 1, got {cores_per_job}")
    if min(day_s, deadline_s, size) <= 0:
        raise ValueError(
            f"day_s, deadline_s and size must be positive, got {day_s}, {deadline_s}, {size}"
        )
    rng = np.random.default_rng(seed)
    minutes = np.arange(0.0, SECONDS_PER_DAY + 60.0, 60.0)
    rate = daily_weekly_rate(minutes, 1.0, peak_hour=peak_hour)
    share = np.concatenate(([0.0], np.cumsum((rate[1:] + rate[:-1]) / 2.0)))
    share /= share[-1]
    quantiles = (np.arange(jobs) + rng.uniform(0.2, 0.8, jobs)) / jobs
    offsets = np.interp(quantiles, share, minutes) * day_s / SECONDS_PER_DAY
    kinds = [KINDS[i % len(KINDS)] for i in rng.permutation(jobs)]
    scales = rng.uniform(*SCALE_RANGE, jobs) * size
    plan = []
    for i, (offset, kind, scale) in enumerate(zip(offsets, kinds, scales, strict=True)):
        args = (kind, "--scale", f"{scale:.2f}", "--partitions", str(partitions))
        name = f"{i + 1:02d}-{kind}"
        plan.append(PlannedJob(float(offset), name, kind, args, deadline_s, cores_per_job))
    return plan


class Replayer:
    """Submits a plan's jobs when they are due; call :meth:`poll` often (every second or so)."""

    def __init__(self, plan: list[PlannedJob], submitter: JobSubmitter) -> None:
        self.plan = sorted(plan, key=lambda job: job.offset_s)
        self.submitter = submitter
        self.submitted: list[tuple[PlannedJob, SubmittedJob]] = []
        self.started_at: float | None = None

    def start(self) -> None:
        self.started_at = time.time()

    def poll(self) -> list[SubmittedJob]:
        """Submit every job that is due; returns the ones submitted now."""
        if self.started_at is None:
            raise RuntimeError("start() the replay first")
        elapsed = time.time() - self.started_at
        new = []
        while len(self.submitted) < len(self.plan):
            job = self.plan[len(self.submitted)]
            if job.offset_s > elapsed:
                break
            submitted = self.submitter.submit(
                job.name, list(job.args), deadline_s=job.deadline_s, cores_max=job.cores
            )
            self.submitted.append((job, submitted))
            new.append(submitted)
        return new

    @property
    def done(self) -> bool:
        """Every job was submitted and has ended."""
        return len(self.submitted) == len(self.plan) and all(
            job.poll() for _, job in self.submitted
        )
