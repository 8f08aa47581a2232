"""A real Spark standalone cluster on this machine: master and workers as child JVMs.

Every worker binds its own loopback address (127.0.0.2, 127.0.0.3, ...). That makes the master's
host-based decommission endpoint (``POST /workers/kill/?host=``) address exactly one worker, and
lets all workers use the same web-UI port. The processes are started through the ``pyspark``
package's ``bin/spark-class``, each in its own process group, so stopping a worker also stops the
executor JVMs and Python workers it spawned.

The backend keeps a state file (pids, addresses, pending decommissions) in the state directory so
that a restarted sparkscaler re-adopts the cluster instead of starting a second one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from sparkscaler.backends.base import BackendError
from sparkscaler.config import ClusterSettings
from sparkscaler.core import WorkerInfo
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

#: Spark settings for the daemons: graceful decommission on, asked for from this machine only.
DAEMON_PROPERTIES = {
    "spark.decommission.enabled": "true",
    "spark.master.ui.decommission.allow.mode": "LOCAL",
    "spark.worker.cleanup.enabled": "true",
}


def spark_home() -> Path:
    """The Spark distribution that ships inside the ``pyspark`` package."""
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


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


def write_properties(path: Path, properties: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} {value}\n" for key, value in properties.items()))
    return path


@dataclass
class ManagedProcess:
    """A daemon this backend started: enough to find it again, and to be sure it is ours."""

    pid: int
    create_time: float
    host: str
    log: str
    decommission_deadline: float | None = None

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return (
                abs(proc.create_time() - self.create_time) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalCluster:
    """The ``Backend`` for a Spark standalone cluster of local JVM processes."""

    def __init__(self, settings: ClusterSettings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.master_client = MasterClient(settings.master_ui_url)
        self._http = httpx.Client(timeout=2.0)
        self._state_path = state_dir / "cluster.json"
        self._lock = threading.RLock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._master: ManagedProcess | None = None
        self._workers: dict[str, ManagedProcess] = {}
        self._drainer: threading.Thread | None = None
        self._closing = threading.Event()
        self._adopt()

    # ------------------------------------------------------------------ state file and adoption
    def _adopt(self) -> None:
        """Take over the daemons a previous sparkscaler started, forget the ones that died."""
        try:
            state = json.loads(self._state_path.read_text())
        except (OSError, ValueError):
            return
        master = ManagedProcess(**state["master"]) if state.get("master") else None
        if master and master.alive():
            self._master = master
        for host, record in state.get("workers", {}).items():
            worker = ManagedProcess(**record)
            if worker.alive():
                self._workers[host] = worker
        self._save()
        if self._pending_decommissions():
            self._ensure_drainer()

    def _save(self) -> None:
        state = {
            "master_url": self.settings.master_url,
            "master_ui_url": self.settings.master_ui_url,
            "master": asdict(self._master) if self._master else None,
            "workers": {host: asdict(w) for host, w in self._workers.items()},
        }
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self._state_path)

    # ------------------------------------------------------------------ processes
    @property
    def running(self) -> bool:
        return self._master is not None and self._master.alive()

    @property
    def pids(self) -> list[int]:
        """Pids of every daemon this backend runs (the master first)."""
        with self._lock:
            procs = ([self._master] if self._master else []) + list(self._workers.values())
            return [p.pid for p in procs if p.alive()]

    def _spawn(self, main_class: str, args: list[str], host: str, log_name: str) -> ManagedProcess:
        home = spark_home()
        log_path = self.state_dir / "logs" / log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": host}
        env.pop("SPARK_CONF_DIR", None)
        with log_path.open("ab") as log:
            try:
                popen = subprocess.Popen(
                    [str(home / "bin" / "spark-class"), main_class, *args],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise BackendError(f"cannot start {main_class}: {error}") from error
        self._children[popen.pid] = popen
        create_time = psutil.Process(popen.pid).create_time()
        return ManagedProcess(popen.pid, create_time, host, str(log_path))

    def _terminate(self, procs: Iterable[ManagedProcess], grace_s: float = 15.0) -> None:
        """SIGTERM each process group, then SIGKILL what is still there after ``grace_s``."""
        procs = [p for p in procs if p.alive()]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(p.alive() for p in procs) and time.monotonic() < deadline:
            self._reap_children()
            time.sleep(0.2)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._reap_children()

    def _reap_children(self) -> None:
        for pid, popen in list(self._children.items()):
            if popen.poll() is not None:
                del self._children[pid]

    # ------------------------------------------------------------------ master
    def start(self, workers: int) -> list[str]:
        """Start the master if needed, then add workers until ``workers`` are running."""
        with self._lock:
            if not self.running:
                self.start_master()
            missing = workers - len(self._workers)
        return self.launch(missing) if missing > 0 else []

    def start_master(self) -> None:
        s = self.settings
        for port in (s.master_port, s.master_ui_port):
            if not _port_free(s.master_host, port):
                raise BackendError(
                    f"port {port} on {s.master_host} is in use (another Spark master?); "
                    "stop it or set cluster.master_port / cluster.master_ui_port"
                )
        conf = write_properties(self.state_dir / "conf" / "daemon.conf", DAEMON_PROPERTIES)
        args = ["--host", s.master_host, "--port", str(s.master_port)]
        args += ["--webui-port", str(s.master_ui_port), "--properties-file", str(conf)]
        with self._lock:
            self._master = self._spawn(MASTER_CLASS, args, s.master_host, "master.log")
            self._save()
        deadline = time.monotonic() + s.startup_timeout_s
        while time.monotonic() < deadline:
            if not self._master.alive():
                raise BackendError(f"the Spark master exited:\n{_log_tail(self._master.log)}")
            with contextlib.suppress(MasterUnavailable):
                if self.master_client.fetch().get("status") == "ALIVE":
                    return
            time.sleep(0.5)
        raise BackendError(f"the Spark master did not come up in {s.startup_timeout_s:.0f} s")

    # ------------------------------------------------------------------ Backend protocol
    def _free_worker_hosts(self, count: int) -> list[str]:
        base, port = self.settings.worker_ip_base, self.settings.worker_ui_port
        hosts = []
        for last in range(2, 255):
            host = f"{base}.{last}"
            if host == self.settings.master_host or host in self._workers:
                continue
            if _port_free(host, port):
                hosts.append(host)
                if len(hosts) == count:
                    return hosts
        raise BackendError(f"no free loopback address left under {base}.x for {count} worker(s)")

    def launch(self, count: int) -> list[str]:
        if count <= 0:
            return []
        if not self.running:
            raise BackendError("the Spark master is not running (start the cluster first)")
        s = self.settings
        conf = write_properties(self.state_dir / "conf" / "daemon.conf", DAEMON_PROPERTIES)
        with self._lock:
            if self._closing.is_set():
                raise BackendError("the cluster is stopping")
            known = {w["id"] for w in self._master_workers()}
            started: dict[str, ManagedProcess] = {}
            for host in self._free_worker_hosts(count):
                work_dir = self.state_dir / "work" / host
                work_dir.mkdir(parents=True, exist_ok=True)
                args = ["--host", host, "--port", "0", "--webui-port", str(s.worker_ui_port)]
                args += ["--cores", str(s.worker_cores), "--memory", s.worker_memory]
                args += ["--work-dir", str(work_dir), "--properties-file", str(conf)]
                args.append(s.master_url)
                started[host] = self._spawn(WORKER_CLASS, args, host, f"worker-{host}.log")
                self._workers[host] = started[host]
            self._save()
        return self._wait_registered(started, known)

    def _wait_registered(self, started: dict[str, ManagedProcess], known: set[str]) -> list[str]:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while True:
            ids = {
                w["host"]: w["id"]
                for w in self._master_workers()
                if w["host"] in started and w["state"] == "ALIVE" and w["id"] not in known
            }
            if len(ids) == len(started):
                return [ids[host] for host in started]
            for host, proc in started.items():
                if not proc.alive():
                    self._forget(host)
                    raise BackendError(f"worker {host} exited at start:\n{_log_tail(proc.log)}")
            if time.monotonic() > deadline:
                raise BackendError(
                    f"only {len(ids)} of {len(started)} new worker(s) registered with the master "
                    f"in {self.settings.startup_timeout_s:.0f} s"
                )
            time.sleep(0.25)

    def _master_workers(self) -> list[dict]:
        try:
            return list(self.master_client.fetch().get("workers", []))
        except MasterUnavailable as error:
            raise BackendError(str(error)) from error

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            ours = set(self._workers)
        latest: dict[str, dict] = {}
        for w in self._master_workers():
            if w["host"] in ours and (w["host"] not in latest or w["state"] != "DEAD"):
                latest[w["host"]] = w
        return [MasterClient.worker_info(w) for w in latest.values()]

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        hosts = {w["id"]: w["host"] for w in self._master_workers()}
        unknown = [i for i in ids if hosts.get(i) not in self._workers]
        if unknown:
            raise BackendError(f"not a worker of this cluster: {', '.join(unknown)}")
        for worker_id in ids:
            host = hosts[worker_id]
            self.master_client.decommission_host(host)
            with self._lock:
                self._workers[host].decommission_deadline = time.time() + timeout
                self._save()
        self._ensure_drainer()

    # ------------------------------------------------------------------ draining
    def _pending_decommissions(self) -> dict[str, ManagedProcess]:
        with self._lock:
            return {h: w for h, w in self._workers.items() if w.decommission_deadline is not None}

    def _ensure_drainer(self) -> None:
        with self._lock:
            if self._drainer is None or not self._drainer.is_alive():
                self._drainer = threading.Thread(
                    target=self._drain_loop, name="sparkscaler-drainer", daemon=True
                )
                self._drainer.start()

    def _drain_loop(self) -> None:
        """Stop each decommissioned worker once its executors are gone, or at its timeout."""
        time.sleep(1.0)
        while not self._closing.is_set():
            pending = self._pending_decommissions()
            if not pending:
                return
            for host, proc in pending.items():
                deadline = proc.decommission_deadline or 0.0
                if not proc.alive() or self._drained(host) or time.time() >= deadline:
                    self._terminate([proc])
                    self._forget(host)
            self._closing.wait(1.0)

    def _drained(self, host: str) -> bool:
        url = f"http://{host}:{self.settings.worker_ui_port}/json/"
        try:
            return not self._http.get(url).json().get("executors")
        except (httpx.HTTPError, ValueError):
            return False

    def wait_drained(self, timeout: float) -> bool:
        """Block until no decommission is pending (for the CLI); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._pending_decommissions():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def _forget(self, host: str) -> None:
        with self._lock:
            self._workers.pop(host, None)
            self._save()

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Stop every worker, then the master; afterwards no JVM of this cluster is left."""
        self._closing.set()
        if self._drainer is not None:
            self._drainer.join(timeout=30)
        with self._lock:
            self._terminate(self._workers.values())
            self._workers.clear()
            if self._master:
                self._terminate([self._master])
            self._master = None
            self._save()
        self._closing.clear()
