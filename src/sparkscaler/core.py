"""Plain data that flows through the loop: what the cluster looks like, what a policy decided.

These dataclasses are deliberately dumb (no I/O, no clocks) so that the same values come out of a
real Spark master, the simulator or a test, and so that every one of them can be written to the
store as JSON and read back.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from sparkscaler.units import parse_duration

#: The application property through which a job tells sparkscaler its deadline T: seconds or a
#: duration as Spark writes them (``300``, ``300s``, ``5min``, ``1h``).
DEADLINE_PROPERTY = "spark.sparkscaler.deadline"

#: The application property through which a job tells sparkscaler the size of its whole input:
#: bytes, or a size in Spark's notation (``2g``, ``512m``, ``300k``, binary as in Spark).
INPUT_BYTES_PROPERTY = "spark.sparkscaler.inputBytes"

#: The application property that names a recurring job (its signature): runs with the same value
#: are the same program on new data, and share what sparkscaler learned of them. Without it the
#: application's name is the signature.
SIGNATURE_PROPERTY = "spark.sparkscaler.job"

#: The states in which a worker still counts towards the cluster's size.
SERVING_STATES: frozenset[str] = frozenset({"ALIVE"})


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as the master reports it, plus what it is doing and how long it has idled.

    ``cores_used`` is what the master allocated to executors, which a standalone executor
    keeps for its application's whole life; ``running_tasks`` (from the applications' REST
    API) says whether the worker is actually working. ``idle_s`` is tracked by the observer
    across observations; idle-timeout rules such as Spark dynamic allocation's need it.
    ``pending_s`` is how long ago a PROVISIONING worker was asked for (0 in every other state),
    from the backend that launched it: a worker asked for 100 s ago arrives sooner than one
    asked for now, and a planner that took every pending worker for a fresh request kept
    asking for more while they booted.
    """

    id: str
    host: str
    port: int
    state: str
    cores: int
    cores_used: int
    memory_mb: int
    memory_used_mb: int
    idle_s: float = 0.0
    running_tasks: int | None = None
    pending_s: float = 0.0

    @property
    def busy(self) -> bool:
        """Running tasks when known (from the apps' executors); else cores allocated."""
        if self.running_tasks is not None:
            return self.running_tasks > 0
        return self.cores_used > 0

    @property
    def serving(self) -> bool:
        return self.state in SERVING_STATES


@dataclass(frozen=True)
class AppInfo:
    """A running Spark application, as the master lists it."""

    id: str
    name: str
    cores: int
    start_time: float
    state: str = "RUNNING"


@dataclass(frozen=True)
class ClusterState:
    """The master's view of the cluster at one instant.

    Its totals are cached: the store, the guard and the policy each read them every decision,
    and a simulated cluster has a hundred workers to add up.
    """

    workers: tuple[WorkerInfo, ...] = ()
    active_apps: tuple[AppInfo, ...] = ()
    waiting_apps: int = 0
    waiting_drivers: int = 0

    @cached_property
    def alive(self) -> tuple[WorkerInfo, ...]:
        """Cached: the summary, the guard and the policies all ask for it every decision."""
        return tuple(w for w in self.workers if w.serving)

    @cached_property
    def alive_workers(self) -> int:
        return len(self.alive)

    @cached_property
    def provisioning_workers(self) -> int:
        """Workers asked for but not yet ALIVE (a VM booting); they count towards the size."""
        return sum(1 for w in self.workers if w.state == "PROVISIONING")

    @cached_property
    def decommissioning_workers(self) -> int:
        return sum(1 for w in self.workers if w.state == "DECOMMISSIONED")

    @cached_property
    def cores_total(self) -> int:
        return sum(w.cores for w in self.alive)

    @cached_property
    def cores_used(self) -> int:
        return sum(w.cores_used for w in self.alive)

    @cached_property
    def memory_total_mb(self) -> int:
        return sum(w.memory_mb for w in self.alive)

    @cached_property
    def memory_used_mb(self) -> int:
        return sum(w.memory_used_mb for w in self.alive)

    @cached_property
    def cores_per_worker(self) -> float | None:
        """Mean cores of the serving workers, or None for an empty cluster."""
        alive = self.alive
        return sum(w.cores for w in alive) / len(alive) if alive else None


