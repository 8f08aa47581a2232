"""The worker pool: Spark worker daemons that sparkscaler starts, watches and stops, on any host.

Every backend that runs Spark's own worker daemons (``local``: JVMs on this machine; ``hosts``:
one worker per machine over SSH) shares this module; it fills in only a :class:`Launcher`, the
four things that differ between hosts (which host is free, start a worker there, is it still
running, stop it). Everything else is here, once:

* **The state file** (``<state_dir>/cluster.json``): the master and the workers we started,
  and the last problems. It is the single source of truth, shared by every sparkscaler process
  on this state directory (``run``, ``cluster scale`` in another terminal, a restarted
  sparkscaler): each change is a locked read-modify-write, so no process overwrites another's
  workers, and a restarted one re-adopts the cluster (never a second worker on a host, never a
  worker we did not start).
* **Provisioning.** :meth:`WorkerPool.launch` returns as soon as the daemons are spawned. Until
  the master lists a worker ALIVE it is PROVISIONING in :meth:`WorkerPool.workers`, under the
  id ``pending-<host>``; then it carries the master's id. One that exits or does not register
  within ``cluster.startup_timeout_s`` is stopped and forgotten, and why is kept
  (:meth:`WorkerPool.problems`).
* **Decommission** through the master (``POST /workers/kill/?host=``), and a tender thread that
  stops a draining worker once its executors are gone or at its deadline. A pool opened on a
  state file with drains in it (the process that asked was killed) finishes them.
* **Unreachable hosts.** A launcher call that raises :class:`HostUnreachable` takes that host
  out of launches and checks for :data:`UNREACHABLE_RETRY_S`, and is reported; the other hosts
  carry on.
* **The master**, always on this machine: started and stopped here unless the config attaches
  to one (``cluster.master_url``): then only ``cluster start`` may start it, when nothing
  answers there, and only a master recorded in the state file is ever stopped.

A worker's state is derived from its record, so it cannot contradict itself: ``provisioning``
(no master id yet), ``alive`` (registered), ``draining`` (a decommission deadline is set; a
worker that failed at start is given a deadline of now, so that it is stopped the same way).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from sparkscaler.backends.base import BackendError, HostUnreachable
from sparkscaler.config import ClusterSettings
from sparkscaler.core import WorkerInfo
from sparkscaler.errors import MissingExtraError
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable
from sparkscaler.processes import ChildProcesses, port_free, wait_until

log = logging.getLogger(__name__)

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

#: Spark settings for the daemons: graceful decommission on, asked for from this machine only.
DAEMON_PROPERTIES = {
    "spark.decommission.enabled": "true",
    "spark.master.ui.decommission.allow.mode": "LOCAL",
    "spark.worker.cleanup.enabled": "true",
}

#: A launched worker's id until the master has registered it.
PENDING_PREFIX = "pending-"
#: How long an inherited drain may take when no record says (the master shows a worker
#: DECOMMISSIONED, but the process that asked was killed before it wrote the deadline).
INHERITED_DRAIN_S = 120.0
#: How long a host that could not be reached is left alone before it is tried again.
UNREACHABLE_RETRY_S = 60.0
#: How long a stopped daemon gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 15.0
#: Seconds between two passes of the tender thread, and between two looks of a waiting caller.
TEND_INTERVAL_S = 1.0
#: Problems kept in the state file (the newest).
MAX_PROBLEMS = 20
#: Seconds between two decommission requests for a worker the master still shows ALIVE.
REASK_S = 10.0


def pending_id(host: str) -> str:
    return f"{PENDING_PREFIX}{host}"


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


def write_properties(path: Path, properties: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} {value}\n" for key, value in properties.items()))
    return path


def daemon_env(home: Path, host: str) -> dict[str, str]:
    """This process's environment for a daemon bound to ``host``; ``SPARK_CONF_DIR`` is dropped
    so that a user's Spark configuration does not change what sparkscaler starts."""
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": host}
    env.pop("SPARK_CONF_DIR", None)
    return env


class StateFileError(BackendError):
    """The state file cannot be read: no process can know which daemons are this cluster's.

    A ``BackendError``, so that the loop records it like any failed action and a command
    reports it in one line.
    """


