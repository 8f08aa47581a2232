"""The simulator behind the same three interfaces the real cluster fills: ``Backend``,
``Clock`` and ``Observer``. The controller drives it exactly as it drives local JVMs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sparkscaler.core import (
    AppInfo,
    ClusterState,
    JobContext,
    JobRecord,
    Observation,
    StageProgress,
    StageSummary,
    WorkerInfo,
)
from sparkscaler.sim.cluster import JobState, SimCluster
from sparkscaler.sim.workload import JobSpec


class SimulatedBackend:
    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim
        self.scale_outs = 0
        self.scale_ins = 0

    def workers(self) -> list[WorkerInfo]:
        return list(self.sim.worker_infos())

    def launch(self, count: int) -> list[str]:
        """Asks for workers and returns at once: they join after the provisioning delay, and
        count towards the cluster's size (PROVISIONING) meanwhile."""
        self.scale_outs += 1
        return self.sim.launch(count)

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        self.scale_ins += 1
        self.sim.decommission(list(ids), timeout)

    def unreachable(self) -> dict[str, str]:
        """Simulated hosts always answer."""
        return {}


class SimClock:
    """Simulated time: ``sleep`` runs the simulation forward instead of waiting."""

    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim

    def now(self) -> float:
        return self.sim.start_epoch + self.sim.now

    def sleep(self, seconds: float) -> None:
        self.sim.run_until(self.sim.now + max(0.0, seconds))


def input_read_bytes(sim: SimCluster) -> float:
    """What the running jobs have read of their input: each job's size times the share of its
    input stages' (those without parents) tasks that are done, as Spark's executors count
    ``totalInputBytes`` as their input tasks finish."""
    return sum(job_read_bytes(sim.jobs[job_id]) for job_id in sim.active)


def job_read_bytes(job: JobState) -> float:
    """One running job's share of :func:`input_read_bytes`."""
    inputs = [s for s in job.spec.stages if not s.parents]
    tasks = sum(s.num_tasks for s in inputs)
    done = sum(min(job.stages[s.id].done, s.num_tasks) for s in inputs)
    return job.spec.size_gb * 1e9 * done / tasks if tasks else 0.0


def app_id(job_id: int) -> str:
    """A simulated job's application id, in running apps and job contexts alike."""
    return f"sim-job-{job_id}"


def held_cores(sim: SimCluster) -> dict[int, int]:
    """Cores each running job holds: those of every worker where it has an executor (a
    standalone executor keeps its cores for its application's whole life)."""
    workers = sim.workers.values()
    return {
        job_id: sum(w.cores for w in workers if job_id in w.executor_ready) for job_id in sim.active
    }


def running_apps(sim: SimCluster, cores: dict[int, int] | None = None) -> tuple[AppInfo, ...]:
    """The running jobs as the master lists applications: started at arrival, holding
    :func:`held_cores`."""
    cores = held_cores(sim) if cores is None else cores
    apps = []
    for job_id in sim.active:
        spec = sim.jobs[job_id].spec
        apps.append(
            AppInfo(app_id(job_id), spec.name, cores[job_id], sim.start_epoch + spec.arrival)
        )
    return tuple(apps)


def cluster_state(sim: SimCluster, cores: dict[int, int] | None = None) -> ClusterState:
    """The simulator's workers with its running jobs as the master's applications."""
    return dataclasses.replace(sim.cluster_state(), active_apps=running_apps(sim, cores))


def stage_progress(job: JobState) -> tuple[StageProgress, ...]:
    """A running job's stages as Spark's REST API reports them: COMPLETE once all its tasks are
    done (output lost with a worker makes it ACTIVE again), ACTIVE once it can run (driver
    phase over, parents complete), PENDING before. An input stage (no parents) has read the
    job's size times the share of the input tasks that are done, as :func:`input_read_bytes`."""
    spec = job.spec
    input_tasks = sum(s.num_tasks for s in spec.stages if not s.parents)
    per_task = spec.size_gb * 1e9 / input_tasks if input_tasks else 0.0
    out = []
    for stage in spec.stages:
        state = job.stages[stage.id]
        done = min(state.done, stage.num_tasks)
        if job.complete(stage.id):
            status = "COMPLETE"
        elif job.runnable(stage.id):
            status = "ACTIVE"
        else:
            status = "PENDING"
        out.append(
            StageProgress(
                stage.id,
                stage.num_tasks,
                done,
                state.running,
                state.task_seconds,
                0.0 if stage.parents else per_task * done,
                status,
            )
        )
    return tuple(out)