@dataclass(frozen=True)
class Features:
    """The OLA 2019 paper's six state features, each a percentage in [0, 100].

    cu/cs: CPU user/system time spent on the cluster's work over the interval, as a share of the
    cores of the ALIVE workers; mt/ma: Spark storage ("transformations") and execution
    ("actions") memory as a share of the executors' unified memory; bi/bo: bytes into/out of
    the workers over the interval as a share of what their hosts' links (``metrics.
    link_capacity_mbit`` each) carry in that time. The observe package says how each source
    (psutil on this machine, Spark's own metrics for any host, the simulator) measures them.
    """

    cu: float = 0.0
    cs: float = 0.0
    mt: float = 0.0
    ma: float = 0.0
    bi: float = 0.0
    bo: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        return (self.cu, self.cs, self.mt, self.ma, self.bi, self.bo)


def time_features(epoch_s: float) -> tuple[int, int, int]:
    """(weekday 0=Monday, hour, minute of day) in the machine's local time zone.

    Local time because load follows the users' working day, which is what a weekday/hour
    forecaster has to learn.
    """
    t = dt.datetime.fromtimestamp(epoch_s)
    return t.weekday(), t.hour, t.hour * 60 + t.minute


@dataclass(frozen=True)
class StageProgress:
    """One stage of a running job as Spark's REST API reports it (the simulator fills in the same
    numbers): what a progress-aware planner needs to tell the work done from the work left.

    ``done`` counts completed task indices (a failed attempt stays to do until its retry
    succeeds); ``task_seconds`` is the run time of the stage's tasks so far (Spark's
    ``executorRunTime``), so ``task_seconds / done`` is the stage's mean task time once tasks
    have finished. ``status`` is Spark's: ACTIVE, COMPLETE, PENDING, SKIPPED or FAILED.
    """

    stage_id: int
    tasks: int
    done: int = 0
    running: int = 0
    task_seconds: float = 0.0
    input_bytes: float = 0.0
    status: str = "ACTIVE"


@dataclass(frozen=True)
class JobContext:
    """One running job (a Spark application) as the observation carries it: what a planner
    needs to size the cluster for this job's own deadline rather than for the load as a whole.

    ``signature`` keys a recurring job (:data:`SIGNATURE_PROPERTY`, else the application's
    name). ``input_bytes`` is the job's whole input where known: declared
    (``input_source="declared"``), or taken from its first stage's input metrics once that
    stage has read some (``"first stage"``: bytes read scaled up by the share of its tasks
    done); None otherwise (``"unknown"``). ``stages`` are the stages Spark has been given so
    far, oldest first: stages a job submits later are not known until then (its signature's
    history says what is still to come). ``max_cores`` is ``spark.cores.max`` (None: every
    free core, a standalone master's default); ``cores`` what it holds now.
    """

    app_id: str
    name: str
    signature: str
    elapsed_s: float
    deadline_s: float | None = None
    input_bytes: float | None = None
    input_source: Literal["declared", "first stage", "unknown"] = "unknown"
    stages: tuple[StageProgress, ...] = ()
    cores: int = 0
    max_cores: int | None = None

    @property
    def tasks_done(self) -> int:
        return sum(s.done for s in self.stages)

    @property
    def tasks_left(self) -> int:
        """Tasks of the known stages still to finish (running ones included)."""
        return sum(max(0, s.tasks - s.done) for s in self.stages if s.status != "SKIPPED")

    @property
    def task_seconds(self) -> float:
        return sum(s.task_seconds for s in self.stages)


