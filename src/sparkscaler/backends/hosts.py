"""``backend: hosts``: one Spark worker on each machine of a pool, started over SSH.

The worker pool (:mod:`sparkscaler.backends.daemons`) does the bookkeeping that every backend
shares: the state file, PROVISIONING workers, decommission through the master, draining,
re-adoption after a restart, the master. This module fills in its launcher with SSH
(:mod:`sparkscaler.backends.ssh`): which hosts are free, start a worker there, is it still
running, stop it.

A host is free for a new worker when no worker of ours runs there (the pool's ``taken``), the
master lists no live worker on it (a worker someone else started, or one of ours that a lost
state file no longer names) and nothing answers on its worker UI port. So a restarted
sparkscaler never puts a second worker on a host, and never stops a worker it did not start:
the state file names ours by pid and start time.

Each worker binds the host's address (``--host``, ``SPARK_LOCAL_IP``), which is how the master
names it and how ``POST /workers/kill/?host=`` reaches exactly that worker. Its log, properties
file and applications' files live in the host's ``work_dir``.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor

from sparkscaler.backends.base import HostUnreachable
from sparkscaler.backends.daemons import Daemon, WorkerPool, WorkerSpec
from sparkscaler.backends.daemons import spark_home as local_spark_home
from sparkscaler.backends.ssh import RemoteProcess, SshHost
from sparkscaler.config import Config, HostSettings
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable
from sparkscaler.units import parse_memory_mb

#: Where a worker keeps its files on its host when ``work_dir`` is not set (under the SSH
#: user's home).
DEFAULT_WORK_DIR = ".sparkscaler-worker"

#: How long an answer of :meth:`SshLauncher.alive` is reused: the pool asks about every worker
#: each second while any is provisioning or draining, and each answer is an SSH round trip.
ALIVE_CACHE_S = 1.5


class SshLauncher:
    """The pool's launcher for the machines of ``config.hosts``, one SSH connection each."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.hosts: dict[str, HostSettings] = {h.address: h for h in config.hosts}
        known_hosts = config.state_dir / "known_hosts"
        self.ssh = {
            h.address: SshHost(
                h.address,
                user=h.ssh_user,
                port=h.ssh_port,
                key_file=h.ssh_key,
                known_hosts=known_hosts,
            )
            for h in config.hosts
        }
        self._master = MasterClient(config.cluster.master_ui_url)
        self._alive: dict[tuple[str, int], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ Launcher protocol
    def candidates(self, count: int, taken: AbstractSet[str]) -> list[str]:
        """Hosts in config order that are not taken, that the master has no live worker on,
        and whose worker UI port is closed."""
        try:
            occupied = {
                w["host"] for w in self._master.fetch()["workers"] if w.get("state") != "DEAD"
            }
        except MasterUnavailable:
            return []  # the pool's launch reports the master; no host is safe to call free
        free = []
        for address in self.hosts:
            if address in taken or address in occupied or self._ui_port_open(address):
                continue
            free.append(address)
            if len(free) == count:
                break
        return free

    def _ui_port_open(self, address: str) -> bool:
        """Something listens on the worker UI port (a worker nobody here recorded)."""
        with contextlib.suppress(OSError):
            port = self.config.cluster.worker_ui_port
            with socket.create_connection((address, port), timeout=0.5):
                return True
        return False

    def start(self, host: str, spec: WorkerSpec) -> Daemon:
        settings, ssh = self.hosts[host], self.ssh[host]
        home = settings.spark_home or str(local_spark_home())
        base = settings.work_dir or f"{self._home(ssh)}/{DEFAULT_WORK_DIR}"
        conf, log_path = f"{base}/worker.properties", f"{base}/logs/worker-{host}.log"
        properties = "".join(f"{k} {v}\n" for k, v in spec.properties.items())
        ssh.run(
            f"mkdir -p {shlex.quote(base)}/work {shlex.quote(base)}/logs && "
            f"printf %s {shlex.quote(properties)} > {shlex.quote(conf)}"
        )
        cores = settings.cores or spec.cores
        memory = settings.memory or spec.memory
        args = spec.args(host, f"{base}/work", conf, cores=cores, memory=memory)
        process = ssh.start_daemon(
            [f"{home}/bin/spark-class", *args],
            env={"SPARK_HOME": home, "SPARK_LOCAL_IP": host},
            log_path=log_path,
            cwd=base,
        )
        return Daemon(
            host, process.pid, float(process.start_ticks), log_path, cores, parse_memory_mb(memory)
        )

    @staticmethod
    def _home(ssh: SshHost) -> str:
        return ssh.run('printf %s "$HOME"').stdout.strip() or "/tmp"

    def alive(self, daemon: Daemon) -> bool:
        key = (daemon.host, daemon.pid)
        with self._lock:
            cached = self._alive.get(key)
        if cached is not None and time.monotonic() - cached[0] < ALIVE_CACHE_S:
            return cached[1]
        answer = self.ssh[daemon.host].alive(_remote(daemon))
        with self._lock:
            self._alive[key] = (time.monotonic(), answer)
        return answer

    def stop(self, daemons: Sequence[Daemon], grace_s: float) -> None:
        """Stop the daemons, each host at the same time as the others; then raise the first
        host that could not be reached."""

        def stop_one(daemon: Daemon) -> HostUnreachable | None:
            try:
                self.ssh[daemon.host].stop(_remote(daemon), grace_s)
            except HostUnreachable as error:
                return error
            finally:
                with self._lock:
                    self._alive.pop((daemon.host, daemon.pid), None)
            return None

        if not daemons:
            return
        with ThreadPoolExecutor(max_workers=len(daemons)) as pool:
            errors = [e for e in pool.map(stop_one, daemons) if e is not None]
        if errors:
            raise errors[0]

    def log_tail(self, daemon: Daemon) -> str:
        return self.ssh[daemon.host].log_tail(daemon.log)

    def close(self) -> None:
        for ssh in self.ssh.values():
            ssh.close()
        self._master.close()


def _remote(daemon: Daemon) -> RemoteProcess:
    return RemoteProcess(daemon.pid, int(daemon.create_time))


class HostsCluster(WorkerPool):
    """The ``Backend`` for ``backend: hosts``: the worker pool with an SSH launcher."""

    def __init__(self, config: Config) -> None:
        self.launcher_ssh = SshLauncher(config)
        super().__init__(config.cluster, config.state_dir, self.launcher_ssh)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.launcher_ssh.close()
