"""What sparkscaler knows of each recurring job, learned from its finished runs.

A production cluster runs many different programs, most of them again and again on new data
(the same application every hour or day). One runtime model over all of them would treat a word
count and a k-means as the same program; :class:`JobKnowledge` learns each recurring job on its
own, keyed by its signature (:attr:`JobRecord.key`), from its successful runs:

- **run time against input size and workers**, by the best of three estimators, chosen per
  signature by leave-one-out error over its runs (each run predicted from the others):

  - ``ernest``: an Ernest model (:class:`RuntimeModel`, NNLS over ``1, s/n, s, n, log n``) of
    the signature's own runs, once it has ``min_runs`` runs on at least two worker counts (on
    one count the ``s/n`` and ``s`` terms cannot be told apart, so it could not extrapolate in
    n);
  - ``work``: the runs' own work, which a run measures whatever its size and workers: its serial
    part (``serial_s``: no task running) and its task-seconds per GB, stage by stage, spread
    over the task slots a stage can use (``min(slots, tasks)``), with the parallel efficiency
    the runs reached (ideal stage time over the parallel time they took). From one run this is
    "that run scaled by size, the serial part fixed";
  - ``prior``: the prior model given (a calibrated :class:`RuntimeModel` of some job), scaled
    to the signature's runs (the geometric mean of their time over its prediction); with no run
    at all it stands for every signature never seen, as it is.

  With one run there is nothing to compare on: the prior's shape when there is a prior (a model
  fitted on many runs), else that run's work;
- **the safety margin**: the ``q`` quantile of the chosen estimator's leave-one-out relative
  errors (never negative), once there are three; before that the prior's own margin, and at
  least ``default_margin``;
- **the stage structure** of its latest run (stages, tasks, task-seconds: what a running job
  still has to come) and its typical size (what a job that does not say its size is taken to
  be).

"Workers" are task slots in units of a worker: a run's slots are its executors times
``cores_per_worker`` (a standalone executor takes a whole worker unless told otherwise), capped
by its ``spark.cores.max``; a job capped at 2 cores on 1-core workers runs on at most 2 workers,
however many the cluster has, and on 4-core workers on half of one.

:meth:`JobKnowledge.project` answers the planner's question for a running job: how long is left
on ``n`` workers. That is Jockey's approach (Ferguson et al., EuroSys 2012) of predicting the
remaining time from the job's progress, with the estimator above in place of Jockey's simulator:

- the work left is what the live stages still have to do (their tasks left times their mean
  task time so far, shrunk towards the history's task time while few of their tasks are done:
  ``prior_tasks`` tasks' worth of weight; a running task counts as half done) plus the stages
  the latest run had beyond the last one Spark lists, as shares of the work expected of this
  run (its size times the signature's task-seconds per GB);
- the parallel time left is the estimator's parallel time on ``n`` workers times the share of
  the run's stage time on those slots still to go (each stage on at most as many slots as it
  has tasks, so a job down to a one-task stage gains nothing from more workers); the serial
  part left is the estimator's serial part (the runs' measured ``serial_s`` where known) less
  the time the job has spent without tasks running (elapsed less its task-seconds over its
  cores);
- the margin applies only to the share of what is left that rests on history rather than on
  the run's own tasks, so it narrows as the job shows how fast it goes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, Self

import numpy as np
from scipy.optimize import nnls

from sparkscaler.core import JobContext, JobRecord, StageSummary
from sparkscaler.models.runtime_model import RuntimeModel

Estimator = Literal["ernest", "work", "prior"]

#: Leave-one-out errors needed before a signature's own margin replaces the default one.
MIN_RESIDUALS = 3


class _Split(Protocol):
    """An estimate of a whole run: its serial and parallel seconds for a size and slots."""

    def split(self, size_gb: float, slots: float, cores_per_worker: float) -> tuple[float, float]:
        """(serial s, parallel s) of a run of ``size_gb`` on ``slots`` task slots."""
        ...


@dataclass(frozen=True)
class _Ernest:
    """An Ernest model: serial ``θ0 + θ2 s + θ3 n + θ4 log n``, parallel ``θ1 s / n``, with n
    in workers (``slots / cores_per_worker``, at least 1), times ``scale``."""

    model: RuntimeModel
    scale: float = 1.0
    coef: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coef", tuple(float(c) for c in self.model.coef_))

    def split(self, size_gb: float, slots: float, cores_per_worker: float) -> tuple[float, float]:
        c0, c1, c2, c3, c4 = self.coef
        n = max(1.0, slots / cores_per_worker)
        serial = c0 + c2 * size_gb + c3 * n + c4 * math.log(n)
        return self.scale * serial, self.scale * c1 * size_gb / n


@dataclass(frozen=True)
class _Work:
    """The runs' own work: serial seconds fixed; task-seconds on a line in size (``fixed_s +
    per_gb * size``), shared among the stages as in the latest run, each stage's share over the
    slots it can use, divided by the parallel efficiency the runs reached."""

    serial_s: float
    #: (tasks, share of the task-seconds) of each stage of the latest run
    stages: tuple[tuple[int, float], ...]
    fixed_s: float
    per_gb: float
    efficiency: float

    def ideal(self, size_gb: float, slots: float) -> float:
        """Seconds of the stages one after another on ``slots``, with no loss."""
        work = self.fixed_s + self.per_gb * size_gb
        return sum(share * work / max(1.0, min(slots, t)) for t, share in self.stages)

    def split(self, size_gb: float, slots: float, cores_per_worker: float) -> tuple[float, float]:
        return self.serial_s, self.ideal(size_gb, slots) / self.efficiency


@dataclass(frozen=True)
class _Run:
    """One successful run as the estimators see it."""

    record: JobRecord
    size_gb: float
    slots: float

    @property
    def seconds(self) -> float:
        return self.record.duration_s

    @property
    def serial_s(self) -> float:
        return min(max(0.0, self.record.serial_s), self.seconds)

    def stage_work(self) -> tuple[tuple[int, float], ...]:
        """(tasks, task-seconds) per stage; the whole run as one stage when the record has no
        stages, and its parallel time on its slots when it has no task time either."""
        if self.record.stages and sum(s.task_seconds for s in self.record.stages) > 0:
            return tuple((max(1, s.tasks), s.task_seconds) for s in self.record.stages)
        work = self.record.task_seconds
        if work <= 0:
            work = (self.seconds - self.serial_s) * self.slots
        return ((max(1, self.record.tasks), work),)

    @property
    def work_s(self) -> float:
        return sum(w for _, w in self.stage_work())


def run_slots(record: JobRecord, cores_per_worker: float) -> float:
    """The task slots a finished run had: its executors (each a worker, the standalone default;
    the worker count if it lists no executor) times the cores of a worker, capped by its
    ``spark.cores.max``."""
    workers = record.executors if record.executors > 0 else record.workers
    slots = max(1, workers) * cores_per_worker
    return min(slots, record.max_cores) if record.max_cores else slots


def job_slots(workers: int, cores_per_worker: float, max_cores: int | None) -> float:
    """Task slots a job gets on ``workers`` workers: their cores, capped by its
    ``spark.cores.max``."""
    slots = max(1, workers) * cores_per_worker
    return min(slots, float(max_cores)) if max_cores else slots


def useful_workers(max_cores: int | None, cores_per_worker: float, most: int) -> int:
    """The most workers a job can use: ``ceil(spark.cores.max / cores per worker)``, at most
    ``most``."""
    if not max_cores:
        return most
    return max(1, min(most, math.ceil(max_cores / cores_per_worker - 1e-9)))


def _fit_ernest(runs: Sequence[_Run], min_runs: int, cpw: float) -> _Ernest | None:
    if len(runs) < min_runs or len({round(r.slots / cpw, 6) for r in runs}) < 2:
        return None
    try:
        model = RuntimeModel(source="runs").fit(
            [r.size_gb for r in runs],
            [max(1.0, r.slots / cpw) for r in runs],
            [r.seconds for r in runs],
        )
    except ValueError:
        return None
    return _Ernest(model)


#: Sizes must span at least this ratio before the work's fixed part is told from its per-GB part.
SIZE_SPREAD = 1.5


def work_line(runs: Sequence[_Run]) -> tuple[float, float]:
    """Task-seconds as ``fixed + per_gb * size`` (both at least 0, least squares) over runs of
    sizes that differ enough to tell the two apart: a small job's tasks spend much of their time
    on what does not grow with its data (task start, JIT, small files), so scaling its work by
    size alone over-predicts a larger run. Over runs of about one size: all of it per GB (the
    median), the size's own share unknown."""
    sizes = np.array([r.size_gb for r in runs])
    work = np.array([r.work_s for r in runs])
    if len(runs) >= 2 and sizes.max() >= SIZE_SPREAD * sizes.min():
        coef, _ = nnls(np.column_stack([np.ones_like(sizes), sizes]), work)
        if coef.sum() > 0:
            return float(coef[0]), float(coef[1])
    return 0.0, float(np.median(work / sizes))


