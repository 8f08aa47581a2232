"""Jobs for the simulator: DAGs of stages of tasks, with task durations that behave like Spark's.

A task's duration depends on what the core that runs it did before, as measured on real
clusters and used by Decima's simulator (Mao et al., SIGCOMM 2019):

- ``fresh``: the executor's first task for this job (JIT warm-up, executor start),
- ``first``: the first wave of a stage on an executor that already ran the job,
- ``rest``: later waves of the same stage on the same executor.

Two sources of durations fill that in: the TPC-H profiles measured by Decima's authors (one
list of durations per kind and per executor count), and the runtime model (Ernest) with its
residual noise, for jobs calibrated from real runs. Every generator is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from sparkscaler.core import JobRecord
from sparkscaler.sim.arrivals import Arrivals

WaveKind = Literal["fresh", "first", "rest"]


class Draws:
    """Scalar random draws from one seeded generator, taken 4096 at a time.

    A scalar draw from numpy costs about a microsecond of call overhead, which the simulator
    would pay for every task; buffering keeps the stream reproducible for a given seed.
    """

    def __init__(self, rng: np.random.Generator, batch: int = 4096) -> None:
        self.rng = rng
        self.batch = batch
        self._normals = rng.standard_normal(batch)
        self._uniforms = rng.random(batch)
        self._n = self._u = 0

    def normal(self) -> float:
        if self._n >= self.batch:
            self._normals, self._n = self.rng.standard_normal(self.batch), 0
        self._n += 1
        return float(self._normals[self._n - 1])

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        if self._u >= self.batch:
            self._uniforms, self._u = self.rng.random(self.batch), 0
        self._u += 1
        return low + (high - low) * float(self._uniforms[self._u - 1])

    def index(self, n: int) -> int:
        """A uniform index in ``range(n)``."""
        return min(n - 1, int(self.uniform() * n))


class TaskDurations(Protocol):
    """Seconds a task runs, given its kind and how many executor slots its job holds."""

    def sample(self, kind: WaveKind, executors: int, draws: Draws) -> float: ...

    def mean(self, kind: WaveKind, executors: int) -> float: ...


@dataclass(frozen=True)
class FixedDurations:
    """One base duration per task with multiplicative noise; fresh and first waves slower."""

    seconds: float
    noise: float = 0.0
    first_wave_factor: float = 1.0
    fresh_extra_s: float = 0.0

    def mean(self, kind: WaveKind, executors: int) -> float:
        base = self.seconds * (1.0 if kind == "rest" else self.first_wave_factor)
        return base + (self.fresh_extra_s if kind == "fresh" else 0.0)

    def sample(self, kind: WaveKind, executors: int, draws: Draws) -> float:
        factor = 1.0 + self.noise * draws.normal() if self.noise else 1.0
        return max(0.05 * self.seconds, self.mean(kind, executors) * factor)


@dataclass(frozen=True)
class ProfileDurations:
    """Measured task durations (seconds) per wave kind and executor count (a TPC-H profile).

    The executor count is looked up as Decima does: the nearest measured counts around it are
    picked at random in proportion to how close each is, and counts above the largest measured
    one use the largest.
    """

    waves: Mapping[WaveKind, Mapping[int, np.ndarray]]

    def _key(self, executors: int, draws: Draws | None) -> int:
        keys = sorted(self.waves["first"])
        if executors <= keys[0]:
            return keys[0]
        if executors >= keys[-1]:
            return keys[-1]
        right = next(k for k in keys if k >= executors)
        left = max(k for k in keys if k <= executors)
        if left == right or draws is None:
            return left if executors - left <= right - executors else right
        return left if 1 + draws.index(right - left) <= right - executors else right

    def _pool(self, kind: WaveKind, key: int) -> np.ndarray:
        for candidate in (kind, "first", "fresh", "rest"):
            pool = self.waves[candidate].get(key)  # type: ignore[index]
            if pool is not None and len(pool):
                return pool
        raise ValueError("a stage profile without any measured duration")

    def mean(self, kind: WaveKind, executors: int) -> float:
        return float(np.mean(self._pool(kind, self._key(executors, None))))

    def sample(self, kind: WaveKind, executors: int, draws: Draws) -> float:
        pool = self._pool(kind, self._key(executors, draws))
        return float(pool[draws.index(len(pool))])


@dataclass(frozen=True)
class Stage:
    id: int
    num_tasks: int
    durations: TaskDurations
    parents: tuple[int, ...] = ()


@dataclass(frozen=True)
class JobSpec:
    """A job as it arrives: what it is, when, how big, and its deadline T (relative)."""

    id: int
    name: str
    arrival: float
    stages: tuple[Stage, ...]
    size_gb: float = 0.0
    deadline_s: float | None = None
    driver_s: float = 0.0
    """Driver-side time before the first stage (scheduling, serial work); uses no worker."""
    signature: str = ""
    """The recurring job this is a run of (``spark.sparkscaler.job``); empty: its name."""
    max_cores: int | None = None
    """Cores the job may hold at once (``spark.cores.max``); None: every free core."""

    @property
    def key(self) -> str:
        """The recurring job this run belongs to, as :attr:`JobRecord.key` names it."""
        return self.signature or self.name

    def with_arrival(self, job_id: int, arrival: float, deadline_s: float | None) -> JobSpec:
        return replace(self, id=job_id, arrival=arrival, deadline_s=deadline_s)


# ---------------------------------------------------------------------------------- TPC-H
def _clean_first_wave(raw: dict[str, dict[int, list[float]]]) -> dict[int, list[float]]:
    """Decima's pre-processing: the measured first wave includes the fresh durations; take
    them out, and give counts with no first wave the nearest smaller count's."""
    cleaned: dict[int, list[float]] = {}
    for e, durations in raw["first_wave"].items():
        fresh = list(raw["fresh_durations"].get(e, []))
        kept = []
        for d in durations:
            if d in fresh:
                fresh.remove(d)
            else:
                kept.append(d)
        cleaned[e] = kept
    last: list[float] = []
    for e in sorted(cleaned):
        if not cleaned[e]:
            cleaned[e] = last
        last = cleaned[e]
    return cleaned


