"""The observers on hand-written REST payloads and on a tiny local HTTP server (no Spark)."""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sparkscaler.clock import ManualClock
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.observe.spark_app import AppClient, executor_memory, stage_tasks
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable

T0 = 1_700_000_000.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------- stage_tasks
def test_stage_tasks_sums_running_and_pending_over_stages() -> None:
    stages = [
        {"numTasks": 10, "numActiveTasks": 2, "numCompleteTasks": 3, "numFailedTasks": 1},
        {"numTasks": 4, "numActiveTasks": 0, "numCompleteTasks": 0, "numFailedTasks": 0},
        {"numTasks": 6, "numActiveTasks": 3, "numCompleteTasks": 3},  # missing field = 0
    ]
    # running 2 + 0 + 3; pending (10 - 2 - 4) + 4 + 0
    assert stage_tasks(stages) == (5, 8)


def test_stage_tasks_pending_is_never_negative() -> None:
    # Retried tasks can make active + complete + failed exceed numTasks.
    stages = [
        {"numTasks": 4, "numActiveTasks": 1, "numCompleteTasks": 3, "numFailedTasks": 3},
        {"numTasks": 5, "numActiveTasks": 0, "numCompleteTasks": 2, "numFailedTasks": 0},
    ]
    assert stage_tasks(stages) == (1, 3)  # 0 from the first stage, not -3


def test_stage_tasks_of_nothing() -> None:
    assert stage_tasks([]) == (0, 0)


# ------------------------------------------------------------------------------- executor_memory
EXECUTORS: list[dict[str, Any]] = [
    {
        "id": "driver",
        "isActive": True,
        "memoryUsed": 999,
        "maxMemory": 5000,
        "totalInputBytes": 7,
        "memoryMetrics": {"usedOnHeapStorageMemory": 999},
        "peakMemoryMetrics": {"OnHeapExecutionMemory": 999},
    },
    {
        "id": "1",
        "isActive": True,
        "memoryUsed": 12345,  # ignored: memoryMetrics is there
        "maxMemory": 400,
        "totalInputBytes": 1000,
        "memoryMetrics": {"usedOnHeapStorageMemory": 100, "usedOffHeapStorageMemory": 20},
        "peakMemoryMetrics": {"OnHeapExecutionMemory": 50, "OffHeapExecutionMemory": 10},
    },
    {
        "id": "2",
        "isActive": False,  # gone: not counted
        "memoryUsed": 800,
        "maxMemory": 800,
        "totalInputBytes": 800,
        "peakMemoryMetrics": {"OnHeapExecutionMemory": 800},
    },
    {"id": "3", "memoryUsed": 30, "maxMemory": 600, "totalInputBytes": 500},  # active by default
]


def test_executor_memory_excludes_driver_and_inactive_executors() -> None:
    storage, execution, total, input_bytes = executor_memory(EXECUTORS)
    assert storage == 100 + 20 + 30
    assert execution == 50 + 10
    assert total == 400 + 600
    assert input_bytes == 1000 + 500


def test_executor_memory_of_only_a_driver() -> None:
    assert executor_memory(EXECUTORS[:1]) == (0.0, 0.0, 0.0, 0.0)


# ------------------------------------------------------------------------------- cluster_state
def _worker(wid: str, host: str, *, state: str = "ALIVE", cores: int = 2, used: int = 0) -> dict:
    return {
        "id": wid,
        "host": host,
        "port": 40000,
        "webuiaddress": f"http://{host}:8081",
        "cores": cores,
        "coresused": used,
        "coresfree": cores - used,
        "memory": 1024,
        "memoryused": 512 * used,
        "memoryfree": 1024 - 512 * used,
        "state": state,
        "lastheartbeat": 1_700_000_000_000,
    }