@dataclass
class Daemon:
    """A daemon this pool started: enough to find it again, and to be sure it is ours.

    JSON-serialisable as it is (:func:`dataclasses.asdict`). ``create_time`` is the process's
    start time as its launcher reads it (psutil's ``create_time`` here, clock ticks since boot
    over SSH): with the pid it names the process, so a reused pid is never taken for ours.
    ``cores`` and ``memory_mb`` are what the worker offers (shown while it is PROVISIONING);
    ``stale_ids`` are the master's ids on this host at launch, which are not this daemon.
    """

    host: str
    pid: int
    create_time: float
    log: str
    cores: int = 0
    memory_mb: int = 0
    started_at: float = 0.0
    worker_id: str | None = None
    decommission_deadline: float | None = None
    stale_ids: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        if self.decommission_deadline is not None:
            return "draining"
        return "alive" if self.worker_id is not None else "provisioning"


@dataclass(frozen=True)
class Problem:
    """Something that went wrong with a worker or host, kept for ``problems()`` to report."""

    time: float
    host: str
    message: str


@dataclass
class ClusterRecord:
    """What the state file holds."""

    master: Daemon | None = None
    workers: dict[str, Daemon] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def processes(self) -> list[Daemon]:
        return ([self.master] if self.master else []) + list(self.workers.values())


@dataclass(frozen=True)
class WorkerSpec:
    """The worker the pool asks a launcher for: registered with this master, offering these
    resources (a launcher may give a host its own cores and memory), with these Spark
    properties (write them to the host's ``--properties-file``)."""

    master_url: str
    cores: int
    memory: str
    ui_port: int
    properties: Mapping[str, str]

    def args(
        self,
        host: str,
        work_dir: str,
        properties_file: str,
        *,
        cores: int | None = None,
        memory: str | None = None,
    ) -> list[str]:
        """The arguments of ``bin/spark-class`` that start this worker on ``host``."""
        return [
            WORKER_CLASS,
            *("--host", host, "--port", "0", "--webui-port", str(self.ui_port)),
            *("--cores", str(cores or self.cores), "--memory", memory or self.memory),
            *("--work-dir", work_dir, "--properties-file", properties_file),
            self.master_url,
        ]


class Launcher(Protocol):
    """What a backend fills in to run workers on its hosts; the pool does everything else.

    A call that cannot reach its host raises :class:`HostUnreachable` (``host`` set): the pool
    then leaves that host alone for :data:`UNREACHABLE_RETRY_S`, reports it and goes on with
    the others. Any other :class:`BackendError` from :meth:`start` fails that launch. Calls
    come from several threads and from inside the state file's lock: keep them short.
    """

    def candidates(self, count: int, taken: AbstractSet[str]) -> list[str]:
        """Up to ``count`` hosts where a new worker may start now, none of them in ``taken``
        (hosts with a worker of ours, or being left alone). Fewer, or none, when there are
        no more; the pool reports the shortfall."""
        ...

    def start(self, host: str, spec: WorkerSpec) -> Daemon:
        """Start a worker on ``host`` detached, in its own process group, and return at once
        with its record (host, pid, create_time, log, cores, memory_mb; the pool fills in
        the rest)."""
        ...

    def alive(self, daemon: Daemon) -> bool:
        """True while this very process (pid and create_time) runs. Called for every worker on
        each pass of the pool (about every second while any is provisioning or draining) and
        on each read of the state: answer from a cache of a second or two if a look is slow."""
        ...

    def stop(self, daemons: Sequence[Daemon], grace_s: float) -> None:
        """SIGTERM each daemon's process group (its executors too), SIGKILL it after ``grace_s``.

        A group whose leader has exited is still signalled (a crashed worker's executors), a
        pid reused by another program never is. Raise :class:`HostUnreachable` for a host that
        could not be reached only after stopping the daemons on the others."""
        ...

    def log_tail(self, daemon: Daemon) -> str:
        """The last lines of the daemon's log, to say why it failed (``(no log)`` if none)."""
        ...