def load_tpch_job(directory: Path, query: int, size: str) -> JobSpec:
    """One TPC-H query profile (``adj_mat_<q>.npy``, ``task_duration_<q>.npy``) as a job.

    ``directory`` holds one folder per input size (``2g`` … ``100g``), as in Decima's data.
    """
    folder = Path(directory) / size
    adj_path, dur_path = folder / f"adj_mat_{query}.npy", folder / f"task_duration_{query}.npy"
    for path in (adj_path, dur_path):
        if not path.exists():
            raise FileNotFoundError(f"TPC-H profile {path} not found (expected Decima's layout)")
    adj = np.load(adj_path, allow_pickle=True)
    raw = np.load(dur_path, allow_pickle=True).item()
    if adj.shape[0] != len(raw):
        raise ValueError(
            f"{folder}: query {query} has {adj.shape[0]} stages but {len(raw)} duration profiles"
        )
    stages = []
    for n in range(adj.shape[0]):
        profile = raw[n]
        any_key = next(iter(profile["first_wave"]))
        num_tasks = len(profile["first_wave"][any_key]) + len(profile["rest_wave"][any_key])
        first = _clean_first_wave(profile)
        waves: dict[WaveKind, dict[int, np.ndarray]] = {
            "fresh": {
                e: np.asarray(v, float) / 1000 for e, v in profile["fresh_durations"].items()
            },
            "first": {e: np.asarray(v, float) / 1000 for e, v in first.items()},
            "rest": {e: np.asarray(v, float) / 1000 for e, v in profile["rest_wave"].items()},
        }
        parents = tuple(int(i) for i in np.flatnonzero(adj[:, n]))
        stages.append(Stage(n, num_tasks, ProfileDurations(waves), parents))
    size_gb = float(size.rstrip("g"))
    return JobSpec(
        0, f"tpch-q{query}-{size}", 0.0, tuple(stages), size_gb, signature=f"tpch-q{query}"
    )