def _master_json(
    workers: list[dict], apps: list[dict] | None = None, drivers: list[dict] | None = None
) -> dict[str, Any]:
    return {
        "url": "spark://127.0.0.1:7077",
        "workers": workers,
        "aliveworkers": sum(1 for w in workers if w["state"] == "ALIVE"),
        "cores": sum(w["cores"] for w in workers),
        "coresused": sum(w["coresused"] for w in workers),
        "activeapps": apps or [],
        "completedapps": [],
        "activedrivers": drivers or [],
        "completeddrivers": [],
        "status": "ALIVE",
    }


def _app(app_id: str, state: str = "RUNNING", start_s: float = T0 - 100) -> dict:
    return {
        "id": app_id,
        "starttime": int(start_s * 1000),
        "name": f"job {app_id}",
        "cores": 2,
        "user": "me",
        "memoryperexecutor": 1024,
        "submitdate": "whenever",
        "state": state,
        "duration": 1000,
    }


def test_cluster_state_from_master_json() -> None:
    data = _master_json(
        [
            _worker("w-a", "127.0.0.2", used=2),
            _worker("w-b", "127.0.0.3"),
            _worker("w-dead", "127.0.0.4", state="DEAD"),
            _worker("w-dec", "127.0.0.5", state="DECOMMISSIONED", used=1),
        ],
        apps=[_app("app-1"), _app("app-2", "WAITING"), _app("app-3", "WAITING")],
        drivers=[{"state": "SUBMITTED"}, {"state": "RUNNING"}, {"state": "RELAUNCHING"}],
    )
    state = MasterClient.cluster_state(data, {"w-b": 12.5, "w-gone": 99.0})
    assert [w.id for w in state.workers] == ["w-a", "w-b", "w-dec"]  # DEAD dropped
    assert state.alive_workers == 2
    assert state.decommissioning_workers == 1
    assert (state.cores_total, state.cores_used) == (4, 2)
    assert (state.memory_total_mb, state.memory_used_mb) == (2048, 1024)
    assert {w.id: w.idle_s for w in state.workers} == {"w-a": 0.0, "w-b": 12.5, "w-dec": 0.0}
    assert [a.id for a in state.active_apps] == ["app-1", "app-2", "app-3"]
    assert state.waiting_apps == 2
    assert state.waiting_drivers == 2
    assert state.active_apps[0].start_time == T0 - 100  # ms -> s
    w_a = state.workers[0]
    assert (w_a.host, w_a.port, w_a.cores, w_a.cores_used, w_a.busy) == (
        "127.0.0.2",
        40000,
        2,
        2,
        True,
    )


def test_cluster_state_of_an_empty_master() -> None:
    state = MasterClient.cluster_state({"workers": []})
    assert state.workers == ()
    assert (state.waiting_apps, state.waiting_drivers) == (0, 0)
    assert state.cores_per_worker is None


# ------------------------------------------------------------------------------- a dead master
def test_observer_with_a_dead_master_is_stale_and_does_not_raise() -> None:
    port = _free_port()
    clock = ManualClock(T0)
    observer = SparkObserver(
        MasterClient(f"http://127.0.0.1:{port}", timeout_s=1.0),
        AppClient("127.0.0.1", [port], timeout_s=1.0),
        clock,
        host=None,
    )
    try:
        obs = observer.observe()
        clock.advance(5)
        again = observer.observe()
    finally:
        observer.apps.close()
    assert obs.stale
    assert obs.time == T0
    assert len(obs.errors) == 1
    assert f"127.0.0.1:{port} did not answer" in obs.errors[0]
    assert obs.workers == 0
    assert (obs.running_tasks, obs.pending_tasks) == (0, 0)
    assert again.stale
    assert again.time == T0 + 5


def test_master_client_raises_master_unavailable_for_a_dead_port() -> None:
    with pytest.raises(MasterUnavailable, match="did not answer"):
        MasterClient(f"http://127.0.0.1:{_free_port()}", timeout_s=1.0).fetch()