@dataclass(frozen=True)
class Observation:
    """Everything a policy may look at for one decision (DESIGN.md, "Observation").

    ``stale`` is true when the master did not answer: the cluster fields then repeat nothing and
    the guard holds instead of acting on a blind guess. ``min_workers``/``max_workers`` are the
    bounds the controller enforces (N in the paper), which Spark's own allocation rule and the
    paper's action set both need to know.
    """

    time: float
    cluster: ClusterState = field(default_factory=ClusterState)
    running_tasks: int = 0
    pending_tasks: int = 0
    backlog_age_s: float = 0.0
    features: Features = field(default_factory=Features)
    #: The whole input of the running jobs, in bytes, where known: the job's size (what a
    #: runtime model takes as the size), not what it has read so far. The simulator knows every
    #: job's size; a Spark job declares it in ``spark.sparkscaler.inputBytes``; None when no
    #: running job's size is known.
    input_bytes: float | None = None
    oldest_job_elapsed_s: float | None = None
    deadline_s: float | None = None
    min_workers: int = 0
    max_workers: int | None = None
    stale: bool = False
    errors: tuple[str, ...] = ()
    #: Settings of running jobs that were ignored (a deadline that is not a duration, an input
    #: size that is not a size): the decision goes ahead without them, and its reason says so,
    #: since the job's owner reads the decision history, not the autoscaler's log.
    warnings: tuple[str, ...] = ()
    #: The input the running jobs have read so far, in bytes (None with no job running): Spark
    #: executors' ``totalInputBytes``; in the simulator, each job's size times the share of its
    #: input stages' tasks that are done. With ``input_bytes`` it gives a job's progress (a job
    #: that reads its input more than once reads more than its size).
    input_read_bytes: float | None = None
    #: The running jobs one by one, oldest first, where the source can tell them apart (every
    #: backend does): signature, size, deadline and stage progress of each. The aggregate
    #: fields above summarise them for the policies that look at the load as a whole.
    jobs: tuple[JobContext, ...] = ()

    @property
    def weekday(self) -> int:
        return time_features(self.time)[0]

    @property
    def hour(self) -> int:
        return time_features(self.time)[1]

    @property
    def minute_of_day(self) -> int:
        return time_features(self.time)[2]

    @property
    def job_running(self) -> bool:
        """Whether any job is in the cluster, by any sign the observation carries."""
        return (
            self.oldest_job_elapsed_s is not None
            or self.running_tasks > 0
            or self.pending_tasks > 0
            or self.input_bytes is not None
        )

    @property
    def workers(self) -> int:
        """The cluster's size: ALIVE workers plus those being provisioned, as HPA counts pods
        that are not ready yet, so that a slow boot does not make the controller launch twice.
        Decommissioning workers do not count: they are on their way out."""
        return self.cluster.alive_workers + self.cluster.provisioning_workers

    def summary(self) -> dict[str, Any]:
        """The flat numbers that the store keeps one column each for."""
        c = self.cluster
        return {
            "time": self.time,
            "workers": c.alive_workers,
            "decommissioning": c.decommissioning_workers,
            "provisioning": c.provisioning_workers,
            "cores_total": c.cores_total,
            "cores_used": c.cores_used,
            "memory_total_mb": c.memory_total_mb,
            "memory_used_mb": c.memory_used_mb,
            "running_apps": len(c.active_apps),
            "waiting_apps": c.waiting_apps,
            "running_tasks": self.running_tasks,
            "pending_tasks": self.pending_tasks,
            "backlog_age_s": self.backlog_age_s,
            "cu": self.features.cu,
            "cs": self.features.cs,
            "mt": self.features.mt,
            "ma": self.features.ma,
            "bi": self.features.bi,
            "bo": self.features.bo,
            "stale": self.stale,
            "waiting_drivers": c.waiting_drivers,
            "input_bytes": self.input_bytes,
            "input_read_bytes": self.input_read_bytes,
            "oldest_job_elapsed_s": self.oldest_job_elapsed_s,
            "deadline_s": self.deadline_s,
        }


@dataclass(frozen=True)
class Decision:
    """A policy's answer: the worker count it wants, and why, in one line a person can read."""

    target: int
    policy: str
    reason: str
    model_version: str = ""
    #: A forecaster's expected peak demand (running + pending tasks) over its horizon, kept so
    #: that forecast and actual demand can be compared afterwards; None for other policies.
    forecast_tasks: float | None = None
    #: A planner's projected whole run time (seconds from the job's start) of each running job
    #: on the target, by application id: kept so that predicted and actual run times can be
    #: compared once the jobs have finished (the demo's report, the benchmarks).
    predicted_s: Mapping[str, float] = field(default_factory=dict)
    #: A residual agent's base: the planner's target its action changed (None for other
    #: policies). Kept so that a store's transitions can be learned from as the env learns them:
    #: the action is the change to this base, and the state's ``plan`` field is this base.
    base_target: int | None = None