def tpch_queries(directory: Path) -> list[tuple[int, str]]:
    """Every (query, size) pair present under ``directory``."""
    found = []
    for folder in sorted(Path(directory).iterdir()):
        if folder.is_dir():
            for path in folder.glob("adj_mat_*.npy"):
                found.append((int(path.stem.split("_")[-1]), folder.name))
    if not found:
        raise FileNotFoundError(f"no TPC-H profiles under {directory}")
    return sorted(found, key=lambda qs: (float(qs[1].rstrip("g")), qs[0]))


def wave_estimate(job: JobSpec, executors: int) -> float:
    """The job's duration on ``executors`` slots from its profile alone: per stage, one first
    (fresh) wave plus the rest waves, summed along the DAG's longest path.

    This is the reference the simulator is validated against: it ignores that stages of
    parallel branches share the slots, which the simulator does model.
    """
    finish: dict[int, float] = {}
    for stage in job.stages:
        waves = math.ceil(stage.num_tasks / executors)
        own = stage.durations.mean("fresh" if not stage.parents else "first", executors)
        own += (waves - 1) * stage.durations.mean("rest", executors)
        finish[stage.id] = own + max((finish[p] for p in stage.parents), default=0.0)
    return max(finish.values()) + job.driver_s


# ---------------------------------------------------------------------------------- generators
@dataclass
class ModelJobs:
    """Jobs whose run time follows a fitted runtime model (Ernest) with its residual noise.

    A job of size s becomes a driver phase (the model's serial terms ``c0 + c2 s``) and one
    stage whose tasks hold the parallel work ``c1 s``, split so that n one-core workers finish
    it in ``c1 s / n``; the model's overhead terms in n are folded into the driver phase at the
    size the job is planned for. Noise multiplies the job by ``1 + r`` with r drawn from the
    model's relative residuals.
    """

    model: object
    sizes_gb: tuple[float, float] = (0.5, 3.0)
    tasks_per_job: int = 64
    planned_workers: int = 1
    name: str = "model"

    def make(self, size_gb: float, rng: np.random.Generator) -> JobSpec:
        c0, c1, c2, c3, c4 = (float(c) for c in self.model.coef_)  # type: ignore[attr-defined]
        noise = 1.0 + float(rng.choice(self.model.residuals_))  # type: ignore[attr-defined]
        noise = max(noise, 0.05)
        n = self.planned_workers
        driver = (c0 + c2 * size_gb + c3 * n + c4 * math.log(n)) * noise
        task_s = c1 * size_gb / self.tasks_per_job * noise
        stages: tuple[Stage, ...] = ()
        if task_s > 0:
            stages = (Stage(0, self.tasks_per_job, FixedDurations(task_s)),)
        return JobSpec(0, self.name, 0.0, stages, size_gb, None, driver)

    def sample(self, rng: np.random.Generator) -> JobSpec:
        return self.make(float(rng.uniform(*self.sizes_gb)), rng)


@dataclass
class SyntheticJobs:
    """Map-reduce shaped jobs: a map stage and a reduce stage, sizes drawn log-uniformly."""

    map_tasks: tuple[int, int] = (8, 200)
    task_s: tuple[float, float] = (2.0, 20.0)
    reduce_fraction: float = 0.25
    first_wave_factor: float = 1.3
    fresh_extra_s: float = 1.0
    noise: float = 0.1

    def sample(self, rng: np.random.Generator) -> JobSpec:
        lo, hi = self.map_tasks
        tasks = round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        seconds = float(rng.uniform(*self.task_s))
        durations = FixedDurations(seconds, self.noise, self.first_wave_factor, self.fresh_extra_s)
        reduce = max(1, int(tasks * self.reduce_fraction))
        stages = (Stage(0, tasks, durations), Stage(1, reduce, durations, parents=(0,)))
        return JobSpec(0, "synthetic", 0.0, stages, tasks * seconds / 100.0)