def job_contexts(
    sim: SimCluster, cores: dict[int, int], default_deadline_s: float | None = None
) -> tuple[JobContext, ...]:
    """The running jobs one by one, oldest first, as the real observer reports applications:
    signature, declared size (every simulated job declares its size), deadline (the job's, else
    ``default_deadline_s``), elapsed time since arrival, stage progress and cores held."""
    out = []
    for job_id in sim.active:
        job = sim.jobs[job_id]
        spec = job.spec
        size = spec.size_gb * 1e9
        deadline = spec.deadline_s if spec.deadline_s is not None else default_deadline_s
        out.append(
            JobContext(
                app_id(job_id),
                spec.name,
                spec.key,
                sim.now - spec.arrival,
                deadline,
                size if size > 0 else None,
                "declared" if size > 0 else "unknown",
                stage_progress(job),
                cores[job_id],
                spec.max_cores,
            )
        )
    return tuple(out)


class SimObserver:
    """Observations of the simulated cluster, with the same fields, in the same units and with
    the same meaning as the real observer's (``tests/test_observation_contract.py`` checks).

    ``api_delay_s``: how long after its application starts a job's REST API first answers. On
    a real cluster the master lists a new application at once, but its driver's REST API comes
    up later (10-30 s on this busy 2-core machine): until then the observer knows the app, the
    cores it holds and its age, and nothing else of it (its tasks, size, deadline and job
    context), and says so in ``errors``, as the real observer does. 0: every job is known at
    once.
    """

    def __init__(
        self, sim: SimCluster, default_deadline_s: float | None = None, api_delay_s: float = 0.0
    ) -> None:
        self.sim = sim
        self.default_deadline_s = default_deadline_s
        self.api_delay_s = api_delay_s

    def close(self) -> None:
        """Nothing to release: the simulator holds no connections."""

    def observe(self) -> Observation:
        sim = self.sim
        backlog = 0.0 if sim.backlog_since is None else sim.now - sim.backlog_since
        deadline = sim.deadline_s()
        cores = held_cores(sim)
        obs = Observation(
            time=sim.start_epoch + sim.now,
            cluster=cluster_state(sim, cores),
            running_tasks=sim.running_tasks,
            pending_tasks=sim.pending_tasks,
            backlog_age_s=backlog,
            features=sim.features(),
            input_bytes=sim.input_gb() * 1e9 if sim.active else None,
            input_read_bytes=input_read_bytes(sim) if sim.active else None,
            oldest_job_elapsed_s=sim.elapsed_oldest(),
            deadline_s=deadline if deadline is not None else self.default_deadline_s,
            jobs=job_contexts(sim, cores, self.default_deadline_s),
        )
        if self.api_delay_s > 0:
            return self._without_unanswered(obs)
        return obs

    def _without_unanswered(self, obs: Observation) -> Observation:
        """``obs`` less what the jobs whose REST API has not answered yet would have told."""
        sim = self.sim
        hidden = [
            sim.jobs[j] for j in sim.active if sim.now - sim.jobs[j].spec.arrival < self.api_delay_s
        ]
        if not hidden:
            return obs
        ids = {app_id(job.spec.id) for job in hidden}
        running = sum(job.running for job in hidden)
        pending = sum(
            len(job.stages[s.id].pending)
            for job in hidden
            for s in job.spec.stages
            if job.runnable(s.id)
        )
        shown = [j for j in obs.jobs if j.app_id not in ids]
        seen = [sim.jobs[j].spec for j in sim.active if app_id(j) not in ids]
        deadlines = [spec.deadline_s for spec in seen if spec.deadline_s is not None]
        sized = [j.input_bytes for j in shown if j.input_bytes is not None]
        pending_left = obs.pending_tasks - pending
        return dataclasses.replace(
            obs,
            running_tasks=obs.running_tasks - running,
            pending_tasks=pending_left,
            backlog_age_s=obs.backlog_age_s if pending_left else 0.0,
            input_bytes=sum(sized) if sized else None,
            input_read_bytes=(obs.input_read_bytes or 0.0)
            - sum(job_read_bytes(job) for job in hidden),
            deadline_s=min(deadlines) if deadlines else self.default_deadline_s,
            errors=tuple(f"no REST API found for application {i}" for i in sorted(ids)),
            jobs=tuple(shown),
        )


