"""The real cluster's workloads for the demo: a warm-up that builds the recurring jobs' history,
a compressed day of them with their deadlines, and the loop that submits a plan.

The jobs are the seeds' PySpark programs in :mod:`sparkscaler.workloads.jobs`. Each is a
*recurring* job: it is submitted under its signature (``spark.sparkscaler.job``, here its kind)
and declares its size (``spark.sparkscaler.inputBytes``, :func:`~sparkscaler.workloads.jobs.
input_bytes`), so that sparkscaler learns each program from its own earlier runs.

- :func:`warmup_plan`: each kind once, all due at once, before the day: their event logs are the
  history the policy starts the day with (a new signature starts reactive), and their run times
  are what the day's deadlines are set from (:func:`deadlines_from`), as a data engineer sets a
  recurring job's deadline from how long it has been taking.
- :func:`daily_plan`: a working day's arrivals squeezed into a few minutes, so that a demo (or a
  test) shows the cluster grow into the afternoon peak and shrink through the night. Arrival *i*
  of *n* is placed at the ``(i + u) / n`` quantile of the office-hours rate of
  :func:`sparkscaler.sim.arrivals.daily_weekly_rate` (the simulator's daily shape), with a seeded
  ``u`` in [0.2, 0.8): the count is exact and the day's shape is kept, which a Poisson draw of a
  dozen jobs would not guarantee. The jobs come in a seeded order (each kind once in every run of
  four) with a seeded size, so that two replays of one seed (an autoscaled cluster and a static
  one) run exactly the same work.

Each job may hold at most ``cores`` cores (``spark.cores.max``), so that jobs whose runs overlap
share the cluster instead of queueing behind the first one, which a standalone master would
otherwise give every core.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sparkscaler.sim.arrivals import SECONDS_PER_DAY, daily_weekly_rate
from sparkscaler.workloads.jobs import input_bytes
from sparkscaler.workloads.submit import JobSubmitter, SubmittedJob

#: The seeds' jobs: word count, a Random-Forest time-series forecast (Spark MLlib), PageRank,
#: k-means. A day of one job runs the first, the quickest (the tests' short day).
KINDS: tuple[str, ...] = ("wordcount", "forecast", "pagerank", "kmeans")
#: Job sizes are ``--scale`` in this range (1.0 is about a minute on one 1-core worker).
SCALE_RANGE = (0.6, 1.2)
#: A day's deadline is this many times the job's warm-up run time (see :func:`deadlines_from`).
DEADLINE_FACTOR = 1.5
#: Deadlines are rounded up to a multiple of this (a person sets 75 s, not 73.4 s).
DEADLINE_STEP_S = 5.0


@dataclass(frozen=True)
class PlannedJob:
    """One job of a replay: when (seconds after the replay starts), what, its deadline (None:
    none) and the most cores it may hold (None: every free core, Spark's default); as a
    recurring job, its ``signature`` and the size it declares (``input_bytes``)."""

    offset_s: float
    name: str
    kind: str
    args: tuple[str, ...]
    deadline_s: float | None
    cores: int | None = None
    signature: str | None = None
    input_bytes: int | None = None

    @property
    def scale(self) -> float:
        return float(self.args[self.args.index("--scale") + 1])


def _job(
    offset_s: float,
    name: str,
    kind: str,
    scale: float,
    partitions: int,
    deadline_s: float | None,
    cores: int | None,
) -> PlannedJob:
    """A recurring job of ``kind``: its signature is its kind, its declared size that of
    ``scale`` as the job is given it (rounded as its ``--scale`` argument is)."""
    text = f"{scale:.2f}"
    args = (kind, "--scale", text, "--partitions", str(partitions))
    return PlannedJob(
        float(offset_s), name, kind, args, deadline_s, cores, kind, input_bytes(kind, float(text))
    )


def _check(size: float, cores_per_job: int | None) -> None:
    if cores_per_job is not None and cores_per_job < 1:
        raise ValueError(f"cores_per_job must be at least 1, got {cores_per_job}")
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")


def warmup_plan(
    *,
    size: float = 1.0,
    kinds: tuple[str, ...] = KINDS,
    partitions: int = 8,
    cores_per_job: int | None = None,
) -> list[PlannedJob]:
    """Each of ``kinds`` once at ``size``, all due at once and with no deadline (their run
    times are what the deadlines are set from): a replay of it with ``max_running`` runs them
    side by side as far as the cluster allows."""
    _check(size, cores_per_job)
    return [
        _job(0.0, f"warm-up-{kind}", kind, size, partitions, None, cores_per_job) for kind in kinds
    ]


def deadlines_from(
    took_s: Mapping[str, float],
    factor: float = DEADLINE_FACTOR,
    step_s: float = DEADLINE_STEP_S,
) -> dict[str, float]:
    """Each kind's deadline from its warm-up run time: ``factor`` times it, rounded up to
    ``step_s``. The day's runs of a kind are its warm-up size give or take a fifth, so a
    cluster like the warm-up's meets them with room for a neighbour or two."""
    if factor <= 0 or step_s <= 0:
        raise ValueError(f"factor and step_s must be positive, got {factor}, {step_s}")
    return {kind: math.ceil(factor * s / step_s - 1e-9) * step_s for kind, s in took_s.items()}


def daily_plan(
    jobs: int,
    day_s: float,
    *,
    deadline_s: float | Mapping[str, float],
    seed: int = 0,
    peak_hour: float = 14.0,
    partitions: int = 8,
    size: float = 1.0,
    scale_range: tuple[float, float] = SCALE_RANGE,
    cores_per_job: int | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> list[PlannedJob]:
    """``jobs`` arrivals of one weekday compressed into ``day_s`` seconds, earliest first, of
    ``kinds`` in turn; ``deadline_s`` is every job's, or each kind's (every one of ``kinds``
    then needs one); ``size`` multiplies every job's ``--scale``, drawn from ``scale_range``
    (less work on a slow machine, or in a test); ``cores_per_job`` caps the cores each job
    holds."""
    if jobs < 1 or not kinds:
        raise ValueError(f"jobs and kinds must be at least 1, got {jobs} and {len(kinds)}")
    deadlines = (
        dict(deadline_s) if isinstance(deadline_s, Mapping) else dict.fromkeys(kinds, deadline_s)
    )
    missing = [kind for kind in kinds if kind not in deadlines]
    if missing:
        raise ValueError(f"no deadline for {', '.join(missing)}")
    if not (day_s > 0 and all(deadlines[kind] > 0 for kind in kinds)):
        raise ValueError(f"day_s and the deadlines must be positive, got {day_s}, {deadlines}")
    _check(size, cores_per_job)
    rng = np.random.default_rng(seed)
    minutes = np.arange(0.0, SECONDS_PER_DAY + 60.0, 60.0)
    rate = daily_weekly_rate(minutes, 1.0, peak_hour=peak_hour)
    share = np.concatenate(([0.0], np.cumsum((rate[1:] + rate[:-1]) / 2.0)))
    share /= share[-1]
    quantiles = (np.arange(jobs) + rng.uniform(0.2, 0.8, jobs)) / jobs
    offsets = np.interp(quantiles, share, minutes) * day_s / SECONDS_PER_DAY
    order = [kinds[i % len(kinds)] for i in rng.permutation(jobs)]
    scales = rng.uniform(*scale_range, jobs) * size
    return [
        _job(offset, f"{i + 1:02d}-{kind}", kind, scale, partitions, deadlines[kind], cores_per_job)
        for i, (offset, kind, scale) in enumerate(zip(offsets, order, scales, strict=True))
    ]


class Replayer:
    """Submits a plan's jobs when they are due, and while fewer than ``max_running`` of its jobs
    run (None: no limit); call :meth:`poll` often (every second or so)."""

    def __init__(
        self, plan: list[PlannedJob], submitter: JobSubmitter, max_running: int | None = None
    ) -> None:
        if max_running is not None and max_running < 1:
            raise ValueError(f"max_running must be at least 1, got {max_running}")
        self.plan = sorted(plan, key=lambda job: job.offset_s)
        self.submitter = submitter
        self.max_running = max_running
        self.submitted: list[tuple[PlannedJob, SubmittedJob]] = []
        self.started_at: float | None = None

    def start(self) -> None:
        self.started_at = time.time()

    def poll(self) -> list[SubmittedJob]:
        """Submit every job that is due (and has room); returns the ones submitted now."""
        if self.started_at is None:
            raise RuntimeError("start() the replay first")
        elapsed = time.time() - self.started_at
        running = sum(not job.poll() for _, job in self.submitted)
        new = []
        while len(self.submitted) < len(self.plan):
            job = self.plan[len(self.submitted)]
            if job.offset_s > elapsed or (
                self.max_running is not None and running >= self.max_running
            ):
                break
            submitted = self.submitter.submit(
                job.name,
                list(job.args),
                deadline_s=job.deadline_s,
                cores_max=job.cores,
                signature=job.signature,
                input_bytes=job.input_bytes,
            )
            self.submitted.append((job, submitted))
            new.append(submitted)
            running += 1
        return new

    @property
    def done(self) -> bool:
        """Every job was submitted and has ended."""
        return len(self.submitted) == len(self.plan) and all(
            job.poll() for _, job in self.submitted
        )