def _fit_work(runs: Sequence[_Run]) -> _Work | None:
    """Serial part and efficiency: medians over the runs; the task-seconds' line in size over
    the runs (:func:`work_line`), shared among the stages as in the latest run."""
    stages = runs[-1].stage_work()
    total = sum(w for _, w in stages)
    if total <= 0:
        return None
    fixed, per_gb = work_line(runs)
    shape = _Work(0.0, tuple((t, w / total) for t, w in stages), fixed, per_gb, 1.0)
    efficiencies = [
        shape.ideal(r.size_gb, r.slots) / (r.seconds - r.serial_s)
        for r in runs
        if r.seconds - r.serial_s > 0
    ]
    if not efficiencies:
        return None
    serial = float(np.median([r.serial_s for r in runs]))
    efficiency = max(1e-3, float(np.median(efficiencies)))
    return _Work(serial, shape.stages, fixed, per_gb, efficiency)


def _fit_prior(runs: Sequence[_Run], prior: RuntimeModel, cpw: float) -> _Ernest:
    base = _Ernest(prior)
    ratios = [r.seconds / sum(base.split(r.size_gb, r.slots, cpw)) for r in runs]
    return _Ernest(prior, float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0)


@dataclass(frozen=True)
class SignatureKnowledge:
    """What is known of one recurring job (or, with ``runs == 0``, the prior's stand-in for
    every job never seen)."""

    key: str
    runs: int
    estimator: Estimator
    model: _Split
    margin: float
    #: Leave-one-out relative errors ``(actual - predicted) / predicted`` of the estimator.
    errors: tuple[float, ...] = ()
    #: The typical (median) input of its runs, GB: the size of a job that does not say its own.
    size_gb: float = 1.0
    #: Its runs' task-seconds as ``work_fixed_s + work_per_gb * size`` (:func:`work_line`; both
    #: 0: none known, the prior's parallel time stands in).
    work_per_gb: float = 0.0
    work_fixed_s: float = 0.0
    #: The latest run's stages: what a running job has still to come.
    stages: tuple[StageSummary, ...] = ()
    serial_s: float = 0.0

    @property
    def source(self) -> str:
        """Which knowledge it is, in a few words for a decision's reason."""
        if self.runs == 0:
            return "prior model"
        runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        if self.estimator == "ernest":
            return f"Ernest on {runs}"
        if self.estimator == "prior":
            return f"prior model scaled to {runs}"
        return f"work of {runs}, scaled by size" if self.runs > 1 else "1 run, scaled by size"

    @property
    def mape(self) -> float | None:
        """Leave-one-out mean absolute percentage error of its whole-run predictions (%)."""
        if not self.errors:
            return None
        return 100.0 * float(np.mean([abs(e) / (1.0 + e) for e in self.errors]))

    def work_s(self, size_gb: float) -> float:
        """Task-seconds expected of a run of ``size_gb``."""
        return self.work_fixed_s + self.work_per_gb * size_gb

    def whole_s(self, size_gb: float, slots: float, cores_per_worker: float) -> float:
        """Expected whole run time of a run of ``size_gb`` on ``slots`` task slots."""
        return sum(self.model.split(size_gb, slots, cores_per_worker))

    def split(self, size_gb: float, slots: float, cores_per_worker: float) -> tuple[float, float]:
        """(serial s, parallel s) of a run: the estimator's whole time, of which the serial
        part its runs measured (``serial_s``) where they did; an Ernest model's own serial
        terms are only what does not shrink with more workers, task waves included."""
        serial, parallel = self.model.split(size_gb, slots, cores_per_worker)
        if self.serial_s <= 0:
            return serial, parallel
        whole = serial + parallel
        measured = min(self.serial_s, whole)
        return measured, whole - measured


