"""The paper's CPU and network features from Spark's own metrics: what reaches every host.

psutil (:mod:`sparkscaler.observe.host`) can only see this machine's processes; a worker on
another host, or on a cluster we attached to, is measured through what its executors report to
their driver (:class:`~sparkscaler.observe.stage_work.Work`, read from the REST API). Over the
interval since an application was last read, with ``cores`` the ALIVE workers' cores and
``links`` the worker hosts' link capacity added up, exactly as the psutil source divides:

- ``cu`` = task-thread CPU seconds x (1 - SYSTEM_SHARE) / (interval x cores) x 100
- ``cs`` = task-thread CPU seconds x SYSTEM_SHARE / (interval x cores) x 100.
  Spark counts a task's CPU time with the JVM's thread CPU clock, which is user and system time
  together; it never reports the split. The split is the one measured on this machine's Spark
  tasks (90 % user, 6 % system of a busy core, the simulator's figures): system is
  6 / 96 = 6.25 % of CPU time.
- ``bi`` = (input bytes read + shuffle bytes fetched from other executors) / (interval x links)
- ``bo`` = (shuffle bytes served to other executors, which is what they fetched + output
  bytes written + task results sent to the driver) / (interval x links)

What these approximate, and where they part from psutil's: CPU is the JVM task threads' only,
so Python workers' CPU (PySpark RDD functions, Python UDFs) and garbage collection threads are
not in it, and the memory and shuffle services' threads neither; input bytes count as network
traffic, which they are for input on HDFS or an object store but not for a local file; the
byte counters of a running stage move with the executors' heartbeats (10 s by default), so a
rate over a shorter interval is lumpy. Each is clipped to [0, 100].

The executors' Prometheus endpoint (``spark.ui.prometheus.enabled``) serves the same executor
summaries as ``/api/v1/.../executors`` and no CPU time, so it is not used.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sparkscaler.core import ClusterState
from sparkscaler.observe.spark_app import AppLoad
from sparkscaler.observe.stage_work import Work

#: Share of a Spark task's CPU time that is system time (see the module docstring).
SYSTEM_SHARE = 6.0 / 96.0


def worker_hosts(cluster: ClusterState) -> int:
    """Distinct machines among the ALIVE workers: a worker's own loopback address
    (127.0.0.2, 127.0.0.3, ... of the local backend) is this machine, with one link."""
    machines = set()
    for worker in cluster.alive:
        try:
            loopback = ipaddress.ip_address(worker.host).is_loopback
        except ValueError:
            loopback = worker.host == "localhost"
        machines.add("this machine" if loopback else worker.host)
    return len(machines)


def _percent(amount: float, capacity: float) -> float:
    return min(100.0, max(0.0, 100.0 * amount / capacity)) if capacity > 0 else 0.0


class SparkMetricsSampler:
    """Turns the applications' cumulative :class:`Work` into the four rate features."""

    def __init__(self, link_capacity_mbit: float = 1000.0) -> None:
        self.link_bytes_per_s = link_capacity_mbit * 1e6 / 8
        self._last: dict[str, tuple[float, Work]] = {}

    def sample(
        self, now: float, cluster: ClusterState, loads: Sequence[AppLoad]
    ) -> tuple[float, float, float, float]:
        """(cpu user %, cpu system %, net in %, net out %) over the interval since each app was
        last read; an app read for the first time adds nothing yet."""
        cpu = bytes_in = bytes_out = 0.0
        seen: dict[str, tuple[float, Work]] = {}
        for load in loads:
            seen[load.app_id] = (now, load.work)
            if load.app_id not in self._last:
                continue
            then, before = self._last[load.app_id]
            if now <= then:
                continue
            grown = load.work - before
            cpu += max(0.0, grown.cpu_s) / (now - then)
            bytes_in += max(0.0, grown.bytes_in) / (now - then)
            bytes_out += max(0.0, grown.bytes_out) / (now - then)
        # An app that did not answer this time keeps its last reading, so that its next
        # reading covers the whole span since.
        self._last = {
            **{k: v for k, v in self._last.items() if k in {a.id for a in cluster.active_apps}},
            **seen,
        }
        cores = cluster.cores_total
        links = worker_hosts(cluster) * self.link_bytes_per_s
        return (
            _percent(cpu * (1 - SYSTEM_SHARE), cores),
            _percent(cpu * SYSTEM_SHARE, cores),
            _percent(bytes_in, links),
            _percent(bytes_out, links),
        )