def job_record(sim: SimCluster, job: JobState) -> JobRecord:
    """A finished simulated job as its event log would give it: signature (``JobSpec.
    signature``, empty when it has none, as an app without ``spark.sparkscaler.job``), declared
    size, executors it had (one per worker), task-seconds and stages, serial part."""
    spec = job.spec
    stages = []
    for stage in spec.stages:
        state = job.stages[stage.id]
        released = state.released_at if state.released_at is not None else job.started_at
        completed = state.completed_at if state.completed_at is not None else job.finished_at
        stages.append(
            StageSummary(
                stage.id,
                stage.num_tasks,
                state.task_seconds,
                0.0 if stage.parents else spec.size_gb * 1e9 * stage.num_tasks / _input_tasks(spec),
                max(0.0, (completed or 0.0) - (released or 0.0)),
                stage.parents,
            )
        )
    first = next((s for s in stages if not s.parents), None)
    start = sim.start_epoch + spec.arrival
    return JobRecord(
        app_id=app_id(spec.id),
        name=spec.name,
        submit_time=start,
        end_time=sim.start_epoch + (job.finished_at if job.finished_at is not None else sim.now),
        tasks=sum(s.num_tasks for s in spec.stages),
        failed_tasks=job.lost_tasks,
        task_seconds=sum(s.task_seconds for s in stages),
        executors=job.executors,
        workers=job.executors,
        input_bytes=int(spec.size_gb * 1e9),
        spark_jobs=1,
        success=True,
        deadline_s=spec.deadline_s,
        signature=spec.signature,
        stages=tuple(stages),
        serial_s=job.serial_s,
        max_cores=spec.max_cores,
        first_stage_input_bytes=int(first.input_bytes) if first is not None else 0,
    )


def _input_tasks(spec: JobSpec) -> int:
    return sum(s.num_tasks for s in spec.stages if not s.parents) or 1


class SimJobHistory:
    """The simulator's finished jobs as a loop's job history (``observe.history.JobHistory``):
    each job that finishes is handed over once, as a :class:`JobRecord` its event log would
    give, so that a policy in the simulator learns from finished jobs as on a real cluster.

    The controller refits the policy on the whole stored history whenever jobs finish, which a
    simulated week of thousands of jobs would make quadratic, while a recurring job's runtime
    model has stopped changing long before. So ``runs_per_signature`` hands over only the first
    that many runs of each signature (None: every run), and ``every_s`` hands finished jobs over
    at most once per that many simulated seconds, together (0: as soon as they finish).
    """

    def __init__(
        self, sim: SimCluster, runs_per_signature: int | None = None, every_s: float = 0.0
    ) -> None:
        self.sim = sim
        self.runs_per_signature = runs_per_signature
        self.every_s = every_s
        self._runs: dict[str, int] = {}
        self._new: list[JobRecord] = []
        self._handed_at: float | None = None
        sim.finish_listeners.append(self._finished)

    def _finished(self, job: JobState) -> None:
        key = job.spec.key
        seen = self._runs.get(key, 0)
        if self.runs_per_signature is not None and seen >= self.runs_per_signature:
            return
        self._runs[key] = seen + 1
        self._new.append(job_record(self.sim, job))

    def poll(self) -> list[JobRecord]:
        if not self._new:
            return []
        if self._handed_at is not None and self.sim.now - self._handed_at < self.every_s:
            return []
        self._handed_at = self.sim.now
        new, self._new = self._new, []
        return new


def run_alone(
    spec: JobSpec,
    workers: int,
    *,
    cores_per_worker: int = 1,
    executor_startup_s: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
) -> JobRecord:
    """``spec`` run on its own on ``workers`` workers that are up before it arrives: its
    record, as a recording run of a real job on a fixed cluster gives one (to check a profile
    against the runs it was fitted on, or to make runs to fit one on)."""
    sim = SimCluster(
        [dataclasses.replace(spec, id=0, arrival=0.0)],
        cores_per_worker=cores_per_worker,
        initial_workers=workers,
        executor_startup_s=executor_startup_s,
        seed=seed,
    )
    history = SimJobHistory(sim)
    sim.run_until(YEAR_S)
    (record,) = history.poll()
    return record


#: Longer than any simulated job runs.
YEAR_S = 365 * 86_400.0
