"""A real Spark standalone cluster on this machine: master and workers as child JVMs.

Every worker binds its own loopback address (127.0.0.2, 127.0.0.3, ...). That makes the master's
host-based decommission endpoint (``POST /workers/kill/?host=``) address exactly one worker,
and lets all workers use the same web-UI port. The processes are started through the
``pyspark`` package's ``bin/spark-class``, each in its own process group, so stopping a worker
also stops the executor JVMs and Python workers it spawned.

The state file (pids, addresses, pending decommissions) is the single source of truth, shared
by every sparkscaler process on this state directory (``run``, ``cluster scale`` in another
terminal, a restarted sparkscaler): each change is a locked read-modify-write, so no process
overwrites another's workers and a restarted one re-adopts the cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

from sparkscaler.backends.base import BackendError
from sparkscaler.config import ClusterSettings
from sparkscaler.core import WorkerInfo
from sparkscaler.errors import MissingExtraError, SparkscalerError
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable
from sparkscaler.processes import port_free, signals_deferred, terminate_groups, wait_until

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

#: Spark settings for the daemons: graceful decommission on, asked for from this machine only.
DAEMON_PROPERTIES = {
    "spark.decommission.enabled": "true",
    "spark.master.ui.decommission.allow.mode": "LOCAL",
    "spark.worker.cleanup.enabled": "true",
}


def spark_home() -> Path:
    """The Spark distribution to run: ``$SPARK_HOME`` when it is set (the Spark a cluster
    already has), else the one inside the ``pyspark`` package (the ``local`` extra)."""
    if os.environ.get("SPARK_HOME"):
        home = Path(os.environ["SPARK_HOME"]).expanduser()
        if not (home / "bin" / "spark-class").is_file():
            raise BackendError(
                f"SPARK_HOME={home} is not a Spark distribution (no bin/spark-class); "
                "unset it to use the pyspark package's Spark"
            )
        return home
    try:
        from pyspark.find_spark_home import _find_spark_home
    except ImportError:
        raise MissingExtraError(
            "a local Spark cluster",
            "local",
            "pyspark",
            "(or set SPARK_HOME to a Spark 4 distribution)",
        ) from None
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


class StateFileError(BackendError, SparkscalerError):
    """The state file cannot be read: no process can know which daemons are this cluster's.

    A ``BackendError`` so that the loop records it like any failed action; a
    ``SparkscalerError`` so that a command reports it in one line.
    """


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


@dataclass
class ClusterRecord:
    """What the state file holds."""

    master: ManagedProcess | None = None
    workers: dict[str, ManagedProcess] = field(default_factory=dict)

    def processes(self) -> list[ManagedProcess]:
        return ([self.master] if self.master else []) + list(self.workers.values())


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
        self._drainer: threading.Thread | None = None
        self._closing = threading.Event()
        if self._pending_decommissions():
            self._ensure_drainer()

    # ------------------------------------------------------------------ state file
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[ClusterRecord]:
        """Lock the state file (across processes), read it, let the caller change it, write it.

        Daemons that died since the last write are dropped on the way in.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.state_dir / "cluster.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = self._read()
            yield record
            self._write(record)

    def _read(self) -> ClusterRecord:
        """The record in the state file; :class:`StateFileError` if the file cannot be read,
        is not JSON (garbage, cut short) or is JSON of another shape."""
        path = self._state_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return ClusterRecord()
        except OSError as error:
            raise StateFileError(
                f"cannot read the state file {path} ({error.strerror}); it must be a file "
                "this user can read and write"
            ) from error
        try:
            state = json.loads(data)
        except ValueError as error:  # also bytes that are not UTF-8
            raise self._corrupt(f"not JSON: {error}") from error
        try:
            master = ManagedProcess(**state["master"]) if state.get("master") else None
            workers = {h: ManagedProcess(**w) for h, w in state.get("workers", {}).items()}
        except (AttributeError, TypeError) as error:
            raise self._corrupt(f"not a sparkscaler state: {error}") from error
        return ClusterRecord(
            master if master and master.alive() else None,
            {h: w for h, w in workers.items() if w.alive()},
        )

    def _corrupt(self, why: str) -> StateFileError:
        return StateFileError(
            f"state file {self._state_path} is corrupt ({why}); if no Spark daemons started "
            "from it are still running (ps -ef | grep org.apache.spark.deploy), delete it"
        )

    def _write(self, record: ClusterRecord) -> None:
        state = {
            "master_url": self.settings.master_url,
            "master_ui_url": self.settings.master_ui_url,
            "master": asdict(record.master) if record.master else None,
            "workers": {host: asdict(w) for host, w in record.workers.items()},
        }
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".cluster-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
        os.replace(tmp, self._state_path)

    def record(self) -> ClusterRecord:
        """The daemons of this cluster that are alive now (read under the lock, not written)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.state_dir / "cluster.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            return self._read()

    @property
    def running(self) -> bool:
        return self.record().master is not None

    @property
    def pids(self) -> list[int]:
        """Pids of every daemon this cluster runs (the master first)."""
        return [p.pid for p in self.record().processes()]

    def worker_pids(self) -> list[int]:
        """Pids of the worker daemons: with their children, the processes that run tasks."""
        return [w.pid for w in self.record().workers.values()]

    # ------------------------------------------------------------------ processes
    def _spawn(self, main_class: str, args: list[str], host: str, log_name: str) -> ManagedProcess:
        home = spark_home()
        log_path = self.state_dir / "logs" / log_name
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": host}
        env.pop("SPARK_CONF_DIR", None)
        with log_path.open("ab") as log_file:
            try:
                popen = subprocess.Popen(
                    [str(home / "bin" / "spark-class"), main_class, *args],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise BackendError(f"cannot start {main_class}: {error}") from error
        self._children[popen.pid] = popen
        create_time = psutil.Process(popen.pid).create_time()
        return ManagedProcess(popen.pid, create_time, host, str(log_path))

    def _terminate(self, procs: Sequence[ManagedProcess], grace_s: float = 15.0) -> None:
        """Stop these daemons' process groups (with everything they spawned)."""
        by_pid = {p.pid: p for p in procs}

        def alive(pid: int) -> bool:
            self._reap_children()
            return by_pid[pid].alive()

        with signals_deferred():
            terminate_groups(by_pid, alive, grace_s)
            self._reap_children()

    def _reap_children(self) -> None:
        for pid, popen in list(self._children.items()):
            if popen.poll() is not None:
                del self._children[pid]

    # ------------------------------------------------------------------ master
    def start(self, workers: int) -> list[str]:
        """Start the master if needed, then add workers until ``workers`` are running.

        When this call started the master and then fails, it stops the master again; workers
        it could not bring up are stopped by :meth:`launch` itself. A cluster that was already
        running is never stopped by a failed start.
        """
        started_master = False
        try:
            if not self.running:
                self.start_master()
                started_master = True
            missing = workers - len(self.record().workers)
            return self.launch(missing) if missing > 0 else []
        except BaseException:
            if started_master:
                self.stop()
            raise

    def start_master(self) -> None:
        s = self.settings
        for port in (s.master_port, s.master_ui_port):
            if not port_free(s.master_host, port):
                raise BackendError(
                    f"port {port} on {s.master_host} is in use (another Spark master?); "
                    "stop it or set cluster.master_port / cluster.master_ui_port"
                )
        self._closing.clear()
        conf = write_properties(self.state_dir / "conf" / "daemon.conf", DAEMON_PROPERTIES)
        args = ["--host", s.master_host, "--port", str(s.master_port)]
        args += ["--webui-port", str(s.master_ui_port), "--properties-file", str(conf)]
        with self._transaction() as record:
            master = record.master = self._spawn(MASTER_CLASS, args, s.master_host, "master.log")
        deadline = time.monotonic() + s.startup_timeout_s
        while time.monotonic() < deadline:
            if not master.alive():
                raise BackendError(f"the Spark master exited:\n{_log_tail(master.log)}")
            with contextlib.suppress(MasterUnavailable):
                if self.master_client.fetch().get("status") == "ALIVE":
                    return
            time.sleep(0.5)
        raise BackendError(f"the Spark master did not come up in {s.startup_timeout_s:.0f} s")

    # ------------------------------------------------------------------ Backend protocol
    def _free_worker_hosts(self, count: int, taken: set[str]) -> list[str]:
        base, port = self.settings.worker_ip_base, self.settings.worker_ui_port
        hosts = []
        for last in range(2, 255):
            host = f"{base}.{last}"
            if host == self.settings.master_host or host in taken:
                continue
            if port_free(host, port):
                hosts.append(host)
                if len(hosts) == count:
                    return hosts
        raise BackendError(f"no free loopback address left under {base}.x for {count} worker(s)")

    def launch(self, count: int) -> list[str]:
        """Start ``count`` workers and return their master ids once they are ALIVE.

        Workers that do not come up (or an interrupt while waiting) are stopped again, so a
        failed launch leaves the cluster as it was.
        """
        if count <= 0:
            return []
        s = self.settings
        conf = write_properties(self.state_dir / "conf" / "daemon.conf", DAEMON_PROPERTIES)
        started: dict[str, ManagedProcess] = {}
        with self._transaction() as record:
            if self._closing.is_set():
                raise BackendError("the cluster is stopping")
            if record.master is None:
                raise BackendError("the Spark master is not running (start the cluster first)")
            known = {w["id"] for w in self._master_workers()}
            for host in self._free_worker_hosts(count, set(record.workers)):
                work_dir = self.state_dir / "work" / host
                work_dir.mkdir(parents=True, exist_ok=True)
                args = ["--host", host, "--port", "0", "--webui-port", str(s.worker_ui_port)]
                args += ["--cores", str(s.worker_cores), "--memory", s.worker_memory]
                args += ["--work-dir", str(work_dir), "--properties-file", str(conf)]
                args.append(s.master_url)
                record.workers[host] = started[host] = self._spawn(
                    WORKER_CLASS, args, host, f"worker-{host}.log"
                )
        try:
            return self._wait_registered(started, known)
        except BaseException:
            self._terminate(list(started.values()))
            self._forget(started)
            raise

    def _wait_registered(self, started: dict[str, ManagedProcess], known: set[str]) -> list[str]:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while True:
            if self._closing.is_set():
                raise BackendError("the cluster is stopping")
            ids = {
                w["host"]: w["id"]
                for w in self._master_workers()
                if w["host"] in started and w["state"] == "ALIVE" and w["id"] not in known
            }
            if len(ids) == len(started):
                return [ids[host] for host in started]
            for host, proc in started.items():
                if not proc.alive():
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
        ours = set(self.record().workers)
        latest: dict[str, dict] = {}
        for w in self._master_workers():
            if w["host"] in ours and (w["host"] not in latest or w["state"] != "DEAD"):
                latest[w["host"]] = w
        return [MasterClient.worker_info(w) for w in latest.values()]

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        hosts = {w["id"]: w["host"] for w in self._master_workers()}
        ours = self.record().workers
        unknown = [i for i in ids if hosts.get(i) not in ours]
        if unknown:
            raise BackendError(f"not a worker of this cluster: {', '.join(unknown)}")
        try:
            for worker_id in ids:
                host = hosts[worker_id]
                try:
                    self.master_client.decommission_host(host)
                except MasterUnavailable as error:
                    raise BackendError(str(error)) from error
                with self._transaction() as record:
                    if host in record.workers:
                        record.workers[host].decommission_deadline = time.time() + timeout
        finally:
            self._ensure_drainer()

    # ------------------------------------------------------------------ draining
    def _pending_decommissions(self) -> dict[str, ManagedProcess]:
        workers = self.record().workers
        return {h: w for h, w in workers.items() if w.decommission_deadline is not None}

    def _ensure_drainer(self) -> None:
        with self._lock:
            if self._drainer is None:
                self._drainer = threading.Thread(
                    target=self._drain_loop, name="sparkscaler-drainer", daemon=True
                )
                self._drainer.start()

    def _drain_loop(self) -> None:
        """Stop each decommissioned worker once its executors are gone, or at its timeout.

        The decision to exit is taken under the lock that :meth:`_ensure_drainer` takes, so a
        decommission that comes in meanwhile always finds a drainer (or starts one).
        """
        self._closing.wait(1.0)
        while not self._closing.is_set():
            with self._lock:
                pending = self._pending_decommissions()
                if not pending:
                    self._drainer = None
                    return
            for host, proc in pending.items():
                deadline = proc.decommission_deadline or 0.0
                if not proc.alive() or self._drained(host) or time.time() >= deadline:
                    self._terminate([proc])
                    self._forget({host: proc})
            self._closing.wait(1.0)
        with self._lock:
            self._drainer = None

    def _drained(self, host: str) -> bool:
        url = f"http://{host}:{self.settings.worker_ui_port}/json/"
        try:
            return not self._http.get(url).json().get("executors")
        except (httpx.HTTPError, ValueError):
            return False

    def wait_drained(self, timeout: float) -> bool:
        """Block until no decommission is pending and this process's drainer is done (for the
        CLI); False on timeout.

        Waiting for the drainer matters: a stopped worker drops out of the pending list as soon
        as it is dead, before the drainer has removed it from the state file, and a CLI that
        exited then would leave its dead entry behind.
        """
        return wait_until(
            lambda: self._drainer is None and not self._pending_decommissions(), timeout
        )

    def _forget(self, procs: dict[str, ManagedProcess]) -> None:
        with self._transaction() as record:
            for host, proc in procs.items():
                if host in record.workers and record.workers[host].pid == proc.pid:
                    del record.workers[host]

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Stop every worker, then the master; afterwards no JVM of this cluster is left.

        Further launches on this object fail until a new master is started.
        """
        self._closing.set()
        drainer = self._drainer
        if drainer is not None and drainer is not threading.current_thread():
            drainer.join(timeout=30)
        with self._transaction() as record:
            self._terminate(list(record.workers.values()))
            if record.master:
                self._terminate([record.master])
            record.master, record.workers = None, {}