Action = Literal["scale_out", "scale_in", "none", "hold"]


@dataclass(frozen=True)
class GuardedDecision:
    """What the guard made of a policy's decision: the target that will be acted on."""

    decision: Decision | None
    current: int
    target: int
    action: Action
    reason: str


@dataclass(frozen=True)
class StageSummary:
    """One finished stage of a finished application, from its event log: the stage structure
    that a recurring job's history keeps (how many tasks, how much task time, how much input),
    so that a running job's stages still to come can be estimated from its earlier runs."""

    stage_id: int
    tasks: int
    task_seconds: float
    input_bytes: float = 0.0
    duration_s: float = 0.0
    parents: tuple[int, ...] = ()


@dataclass(frozen=True)
class JobRecord:
    """One finished Spark application, from its event log: the history that models learn from.

    ``signature`` keys a recurring job (:data:`SIGNATURE_PROPERTY`, else the name);
    ``serial_s`` is the time no task of the application was running (driver start-up, driver
    work between stages, shutdown): the part more workers cannot shorten. ``max_cores`` is its
    ``spark.cores.max``; ``first_stage_input_bytes`` the input its first stage read.
    """

    app_id: str
    name: str
    submit_time: float
    end_time: float
    tasks: int
    failed_tasks: int
    task_seconds: float
    executors: int
    workers: int
    input_bytes: int
    spark_jobs: int
    success: bool
    deadline_s: float | None = None
    signature: str = ""
    stages: tuple[StageSummary, ...] = ()
    serial_s: float = 0.0
    max_cores: int | None = None
    first_stage_input_bytes: int = 0

    @property
    def duration_s(self) -> float:
        return self.end_time - self.submit_time

    @property
    def key(self) -> str:
        """The recurring job this run belongs to: its signature, or its name without one."""
        return self.signature or self.name

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRecord:
        """A record from its ``dataclasses.asdict`` form (the store's JSON), older records with
        fewer fields included."""
        values = dict(data)
        values["stages"] = tuple(
            StageSummary(**{**s, "parents": tuple(s.get("parents", ()))})
            for s in values.get("stages", ())
        )
        return cls(**values)


def job_deadline(value: str | float) -> float:
    """A job's ``spark.sparkscaler.deadline`` in seconds; ValueError naming the property if it
    is not a positive duration. One reader for the live apps and their event logs."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"{DEADLINE_PROPERTY}={value!r} is not a duration") from None
    if not seconds > 0:
        raise ValueError(f"{DEADLINE_PROPERTY}={value!r} is not a positive duration")
    return seconds


_SIZE = re.compile(r"^(\d+)\s*([kmgtp]?)b?$")
_SIZE_UNITS = "_kmgtp"


def job_input_bytes(value: str | float) -> float:
    """A job's ``spark.sparkscaler.inputBytes`` in bytes: a number of bytes (``2000000000``,
    ``2e9``) or Spark's size notation (``2g``, ``512mb``, binary units); ValueError naming the
    property otherwise, as :func:`job_deadline` does."""
    text = str(value).strip().lower()
    match = _SIZE.match(text)
    if match is not None:
        size = float(int(match.group(1)) * 1024 ** _SIZE_UNITS.index(match.group(2) or "_"))
    else:
        try:
            size = float(text)
        except ValueError:
            raise ValueError(f"{INPUT_BYTES_PROPERTY}={value!r} is not a size in bytes") from None
    if not 0 < size < float("inf"):
        raise ValueError(f"{INPUT_BYTES_PROPERTY}={value!r} is not a positive size in bytes")
    return size


def choose_victims(cluster: ClusterState, count: int) -> list[str]:
    """Workers to remove: still-provisioning ones first (nothing to lose), then idle ones
    (longest idle first), then the least busy."""
    candidates = [w for w in cluster.workers if w.state in ("PROVISIONING", "ALIVE")]
    ranked = sorted(
        candidates, key=lambda w: (w.state != "PROVISIONING", w.cores_used, -w.idle_s, w.id)
    )
    return [w.id for w in ranked[:count]]
