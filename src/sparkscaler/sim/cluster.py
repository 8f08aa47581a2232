"""A discrete-event simulator of a Spark standalone cluster.

What it models, because autoscaling decisions depend on it:

- workers that take a provisioning delay to join (a VM: 60-120 s; this machine's local JVMs:
  the measured 7.8-10.1 s), and an executor start-up delay the first time a job uses a worker;
- jobs as DAGs of stages of tasks, scheduled FIFO across jobs on free cores; a stage runs when
  its parents are done; task durations follow the fresh / first-wave / rest-wave effects;
- graceful decommission (no new tasks; the worker leaves when its tasks end, or at a timeout,
  when its running tasks are lost and re-run; its shuffle output has been migrated), and abrupt
  loss (running tasks and the shuffle output it held for unfinished stages are recomputed);
- the same observation fields as the real cluster, including the paper's six features, derived
  from the simulated load (see :meth:`SimCluster.features`).

Time is seconds since the simulation started; :attr:`SimCluster.start_epoch` maps it to the
calendar for the weekday/hour features.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from sparkscaler.core import ClusterState, Features, WorkerInfo
from sparkscaler.sim.workload import Draws, JobSpec, Stage, WaveKind

#: Provisioning-delay presets (uniform low, high seconds).
PROVISIONING_PRESETS: dict[str, tuple[float, float]] = {
    "vm": (60.0, 120.0),
    # benchmarks/reaction_time.py: backlog → ALIVE minus backlog → decision, 5 runs (README)
    "local": (7.8, 10.1),
}


def provisioning_range(provisioning: tuple[float, float] | str) -> tuple[float, float]:
    """(low, high) seconds of a provisioning delay given as a preset name or a range."""
    return PROVISIONING_PRESETS[provisioning] if isinstance(provisioning, str) else provisioning


#: The key of the provisioning delays' random stream, beside the seed (see SimCluster).
DELAY_STREAM = 1

#: Executor start-up on a worker's first use by a job; the local measurement (alive → executor).
LOCAL_EXECUTOR_STARTUP_S = (4.0, 5.9)


@dataclass
class SimWorker:
    id: str
    cores: int
    memory_mb: int
    launched_at: float
    state: str = "PROVISIONING"
    ready_at: float = 0.0
    gone_at: float | None = None
    busy: int = 0
    idle_since: float = 0.0
    decommission_deadline: float | None = None
    executor_ready: dict[int, float] = field(default_factory=dict)
    executor_tasks: dict[int, int] = field(default_factory=dict)
    tasks_started: dict[tuple[int, int], int] = field(default_factory=dict)
    running: set[tuple[int, int, int, int]] = field(default_factory=set)


@dataclass
class StageState:
    pending: deque[int]
    running: int = 0
    done: int = 0
    output_on: dict[int, str] = field(default_factory=dict)
    #: Run time of the stage's finished task attempts (Spark's ``executorRunTime``), recomputed
    #: ones included: what a progress-aware planner reads a stage's mean task time from.
    task_seconds: float = 0.0
    released_at: float | None = None
    completed_at: float | None = None


@dataclass
class JobState:
    spec: JobSpec
    stages: dict[int, StageState]
    children: dict[int, list[int]]
    started_at: float | None = None
    driver_done: bool = False
    finished_at: float | None = None
    done_stages: set[int] = field(default_factory=set)
    running: int = 0
    #: Workers it has had an executor on, and its task attempts lost with a worker.
    executors: int = 0
    lost_tasks: int = 0
    #: Time with no task of the job running (driver work, executor start-up, waiting for
    #: cores), counted up to ``idle_since`` while it runs: an event log's ``serial_s``.
    serial_s: float = 0.0
    idle_since: float = 0.0

    def complete(self, stage_id: int) -> bool:
        return stage_id in self.done_stages

    def runnable(self, stage_id: int) -> bool:
        return self.driver_done and self.done_stages.issuperset(self.spec.stages[stage_id].parents)


@dataclass(frozen=True)
class JobResult:
    id: int
    name: str
    arrival: float
    started: float
    finished: float
    deadline_s: float | None
    size_gb: float

    @property
    def duration_s(self) -> float:
        return self.finished - self.arrival

    @property
    def missed(self) -> bool:
        return self.deadline_s is not None and self.duration_s > self.deadline_s


EventKind = Literal["arrive", "driver", "task", "ready", "timeout", "wake"]


class SimCluster:
    """The simulated cluster. Drive it with :meth:`run_until`; change it with :meth:`launch`,
    :meth:`decommission` and :meth:`fail_worker`."""

    def __init__(
        self,
        jobs: list[JobSpec],
        *,
        cores_per_worker: int = 1,
        memory_mb_per_worker: int = 1024,
        initial_workers: int = 1,
        provisioning: tuple[float, float] | str = "vm",
        executor_startup_s: tuple[float, float] = LOCAL_EXECUTOR_STARTUP_S,
        seed: int = 0,
        start_epoch: float = 1_767_571_200.0,
        host_cores: int | None = None,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        #: Provisioning delays come from a stream of their own, the k-th worker launched taking
        #: its k-th draw: so the delays a run meets do not depend on how many task durations
        #: its policy drew before, and the oracle (which can :meth:`peek_delays`) meets the
        #: same delays in the same order as any policy on the same seed.
        self._delay_rng = np.random.default_rng([seed, DELAY_STREAM])
        self._delays: list[float] = []
        #: None: every worker is a host of its own. A number: the workers and the drivers share
        #: one host of that many cores (a local cluster on one machine, as the demo's), so a
        #: task or driver phase that starts while more tasks and driver phases run than the
        #: host has cores takes that many times longer (its share of the cores at its start).
        self.host_cores = host_cores
        self._drivers = 0
        self.draws = Draws(self.rng)
        self.cores_per_worker = cores_per_worker
        self.memory_mb_per_worker = memory_mb_per_worker
        self.provisioning = provisioning_range(provisioning)
        self.executor_startup_s = executor_startup_s
        self.start_epoch = start_epoch
        self.now = 0.0
        self.workers: dict[str, SimWorker] = {}
        self.free_workers: dict[str, SimWorker] = {}  # ALIVE with a free core, kept as we go
        self.gone: list[SimWorker] = []
        self.jobs: dict[int, JobState] = {}
        self.active: list[int] = []
        self.results: list[JobResult] = []
        self.pending_tasks = 0
        self.running_tasks = 0
        self.free_slots = 0
        self.alive_slots = 0
        self.backlog_since: float | None = None
        self.lost_task_seconds = 0.0
        self._events: list[tuple[float, int, EventKind, object]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._attempts = itertools.count()
        self._task_start: dict[int, float] = {}
        #: Called with each job as it finishes (before it is dropped): the simulator's event
        #: logs, for a :class:`~sparkscaler.backends.simulated.SimJobHistory`.
        self.finish_listeners: list[Callable[[JobState], None]] = []
        for spec in sorted(jobs, key=lambda j: j.arrival):
            self._push(spec.arrival, "arrive", spec)
        for _ in range(initial_workers):
            self._add_worker(ready_at=0.0)

    # ------------------------------------------------------------------ events
    def _push(self, time: float, kind: EventKind, payload: object) -> None:
        heapq.heappush(self._events, (time, next(self._seq), kind, payload))

    def run_until(self, until: float) -> None:
        """Process every event up to ``until`` (seconds since start), then set the time there."""
        events = self._events
        while events and events[0][0] <= until:
            time, _, kind, payload = heapq.heappop(events)
            self.now = time
            self._handle(kind, payload)
            self._schedule()
        self.now = max(self.now, until)

    @property
    def idle(self) -> bool:
        """No job running or still to arrive."""
        return not self.active and not any(kind == "arrive" for _, _, kind, _ in self._events)

    def _handle(self, kind: EventKind, payload: object) -> None:
        if kind == "arrive":
            self._arrive(payload)  # type: ignore[arg-type]
        elif kind == "driver":
            job = self.jobs[payload]  # type: ignore[index]
            job.driver_done = True
            self._drivers -= 1
            self._release(job, [s.id for s in job.spec.stages if not s.parents])
            self._finish_if_done(job)
        elif kind == "task":
            self._task_done(*payload)  # type: ignore[misc]
        elif kind == "ready":
            worker = self.workers.get(payload)  # type: ignore[arg-type]
            if worker is not None and worker.state == "PROVISIONING":
                worker.state, worker.idle_since = "ALIVE", self.now
                self.free_slots += worker.cores
                self.alive_slots += worker.cores
                self.free_workers[worker.id] = worker
        elif kind == "timeout":
            worker = self.workers.get(payload)  # type: ignore[arg-type]
            if worker is not None and worker.state == "DECOMMISSIONED":
                self._remove(worker, graceful=True)

    # ------------------------------------------------------------------ workers
    def _add_worker(self, ready_at: float) -> SimWorker:
        worker = SimWorker(
            f"sim-worker-{next(self._ids)}",
            self.cores_per_worker,
            self.memory_mb_per_worker,
            launched_at=self.now,
            ready_at=ready_at,
        )
        self.workers[worker.id] = worker
        if ready_at <= self.now:
            worker.state, worker.idle_since = "ALIVE", self.now
            self.free_slots += worker.cores
            self.alive_slots += worker.cores
            self.free_workers[worker.id] = worker
        else:
            self._push(ready_at, "ready", worker.id)
        return worker

    def peek_delays(self, count: int) -> list[float]:
        """The provisioning delays of the next ``count`` workers to be launched, in order."""
        low, high = self.provisioning
        while len(self._delays) < count:
            self._delays.append(float(self._delay_rng.uniform(low, high)))
        return self._delays[:count]

    def launch(self, count: int) -> list[str]:
        delays = self.peek_delays(count)
        del self._delays[:count]
        ids = [self._add_worker(self.now + delay).id for delay in delays]
        self._schedule()  # a worker with no provisioning delay takes tasks at once
        return ids

    def decommission(self, ids: list[str], timeout: float) -> None:
        """Graceful: a provisioning worker is cancelled; a busy one drains, or is stopped at
        ``timeout``; an idle one leaves at once."""
        for worker_id in ids:
            worker = self.workers[worker_id]
            if worker.state == "PROVISIONING" or (worker.state == "ALIVE" and not worker.busy):
                self._remove(worker, graceful=True)
            elif worker.state == "ALIVE":
                self.free_slots -= worker.cores - worker.busy
                self.alive_slots -= worker.cores
                self.free_workers.pop(worker.id, None)
                worker.state, worker.decommission_deadline = "DECOMMISSIONED", self.now + timeout
                self._push(self.now + timeout, "timeout", worker.id)

    def fail_worker(self, worker_id: str) -> None:
        """Abrupt loss: running tasks and the shuffle output held for unfinished stages are lost."""
        self._remove(self.workers[worker_id], graceful=False)
        self._schedule()

    def _remove(self, worker: SimWorker, graceful: bool) -> None:
        if worker.state == "ALIVE":
            self.free_slots -= worker.cores - worker.busy
            self.alive_slots -= worker.cores
        self.free_workers.pop(worker.id, None)
        for key in list(worker.running):
            self._lose_task(worker, key)
        worker.state, worker.gone_at, worker.busy = "GONE", self.now, 0
        del self.workers[worker.id]
        self.gone.append(worker)
        if not graceful:
            self._lose_outputs(worker.id)
            self._recount()
        self._backlog_changed()

    def _lose_task(self, worker: SimWorker, key: tuple[int, int, int, int]) -> None:
        job_id, stage_id, task, attempt = key
        worker.running.discard(key)
        worker.busy -= 1
        self.running_tasks -= 1
        self.lost_task_seconds += max(0.0, self.now - self._task_start.pop(attempt, self.now))
        job = self.jobs[job_id]
        job.running -= 1
        job.lost_tasks += 1
        if not job.running:
            job.idle_since = max(self.now, job.idle_since)
        stage = job.stages[stage_id]
        stage.running -= 1
        stage.pending.appendleft(task)
        if job.runnable(stage_id):
            self.pending_tasks += 1

    def _lose_outputs(self, worker_id: str) -> None:
        for job in self.jobs.values():
            for stage_id, stage in job.stages.items():
                children = job.children[stage_id]
                if not children or all(job.complete(c) for c in children):
                    continue
                lost = [t for t, where in stage.output_on.items() if where == worker_id]
                for task in lost:
                    del stage.output_on[task]
                    stage.done -= 1
                    stage.pending.append(task)
                if lost:
                    job.done_stages.discard(stage_id)

    # ------------------------------------------------------------------ jobs and tasks
    def _arrive(self, spec: JobSpec) -> None:
        children: dict[int, list[int]] = {s.id: [] for s in spec.stages}
        for s in spec.stages:
            for p in s.parents:
                children[p].append(s.id)
        stages = {s.id: StageState(deque(range(s.num_tasks))) for s in spec.stages}
        job = JobState(spec, stages, children, started_at=self.now, idle_since=self.now)
        self.jobs[spec.id] = job
        self.active.append(spec.id)
        if spec.driver_s > 0:
            self._push(self.now + spec.driver_s * self._host_load(), "driver", spec.id)
            self._drivers += 1
        else:
            job.driver_done = True
            self._release(job, [s.id for s in spec.stages if not s.parents])
            self._finish_if_done(job)

    def _task_done(
        self, worker_id: str, job_id: int, stage_id: int, task: int, attempt: int
    ) -> None:
        worker = self.workers.get(worker_id)
        key = (job_id, stage_id, task, attempt)
        if worker is None or key not in worker.running:
            return  # the attempt was lost with its worker
        worker.running.discard(key)
        started = self._task_start.pop(attempt, self.now)
        worker.busy -= 1
        self.running_tasks -= 1
        if worker.state == "ALIVE":
            self.free_slots += 1
            self.free_workers[worker_id] = worker
        if not worker.busy:
            worker.idle_since = self.now
        job = self.jobs[job_id]
        job.running -= 1
        if not job.running:
            job.idle_since = max(self.now, job.idle_since)
        stage = job.stages[stage_id]
        stage.running -= 1
        stage.done += 1
        stage.task_seconds += self.now - started
        stage.output_on[task] = worker_id
        if worker.state == "DECOMMISSIONED" and not worker.busy:
            self._remove(worker, graceful=True)
        if stage.done >= job.spec.stages[stage_id].num_tasks:
            job.done_stages.add(stage_id)
            stage.completed_at = self.now
            self._release(job, [c for c in job.children[stage_id] if job.runnable(c)])
            self._finish_if_done(job)

    def _finish_if_done(self, job: JobState) -> None:
        if job.driver_done and all(job.complete(s.id) for s in job.spec.stages):
            job.finished_at = self.now
            job.serial_s += max(0.0, self.now - job.idle_since)
            self.active.remove(job.spec.id)
            for listener in self.finish_listeners:
                listener(job)
            spec = job.spec
            self.results.append(
                JobResult(
                    spec.id,
                    spec.name,
                    spec.arrival,
                    job.started_at or 0.0,
                    self.now,
                    spec.deadline_s,
                    spec.size_gb,
                )
            )
            del self.jobs[spec.id]

    def _release(self, job: JobState, stage_ids: list[int]) -> None:
        """Stages that just became runnable add their tasks to the backlog."""
        for s in stage_ids:
            state = job.stages[s]
            if state.released_at is None:
                state.released_at = self.now
            self.pending_tasks += len(state.pending)
        self._backlog_changed()

    def _recount(self) -> None:
        """Pending tasks of runnable stages (Spark's active stages), counted afresh. Only lost
        shuffle output needs it (it can make runnable stages wait again); everything else keeps
        the count up to date as it goes."""
        pending = 0
        for job_id in self.active:
            job = self.jobs[job_id]
            for stage in job.spec.stages:
                if job.runnable(stage.id):
                    pending += len(job.stages[stage.id].pending)
        self.pending_tasks = pending
        self._backlog_changed()

    def _backlog_changed(self) -> None:
        if self.pending_tasks and self.backlog_since is None:
            self.backlog_since = self.now
        elif not self.pending_tasks:
            self.backlog_since = None

    def _schedule(self) -> None:
        """FIFO across jobs: the oldest job's runnable stages take free cores first."""
        if not self.pending_tasks or not self.free_slots:
            return
        free = self.free_workers
        unclaimed = self.free_slots
        for job_id in self.active:
            job = self.jobs[job_id]
            runnable = [
                s for s in job.spec.stages if job.stages[s.id].pending and job.runnable(s.id)
            ]
            if not runnable:
                continue
            # Durations are looked up by the executor slots the job holds, as in Decima: what it
            # runs now plus what this pass gives it. A job with spark.cores.max runs at most
            # that many tasks at once, leaving the other cores to the jobs behind it.
            wanted = sum(len(job.stages[s.id].pending) for s in runnable)
            cap = job.spec.max_cores
            if cap is not None:
                wanted = min(wanted, max(0, cap - job.running))
            executors = max(1, job.running + min(unclaimed, wanted))
            unclaimed -= min(unclaimed, wanted)
            allowed = wanted
            for stage in runnable:
                state = job.stages[stage.id]
                while state.pending and free and allowed:
                    worker = next(reversed(free.values()))
                    self._start(worker, job, stage, state.pending.popleft(), executors)
                    allowed -= 1
                if not free:
                    self._backlog_changed()
                    return
        self._backlog_changed()

    def _start(
        self, worker: SimWorker, job: JobState, stage: Stage, task: int, executors: int
    ) -> None:
        job_id = job.spec.id
        start = self.now
        if job_id not in worker.executor_ready:
            low, high = self.executor_startup_s
            worker.executor_ready[job_id] = self.now + self.draws.uniform(low, high)
            job.executors += 1
        start = max(start, worker.executor_ready[job_id])
        if not job.running:
            job.serial_s += max(0.0, start - job.idle_since)
            job.idle_since = start
        on_executor = worker.executor_tasks.get(job_id, 0)
        worker.executor_tasks[job_id] = on_executor + 1
        on_stage = worker.tasks_started.get((job_id, stage.id), 0)
        kind: WaveKind = (
            "fresh"
            if on_executor < worker.cores
            else "first"
            if on_stage < worker.cores
            else "rest"
        )
        worker.tasks_started[(job_id, stage.id)] = on_stage + 1
        duration = stage.durations.sample(kind, executors, self.draws)
        if self.host_cores is not None:
            duration *= self._host_load()
        attempt = next(self._attempts)
        key = (job_id, stage.id, task, attempt)
        worker.running.add(key)
        worker.busy += 1
        if worker.busy >= worker.cores:
            del self.free_workers[worker.id]
        self.running_tasks += 1
        self.pending_tasks -= 1
        self.free_slots -= 1
        self._task_start[attempt] = start
        job.stages[stage.id].running += 1
        job.running += 1
        heapq.heappush(
            self._events,
            (
                start + duration,
                next(self._seq),
                "task",
                (worker.id, job_id, stage.id, task, attempt),
            ),
        )

    def _host_load(self) -> float:
        """How many times slower work that starts now runs on the shared host: what runs (the
        one starting included) over the host's cores, at least 1; 1 with hosts of their own."""
        if self.host_cores is None:
            return 1.0
        return max(1.0, (self.running_tasks + self._drivers + 1) / self.host_cores)

    # ------------------------------------------------------------------ observation
    def worker_infos(self) -> tuple[WorkerInfo, ...]:
        now = self.now
        return tuple(
            WorkerInfo(
                w.id,
                w.id,
                0,
                w.state,
                w.cores,
                w.busy,
                w.memory_mb,
                w.memory_mb if w.busy else 0,
                now - w.idle_since if w.state == "ALIVE" and not w.busy else 0.0,
                running_tasks=w.busy,
                pending_s=now - w.launched_at if w.state == "PROVISIONING" else 0.0,
            )
            for w in self.workers.values()
        )

    def cluster_state(self) -> ClusterState:
        return ClusterState(workers=self.worker_infos())

    def features(self) -> Features:
        """The paper's six features from the simulated load.

        The simulator has no bytes or CPU counters, so these are proxies with the shape the real
        ones have: CPU user/system are the busy cores' share (90 % user, 6 % system, as Spark
        tasks measured here spend); storage memory is the running jobs' cached input (half of
        it, capped by the cluster's memory); execution memory is 30 % of a core's memory per
        running task; network in/out is the share of cores reading (stages with parents) or
        writing shuffle data (stages with children), at half the link each.
        """
        up = [w for w in self.workers.values() if w.state in ("ALIVE", "DECOMMISSIONED")]
        slots = sum(w.cores for w in up)  # draining workers still run tasks
        memory = sum(w.memory_mb for w in up)
        if not slots:
            return Features()
        busy = self.running_tasks
        reading = writing = 0
        cached_mb = 0.0
        for job_id in self.active:
            job = self.jobs[job_id]
            cached_mb += job.spec.size_gb * 1024 * 0.5
            for stage in job.spec.stages:
                running = job.stages[stage.id].running
                reading += running if stage.parents else 0
                writing += running if job.children[stage.id] else 0
        per_core_mb = memory / slots
        return Features(
            cu=100.0 * 0.90 * busy / slots,
            cs=100.0 * 0.06 * busy / slots,
            mt=min(100.0, 100.0 * cached_mb / memory),
            ma=min(100.0, 100.0 * 0.3 * per_core_mb * busy / memory),
            bi=min(100.0, 50.0 * reading / slots),
            bo=min(100.0, 50.0 * writing / slots),
        )

    def worker_seconds(self, until: float | None = None) -> float:
        """Billed time of every worker: from the launch request until it is gone, counted up
        to ``until`` (default: now), so that a run can be billed up to its last job's end."""
        end = self.now if until is None else min(until, self.now)
        spans = [(w.launched_at, end) for w in self.workers.values()]
        spans += [(w.launched_at, w.gone_at if w.gone_at is not None else end) for w in self.gone]
        return sum(max(0.0, min(stop, end) - start) for start, stop in spans)

    def missed_jobs(self) -> set[int]:
        """Jobs that finished after their deadline, or are still running past it."""
        missed = {r.id for r in self.results if r.missed}
        return missed | {
            j.spec.id
            for j in self.jobs.values()
            if j.spec.deadline_s is not None and self.now - j.spec.arrival > j.spec.deadline_s
        }

    def oldest_job(self) -> JobState | None:
        return self.jobs[self.active[0]] if self.active else None

    def deadline_s(self) -> float | None:
        deadlines = [self.jobs[j].spec.deadline_s for j in self.active]
        known = [d for d in deadlines if d is not None]
        return min(known) if known else None

    def input_gb(self) -> float:
        return sum(self.jobs[j].spec.size_gb for j in self.active)

    def elapsed_oldest(self) -> float | None:
        job = self.oldest_job()
        return None if job is None else self.now - job.spec.arrival

    def wait_hint(self) -> float:
        """Seconds until the next event (math.inf when none): lets callers skip dead time."""
        return self._events[0][0] - self.now if self._events else math.inf