# ------------------------------------------------------------------------------- a fake Spark
class FakeSpark:
    """One HTTP server that plays a master's /json/ and one application's /api/v1."""

    def __init__(self) -> None:
        self.master: Any = _master_json(
            [_worker("w-1", "127.0.0.2", used=2), _worker("w-2", "127.0.0.3", used=0)],
            apps=[_app("app-1")],
        )
        self.master_status = 200
        self.applications: list[dict] = [{"id": "app-1", "name": "job app-1"}]
        self.stages: list[dict] = [
            {"numTasks": 10, "numActiveTasks": 2, "numCompleteTasks": 3, "numFailedTasks": 1},
            {"numTasks": 4, "numActiveTasks": 0, "numCompleteTasks": 0, "numFailedTasks": 0},
        ]
        self.executors = copy.deepcopy(EXECUTORS)
        self.properties = [["spark.app.name", "job"], ["spark.sparkscaler.deadline", "300"]]
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def route(self, path: str) -> tuple[int, Any]:
        base = "/api/v1/applications"
        with self._lock:
            self.requests.append(path)
            routes = {
                "/json/": (self.master_status, self.master),
                base: (200, self.applications),
                f"{base}/app-1/stages?status=active": (200, self.stages),
                f"{base}/app-1/executors": (200, self.executors),
                f"{base}/app-1/environment": (200, {"sparkProperties": self.properties}),
            }
            return copy.deepcopy(routes.get(path, (404, {"error": "not found"})))


@pytest.fixture
def fake_spark() -> Iterator[tuple[FakeSpark, int]]:
    fake = FakeSpark()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = fake.route(self.path)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def observed(
    fake_spark: tuple[FakeSpark, int],
) -> Iterator[tuple[FakeSpark, SparkObserver, ManualClock]]:
    fake, port = fake_spark
    clock = ManualClock(T0)
    # A dead UI port first: probing must skip it and find the app on the live one.
    apps = AppClient("127.0.0.1", [_free_port(), port], timeout_s=2.0)
    observer = SparkObserver(
        MasterClient(f"http://127.0.0.1:{port}", timeout_s=2.0), apps, clock, host=None
    )
    try:
        yield fake, observer, clock
    finally:
        apps.close()


def test_observer_reads_tasks_memory_and_deadline(observed) -> None:
    fake, observer, _clock = observed
    obs = observer.observe()
    assert not obs.stale
    assert obs.errors == ()
    assert obs.time == T0
    assert obs.workers == 2
    assert (obs.running_tasks, obs.pending_tasks) == (2, 8)  # pending (10 - 2 - 4) + 4
    assert obs.backlog_age_s == 0.0  # first sight of the backlog
    # Executors 1 and 3: storage 120 + 30 of 400 + 600; execution peak 60.
    assert obs.features.mt == pytest.approx(15.0)
    assert obs.features.ma == pytest.approx(6.0)
    assert (obs.features.cu, obs.features.cs, obs.features.bi, obs.features.bo) == (0, 0, 0, 0)
    assert obs.input_bytes == 1500
    assert obs.deadline_s == 300.0
    assert obs.oldest_job_elapsed_s == pytest.approx(100.0)
    assert "/api/v1/applications/app-1/stages?status=active" in fake.requests