@dataclass
class TpchJobs:
    """Jobs drawn uniformly from the TPC-H profiles under a directory (as Decima does)."""

    directory: Path
    sizes: Sequence[str] | None = None
    _cache: dict[tuple[int, str], JobSpec] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator) -> JobSpec:
        options = [
            qs for qs in tpch_queries(self.directory) if self.sizes is None or qs[1] in self.sizes
        ]
        query, size = options[rng.integers(len(options))]
        if (query, size) not in self._cache:
            self._cache[(query, size)] = load_tpch_job(self.directory, query, size)
        return self._cache[(query, size)]


# ---------------------------------------------------------------------------------- signatures
@dataclass(frozen=True)
class ContendedDurations:
    """Tasks of one length that slow down as their job spreads over more task slots.

    On the machine the recorded runs come from, added workers share the same two cores, so a
    task takes longer the more slots its job holds: ``seconds · (1 + contention · (slots - 1))``.
    Fitted on runs from a cluster of separate hosts, ``contention`` comes out about 0.
    """

    seconds: float
    contention: float = 0.0

    def mean(self, kind: WaveKind, executors: int) -> float:
        return self.seconds * (1.0 + self.contention * (max(1, executors) - 1))

    def sample(self, kind: WaveKind, executors: int, draws: Draws) -> float:
        return self.mean(kind, executors)


@dataclass(frozen=True)
class StageShape:
    """One stage of a recurring job: its tasks, its parents (indices of earlier stages) and its
    share of the job's task-seconds."""

    tasks: int
    share: float
    parents: tuple[int, ...] = ()


@dataclass(frozen=True)
class SignatureProfile:
    """One recurring job as its recorded runs show it, to generate new runs of any size.

    A run of size s on k task slots spends ``serial = s0 + s1·s`` seconds with no task running
    (driver start-up and work, executor start-up: the records' ``serial_s``) and
    ``work = w0 + w1·s + (w2 + w3·s)·(k - 1)`` task-seconds (the records' ``task_seconds``;
    the terms in k are the slow-down of tasks that share the recording machine's cores),
    split over its stages as its runs split them. Both are non-negative least squares fits
    over the signature's runs, as Ernest fits its terms; a new run draws one recorded run's
    relative residuals of the two, so that run-to-run noise is the recordings'. ``model`` is
    the signature's Ernest model of whole run times (a :class:`~sparkscaler.models.
    runtime_model.RuntimeModel`, fitted by the caller), kept for the oracle and the report.
    """

    signature: str
    stages: tuple[StageShape, ...]
    serial: tuple[float, float]
    work: tuple[float, float, float, float]
    sizes_gb: tuple[float, float]
    residuals: tuple[tuple[float, float], ...] = ((0.0, 0.0),)
    max_cores: int | None = None
    runs: int = 0
    model: object | None = None

    def serial_s(self, size_gb: float) -> float:
        return self.serial[0] + self.serial[1] * size_gb

    def work_s(self, size_gb: float, slots: float = 1.0) -> float:
        w0, w1, w2, w3 = self.work
        return w0 + w1 * size_gb + (w2 + w3 * size_gb) * (max(1.0, slots) - 1.0)

    def make(
        self,
        size_gb: float,
        rng: np.random.Generator | None = None,
        executor_startup_s: float = 0.0,
    ) -> JobSpec:
        """A run of ``size_gb``: its serial part as the driver phase (less the executor
        start-up the simulator adds itself), its work split over the stages; noise from
        ``rng`` (None: the fits' mean run)."""
        serial_r, work_r = (0.0, 0.0)
        if rng is not None:
            serial_r, work_r = self.residuals[int(rng.integers(len(self.residuals)))]
        base = self.work_s(size_gb) * max(0.05, 1.0 + work_r)
        w0, w1, w2, w3 = self.work
        per_slot = (w2 + w3 * size_gb) / max(w0 + w1 * size_gb, 1e-9)
        stages = tuple(
            Stage(
                i,
                shape.tasks,
                ContendedDurations(base * shape.share / shape.tasks, per_slot),
                shape.parents,
            )
            for i, shape in enumerate(self.stages)
        )
        driver = self.serial_s(size_gb) * max(0.05, 1.0 + serial_r) - executor_startup_s
        return JobSpec(
            0,
            self.signature,
            0.0,
            stages,
            size_gb,
            driver_s=max(0.0, driver),
            signature=self.signature,
            max_cores=self.max_cores,
        )


