"""Builds one :class:`Observation` per interval from the master, the apps' REST API and psutil.

The observer is where state that spans observations lives (how long a worker has been idle, how
old the backlog is), so that the policies can stay pure functions of one observation.
"""

from __future__ import annotations

from typing import Protocol

from sparkscaler.clock import Clock
from sparkscaler.config import Config
from sparkscaler.core import ClusterState, Features, Observation
from sparkscaler.observe.host import HostSampler
from sparkscaler.observe.spark_app import AppClient
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable


class Observer(Protocol):
    def observe(self) -> Observation: ...


class SparkObserver:
    """Observes a real standalone cluster; never raises for an unreachable source.

    A stale observation (master unreachable) carries the last cluster state that was seen, so
    that a hold can say what it holds at; the guard never acts on it.
    """

    def __init__(
        self,
        master: MasterClient,
        apps: AppClient,
        clock: Clock,
        host: HostSampler | None = None,
        default_deadline_s: float | None = None,
    ) -> None:
        self.master = master
        self.apps = apps
        self.clock = clock
        self.host = host
        self.default_deadline_s = default_deadline_s
        self._busy_until: dict[str, float] = {}
        self._backlog_since: float | None = None
        self._last_cluster = ClusterState()

    @classmethod
    def from_config(cls, config: Config, clock: Clock) -> SparkObserver:
        timeout = config.metrics.request_timeout_s
        return cls(
            MasterClient(config.cluster.master_ui_url, timeout),
            AppClient(config.cluster.master_host, config.cluster.app_ui_ports, timeout),
            clock,
            HostSampler(config.metrics.link_capacity_mbit),
            config.deadline_s,
        )

    def _idle_times(self, cluster: ClusterState, now: float) -> dict[str, float]:
        """Seconds since each worker last had a core in use (0 while busy)."""
        idle = {}
        for w in cluster.workers:
            if w.busy or w.id not in self._busy_until:
                self._busy_until[w.id] = now
            idle[w.id] = 0.0 if w.busy else now - self._busy_until[w.id]
        present = {w.id for w in cluster.workers}
        self._busy_until = {k: v for k, v in self._busy_until.items() if k in present}
        return idle

    def observe(self) -> Observation:
        now = self.clock.now()
        try:
            raw = self.master.fetch()
        except MasterUnavailable as error:
            return Observation(
                time=now, cluster=self._last_cluster, stale=True, errors=(str(error),)
            )
        cluster = MasterClient.cluster_state(raw)
        cluster = MasterClient.cluster_state(raw, self._idle_times(cluster, now))
        self._last_cluster = cluster

        errors: list[str] = []
        running = pending = 0
        storage = execution = memory = input_bytes = 0.0
        deadlines = []
        for app in cluster.active_apps:
            load = self.apps.load(app.id)
            if load is None:
                errors.append(f"no REST API found for application {app.id}")
                continue
            running += load.running_tasks
            pending += load.pending_tasks
            storage += load.storage_memory_used
            execution += load.execution_memory_peak
            memory += load.executor_memory
            input_bytes += load.input_bytes
            if load.deadline_s is not None:
                deadlines.append(load.deadline_s)

        if pending > 0:
            self._backlog_since = self._backlog_since if self._backlog_since is not None else now
        else:
            self._backlog_since = None
        cu, cs, bi, bo = self.host.sample(cluster.cores_total) if self.host else (0.0,) * 4
        features = Features(
            cu=cu,
            cs=cs,
            mt=100.0 * storage / memory if memory else 0.0,
            ma=min(100.0, 100.0 * execution / memory) if memory else 0.0,
            bi=bi,
            bo=bo,
        )
        oldest = min((a.start_time for a in cluster.active_apps), default=None)
        return Observation(
            time=now,
            cluster=cluster,
            running_tasks=running,
            pending_tasks=pending,
            backlog_age_s=0.0 if self._backlog_since is None else now - self._backlog_since,
            features=features,
            input_bytes=input_bytes if cluster.active_apps else None,
            oldest_job_elapsed_s=None if oldest is None else max(0.0, now - oldest),
            deadline_s=min(deadlines) if deadlines else self.default_deadline_s,
            errors=tuple(errors),
        )