@dataclass(frozen=True)
class Projection:
    """A running job's projected time on a number of workers (:meth:`JobKnowledge.project`)."""

    workers: int
    elapsed_s: float
    #: Expected seconds left, and the relative margin that covers the uncertain part of it.
    left_s: float
    margin: float
    #: Share of the job's work done (task-seconds done over done plus left).
    progress: float
    source: str
    #: The part of ``left_s`` that is serial (driver work, no task running): jobs that run one
    #: after another on the same workers overlap it with the job before them.
    serial_left_s: float = 0.0

    @property
    def left_safe_s(self) -> float:
        return self.left_s * (1.0 + self.margin)

    @property
    def whole_s(self) -> float:
        """Expected whole run time, from the job's start."""
        return self.elapsed_s + self.left_s

    @property
    def whole_safe_s(self) -> float:
        return self.elapsed_s + self.left_safe_s


@dataclass
class JobKnowledge:
    """Per-signature run-time knowledge, scikit-learn style: parameters here, :meth:`fit` on
    finished jobs, learned state in ``signatures_``.

    ``prior``: a runtime model for signatures without history (and a shape to scale to one or
    two runs); ``q``: the residual quantile of the margin; ``min_runs``: runs on at least two
    worker counts before a signature's own Ernest model is tried; ``max_runs``: the latest runs
    of a signature kept (a recurring job changes over time); ``default_margin``: the margin
    while a signature has too few runs to measure its own; ``prior_tasks``: how many finished
    tasks' worth of weight the history's task time keeps against a running stage's own;
    ``cores_per_worker``: the worker size of the runs learned from (their executors' slots).
    """

    prior: RuntimeModel | None = None
    q: float = 0.9
    min_runs: int = 4
    max_runs: int = 50
    default_margin: float = 0.2
    prior_tasks: int = 4
    cores_per_worker: float = 1.0
    signatures_: dict[str, SignatureKnowledge] = field(default_factory=dict, init=False)
    default_: SignatureKnowledge | None = field(default=None, init=False)
    runs_: int = field(default=0, init=False)
    #: The runs learned from (each signature's latest ``max_runs``): all a refit needs.
    records_: list[JobRecord] = field(default_factory=list, init=False)

    # ------------------------------------------------------------------ fitting

    def fit(self, records: Sequence[JobRecord]) -> Self:
        """Learn every signature from its successful runs (failed runs and runs of no duration
        say nothing of how long a run takes)."""
        by_key: dict[str, list[JobRecord]] = defaultdict(list)
        for r in sorted(records, key=lambda r: r.end_time):
            if r.success and r.duration_s > 0:
                by_key[r.key].append(r)
        kept = {key: runs[-self.max_runs :] for key, runs in by_key.items()}
        self.signatures_ = {key: self._learn(key, runs) for key, runs in kept.items()}
        self.records_ = sorted(
            (r for runs in kept.values() for r in runs), key=lambda r: r.end_time
        )
        self.runs_ = len(self.records_)
        self.default_ = None
        if self.prior is not None:
            self.default_ = SignatureKnowledge(
                "", 0, "prior", _Ernest(self.prior), self._prior_margin()
            )
        return self

    def _prior_margin(self) -> float:
        return self.prior.margin(self.q) if self.prior is not None else self.default_margin

    def _runs(self, records: Sequence[JobRecord]) -> list[_Run]:
        known = [r.input_bytes / 1e9 for r in records if r.input_bytes > 0]
        typical = float(np.median(known)) if known else 1.0
        cpw = self.cores_per_worker
        return [
            _Run(r, r.input_bytes / 1e9 if r.input_bytes > 0 else typical, run_slots(r, cpw))
            for r in records
        ]

    def _candidates(self) -> dict[Estimator, Callable[[Sequence[_Run]], _Split | None]]:
        cpw = self.cores_per_worker
        out: dict[Estimator, Callable[[Sequence[_Run]], _Split | None]] = {
            "ernest": lambda runs: _fit_ernest(runs, self.min_runs, cpw),
            "work": _fit_work,
        }
        if self.prior is not None:
            prior = self.prior
            out["prior"] = lambda runs: _fit_prior(runs, prior, cpw)
        return out

    def _learn(self, key: str, records: Sequence[JobRecord]) -> SignatureKnowledge:
        runs = self._runs(records)
        cpw = self.cores_per_worker
        candidates = self._candidates()
        chosen: tuple[Estimator, _Split, tuple[float, ...]] | None = None
        if len(runs) >= 2:
            best = math.inf
            for name, fit in candidates.items():
                errors = _leave_one_out(runs, fit, cpw)
                if errors is None:
                    continue
                mape = float(np.mean([abs(e) / (1.0 + e) for e in errors]))
                model = fit(runs)
                if model is not None and mape < best - 1e-12:
                    best, chosen = mape, (name, model, errors)
        if chosen is None:  # one run, or no estimator could be compared
            order: tuple[Estimator, ...] = ("prior", "work") if self.prior else ("work",)
            for name in order:
                model = candidates[name](runs)
                if model is not None:
                    chosen = (name, model, ())
                    break
        if chosen is None:  # a run of no work and no time: scaled prior or bare duration
            last = runs[-1]
            chosen = ("work", _Work(0.0, ((1, 1.0),), 0.0, last.seconds / last.size_gb, 1.0), ())
        name, model, errors = chosen
        if len(errors) >= MIN_RESIDUALS:
            margin = max(0.0, float(np.quantile(errors, self.q)))
        else:
            margin = max(self._prior_margin(), self.default_margin)
        latest = runs[-1]
        timed = [r for r in runs if r.record.task_seconds > 0]
        fixed, per_gb = work_line(timed) if timed else (0.0, 0.0)
        return SignatureKnowledge(
            key=key,
            runs=len(runs),
            estimator=name,
            model=model,
            margin=margin,
            errors=errors,
            size_gb=float(np.median([r.size_gb for r in runs])),
            work_fixed_s=fixed,
            work_per_gb=per_gb,
            stages=latest.record.stages,
            serial_s=float(np.median([r.serial_s for r in runs])),
        )

    # ------------------------------------------------------------------ querying

    def knowledge(self, signature: str) -> SignatureKnowledge | None:
        """What is known of ``signature``: its own runs, else the prior, else None."""
        return self.signatures_.get(signature, self.default_)

    def project(self, job: JobContext, workers: int, cores_per_worker: float) -> Projection | None:
        """The running ``job``'s time left on ``workers`` workers of ``cores_per_worker`` cores
        (module docstring); None for a signature never seen when there is no prior."""
        found = self.projections(job, [workers], cores_per_worker)
        return None if found is None else found[0]

    def projections(
        self, job: JobContext, counts: Sequence[int], cores_per_worker: float
    ) -> list[Projection] | None:
        """:meth:`project` for each of ``counts`` workers: what does not depend on the count
        (the work left) is worked out once."""
        k = self.knowledge(job.signature)
        if k is None:
            return None
        cpw = cores_per_worker
        size = job.input_bytes / 1e9 if job.input_bytes else k.size_gb
        expected = k.work_s(size)
        if expected <= 0:
            # No task time known: the model's time on one worker, all its cores busy.
            expected = k.model.split(size, cpw, cpw)[1] * cpw
        left = _work_left(job, k, expected, self.prior_tasks)
        done = job.task_seconds
        progress = done / (done + left.total) if done + left.total > 0 else 0.0
        spent = max(0.0, job.elapsed_s - done / max(1, job.cores))
        seen = job.tasks_done / (job.tasks_done + self.prior_tasks)
        source = f"{job.signature or job.app_id}: {k.source}"
        out = []
        for workers in counts:
            slots = job_slots(workers, cpw, job.max_cores)
            serial, parallel = k.split(size, slots, cpw)
            # The estimator's parallel time, times the share of the run's stage time on these
            # slots still to go: a stage of fewer tasks than slots cannot use them all.
            whole = left.time(left.whole, slots)
            to_go = left.time(left.stages, slots)
            parallel_left = parallel * to_go / whole if whole > 0 else parallel
            unobserved = left.time(left.unobserved, slots) / to_go if to_go > 0 else 0.0
            serial_left = max(0.0, serial - spent)
            total = serial_left + parallel_left
            unsure = serial_left * (1.0 - seen) + parallel_left * unobserved
            margin = k.margin * (unsure / total) if total > 0 else 0.0
            out.append(
                Projection(workers, job.elapsed_s, total, margin, progress, source, serial_left)
            )
        return out