def _chained_stages(record: JobRecord) -> list[StageShape]:
    """A record's stages in id order with their parents as indices; a stage without a recorded
    parent after the first (the first stage of the application's next Spark job) waits for
    every stage before it, since a driver runs its actions one after another."""
    ordered = sorted(record.stages, key=lambda s: s.stage_id)
    index = {s.stage_id: i for i, s in enumerate(ordered)}
    total = sum(s.task_seconds for s in ordered) or 1.0
    shapes = []
    for i, s in enumerate(ordered):
        parents = tuple(sorted(index[p] for p in s.parents if p in index and index[p] < i))
        if not parents and i:
            parents = tuple(range(i))
        shapes.append(StageShape(max(1, s.tasks), s.task_seconds / total, parents))
    return shapes


def job_from_record(record: JobRecord, executor_startup_s: float = 0.0) -> JobSpec:
    """A finished application as a simulated job, to replay it: its stages (parents as the
    record has them, a later Spark job's first stage after every stage before it), each task
    its stage's mean task time, and its serial part as the driver phase, less the executor
    start-up that the simulator adds itself."""
    ordered = sorted(record.stages, key=lambda s: s.stage_id)
    stages = tuple(
        Stage(i, shape.tasks, FixedDurations(s.task_seconds / max(1, s.tasks)), shape.parents)
        for i, (s, shape) in enumerate(zip(ordered, _chained_stages(record), strict=True))
    )
    return JobSpec(
        0,
        record.name or record.app_id,
        0.0,
        stages,
        record.input_bytes / 1e9,
        record.deadline_s,
        max(0.0, record.serial_s - executor_startup_s),
        signature=record.signature,
        max_cores=record.max_cores,
    )