def test_backlog_age_and_worker_idle_time_grow_across_observations(observed) -> None:
    fake, observer, clock = observed
    first = observer.observe()
    assert first.backlog_age_s == 0.0
    assert {w.id: w.idle_s for w in first.cluster.workers} == {"w-1": 0.0, "w-2": 0.0}

    clock.advance(7)
    second = observer.observe()
    assert second.time == T0 + 7
    assert second.backlog_age_s == pytest.approx(7.0)
    # w-1 is busy (coresused 2): 0; w-2 has had no core in use since T0.
    assert {w.id: w.idle_s for w in second.cluster.workers} == {"w-1": 0.0, "w-2": 7.0}

    # w-2 becomes busy, w-1 idle; the backlog is still there.
    fake.master = _master_json(
        [_worker("w-1", "127.0.0.2", used=0), _worker("w-2", "127.0.0.3", used=1)],
        apps=[_app("app-1")],
    )
    clock.advance(3)
    third = observer.observe()
    assert third.backlog_age_s == pytest.approx(10.0)
    # w-1 was last seen busy at T0 + 7.
    assert {w.id: w.idle_s for w in third.cluster.workers} == {"w-1": 3.0, "w-2": 0.0}

    # The backlog clears: age 0; it comes back: age counts from its return.
    fake.stages = [{"numTasks": 4, "numActiveTasks": 1, "numCompleteTasks": 3}]
    clock.advance(2)
    cleared = observer.observe()
    assert (cleared.running_tasks, cleared.pending_tasks) == (1, 0)
    assert cleared.backlog_age_s == 0.0
    assert {w.id: w.idle_s for w in cleared.cluster.workers} == {"w-1": 5.0, "w-2": 0.0}

    fake.stages = [{"numTasks": 6, "numActiveTasks": 1, "numCompleteTasks": 0}]
    clock.advance(4)
    assert observer.observe().backlog_age_s == 0.0
    clock.advance(1.5)
    assert observer.observe().backlog_age_s == pytest.approx(1.5)


def test_a_new_worker_starts_idle_at_zero(observed) -> None:
    fake, observer, clock = observed
    observer.observe()
    clock.advance(20)
    fake.master["workers"].append(_worker("w-3", "127.0.0.4"))
    obs = observer.observe()
    assert {w.id: w.idle_s for w in obs.cluster.workers} == {"w-1": 0.0, "w-2": 20.0, "w-3": 0.0}
    clock.advance(5)
    obs = observer.observe()
    assert {w.id: w.idle_s for w in obs.cluster.workers} == {"w-1": 0.0, "w-2": 25.0, "w-3": 5.0}


def test_an_app_without_a_rest_api_is_an_error_not_stale(observed) -> None:
    fake, observer, _clock = observed
    fake.master["activeapps"].append(_app("app-2", start_s=T0 - 500))
    obs = observer.observe()
    assert not obs.stale
    assert obs.errors == ("no REST API found for application app-2",)
    assert (obs.running_tasks, obs.pending_tasks) == (2, 8)  # app-1 still counted
    assert obs.oldest_job_elapsed_s == pytest.approx(500.0)


def test_no_apps_means_no_load(observed) -> None:
    fake, observer, _clock = observed
    fake.master["activeapps"] = []
    obs = observer.observe()
    assert (obs.running_tasks, obs.pending_tasks, obs.backlog_age_s) == (0, 0, 0.0)
    assert (obs.features.mt, obs.features.ma) == (0.0, 0.0)
    assert obs.input_bytes is None
    assert obs.oldest_job_elapsed_s is None
    assert obs.deadline_s is None


def test_default_deadline_applies_when_the_app_sets_none(fake_spark) -> None:
    fake, port = fake_spark
    fake.properties = [["spark.app.name", "job"]]
    apps = AppClient("127.0.0.1", [port])
    try:
        observer = SparkObserver(
            MasterClient(f"http://127.0.0.1:{port}"),
            apps,
            ManualClock(T0),
            host=None,
            default_deadline_s=120.0,
        )
        assert observer.observe().deadline_s == 120.0
    finally:
        apps.close()


@pytest.mark.parametrize("broken", ["status", "not a master"])
def test_a_master_answering_nonsense_is_stale(observed, broken: str) -> None:
    fake, observer, _clock = observed
    if broken == "status":
        fake.master_status = 500
    else:
        fake.master = {"hello": "world"}
    obs = observer.observe()
    assert obs.stale
    assert len(obs.errors) == 1
