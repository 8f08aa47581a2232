"""The worker pool's bookkeeping with a fake launcher and a fake master (no JVM, no SSH):
provisioning, failures at start, unreachable hosts, decommission, inherited drains,
re-adoption and the attach rule."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import httpx
import pytest

from sparkscaler.backends.base import BackendError, HostUnreachable
from sparkscaler.backends.daemons import Daemon, WorkerPool, WorkerSpec
from sparkscaler.config import ClusterSettings
from sparkscaler.observe.spark_master import MasterUnavailable

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


class FakeLauncher:
    """Hosts as a dict of running 'processes'; a host in ``unreachable`` raises on every call."""

    def __init__(self) -> None:
        self.running: dict[int, bool] = {}
        self.unreachable: set[str] = set()
        self.started: list[str] = []
        self.stopped: list[str] = []
        self._next_pid = 1000

    def _reach(self, host: str) -> None:
        if host in self.unreachable:
            raise HostUnreachable(host, "connection refused")

    def candidates(self, count: int, taken: AbstractSet[str]) -> list[str]:
        return [h for h in HOSTS if h not in taken][:count]

    def start(self, host: str, spec: WorkerSpec) -> Daemon:
        self._reach(host)
        self._next_pid += 1
        self.running[self._next_pid] = True
        self.started.append(host)
        return Daemon(host, self._next_pid, 1.0, f"/logs/{host}", spec.cores, 2048)

    def alive(self, daemon: Daemon) -> bool:
        self._reach(daemon.host)
        return self.running.get(daemon.pid, False)

    def stop(self, daemons: Sequence[Daemon], grace_s: float) -> None:
        for daemon in daemons:
            self._reach(daemon.host)
            self.running[daemon.pid] = False
            self.stopped.append(daemon.host)

    def log_tail(self, daemon: Daemon) -> str:
        return f"last lines of {daemon.log}"


class FakeMaster:
    """The master's /json/ workers list and its decommission endpoint; ``busy`` hosts have
    executors (their worker UI lists some)."""

    def __init__(self) -> None:
        self.workers: list[dict[str, Any]] = []
        self.decommissioned: list[str] = []
        self.busy: set[str] = set()
        self.up = True
        self.refuse_decommission = False

    def register(self, host: str) -> str:
        worker_id = f"worker-{len(self.workers)}-{host}"
        self.workers.append({"id": worker_id, "host": host, "state": "ALIVE", "cores": 2})
        return worker_id

    def fetch(self) -> dict[str, Any]:
        if not self.up:
            raise MasterUnavailable("the master did not answer")
        return {"status": "ALIVE", "workers": [dict(w) for w in self.workers]}

    def decommission_host(self, host: str) -> None:
        if self.refuse_decommission:
            raise MasterUnavailable(f"cannot reach the master to decommission {host}")
        self.decommissioned.append(host)
        for w in self.workers:
            if w["host"] == host and w["state"] == "ALIVE":
                w["state"] = "DECOMMISSIONED"

    def worker_ui(self, request: httpx.Request) -> httpx.Response:
        executors = [{"id": "1"}] if request.url.host in self.busy else []
        return httpx.Response(200, json={"executors": executors})


@pytest.fixture
def master() -> FakeMaster:
    return FakeMaster()


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


def _settings(**changes: Any) -> ClusterSettings:
    """An attached master (nothing to start), short start-up timeout."""
    return ClusterSettings.model_validate(
        {"master_url": "spark://127.0.0.1:7077", "startup_timeout_s": 30, **changes}
    )


@pytest.fixture
def open_pool(tmp_path: Path, master: FakeMaster, launcher: FakeLauncher) -> Iterator[Any]:
    """Pools over one state directory (as several sparkscaler processes would be), each with
    the fake master and launcher; closed afterwards."""
    pools: list[WorkerPool] = []

    def open_pool(settings: ClusterSettings | None = None) -> WorkerPool:
        pool = WorkerPool(settings or _settings(), tmp_path / "state", launcher)
        pool.master_client = master  # type: ignore[assignment]
        pool._http = httpx.Client(transport=httpx.MockTransport(master.worker_ui))
        pools.append(pool)
        return pool

    yield open_pool
    for pool in pools:
        pool._closing.set()


def test_launch_returns_pending_ids_and_workers_are_provisioning_until_registered(
    open_pool: Any, master: FakeMaster
) -> None:
    pool = open_pool()
    assert pool.launch(2) == ["pending-10.0.0.1", "pending-10.0.0.2"]
    infos = {w.id: w for w in pool.workers()}
    assert {w.state for w in infos.values()} == {"PROVISIONING"}
    assert infos["pending-10.0.0.1"].cores == 1 and infos["pending-10.0.0.1"].memory_mb == 2048

    registered = master.register("10.0.0.1")
    states = {w.id: w.state for w in pool.workers()}
    assert states == {registered: "ALIVE", "pending-10.0.0.2": "PROVISIONING"}
    assert pool.record().workers["10.0.0.1"].worker_id == registered


def test_a_worker_that_exits_at_start_is_stopped_forgotten_and_reported(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    pool = open_pool()
    pool.launch(1)
    launcher.running[launcher._next_pid] = False
    with pytest.raises(BackendError, match=r"worker 10\.0\.0\.1 exited at start:\nlast lines of"):
        pool.wait_alive(10)
    assert pool.workers() == [] and pool.record().workers == {}
    assert launcher.stopped == ["10.0.0.1"]  # its group, in case it left children
    assert [p.host for p in pool.problems()] == ["10.0.0.1"]


def test_a_worker_that_does_not_register_in_time_is_stopped_and_reported(
    open_pool: Any, launcher: FakeLauncher
) -> None:
    pool = open_pool(_settings(startup_timeout_s=0.5))
    pool.launch(1)
    with pytest.raises(BackendError, match="did not register with the master in 0 s"):
        pool.wait_alive(10)
    assert launcher.stopped == ["10.0.0.1"] and pool.record().workers == {}


def test_an_old_registration_on_the_host_is_not_taken_for_the_new_worker(
    open_pool: Any, master: FakeMaster
) -> None:
    """The master keeps a worker it lost touch with ALIVE for a while: not ours."""
    old = master.register("10.0.0.1")
    pool = open_pool()
    pool.launch(1)
    assert [w.state for w in pool.workers()] == ["PROVISIONING"]
    with pytest.raises(BackendError, match="not a worker of this cluster"):
        pool.decommission([old], 60)
    new = master.register("10.0.0.1")
    assert [(w.id, w.state) for w in pool.workers()] == [(new, "ALIVE")]


def test_an_unreachable_host_is_skipped_reported_and_tried_again_later(
    open_pool: Any, launcher: FakeLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher.unreachable.add("10.0.0.1")
    pool = open_pool()
    assert pool.launch(1) == ["pending-10.0.0.2"]
    assert "host 10.0.0.1 is unreachable over SSH" in pool.problems()[-1].message
    assert list(pool.unreachable()) == ["10.0.0.1"]
    assert pool.launch(1) == ["pending-10.0.0.3"]  # left alone, not asked again
    with pytest.raises(BackendError, match="started 0 of 1 worker"):
        pool.launch(1)
    assert launcher.started == ["10.0.0.2", "10.0.0.3"]

    launcher.unreachable.clear()
    monkeypatch.setattr("sparkscaler.backends.daemons.UNREACHABLE_RETRY_S", 0.0)
    pool._unreachable.clear()  # as after the retry delay
    assert pool.launch(1) == ["pending-10.0.0.1"]


def test_a_worker_on_an_unreachable_host_is_kept_not_forgotten(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    """Nobody can tell whether it still runs: it stays ours, and its host is not reused."""
    pool = open_pool()
    pool.launch(1)
    master.register("10.0.0.1")
    pool.workers()
    launcher.unreachable.add("10.0.0.1")
    assert len(pool.workers()) == 1 and "10.0.0.1" in pool.record().workers
    with pytest.raises(BackendError, match=r"could not reach 10\.0\.0\.1"):
        pool.stop()
    assert "10.0.0.1" in pool.record().workers


def test_decommissioning_a_provisioning_worker_stops_it_without_the_master(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    pool = open_pool()
    pool.launch(1)
    pool.decommission(["pending-10.0.0.1"], 60)
    assert pool.wait_drained(10)
    assert launcher.stopped == ["10.0.0.1"] and master.decommissioned == []
    assert pool.record().workers == {}


def test_a_drain_waits_for_the_executors_then_stops_the_worker(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    pool = open_pool()
    pool.launch(1)
    worker = master.register("10.0.0.1")
    pool.wait_alive(10)
    master.busy.add("10.0.0.1")
    pool.decommission([worker], 60)
    assert master.decommissioned == ["10.0.0.1"]
    assert not pool.wait_drained(1.5) and launcher.stopped == []
    master.busy.clear()
    assert pool.wait_drained(10) and launcher.stopped == ["10.0.0.1"]


def test_a_new_pool_finishes_the_drains_it_inherits(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher, tmp_path: Path
) -> None:
    """The process that decommissioned the workers was killed: one drain is in the state
    file, the other only at the master (killed between asking and writing)."""
    first = open_pool()
    first.launch(2)
    ids = [master.register(h) for h in HOSTS[:2]]
    first.wait_alive(10)
    first.decommission(ids[:1], 600)
    first._closing.set()  # killed: its tender is gone
    master.decommission_host("10.0.0.2")

    second = open_pool()
    assert second.wait_drained(10)
    assert sorted(launcher.stopped) == ["10.0.0.1", "10.0.0.2"]
    assert second.record().workers == {}


def test_a_lost_decommission_request_is_sent_again(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    pool = open_pool()
    pool.launch(1)
    worker = master.register("10.0.0.1")
    pool.wait_alive(10)
    master.refuse_decommission = True
    with pytest.raises(BackendError, match="cannot reach the master"):
        pool.decommission([worker], 600)
    assert [w.state for w in pool.workers()] == ["ALIVE"]
    master.refuse_decommission = False
    pool._asked.clear()  # as after the re-ask delay
    assert pool.wait_drained(10)
    assert master.decommissioned == ["10.0.0.1"] and launcher.stopped == ["10.0.0.1"]


def test_a_second_pool_on_the_state_never_doubles_a_host(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    first = open_pool()
    first.launch(1)
    second = open_pool()
    assert second.launch(1) == ["pending-10.0.0.2"]
    assert [w.host for w in second.workers()] == ["10.0.0.1", "10.0.0.2"]
    assert launcher.started == ["10.0.0.1", "10.0.0.2"]


def test_the_state_file_is_plain_json_with_each_worker_and_problem(
    open_pool: Any, launcher: FakeLauncher, tmp_path: Path
) -> None:
    pool = open_pool()
    launcher.unreachable.add("10.0.0.1")
    pool.launch(1)
    state = json.loads((tmp_path / "state" / "cluster.json").read_text())
    assert state["master"] is None
    assert state["workers"]["10.0.0.2"]["pid"] == launcher._next_pid
    assert state["workers"]["10.0.0.2"]["worker_id"] is None
    assert state["problems"][0]["host"] == "10.0.0.1"


def test_an_attached_master_that_does_not_answer_is_never_started_by_run(
    open_pool: Any, master: FakeMaster
) -> None:
    pool = open_pool()
    master.up = False
    assert not pool.running
    with pytest.raises(BackendError, match="does not start a master it attaches to"):
        pool.start(1)
    master.up = True
    assert pool.running  # a master that answers is the cluster's, though not ours
    assert pool.start(0) == []
    pool.stop()  # stops nothing it did not start (no master in the state file)


def test_launch_takes_no_time_waiting(open_pool: Any) -> None:
    began = time.monotonic()
    open_pool().launch(3)
    assert time.monotonic() - began < 1.0


def test_a_failed_start_stops_the_workers_it_added_and_says_why(
    open_pool: Any, master: FakeMaster, launcher: FakeLauncher
) -> None:
    """`cluster start 2` on a running master: one worker dies at start, so neither is kept."""
    pool = open_pool()
    real_start = launcher.start

    def start_and_die(host: str, spec: WorkerSpec) -> Daemon:
        daemon = real_start(host, spec)
        if host == "10.0.0.2":
            launcher.running[daemon.pid] = False
        else:
            master.register(host)
        return daemon

    launcher.start = start_and_die  # type: ignore[method-assign]
    with pytest.raises(BackendError, match=r"worker 10\.0\.0\.2 exited at start"):
        pool.start(2)
    assert sorted(launcher.stopped) == ["10.0.0.1", "10.0.0.2"]
    assert pool.record().workers == {}