def _nonneg_fit(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls  # SciPy only for fitting: a simulation of TPC-H needs none

    return np.asarray(nnls(design, target)[0], dtype=float)


def fit_signature(
    records: Sequence[JobRecord], cores_per_worker: int = 1, model: object | None = None
) -> SignatureProfile:
    """A signature's profile from its recorded runs (successful, with stages and a size); the
    stage structure is that of the runs with the most common number of stages, each stage's
    share of the work their mean. ``cores_per_worker``: the recording cluster's, to count a
    run's task slots (executors x cores, capped by its ``spark.cores.max``)."""
    runs = [r for r in records if r.success and r.stages and r.input_bytes > 0 and r.tasks > 0]
    if not runs:
        raise ValueError("no successful run with stages and a size to fit a signature on")
    signatures = {r.key for r in runs}
    if len(signatures) > 1:
        raise ValueError(f"runs of several signatures: {', '.join(sorted(signatures))}")
    counts: dict[int, int] = {}
    for r in runs:
        counts[len(r.stages)] = counts.get(len(r.stages), 0) + 1
    stage_count = max(counts, key=lambda c: (counts[c], c))
    template = [r for r in runs if len(r.stages) == stage_count]
    shapes = [_chained_stages(r) for r in template]
    latest = shapes[int(np.argmax([r.end_time for r in template]))]
    stages = tuple(
        StageShape(shape.tasks, float(np.mean([s[i].share for s in shapes])), shape.parents)
        for i, shape in enumerate(latest)
    )
    total_share = sum(s.share for s in stages) or 1.0
    stages = tuple(StageShape(s.tasks, s.share / total_share, s.parents) for s in stages)

    size = np.array([r.input_bytes / 1e9 for r in runs])
    slots = np.array(
        [min(max(1, r.executors) * cores_per_worker, r.max_cores or 10**9) - 1.0 for r in runs],
        dtype=float,
    )
    serial_t = np.array([r.serial_s for r in runs])
    work_t = np.array([r.task_seconds for r in runs])
    serial = _nonneg_fit(np.column_stack([np.ones_like(size), size]), serial_t)
    work = _nonneg_fit(np.column_stack([np.ones_like(size), size, slots, size * slots]), work_t)
    serial_hat = serial[0] + serial[1] * size
    work_hat = work[0] + work[1] * size + (work[2] + work[3] * size) * slots
    residuals = tuple(
        (
            float(st / sh - 1.0) if sh > 0 else 0.0,
            float(wt / wh - 1.0) if wh > 0 else 0.0,
        )
        for st, sh, wt, wh in zip(serial_t, serial_hat, work_t, work_hat, strict=True)
    )
    caps = {r.max_cores for r in runs}
    return SignatureProfile(
        signature=runs[0].key,
        stages=stages,
        serial=(float(serial[0]), float(serial[1])),
        work=(float(work[0]), float(work[1]), float(work[2]), float(work[3])),
        sizes_gb=(float(size.min()), float(size.max())),
        residuals=residuals,
        max_cores=caps.pop() if len(caps) == 1 else None,
        runs=len(runs),
        model=model,
    )


@dataclass
class SignatureJobs:
    """Jobs drawn from several recurring jobs, each with its own profile (its stage structure,
    serial part and work, fitted from its recorded runs): a signature by ``weights`` (equal by
    default), a size uniform in its recorded range (or ``sizes_gb`` when given)."""

    profiles: Sequence[SignatureProfile]
    weights: Sequence[float] | None = None
    sizes_gb: tuple[float, float] | None = None
    executor_startup_s: float = 0.0
    #: The recorded runs the profiles were fitted on: the history a cluster that ran them has,
    #: which a simulation hands its policy to start from.
    history: Sequence[JobRecord] = ()

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ValueError("SignatureJobs needs at least one signature")
        weights = np.asarray(self.weights or [1.0] * len(self.profiles), dtype=float)
        if len(weights) != len(self.profiles) or not (weights >= 0).all() or weights.sum() <= 0:
            raise ValueError("one non-negative weight per signature, not all zero")
        self._p = weights / weights.sum()

    def profile(self, signature: str) -> SignatureProfile:
        for p in self.profiles:
            if p.signature == signature:
                return p
        raise KeyError(f"no signature {signature!r}; have {', '.join(self.signatures)}")

    @property
    def signatures(self) -> list[str]:
        return [p.signature for p in self.profiles]

    def sample(self, rng: np.random.Generator) -> JobSpec:
        profile = self.profiles[int(rng.choice(len(self.profiles), p=self._p))]
        low, high = self.sizes_gb or profile.sizes_gb
        return profile.make(float(rng.uniform(low, high)), rng, self.executor_startup_s)


class JobSource(Protocol):
    def sample(self, rng: np.random.Generator) -> JobSpec: ...


def make_workload(
    arrivals: Arrivals,
    jobs: JobSource,
    rng: np.random.Generator,
    deadline_factor: float | None = None,
    deadline_s: float | None = None,
    slots: int | None = None,
) -> list[JobSpec]:
    """One job per arrival. A job's deadline is either fixed (``deadline_s``) or
    ``deadline_factor`` times its duration alone on the largest cluster allowed (its wave
    estimate on ``slots`` executor slots, or on as many as its widest stage when that is
    fewer), so that a cluster that grows in time can meet every deadline."""
    workload = []
    for i, arrival in enumerate(arrivals.times):
        job = jobs.sample(rng)
        deadline = deadline_s
        if deadline is None and deadline_factor is not None:
            widest = max((s.num_tasks for s in job.stages), default=1)
            deadline = deadline_factor * wave_estimate(job, min(widest, slots or widest))
        workload.append(job.with_arrival(i, float(arrival), deadline))
    return workload
