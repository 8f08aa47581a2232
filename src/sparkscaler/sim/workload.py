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