def local_log_tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def is_local_address(host: str) -> bool:
    """True when ``host`` is an address of this machine (a socket can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
    return True


class WorkerPool:
    """A Spark standalone cluster of worker daemons this pool starts through ``launcher``;
    the ``Backend`` of every backend that runs Spark's own workers.

    The worker ids it returns and takes are the master's, and ``pending-<host>`` for a worker
    that is not registered yet.
    """

    def __init__(self, settings: ClusterSettings, state_dir: Path, launcher: Launcher) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.launcher = launcher
        self.master_client = MasterClient(settings.master_ui_url)
        self._http = httpx.Client(timeout=2.0)
        self._state_path = state_dir / "cluster.json"
        self._lock = threading.RLock()
        self._master_children = ChildProcesses()
        self._tender: threading.Thread | None = None
        self._closing = threading.Event()
        self._unreachable: dict[str, float] = {}
        self._asked: dict[str, float] = {}
        if self._unsettled(self._snapshot()):
            self._ensure_tender()

    # ------------------------------------------------------------------ state file
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[ClusterRecord]:
        """Lock the state file (across processes), read it, let the caller change it, write it.

        The record is written even when the caller fails part-way: a daemon it started before
        the failure must be in the file, or nothing would ever stop it.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.state_dir / "cluster.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = self._read()
            before = self._serialise(record)
            try:
                yield record
            finally:
                if self._serialise(record) != before:
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
            master = Daemon(**state["master"]) if state.get("master") else None
            workers = {h: Daemon(**w) for h, w in state.get("workers", {}).items()}
            problems = [Problem(**p) for p in state.get("problems", [])]
        except (AttributeError, TypeError) as error:
            raise self._corrupt(f"not a sparkscaler state: {error}") from error
        return ClusterRecord(master, workers, problems)

    def _corrupt(self, why: str) -> StateFileError:
        return StateFileError(
            f"state file {self._state_path} is corrupt ({why}); if no Spark daemons started "
            "from it are still running (ps -ef | grep org.apache.spark.deploy), delete it"
        )

    def _serialise(self, record: ClusterRecord) -> dict[str, Any]:
        return {
            "master_url": self.settings.master_url,
            "master_ui_url": self.settings.master_ui_url,
            "master": asdict(record.master) if record.master else None,
            "workers": {host: asdict(w) for host, w in record.workers.items()},
            "problems": [asdict(p) for p in record.problems[-MAX_PROBLEMS:]],
        }

    def _write(self, record: ClusterRecord) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".cluster-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(self._serialise(record), out, indent=2)
        os.replace(tmp, self._state_path)

    def _snapshot(self) -> ClusterRecord:
        """The state file as it is (read under the lock, not written), dead daemons included."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, (self.state_dir / "cluster.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)
            return self._read()

    def record(self) -> ClusterRecord:
        """The daemons of this cluster that are running now (a host being left alone as
        unreachable counts as running: nobody can tell)."""
        record = self._snapshot()
        master = record.master
        if master is not None and not self._master_children.running(master.pid, master.create_time):
            master = None
        workers = {h: d for h, d in record.workers.items() if self._alive(d) is not False}
        return ClusterRecord(master, workers, record.problems)

    @property
    def running(self) -> bool:
        """A master is there: ours, or (attached) one that answers."""
        return self.record().master is not None or (self.settings.attach and self._master_answers())

    @property
    def pids(self) -> list[int]:
        """Pids of every daemon this cluster runs (the master first)."""
        return [p.pid for p in self.record().processes()]

    def worker_pids(self) -> list[int]:
        """Pids of the worker daemons: with their children, the processes that run tasks."""
        return [w.pid for w in self.record().workers.values()]

    def problems(self, since: float = 0.0) -> list[Problem]:
        """What went wrong with workers and hosts (at ``since`` or later, epoch seconds), oldest
        first: workers that exited at start or did not register, hosts that were unreachable."""
        return [p for p in self._snapshot().problems if p.time >= since]

    def unreachable(self) -> dict[str, str]:
        """Hosts left out of launches and checks now because they could not be reached, each
        with why (for a decision's reason, ``cluster status`` and ``/api/status``)."""
        skipped = self._skipped()
        reasons = {p.host: p.message for p in self.problems() if p.host in skipped}
        return {host: reasons.get(host, "unreachable") for host in sorted(skipped)}

    # ------------------------------------------------------------------ hosts
    def _skipped(self) -> set[str]:
        now = time.monotonic()
        return {h for h, until in self._unreachable.items() if until > now}

    def _note(self, record: ClusterRecord, host: str, message: str) -> None:
        log.warning("%s", message)
        record.problems.append(Problem(time.time(), host, message))
        del record.problems[:-MAX_PROBLEMS]

    def _unreachable_host(self, record: ClusterRecord | None, error: HostUnreachable) -> None:
        """Leave ``error.host`` alone for a while, and report it (once per spell)."""
        if error.host in self._skipped():
            return
        self._unreachable[error.host] = time.monotonic() + UNREACHABLE_RETRY_S
        message = f"{error}; trying it again in {UNREACHABLE_RETRY_S:.0f} s"
        if record is not None:
            self._note(record, error.host, message)
        else:
            with self._transaction() as fresh:
                self._note(fresh, error.host, message)

    def _alive(self, daemon: Daemon, record: ClusterRecord | None = None) -> bool | None:
        """Whether the daemon runs; None when its host cannot be asked now."""
        if daemon.host in self._skipped():
            return None
        try:
            return self.launcher.alive(daemon)
        except HostUnreachable as error:
            self._unreachable_host(record, error)
            return None

    def _stop(self, daemons: Sequence[Daemon], record: ClusterRecord | None = None) -> set[str]:
        """Stop these daemons; the hosts that could not be reached (their daemons still run).
        ``record``: the caller's, when it holds the state file's lock."""
        reachable = [d for d in daemons if d.host not in self._skipped()]
        failed = {d.host for d in daemons} - {d.host for d in reachable}
        while reachable:
            try:
                self.launcher.stop(reachable, STOP_GRACE_S)
                break
            except HostUnreachable as error:  # the others were stopped; try them again
                self._unreachable_host(record, error)
                failed.add(error.host)
                reachable = [d for d in reachable if d.host != error.host]
        return failed

    def _forget(self, daemons: Sequence[Daemon]) -> None:
        with self._transaction() as record:
            for daemon in daemons:
                mine = record.workers.get(daemon.host)
                if mine is not None and mine.pid == daemon.pid:
                    del record.workers[daemon.host]

    # ------------------------------------------------------------------ the master
    def _master_answers(self) -> bool:
        try:
            self.master_client.fetch()
        except MasterUnavailable:
            return False
        return True

    def _master_workers(self) -> list[dict[str, Any]]:
        try:
            return list(self.master_client.fetch().get("workers", []))
        except MasterUnavailable as error:
            raise BackendError(str(error)) from error

    def start_master(self) -> None:
        """Start a master on this machine and wait until it is ALIVE."""
        s = self.settings
        if not is_local_address(s.master_host):
            raise BackendError(
                f"no Spark master answers at {s.master_url}, and {s.master_host} is not an "
                "address of this machine: start the master there"
            )
        for port in (s.master_port, s.master_ui_port):
            if not port_free(s.master_host, port):
                raise BackendError(
                    f"port {port} on {s.master_host} is in use (another Spark master?); "
                    "stop it or set cluster.master_port / cluster.master_ui_port"
                )
        self._closing.clear()
        home = spark_home()
        conf = write_properties(self.state_dir / "conf" / "daemon.conf", DAEMON_PROPERTIES)
        argv = [str(home / "bin" / "spark-class"), MASTER_CLASS, "--host", s.master_host]
        argv += ["--port", str(s.master_port), "--webui-port", str(s.master_ui_port)]
        argv += ["--properties-file", str(conf)]
        log_path = self.state_dir / "logs" / "master.log"
        with self._transaction() as record:
            try:
                pid, created = self._master_children.spawn(
                    argv, daemon_env(home, s.master_host), log_path
                )
            except OSError as error:
                raise BackendError(f"cannot start the Spark master: {error}") from error
            master = record.master = Daemon(s.master_host, pid, created, str(log_path))
        deadline = time.monotonic() + s.startup_timeout_s
        while time.monotonic() < deadline:
            if not self._master_children.running(master.pid, master.create_time):
                raise BackendError(f"the Spark master exited:\n{local_log_tail(master.log)}")
            with contextlib.suppress(MasterUnavailable):
                if self.master_client.fetch().get("status") == "ALIVE":
                    return
            time.sleep(0.5)
        raise BackendError(f"the Spark master did not come up in {s.startup_timeout_s:.0f} s")

    def start(self, workers: int, *, start_attached: bool = False) -> list[str]:
        """Start the master if needed, then add workers until ``workers`` run, and wait until
        they are ALIVE; return the master's ids of the workers this call added.

        A master the config attaches to is started only with ``start_attached`` (``cluster
        start``), and only when nothing answers there. When this call fails, it stops what it
        started: the master, or else the workers it added; a cluster that was already running
        is never stopped by a failed start.
        """
        started_master, launched = False, []
        try:
            if not self.running:
                if self.settings.attach and not start_attached:
                    raise BackendError(
                        f"no Spark master answers at {self.settings.master_url} "
                        "(cluster.master_url): sparkscaler does not start a master it attaches "
                        "to; start it, or run `sparkscaler cluster start`"
                    )
                self.start_master()
                started_master = True
            present = sum(1 for d in self._tend().workers.values() if d.state != "draining")
            launched = self.launch(workers - present) if workers > present else []
            self.wait_alive(self.settings.startup_timeout_s + 30, launched)
            record = self._snapshot()
            hosts = [i.removeprefix(PENDING_PREFIX) for i in launched]
            return [
                daemon.worker_id or pending_id(h)
                for h in hosts
                if (daemon := record.workers.get(h)) is not None
            ]
        except BaseException:
            if started_master:
                self.stop()
            elif launched:
                self._abandon([i.removeprefix(PENDING_PREFIX) for i in launched])
            raise

    def _abandon(self, hosts: Sequence[str]) -> None:
        """Stop and forget the workers this process just launched on ``hosts``."""
        daemons = [d for h, d in self._snapshot().workers.items() if h in hosts]
        self._stop(daemons)
        self._forget(daemons)

    # ------------------------------------------------------------------ Backend protocol
    def _spec(self) -> WorkerSpec:
        s = self.settings
        return WorkerSpec(
            s.master_url, s.worker_cores, s.worker_memory, s.worker_ui_port, DAEMON_PROPERTIES
        )

    def launch(self, count: int) -> list[str]:
        """Start ``count`` workers and return at once with their ids (``pending-<host>``).

        Hosts that cannot be reached are skipped for others; fewer workers than asked for are
        started when there are no more hosts (reported in :meth:`problems`), none is an error.
        """
        if count <= 0:
            return []
        known = self._master_workers()
        spec = self._spec()
        started: list[str] = []
        errors: list[str] = []
        with self._transaction() as record:
            if self._closing.is_set():
                raise BackendError("the cluster is stopping")
            if record.master is None and not self.settings.attach:
                raise BackendError("the Spark master is not running (start the cluster first)")
            tried: set[str] = set()
            while len(started) < count and not errors:  # until enough, or no more hosts
                taken = set(record.workers) | self._skipped() | tried
                hosts = self.launcher.candidates(count - len(started), taken)
                if not hosts:
                    break
                for host in hosts:
                    tried.add(host)
                    try:
                        daemon = self.launcher.start(host, spec)
                    except HostUnreachable as error:
                        self._unreachable_host(record, error)
                        continue
                    except BackendError as error:
                        errors.append(str(error))
                        break
                    daemon.started_at = time.time()
                    daemon.stale_ids = [
                        w["id"] for w in known if w["host"] == host and w["state"] != "DEAD"
                    ]
                    record.workers[host] = daemon
                    started.append(host)
            if len(started) < count and not errors:
                errors.append(
                    f"started {len(started)} of {count} worker(s): no more hosts free "
                    f"({len(record.workers)} in use, {len(self._skipped())} unreachable)"
                )
            if started and errors:
                self._note(record, "", "; ".join(errors))
        if not started:
            raise BackendError("; ".join(errors))
        self._ensure_tender()
        return [pending_id(h) for h in started]

    def workers(self) -> list[WorkerInfo]:
        raw = self._master_workers()
        record = self._reconcile(raw)
        if self._unsettled(record):
            self._ensure_tender()
        infos = []
        now = time.time()
        for daemon in record.workers.values():
            if daemon.state == "provisioning":
                infos.append(
                    WorkerInfo(
                        id=pending_id(daemon.host),
                        host=daemon.host,
                        port=0,
                        state="PROVISIONING",
                        cores=daemon.cores,
                        cores_used=0,
                        memory_mb=daemon.memory_mb,
                        memory_used_mb=0,
                        running_tasks=0,  # as the simulator's: idle, offering nothing yet
                        pending_s=max(0.0, now - daemon.started_at),
                    )
                )
            elif (entry := _entry(raw, daemon)) is not None:
                infos.append(MasterClient.worker_info(entry))
        return infos

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        host_of = {w["id"]: w["host"] for w in self._master_workers()}
        ask: list[str] = []
        with self._transaction() as record:
            daemons, unknown = [], []
            for worker_id in ids:
                host = (
                    worker_id.removeprefix(PENDING_PREFIX)
                    if worker_id.startswith(PENDING_PREFIX)
                    else host_of.get(worker_id, "")
                )
                daemon = record.workers.get(host)
                if daemon is None or worker_id in daemon.stale_ids:
                    unknown.append(worker_id)
                else:
                    daemons.append(daemon)
            if unknown:
                raise BackendError(f"not a worker of this cluster: {', '.join(unknown)}")
            now = time.time()
            for daemon in daemons:
                if daemon.state == "provisioning":  # nothing to drain: stop it now
                    daemon.decommission_deadline = now
                elif daemon.state == "alive":
                    daemon.decommission_deadline = now + timeout
                    ask.append(daemon.host)
        self._ensure_tender()
        errors = []
        for host in ask:
            try:
                self._ask_decommission(host)
            except MasterUnavailable as error:
                errors.append(str(error))
        if errors:
            raise BackendError("; ".join(errors))

    def _ask_decommission(self, host: str) -> None:
        self._asked[host] = time.monotonic()
        self.master_client.decommission_host(host)

    # ------------------------------------------------------------------ tending
    @staticmethod
    def _unsettled(record: ClusterRecord) -> bool:
        """Anything provisioning or draining: the tender has work."""
        return any(d.state != "alive" for d in record.workers.values())

    def _reconcile(self, raw: list[dict[str, Any]] | None) -> ClusterRecord:
        """Bring the record up to date with the processes and the master's list (``raw``, or
        None when the master cannot be read) and return a copy of it.

        A worker the master has ALIVE is registered; one that exited, or did not register in
        time, is reported and given a deadline of now (the tender stops it); one the master
        shows DECOMMISSIONED with no deadline of ours is an inherited drain.
        """
        timeout = self.settings.startup_timeout_s
        with self._transaction() as record:
            now = time.time()
            for daemon in record.workers.values():
                state = daemon.state
                if state == "draining":
                    continue
                running = self._alive(daemon, record)
                if running is None:
                    continue
                entry = _entry(raw, daemon) if raw is not None else None
                if not running:
                    what = "exited at start" if state == "provisioning" else "exited"
                    self._note(
                        record,
                        daemon.host,
                        f"worker {daemon.host} {what}:\n{self._log_tail(daemon)}",
                    )
                    daemon.decommission_deadline = now
                elif state == "provisioning" and entry and entry["state"] == "ALIVE":
                    daemon.worker_id = entry["id"]
                elif state == "provisioning" and now > daemon.started_at + timeout:
                    self._note(
                        record,
                        daemon.host,
                        f"worker {daemon.host} did not register with the master in "
                        f"{timeout:.0f} s; stopped it:\n{self._log_tail(daemon)}",
                    )
                    daemon.decommission_deadline = now
                elif state == "alive" and entry and entry["state"] == "DECOMMISSIONED":
                    log.info("finishing the inherited drain of worker %s", daemon.host)
                    daemon.decommission_deadline = now + INHERITED_DRAIN_S
            return dataclasses.replace(record, workers=dict(record.workers))

    def _log_tail(self, daemon: Daemon) -> str:
        try:
            return self.launcher.log_tail(daemon)
        except HostUnreachable as error:
            return f"(log not readable: {error})"

    def _tend(self) -> ClusterRecord:
        """One pass: reconcile, then stop every draining worker that is done (no executors
        left), dead, or past its deadline. Returns the record as it was reconciled."""
        try:
            raw: list[dict[str, Any]] | None = self._master_workers()
        except BackendError:
            raw = None
        record = self._reconcile(raw)
        now = time.time()
        done = []
        for daemon in record.workers.values():
            if daemon.state != "draining" or daemon.host in self._skipped():
                continue
            entry = _entry(raw, daemon) if raw is not None else None
            if now >= (daemon.decommission_deadline or 0.0) or self._alive(daemon) is False:
                done.append(daemon)
            elif entry is not None and entry["state"] == "ALIVE":
                if time.monotonic() - self._asked.get(daemon.host, -REASK_S) >= REASK_S:
                    with contextlib.suppress(MasterUnavailable):  # asked again next time
                        self._ask_decommission(daemon.host)
            elif self._drained(daemon.host):
                done.append(daemon)
        if done:
            failed = self._stop(done)
            self._forget([d for d in done if d.host not in failed])
        return record

    def _drained(self, host: str) -> bool:
        url = f"http://{host}:{self.settings.worker_ui_port}/json/"
        try:
            return not self._http.get(url).json().get("executors")
        except (httpx.HTTPError, ValueError):
            return False

    def _ensure_tender(self) -> None:
        with self._lock:
            if self._tender is None and not self._closing.is_set():
                self._tender = threading.Thread(
                    target=self._tend_loop, name="sparkscaler-tender", daemon=True
                )
                self._tender.start()

    def _tend_loop(self) -> None:
        """Tend the workers until none is provisioning or draining.

        The decision to exit is taken under the lock that :meth:`_ensure_tender` takes, so a
        launch or decommission that comes in meanwhile always finds a tender (or starts one).
        """
        while not self._closing.wait(TEND_INTERVAL_S):
            try:
                self._tend()
            except Exception:  # one bad pass (a state file being replaced) must not end it
                log.exception("tending the workers failed; trying again")
                continue
            with self._lock:
                if not self._unsettled(self._snapshot()):
                    self._tender = None
                    return
        with self._lock:
            self._tender = None

    def wait_alive(self, timeout: float, ids: Sequence[str] | None = None) -> None:
        """Block until these launched workers (``pending-<host>`` ids; by default every worker
        that is PROVISIONING now) are ALIVE, for the CLI, which shows a ready cluster.

        Raises :class:`BackendError` with the reasons of those that failed instead, or when
        some are still not ALIVE after ``timeout`` seconds.
        """
        if ids is None:
            workers = self._snapshot().workers
            hosts = [h for h, d in workers.items() if d.state == "provisioning"]
        else:
            hosts = [i.removeprefix(PENDING_PREFIX) for i in ids]
        deadline = time.monotonic() + timeout
        while True:
            states = {h: d.state for h, d in self._tend().workers.items()}
            pending = [h for h in hosts if states.get(h) == "provisioning"]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise BackendError(
                    f"{len(pending)} worker(s) not ALIVE after {timeout:.0f} s: "
                    + ", ".join(pending)
                )
            time.sleep(TEND_INTERVAL_S / 2)
        failed = [h for h in hosts if states.get(h) != "alive"]
        if failed:
            last = {p.host: p.message for p in self.problems()}
            raise BackendError(
                "\n".join(last.get(h, f"worker {h} stopped before it registered") for h in failed)
            )

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Block until no worker is draining (those this process decommissioned, and those it
        inherited); False on timeout. Without ``timeout``, wait until the last drain's deadline
        and the stop after it.

        The state file as it is (dead daemons included) is what counts: a stopped worker is
        done only once it is out of the file, or a CLI that exited then would leave its entry.
        """
        if timeout is None:  # after a pass, which gives an inherited drain its deadline
            deadlines = [d.decommission_deadline or 0.0 for d in self._tend().workers.values()]
            timeout = max([0.0, *(d - time.time() for d in deadlines)]) + STOP_GRACE_S + 15
        return wait_until(
            lambda: not any(d.state == "draining" for d in self._tend().workers.values()),
            timeout,
            TEND_INTERVAL_S / 2,
        )

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Stop every worker of ours, then the master if we started it (it is in the state
        file); afterwards no daemon of this cluster runs. A master the config attaches to and
        that we did not start is left alone.

        Further launches on this object fail until a new master is started. Workers on hosts
        that cannot be reached stay in the state file, and the error names them.
        """
        self._closing.set()
        tender = self._tender
        if tender is not None and tender is not threading.current_thread():
            tender.join(timeout=30)
        with self._transaction() as record:
            failed = self._stop(list(record.workers.values()), record)
            record.workers = {h: d for h, d in record.workers.items() if h in failed}
            if record.master:
                self._master_children.stop(
                    {record.master.pid: record.master.create_time}, STOP_GRACE_S
                )
                record.master = None
        if failed:
            raise BackendError(
                f"could not reach {', '.join(sorted(failed))} to stop its worker; "
                "`sparkscaler cluster stop` tries again"
            )


def _entry(raw: list[dict[str, Any]] | None, daemon: Daemon) -> dict[str, Any] | None:
    """The master's entry for this daemon: its registered id if the master still has it, else
    the latest entry on its host that is not DEAD (the newest of all if all are), never one
    of the ids that were there before it started."""
    entries = [w for w in raw or () if w["host"] == daemon.host and w["id"] not in daemon.stale_ids]
    if daemon.worker_id is not None:
        exact = [w for w in entries if w["id"] == daemon.worker_id]
        if exact:
            return exact[-1]
    live = [w for w in entries if w["state"] != "DEAD"]
    return (live or entries or [None])[-1]