@dataclass(frozen=True)
class _Left:
    """A running job's task-seconds left, stage by stage as (task-seconds, tasks), the part of
    them that no task of its own has timed, and the whole run's stages as expected."""

    stages: tuple[tuple[float, int], ...]
    unobserved: tuple[tuple[float, int], ...]
    whole: tuple[tuple[float, int], ...]

    @property
    def total(self) -> float:
        return sum(w for w, _ in self.stages)

    @staticmethod
    def time(stages: Sequence[tuple[float, int]], slots: float) -> float:
        """Seconds the stages take one after another on ``slots`` slots, each on as many as
        it has tasks."""
        return sum(w / max(1.0, min(slots, t)) for w, t in stages)


def _work_left(job: JobContext, k: SignatureKnowledge, expected: float, prior_tasks: int) -> _Left:
    """Task-seconds left of the live stages (tasks left times a task time shrunk from the
    stage's own mean towards the expected one; a running task counts as half done) and of the
    stages the latest run had beyond the last one Spark lists (their share of the work the
    latest run did, times the work expected of this one)."""
    template = {s.stage_id: s for s in k.stages}
    planned = sum(s.task_seconds for s in k.stages)
    scale = expected / planned if planned > 0 else 0.0
    live = [s for s in job.stages if s.status != "SKIPPED"]
    if k.stages and scale > 0:
        whole = tuple((s.task_seconds * scale, s.tasks) for s in k.stages)
    else:
        whole = ((expected, sum(s.tasks for s in live) or 1_000_000),)
    if not live:
        return _Left(whole, whole, whole)
    mean_task = expected / max(1, sum(t for _, t in whole) if k.stages else whole[0][1])
    stages, unobserved = [], []
    for stage in live:
        past = template.get(stage.stage_id)
        if past is not None and past.tasks > 0 and scale > 0:
            typical = past.task_seconds * scale / max(1, stage.tasks)
        else:
            typical = mean_task
        task_s = (stage.task_seconds + prior_tasks * typical) / (stage.done + prior_tasks)
        tasks = max(0, stage.tasks - stage.done)
        work = max(0.0, tasks - stage.running / 2) * task_s
        if work > 0:
            stages.append((work, tasks))
            unobserved.append((work * prior_tasks / (stage.done + prior_tasks), tasks))
    last = max(s.stage_id for s in job.stages)
    future = [(s.task_seconds * scale, s.tasks) for s in k.stages if s.stage_id > last]
    return _Left(tuple(stages + future), tuple(unobserved + future), whole)


def _leave_one_out(
    runs: Sequence[_Run], fit: Callable[[Sequence[_Run]], _Split | None], cpw: float
) -> tuple[float, ...] | None:
    """Each run's relative error ``(actual - predicted) / predicted`` predicted from the other
    runs; None when the estimator cannot be fitted on some of them."""
    errors = []
    for i, run in enumerate(runs):
        model = fit([r for j, r in enumerate(runs) if j != i])
        if model is None:
            return None
        predicted = sum(model.split(run.size_gb, run.slots, cpw))
        if not predicted > 0:
            return None
        errors.append((run.seconds - predicted) / predicted)
    return tuple(errors)
