"""Host metrics of the Spark worker processes by psutil: the paper's CPU and network features
for workers on this machine (the local backend, which knows its workers' pids).

CPU is measured on the processes that do the cluster's work (worker and executor JVMs and their
Python children), not on the whole machine, so that a busy laptop browser does not look like
cluster load: ``cu``/``cs`` are their user/system CPU seconds over the interval as a share of
the ALIVE workers' cores. Network is this host's interfaces (on one machine the cluster talks
over loopback) as a share of one link's capacity: every local worker shares this machine's.
These are the same quantities, in the same units, that :mod:`sparkscaler.observe.spark_metrics`
estimates for hosts psutil cannot see.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence

import psutil

from sparkscaler.core import ClusterState
from sparkscaler.observe.spark_app import AppLoad

_SPARK_DAEMONS = (
    "org.apache.spark.deploy.worker.Worker",
    "org.apache.spark.executor.CoarseGrainedExecutorBackend",
)


def spark_worker_processes(root_pids: Iterable[int] | None = None) -> list[psutil.Process]:
    """The given daemons (default: every worker and executor JVM on this host), with all
    their children (executors, Python workers)."""
    roots = []
    if root_pids is not None:
        for pid in root_pids:
            with contextlib.suppress(psutil.Error):
                roots.append(psutil.Process(pid))
    else:
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if any(daemon in cmdline for daemon in _SPARK_DAEMONS):
                roots.append(proc)
    seen: dict[int, psutil.Process] = {}
    for root in roots:
        seen[root.pid] = root
        try:
            for child in root.children(recursive=True):
                seen[child.pid] = child
        except psutil.Error:
            continue
    return list(seen.values())


class HostSampler:
    """Turns cumulative CPU and network counters into percentages over the last interval."""

    def __init__(
        self,
        link_capacity_mbit: float = 1000.0,
        roots: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self.link_bytes_per_s = link_capacity_mbit * 1e6 / 8
        self.roots = roots
        self._cpu: dict[tuple[int, float], tuple[float, float]] = {}
        self._net: tuple[int, int] | None = None
        self._last: float | None = None

    def sample(
        self, now: float, cluster: ClusterState, loads: Sequence[AppLoad] = ()
    ) -> tuple[float, float, float, float]:
        """(cpu user %, cpu system %, net in %, net out %); zeros on the first call.

        CPU percentages are relative to the cores the ALIVE workers offer, so 100 % means the
        cluster's cores are all busy computing. The interval is measured on the monotonic clock,
        as psutil's counters run in real time; ``now`` and ``loads`` are the Spark source's.
        """
        cores = cluster.cores_total
        mono = time.monotonic()
        cpu: dict[tuple[int, float], tuple[float, float]] = {}
        for proc in spark_worker_processes(self.roots() if self.roots else None):
            try:
                times = proc.cpu_times()
                cpu[(proc.pid, proc.create_time())] = (times.user, times.system)
            except psutil.Error:
                continue
        net = psutil.net_io_counters()
        counters = (net.bytes_recv, net.bytes_sent)
        result = (0.0, 0.0, 0.0, 0.0)
        if self._last is not None and self._net is not None:
            elapsed = max(mono - self._last, 1e-6)
            user = system = 0.0
            for key, (u, s) in cpu.items():
                prev_u, prev_s = self._cpu.get(key, (0.0, 0.0))
                user += max(0.0, u - prev_u)
                system += max(0.0, s - prev_s)
            capacity = elapsed * max(cores, 1)
            net_in = (counters[0] - self._net[0]) / elapsed / self.link_bytes_per_s
            net_out = (counters[1] - self._net[1]) / elapsed / self.link_bytes_per_s
            result = tuple(  # type: ignore[assignment]
                min(100.0, max(0.0, 100.0 * v))
                for v in (user / capacity, system / capacity, net_in, net_out)
            )
        self._cpu, self._net, self._last = cpu, counters, mono
        return result
