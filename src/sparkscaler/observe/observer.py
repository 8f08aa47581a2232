"""Builds one :class:`Observation` per interval from the master, the apps' REST API and the
CPU/network source: psutil for workers on this machine, Spark's own metrics for any other.

The observer is where state that spans observations lives (how long a worker has been idle, how
old the backlog is), so that the policies can stay pure functions of one observation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from sparkscaler.clock import Clock
from sparkscaler.config import Config
from sparkscaler.core import ClusterState, Features, Observation, WorkerInfo
from sparkscaler.errors import SparkscalerError
from sparkscaler.observe.host import HostSampler
from sparkscaler.observe.spark_app import AppClient, AppLoad
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable
from sparkscaler.observe.spark_metrics import SparkMetricsSampler


class Observer(Protocol):
    """Where a loop's observations come from: a real cluster, or the simulator."""

    def observe(self) -> Observation: ...

    def close(self) -> None: ...


class ActivitySampler(Protocol):
    """A source of the CPU and network features: (cu, cs, bi, bo) over the last interval."""

    def sample(
        self, now: float, cluster: ClusterState, loads: Sequence[AppLoad]
    ) -> tuple[float, float, float, float]: ...


class SparkObserver:
    """Observes a real standalone cluster; never raises for an unreachable source.

    A stale observation (master unreachable) carries the last cluster state that was seen, so
    that a hold can say what it holds at; the guard never acts on it.

    ``Observation.jobs`` holds each running application whose REST API answered, oldest first
    (by the master's start time): one whose API is not found yet (a driver still starting) is
    left out, since its signature and settings are unknown, and the observation's errors name
    it; the aggregate fields count it where the master's view can.

    ``provisioning`` is the backend's list of workers (``Backend.workers``): those it has been
    asked for and that the master does not list yet are PROVISIONING in the observation, as in
    the simulator, so that a slow start is not taken for a missing worker and launched again.
    """

    def __init__(
        self,
        master: MasterClient,
        apps: AppClient,
        clock: Clock,
        host: ActivitySampler | None = None,
        default_deadline_s: float | None = None,
        provisioning: Callable[[], Iterable[WorkerInfo]] | None = None,
    ) -> None:
        self.master = master
        self.apps = apps
        self.clock = clock
        self.host = host
        self.default_deadline_s = default_deadline_s
        self.provisioning = provisioning
        self._busy_until: dict[str, float] = {}
        self._asked_at: dict[str, float] = {}  # host -> when its PROVISIONING worker was asked for
        self._backlog_seen: float | None = None
        self._last_cluster = ClusterState()

    @classmethod
    def from_config(
        cls,
        config: Config,
        clock: Clock,
        roots: Callable[[], Iterable[int]] | None = None,
        provisioning: Callable[[], Iterable[WorkerInfo]] | None = None,
    ) -> SparkObserver:
        """``roots``: pids of this machine's worker daemons, whose process trees psutil measures
        for the CPU and network features. Without them (a cluster sparkscaler attached to, or
        workers on other hosts) the features come from Spark's own metrics, which reach every
        host. ``provisioning``: the backend's ``workers`` (see the class)."""
        timeout = config.metrics.request_timeout_s
        link = config.metrics.link_capacity_mbit
        local = roots is not None and config.backend == "local" and not config.cluster.attach
        return cls(
            MasterClient(config.cluster.master_ui_url, timeout),
            AppClient(
                config.cluster.master_ui_url,
                config.cluster.master_host,
                config.cluster.app_ui_ports,
                timeout,
            ),
            clock,
            HostSampler(link, roots) if local else SparkMetricsSampler(link),
            config.deadline_s,
            provisioning,
        )

    def close(self) -> None:
        self.master.close()
        self.apps.close()

    def _with_idle_times(self, cluster: ClusterState, now: float) -> ClusterState:
        """Each worker's seconds since it last ran a task (0 while busy)."""
        workers = []
        for w in cluster.workers:
            if w.busy or w.id not in self._busy_until:
                self._busy_until[w.id] = now
            workers.append(
                dataclasses.replace(w, idle_s=0.0 if w.busy else now - self._busy_until[w.id])
            )
        present = {w.id for w in cluster.workers}
        self._busy_until = {k: v for k, v in self._busy_until.items() if k in present}
        return dataclasses.replace(cluster, workers=tuple(workers))

    def _with_provisioning(
        self, cluster: ClusterState, errors: list[str], now: float
    ) -> ClusterState:
        """The backend's workers that the master's snapshot does not list (by host), counted as
        PROVISIONING: those still starting, and those that registered between the master's
        answer and the backend's (which the backend already calls ALIVE). Counting neither
        made the loop see one worker too few and launch one too many. A worker that registered
        between the two answers keeps the ``pending_s`` it had while the backend called it
        PROVISIONING (the backend's ALIVE worker carries none), so that it is not planned as a
        whole provisioning delay away."""
        if self.provisioning is None:
            return cluster
        try:
            asked = list(self.provisioning())
        except SparkscalerError as error:
            errors.append(f"the backend's workers are unknown: {error}")
            return cluster
        listed = {w.host for w in cluster.workers}
        for w in asked:
            if w.state == "PROVISIONING":
                self._asked_at[w.host] = now - w.pending_s
        extra = tuple(
            dataclasses.replace(
                w,
                state="PROVISIONING",
                cores_used=0,
                memory_used_mb=0,
                running_tasks=0,
                pending_s=w.pending_s
                if w.state == "PROVISIONING"
                else max(0.0, now - self._asked_at.get(w.host, now)),
            )
            for w in asked
            if w.state in ("PROVISIONING", "ALIVE") and w.host not in listed
        )
        pending = {w.host for w in extra}
        self._asked_at = {h: t for h, t in self._asked_at.items() if h in pending}
        return dataclasses.replace(cluster, workers=cluster.workers + extra) if extra else cluster

    def observe(self) -> Observation:
        now = self.clock.now()
        try:
            raw = self.master.fetch()
        except MasterUnavailable as error:
            return Observation(
                time=now, cluster=self._last_cluster, stale=True, errors=(str(error),)
            )

        errors: list[str] = []
        loads = []
        self.apps.retain([app["id"] for app in raw.get("activeapps", [])])
        for app in raw.get("activeapps", []):
            load = self.apps.load(app["id"])
            if load is None:
                errors.append(f"no REST API found for application {app['id']}")
            else:
                loads.append(load)
        by_host: dict[str, int] | None = None
        if not errors:
            by_host = {}
            for load in loads:
                for host, tasks in load.tasks_by_host.items():
                    by_host[host] = by_host.get(host, 0) + tasks
        cluster = MasterClient.cluster_state(raw, tasks_by_host=by_host)
        cluster = self._with_idle_times(self._with_provisioning(cluster, errors, now), now)
        self._last_cluster = cluster

        pending = sum(load.pending_tasks for load in loads)
        memory = sum(load.executor_memory for load in loads)
        storage = sum(load.storage_memory_used for load in loads)
        execution = sum(load.execution_memory_peak for load in loads)
        since = [load.backlog_since for load in loads if load.backlog_since is not None]
        if pending and self._backlog_seen is None:
            self._backlog_seen = now
        elif not pending:
            self._backlog_seen = None
        backlog_start = min(since) if since else self._backlog_seen
        deadlines = [load.deadline_s for load in loads if load.deadline_s is not None]
        cu, cs, bi, bo = self.host.sample(now, cluster, loads) if self.host else (0.0,) * 4
        oldest = min((a.start_time for a in cluster.active_apps), default=None)
        by_id = {load.app_id: load for load in loads}
        jobs = tuple(
            by_id[app.id].job(app, now, self.default_deadline_s)
            for app in sorted(cluster.active_apps, key=lambda a: (a.start_time, a.id))
            if app.id in by_id
        )
        return Observation(
            time=now,
            cluster=cluster,
            running_tasks=sum(load.running_tasks for load in loads),
            pending_tasks=pending,
            backlog_age_s=0.0
            if not pending or backlog_start is None
            else max(0.0, now - backlog_start),
            features=Features(
                cu=cu,
                cs=cs,
                mt=100.0 * storage / memory if memory else 0.0,
                ma=min(100.0, 100.0 * execution / memory) if memory else 0.0,
                bi=bi,
                bo=bo,
            ),
            input_bytes=_total_declared(loads),
            input_read_bytes=sum(load.input_read_bytes for load in loads)
            if cluster.active_apps
            else None,
            oldest_job_elapsed_s=None if oldest is None else max(0.0, now - oldest),
            deadline_s=min(deadlines) if deadlines else self.default_deadline_s,
            errors=tuple(errors),
            warnings=tuple(w for load in loads for w in load.warnings),
            jobs=jobs,
        )


def _total_declared(loads: Sequence[AppLoad]) -> float | None:
    """The running jobs' whole input, from those that declared it; None when none did, since a
    size read from what executors have read so far would make a job look smaller than it is."""
    declared = [load.input_bytes for load in loads if load.input_bytes is not None]
    return sum(declared) if declared else None
