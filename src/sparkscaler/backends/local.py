"""A real Spark standalone cluster on this machine: master and workers as child JVMs.

Every worker binds its own loopback address (127.0.0.2, 127.0.0.3, ...). That makes the master's
host-based decommission endpoint (``POST /workers/kill/?host=``) address exactly one worker,
and lets all workers use the same web-UI port. The processes are started through the
``pyspark`` package's ``bin/spark-class``, each in its own process group, so stopping a worker
also stops the executor JVMs and Python workers it spawned.

Everything but starting, checking and stopping a worker on this machine is the worker pool's
(:mod:`sparkscaler.backends.daemons`): the state file, provisioning, decommission, draining,
re-adoption and the master.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.daemons import (
    Daemon,
    WorkerPool,
    WorkerSpec,
    daemon_env,
    local_log_tail,
    spark_home,
    write_properties,
)
from sparkscaler.config import ClusterSettings
from sparkscaler.processes import ChildProcesses, port_free
from sparkscaler.units import parse_memory_mb


def app_properties(state_dir: Path) -> dict[str, str]:
    """Settings an application needs to play well with this cluster.

    Decommissioning migrates an executor's cached and shuffle blocks to the others before it
    exits, so that removing a worker mid-job loses no work; event logs give the job history.
    """
    return {
        "spark.decommission.enabled": "true",
        "spark.storage.decommission.enabled": "true",
        "spark.storage.decommission.shuffleBlocks.enabled": "true",
        "spark.storage.decommission.rddBlocks.enabled": "true",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": (state_dir / "events").resolve().as_uri(),
    }


class LocalLauncher:
    """The pool's :class:`~sparkscaler.backends.daemons.Launcher` for worker JVMs on this
    machine, one per loopback address, with their logs and work directories under the state
    directory."""

    def __init__(self, settings: ClusterSettings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self._children = ChildProcesses()

    def candidates(self, count: int, taken: AbstractSet[str]) -> list[str]:
        """Free loopback addresses: not the master's, not taken, and with the worker UI port
        free (so that a worker nobody recorded is never doubled)."""
        base, port = self.settings.worker_ip_base, self.settings.worker_ui_port
        hosts: list[str] = []
        for last in range(2, 255):
            host = f"{base}.{last}"
            if host == self.settings.master_host or host in taken:
                continue
            if port_free(host, port):
                hosts.append(host)
                if len(hosts) == count:
                    break
        return hosts

    def start(self, host: str, spec: WorkerSpec) -> Daemon:
        home = spark_home()
        conf = write_properties(self.state_dir / "conf" / "daemon.conf", spec.properties)
        work_dir = self.state_dir / "work" / host
        work_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.state_dir / "logs" / f"worker-{host}.log"
        argv = [str(home / "bin" / "spark-class"), *spec.args(host, str(work_dir), str(conf))]
        try:
            pid, created = self._children.spawn(argv, daemon_env(home, host), log_path)
        except OSError as error:
            raise BackendError(f"cannot start a Spark worker: {error}") from error
        return Daemon(host, pid, created, str(log_path), spec.cores, parse_memory_mb(spec.memory))

    def alive(self, daemon: Daemon) -> bool:
        return self._children.running(daemon.pid, daemon.create_time)

    def stop(self, daemons: Sequence[Daemon], grace_s: float) -> None:
        self._children.stop({d.pid: d.create_time for d in daemons}, grace_s)

    def log_tail(self, daemon: Daemon) -> str:
        return local_log_tail(daemon.log)


class LocalCluster(WorkerPool):
    """The ``Backend`` for a Spark standalone cluster of local JVM processes."""

    def __init__(self, settings: ClusterSettings, state_dir: Path) -> None:
        super().__init__(settings, state_dir, LocalLauncher(settings, state_dir))
