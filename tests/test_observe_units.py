"""The observers on hand-written REST payloads and on a tiny local HTTP server (no Spark)."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest

from sparkscaler.clock import ManualClock
from sparkscaler.core import ClusterState, StageProgress, WorkerInfo
from sparkscaler.errors import SparkscalerError
from sparkscaler.observe.host import HostSampler, spark_worker_processes
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.observe.spark_app import (
    AppClient,
    AppLoad,
    executor_memory,
    input_read,
    stage_tasks,
    tasks_by_host,
)
from sparkscaler.observe.spark_master import MasterClient, MasterUnavailable

T0 = 1_700_000_000.0
#: Spark's REST timestamps (UTC) of T0, T0 - 30 s and T0 - 50 s, written out by hand.
AT_T0 = "2023-11-14T22:13:20.000GMT"
AT_T0_MINUS_30 = "2023-11-14T22:12:50.000GMT"
AT_T0_MINUS_50 = "2023-11-14T22:12:30.000GMT"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------- stage_tasks
def test_stage_tasks_sums_running_and_pending_over_stages() -> None:
    stages = [
        # Completed indices win over completed attempts (speculation can finish one twice).
        {"numTasks": 10, "numActiveTasks": 2, "numCompleteTasks": 4, "numCompletedIndices": 3},
        {"numTasks": 4, "numActiveTasks": 0, "numCompleteTasks": 0, "numFailedTasks": 0},
        {"numTasks": 6, "numActiveTasks": 3, "numCompleteTasks": 3},  # no indices: attempts
        {"numTasks": 5, "numActiveTasks": 1},  # missing fields = 0
    ]
    # running 2 + 0 + 3 + 1; pending (10 - 2 - 3) + 4 + 0 + (5 - 1); no submission times
    assert stage_tasks(stages) == (6, 13, None)


def test_failed_attempts_leave_their_task_pending() -> None:
    # 2 attempts failed and 1 of them was retried (running now); the other task waits again.
    stages = [
        {
            "numTasks": 8,
            "numActiveTasks": 1,
            "numCompleteTasks": 5,
            "numCompletedIndices": 5,
            "numFailedTasks": 2,
        }
    ]
    assert stage_tasks(stages) == (1, 2, None)  # 8 - 1 - 5, failures not subtracted


def test_stage_tasks_pending_is_never_negative() -> None:
    # Speculative and retried attempts can make active + completed exceed numTasks.
    stages = [
        {"numTasks": 4, "numActiveTasks": 2, "numCompleteTasks": 5, "numCompletedIndices": 3},
        {"numTasks": 5, "numActiveTasks": 3, "numCompleteTasks": 4},
        {"numTasks": 5, "numActiveTasks": 0, "numCompleteTasks": 2, "numFailedTasks": 9},
    ]
    assert stage_tasks(stages) == (5, 3, None)  # 0 + 0 + 3, not -1 - 2 + 3


def test_stage_tasks_of_nothing() -> None:
    assert stage_tasks([]) == (0, 0, None)


def test_backlog_since_is_the_oldest_stage_that_still_has_pending_tasks() -> None:
    stages = [
        # Oldest, but all its tasks are running or done: not part of the backlog.
        {"numTasks": 2, "numActiveTasks": 2, "submissionTime": "2023-11-14T22:10:00.000GMT"},
        {"numTasks": 3, "numActiveTasks": 0, "submissionTime": "2023-11-14T22:13:00.750GMT"},
        {"numTasks": 3, "numActiveTasks": 1, "submissionTime": "2023-11-14T22:12:50.250GMT"},
        {"numTasks": 1, "numActiveTasks": 0},  # pending, but no time
    ]
    assert stage_tasks(stages) == (3, 3 + 2 + 1, T0 - 29.75)


def test_backlog_since_is_none_when_the_pending_stages_have_no_usable_time() -> None:
    stages = [
        {"numTasks": 2, "numActiveTasks": 2, "submissionTime": AT_T0},  # nothing pending
        {"numTasks": 4, "numActiveTasks": 0},
        {"numTasks": 4, "numActiveTasks": 0, "submissionTime": "yesterday"},
        {"numTasks": 4, "numActiveTasks": 0, "submissionTime": ""},
    ]
    assert stage_tasks(stages) == (2, 12, None)


def test_submission_times_are_utc_whatever_the_local_zone() -> None:
    stages = [{"numTasks": 1, "submissionTime": "2026-11-21T07:51:04.123GMT"}]
    old = os.environ.get("TZ")
    try:
        for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
            os.environ["TZ"] = zone
            time.tzset()
            # 2026-11-21T00:00Z is day 20778 since the epoch: 20778 * 86400 + 28264.123 s.
            assert stage_tasks(stages) == (0, 1, pytest.approx(1_795_247_464.123, abs=1e-3)), zone
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


# ------------------------------------------------------------------------------- executors
EXECUTORS: list[dict[str, Any]] = [
    {
        "id": "driver",
        "hostPort": "127.0.0.1:40000",
        "isActive": True,
        "activeTasks": 5,  # local-mode style tasks on the driver: not a worker's
        "memoryUsed": 999,
        "maxMemory": 5000,
        "totalInputBytes": 7,
        "memoryMetrics": {"usedOnHeapStorageMemory": 999},
        "peakMemoryMetrics": {"OnHeapExecutionMemory": 999},
    },
    {
        "id": "1",
        "hostPort": "127.0.0.2:41000",
        "isActive": True,
        "activeTasks": 1,
        "memoryUsed": 12345,  # ignored: memoryMetrics is there
        "maxMemory": 400,
        "totalInputBytes": 1000,
        "memoryMetrics": {"usedOnHeapStorageMemory": 100, "usedOffHeapStorageMemory": 20},
        "peakMemoryMetrics": {"OnHeapExecutionMemory": 50, "OffHeapExecutionMemory": 10},
    },
    {
        "id": "2",
        "hostPort": "127.0.0.3:41001",
        "isActive": False,  # gone: not counted
        "activeTasks": 3,
        "memoryUsed": 800,
        "maxMemory": 800,
        "totalInputBytes": 800,
        "peakMemoryMetrics": {"OnHeapExecutionMemory": 800},
    },
    {  # active by default; holds cores on 127.0.0.3 but runs nothing
        "id": "3",
        "hostPort": "127.0.0.3:41002",
        "activeTasks": 0,
        "memoryUsed": 30,
        "maxMemory": 600,
        "totalInputBytes": 500,
    },
    {"id": "4", "hostPort": "127.0.0.2:41003", "activeTasks": 1},  # a second one on .2
]


def test_executor_memory_excludes_driver_and_inactive_executors() -> None:
    storage, execution, total = executor_memory(EXECUTORS)
    assert storage == 100 + 20 + 30
    assert execution == 50 + 10
    assert total == 400 + 600


def test_input_read_counts_gone_executors_but_not_the_driver() -> None:
    assert input_read(EXECUTORS) == 1000 + 800 + 500


def test_executor_memory_of_only_a_driver() -> None:
    assert executor_memory(EXECUTORS[:1]) == (0.0, 0.0, 0.0)
    assert input_read(EXECUTORS[:1]) == 0.0


def test_tasks_by_host_sums_live_executors_per_host_without_the_driver() -> None:
    # .2: executors 1 and 4; .3: executor 3 only (2 is inactive); the driver's host is absent.
    assert tasks_by_host(EXECUTORS) == {"127.0.0.2": 2, "127.0.0.3": 0}


def test_tasks_by_host_of_only_a_driver_or_nothing() -> None:
    assert tasks_by_host(EXECUTORS[:1]) == {}
    assert tasks_by_host([]) == {}


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
    # No executor map: running tasks unknown, busy-ness from the cores in use.
    assert {w.id: (w.running_tasks, w.busy) for w in state.workers} == {
        "w-a": (None, True),
        "w-b": (None, False),
        "w-dec": (None, True),
    }
    w_a = state.workers[0]
    assert (w_a.host, w_a.port, w_a.cores, w_a.cores_used, w_a.busy) == (
        "127.0.0.2",
        40000,
        2,
        2,
        True,
    )


def test_cluster_state_takes_running_tasks_from_the_executor_map() -> None:
    data = _master_json(
        [
            _worker("w-a", "127.0.0.2", used=2),  # cores held, no task: idle
            _worker("w-b", "127.0.0.3", used=0),  # cores free, a task (just launched): busy
            _worker("w-c", "127.0.0.4", used=1),  # no executor in the map at all: 0
        ]
    )
    state = MasterClient.cluster_state(
        data, tasks_by_host={"127.0.0.2": 0, "127.0.0.3": 3, "127.0.0.9": 4}
    )
    assert {w.id: (w.running_tasks, w.busy) for w in state.workers} == {
        "w-a": (0, False),
        "w-b": (3, True),
        "w-c": (0, False),
    }
    empty = MasterClient.cluster_state(data, tasks_by_host={})
    assert {w.id: (w.running_tasks, w.busy) for w in empty.workers} == {
        "w-a": (0, False),
        "w-b": (0, False),
        "w-c": (0, False),
    }


@pytest.mark.parametrize(
    ("running_tasks", "cores_used", "busy"),
    [(None, 0, False), (None, 2, True), (0, 2, False), (1, 0, True), (4, 2, True)],
)
def test_worker_busy_prefers_running_tasks(
    running_tasks: int | None, cores_used: int, busy: bool
) -> None:
    worker = WorkerInfo("w", "h", 1, "ALIVE", 2, cores_used, 1024, 0, running_tasks=running_tasks)
    assert worker.busy is busy


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
        AppClient(f"http://127.0.0.1:{port}", "127.0.0.1", [port], timeout_s=1.0),
        clock,
        host=None,
    )
    try:
        obs = observer.observe()
        clock.advance(5)
        again = observer.observe()
    finally:
        observer.close()
    assert obs.stale
    assert obs.time == T0
    assert len(obs.errors) == 1
    assert f"127.0.0.1:{port} did not answer" in obs.errors[0]
    assert obs.workers == 0
    assert obs.cluster == ClusterState()  # nothing seen yet
    assert (obs.running_tasks, obs.pending_tasks) == (0, 0)
    assert again.stale
    assert again.time == T0 + 5


def test_master_client_raises_master_unavailable_for_a_dead_port() -> None:
    client = MasterClient(f"http://127.0.0.1:{_free_port()}", timeout_s=1.0)
    try:
        with pytest.raises(MasterUnavailable, match="did not answer"):
            client.fetch()
    finally:
        client.close()


# ------------------------------------------------------------------------------- a fake Spark
@dataclass
class FakeApp:
    """One application's /api/v1 answers."""

    stages: list[dict] = field(default_factory=list)
    executors: list[dict] = field(default_factory=list)
    properties: list[list[str]] = field(default_factory=list)


def _app_1() -> FakeApp:
    return FakeApp(
        stages=[
            {
                "numTasks": 10,
                "numActiveTasks": 2,
                "numCompleteTasks": 4,
                "numCompletedIndices": 3,
                "numFailedTasks": 1,
                "submissionTime": AT_T0_MINUS_30,
            },
            {
                "numTasks": 4,
                "numActiveTasks": 0,
                "numCompleteTasks": 0,
                "numCompletedIndices": 0,
                "numFailedTasks": 0,
                "submissionTime": "2023-11-14T22:13:10.000GMT",  # T0 - 10
            },
        ],
        executors=copy.deepcopy(EXECUTORS),
        properties=[["spark.app.name", "job"], ["spark.sparkscaler.deadline", "300"]],
    )


class FakeSpark:
    """One HTTP server that plays a master's /json/ and its applications' /api/v1."""

    def __init__(self) -> None:
        # w-2's executor (executor 3) holds a core but runs nothing.
        self.master: Any = _master_json(
            [_worker("w-1", "127.0.0.2", used=2), _worker("w-2", "127.0.0.3", used=1)],
            apps=[_app("app-1")],
        )
        self.master_status = 200
        self.apps: dict[str, FakeApp] = {"app-1": _app_1()}
        self.requests: list[str] = []
        self._lock = threading.Lock()

    @property
    def app1(self) -> FakeApp:
        return self.apps["app-1"]

    def route(self, path: str) -> tuple[int, Any]:
        base = "/api/v1/applications"
        with self._lock:
            self.requests.append(path)
            routes: dict[str, tuple[int, Any]] = {
                "/json/": (self.master_status, self.master),
                base: (200, [{"id": i, "name": f"job {i}"} for i in self.apps]),
            }
            for app_id, app in self.apps.items():
                # Spark numbers stages 0, 1, ... per app: the canned stages in list order,
                # unless one says its id (a second attempt of a stage); no status: ACTIVE.
                stages = [{"stageId": i, **stage} for i, stage in enumerate(app.stages)]
                active = [s for s in stages if s.get("status", "ACTIVE") == "ACTIVE"]
                routes[f"{base}/{app_id}/stages?status=active"] = (200, active)
                routes[f"{base}/{app_id}/stages"] = (200, stages)
                for stage in stages:
                    one = f"{base}/{app_id}/stages/{stage['stageId']}?details=false"
                    attempts = [s for s in stages if s["stageId"] == stage["stageId"]]
                    routes[one] = (200, attempts)
                routes[f"{base}/{app_id}/allexecutors"] = (200, app.executors)
                routes[f"{base}/{app_id}/environment"] = (
                    200,
                    {"sparkProperties": app.properties},
                )
            return copy.deepcopy(routes.get(path, (404, {"error": "not found"})))


@contextlib.contextmanager
def serving(fake: FakeSpark) -> Iterator[int]:
    """Serve ``fake`` on a free port of this machine until the block ends."""

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
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_spark() -> Iterator[tuple[FakeSpark, int]]:
    fake = FakeSpark()
    with serving(fake) as port:
        yield fake, port


def _observer(port: int, clock: ManualClock, **kwargs: Any) -> SparkObserver:
    # A dead UI port first: probing must skip it and find the apps on the live one.
    return SparkObserver(
        MasterClient(f"http://127.0.0.1:{port}", timeout_s=2.0),
        AppClient(f"http://127.0.0.1:{port}", "127.0.0.1", [_free_port(), port], timeout_s=2.0),
        clock,
        host=None,
        **kwargs,
    )


@pytest.fixture
def observed(
    fake_spark: tuple[FakeSpark, int],
) -> Iterator[tuple[FakeSpark, SparkObserver, ManualClock]]:
    fake, port = fake_spark
    clock = ManualClock(T0)
    observer = _observer(port, clock)
    try:
        yield fake, observer, clock
    finally:
        observer.close()


def _idle(obs: Any) -> dict[str, float]:
    return {w.id: w.idle_s for w in obs.cluster.workers}


def _running(obs: Any) -> dict[str, int | None]:
    return {w.id: w.running_tasks for w in obs.cluster.workers}


def test_app_client_load_of_one_app(fake_spark) -> None:
    _fake, port = fake_spark
    client = AppClient(f"http://127.0.0.1:{port}", "127.0.0.1", [port])
    try:
        assert client.load("app-1") == AppLoad(
            app_id="app-1",
            running_tasks=2,
            pending_tasks=9,  # (10 - 2 - 3) + 4
            backlog_since=T0 - 30,
            tasks_by_host={"127.0.0.2": 2, "127.0.0.3": 0},
            storage_memory_used=150.0,
            execution_memory_peak=60.0,
            executor_memory=1000.0,
            input_bytes=None,  # not declared
            input_read_bytes=2300.0,
            deadline_s=300.0,
            signature="job",  # its name: no spark.sparkscaler.job
            stages=(StageProgress(0, 10, done=3, running=2), StageProgress(1, 4)),
        )
        assert client.load("app-unknown") is None
    finally:
        client.close()


def test_observer_reads_tasks_memory_and_deadline(observed) -> None:
    fake, observer, _clock = observed
    obs = observer.observe()
    assert not obs.stale
    assert obs.errors == ()
    assert obs.time == T0
    assert obs.workers == 2
    assert (obs.running_tasks, obs.pending_tasks) == (2, 9)  # pending (10 - 2 - 3) + 4
    assert obs.backlog_age_s == pytest.approx(30.0)  # the stage submitted at T0 - 30
    # Executors 1 and 3: storage 120 + 30 of 400 + 600; execution peak 60.
    assert obs.features.mt == pytest.approx(15.0)
    assert obs.features.ma == pytest.approx(6.0)
    assert (obs.features.cu, obs.features.cs, obs.features.bi, obs.features.bo) == (0, 0, 0, 0)
    assert obs.input_bytes is None  # the job did not declare its size
    assert obs.input_read_bytes == 2300  # executors 1, 2 (gone) and 3
    assert obs.deadline_s == 300.0
    assert obs.oldest_job_elapsed_s == pytest.approx(100.0)
    # Every app answered: busy-ness from the executors' tasks, not from the cores held.
    assert _running(obs) == {"w-1": 2, "w-2": 0}
    assert {w.id: (w.cores_used, w.busy) for w in obs.cluster.workers} == {
        "w-1": (2, True),
        "w-2": (1, False),
    }
    assert "/api/v1/applications/app-1/stages?status=active" in fake.requests


def test_a_worker_holding_cores_without_tasks_idles(observed) -> None:
    fake, observer, clock = observed
    first = observer.observe()
    assert _idle(first) == {"w-1": 0.0, "w-2": 0.0}  # first sight

    clock.advance(7)
    second = observer.observe()
    # w-2's executor still holds its core (coresused 1) but has run nothing since T0.
    assert second.cluster.workers[1].cores_used == 1
    assert _idle(second) == {"w-1": 0.0, "w-2": 7.0}

    # w-2's executor picks a task up, w-1's two go quiet; the master's cores do not change.
    fake.app1.executors[1]["activeTasks"] = 0
    fake.app1.executors[4]["activeTasks"] = 0
    fake.app1.executors[3]["activeTasks"] = 1
    clock.advance(3)
    third = observer.observe()
    assert _running(third) == {"w-1": 0, "w-2": 1}
    assert _idle(third) == {"w-1": 3.0, "w-2": 0.0}  # w-1 was last seen busy at T0 + 7

    clock.advance(4)
    fourth = observer.observe()
    assert _idle(fourth) == {"w-1": 7.0, "w-2": 0.0}


def test_backlog_age_counts_from_sparks_submission_time(observed) -> None:
    fake, observer, clock = observed
    assert observer.observe().backlog_age_s == pytest.approx(30.0)
    clock.advance(7)
    assert observer.observe().backlog_age_s == pytest.approx(37.0)

    # The oldest stage's tasks all run or are done: the backlog is the T0 - 10 stage's.
    fake.app1.stages[0].update(numActiveTasks=7, numCompletedIndices=3)
    clock.advance(1)
    obs = observer.observe()
    assert (obs.running_tasks, obs.pending_tasks) == (7, 4)
    assert obs.backlog_age_s == pytest.approx(18.0)  # T0 + 8 - (T0 - 10)

    # The backlog clears: 0, although the stages still carry submission times.
    fake.app1.stages[1].update(numActiveTasks=4)
    clock.advance(1)
    cleared = observer.observe()
    assert (cleared.running_tasks, cleared.pending_tasks) == (11, 0)
    assert cleared.backlog_age_s == 0.0

    # A new stage submitted at T0 + 8 queues tasks: its age at T0 + 12 is 4.
    fake.app1.stages.append(
        {"numTasks": 3, "numActiveTasks": 0, "submissionTime": "2023-11-14T22:13:28.000GMT"}
    )
    clock.advance(3)
    assert observer.observe().backlog_age_s == pytest.approx(4.0)


def test_backlog_age_without_submission_times_counts_from_first_sight(observed) -> None:
    fake, observer, clock = observed
    for stage in fake.app1.stages:
        del stage["submissionTime"]
    first = observer.observe()
    assert first.pending_tasks == 9
    assert first.backlog_age_s == 0.0  # first sight of the backlog

    clock.advance(7)
    assert observer.observe().backlog_age_s == pytest.approx(7.0)
    clock.advance(3)
    assert observer.observe().backlog_age_s == pytest.approx(10.0)

    # The backlog clears: age 0; it comes back: age counts from its return.
    fake.app1.stages = [{"numTasks": 4, "numActiveTasks": 1, "numCompletedIndices": 3}]
    clock.advance(2)
    cleared = observer.observe()
    assert (cleared.running_tasks, cleared.pending_tasks) == (1, 0)
    assert cleared.backlog_age_s == 0.0

    fake.app1.stages = [{"numTasks": 6, "numActiveTasks": 1, "numCompletedIndices": 0}]
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
    assert _running(obs) == {"w-1": 2, "w-2": 0, "w-3": 0}  # no executor on .4
    assert _idle(obs) == {"w-1": 0.0, "w-2": 20.0, "w-3": 0.0}
    clock.advance(5)
    obs = observer.observe()
    assert _idle(obs) == {"w-1": 0.0, "w-2": 25.0, "w-3": 5.0}


def test_an_app_without_a_rest_api_is_an_error_not_stale(observed) -> None:
    fake, observer, clock = observed
    observer.observe()  # w-2 idle since T0 by its executor's tasks
    fake.master["activeapps"].append(_app("app-2", start_s=T0 - 500))
    clock.advance(6)
    obs = observer.observe()
    assert not obs.stale
    assert obs.errors == ("no REST API found for application app-2",)
    assert (obs.running_tasks, obs.pending_tasks) == (2, 9)  # app-1 still counted
    assert obs.backlog_age_s == pytest.approx(36.0)
    assert obs.oldest_job_elapsed_s == pytest.approx(506.0)  # app-2 started at T0 - 500
    # app-2's executors are unknown: busy-ness falls back to the cores the master allocated.
    assert _running(obs) == {"w-1": None, "w-2": None}
    assert {w.id: w.busy for w in obs.cluster.workers} == {"w-1": True, "w-2": True}
    assert _idle(obs) == {"w-1": 0.0, "w-2": 0.0}


def test_loads_of_several_apps_add_up(fake_spark) -> None:
    fake, port = fake_spark
    fake.master["activeapps"].append(_app("app-2", start_s=T0 - 40))
    fake.apps["app-2"] = FakeApp(
        stages=[
            {
                "numTasks": 3,
                "numActiveTasks": 1,
                "numCompletedIndices": 0,
                "submissionTime": AT_T0_MINUS_50,
            }
        ],
        executors=[
            {
                "id": "7",
                "hostPort": "127.0.0.3:42000",
                "activeTasks": 1,
                "maxMemory": 1000,
                "totalInputBytes": 20,
                "memoryMetrics": {"usedOnHeapStorageMemory": 350},
                "peakMemoryMetrics": {"OnHeapExecutionMemory": 140},
            }
        ],
        properties=[["spark.sparkscaler.deadline", "120"]],
    )
    clock = ManualClock(T0)
    observer = _observer(port, clock, default_deadline_s=600.0)
    try:
        obs = observer.observe()
        clock.advance(4)
        later = observer.observe()
    finally:
        observer.close()
    assert obs.errors == ()
    assert (obs.running_tasks, obs.pending_tasks) == (2 + 1, 9 + 2)
    assert obs.backlog_age_s == pytest.approx(50.0)  # app-2's stage is older than app-1's
    assert obs.deadline_s == 120.0  # the tightest
    # storage (150 + 350) / (1000 + 1000); execution (60 + 140) / 2000.
    assert (obs.features.mt, obs.features.ma) == (pytest.approx(25.0), pytest.approx(10.0))
    assert obs.input_read_bytes == 2320
    # w-2's tasks come from app-2's executor on the same host.
    assert _running(obs) == {"w-1": 2, "w-2": 1}
    assert later.backlog_age_s == pytest.approx(54.0)
    assert _idle(later) == {"w-1": 0.0, "w-2": 0.0}


def test_a_malformed_deadline_does_not_hide_the_apps_load(fake_spark, caplog) -> None:
    fake, port = fake_spark
    fake.app1.properties = [["spark.sparkscaler.deadline", "ten minutes"]]
    clock = ManualClock(T0)
    observer = _observer(port, clock, default_deadline_s=120.0)
    try:
        with caplog.at_level(logging.WARNING, logger="sparkscaler.observe.spark_app"):
            obs = observer.observe()
            clock.advance(1)
            again = observer.observe()
    finally:
        observer.close()
    assert obs.errors == ()
    assert (obs.running_tasks, obs.pending_tasks) == (2, 9)
    assert obs.input_read_bytes == 2300
    assert obs.deadline_s == 120.0  # the app's deadline counts as none: the default
    assert again.deadline_s == 120.0
    warnings = [r for r in caplog.records if "ten minutes" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not every observation
    assert "app-1" in warnings[0].getMessage()
    # ... but carried by every observation, for each decision's reason while the job runs
    assert len(obs.warnings) == 1 and "'ten minutes'" in obs.warnings[0]
    assert again.warnings == obs.warnings


def test_a_malformed_deadline_next_to_a_valid_one(fake_spark) -> None:
    fake, port = fake_spark
    fake.master["activeapps"].append(_app("app-2"))
    fake.apps["app-2"] = FakeApp(
        stages=[{"numTasks": 5, "numActiveTasks": 0}],
        properties=[["spark.sparkscaler.deadline", "soon"]],
    )
    observer = _observer(port, ManualClock(T0), default_deadline_s=30.0)
    try:
        obs = observer.observe()
    finally:
        observer.close()
    assert obs.errors == ()
    assert obs.pending_tasks == 9 + 5
    assert obs.deadline_s == 300.0  # app-1's; app-2's is none, the default is not used


def test_no_apps_means_no_load(observed) -> None:
    fake, observer, _clock = observed
    fake.master["activeapps"] = []
    obs = observer.observe()
    assert (obs.running_tasks, obs.pending_tasks, obs.backlog_age_s) == (0, 0, 0.0)
    assert (obs.features.mt, obs.features.ma) == (0.0, 0.0)
    assert obs.input_bytes is None and obs.input_read_bytes is None
    assert obs.oldest_job_elapsed_s is None
    assert obs.deadline_s is None
    assert obs.errors == ()
    # No app at all still means every app answered: nothing runs anywhere.
    assert _running(obs) == {"w-1": 0, "w-2": 0}


def test_default_deadline_applies_when_the_app_sets_none(fake_spark) -> None:
    fake, port = fake_spark
    fake.app1.properties = [["spark.app.name", "job"]]
    observer = _observer(port, ManualClock(T0), default_deadline_s=120.0)
    try:
        assert observer.observe().deadline_s == 120.0
    finally:
        observer.close()


@pytest.mark.parametrize("broken", ["status", "not a master"])
def test_a_master_answering_nonsense_is_stale(observed, broken: str) -> None:
    fake, observer, clock = observed
    seen = observer.observe()
    assert not seen.stale
    if broken == "status":
        fake.master_status = 500
    else:
        fake.master = {"hello": "world"}
    clock.advance(3)
    obs = observer.observe()
    assert obs.stale
    assert obs.time == T0 + 3
    assert len(obs.errors) == 1
    # The last cluster state seen, unchanged, so that a hold can say what it holds at.
    assert obs.cluster == seen.cluster
    assert obs.workers == 2
    assert _running(obs) == {"w-1": 2, "w-2": 0}


def test_close_closes_both_http_clients(fake_spark) -> None:
    _fake, port = fake_spark
    observer = _observer(port, ManualClock(T0))
    observer.observe()
    assert not observer.master._http.is_closed
    assert not observer.apps._http.is_closed
    observer.close()
    assert observer.master._http.is_closed
    assert observer.apps._http.is_closed


# ------------------------------------------------------------------------------- host sampler
_BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end:\n    pass\n"


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_host_sampler_measures_only_the_given_process_trees() -> None:
    # A root whose child spins the CPU, and a root that only sleeps.
    busy_root = _start(["bash", "-c", f'{sys.executable} -c "$0" & echo $!; wait', _BUSY])
    sleeper = _start(["sleep", "60"])
    children: list[int] = []
    try:
        assert busy_root.stdout is not None
        children.append(int(busy_root.stdout.readline()))
        tree = {p.pid for p in spark_worker_processes([busy_root.pid])}
        assert tree == {busy_root.pid, children[0]}
        assert {p.pid for p in spark_worker_processes([sleeper.pid, 2**22 + 1])} == {
            sleeper.pid
        }  # a pid that does not exist is skipped
        assert spark_worker_processes([]) == []

        busy = HostSampler(1000.0, roots=lambda: [busy_root.pid])
        idle = HostSampler(1000.0, roots=lambda: [sleeper.pid])
        one_core = ClusterState(workers=(WorkerInfo("w", "127.0.0.2", 1, "ALIVE", 1, 0, 1024, 0),))
        assert busy.sample(T0, one_core) == (0.0, 0.0, 0.0, 0.0)  # zeros on the first call
        assert idle.sample(T0, one_core) == (0.0, 0.0, 0.0, 0.0)
        time.sleep(0.5)
        cu, cs, bi, bo = busy.sample(T0, one_core)
        idle_cu, idle_cs, _, _ = idle.sample(T0, one_core)
        assert cu > 30.0  # the grandchild's spinning counts, relative to 1 core
        assert cu + cs <= 100.0
        assert (idle_cu, idle_cs) == (pytest.approx(0.0, abs=3.0), pytest.approx(0.0, abs=3.0))
        assert 0.0 <= bi <= 100.0 and 0.0 <= bo <= 100.0
    finally:
        for pid in children:
            _kill(pid)  # bash's `wait` reaps it and bash exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            busy_root.wait(timeout=5)
        for proc in (busy_root, sleeper):
            _kill(proc.pid)
            proc.wait(timeout=5)
            assert proc.stdout is not None
            proc.stdout.close()
    assert not psutil.pid_exists(children[0])


# ------------------------------------------------------------------------------- provisioning
def _provisioning(wid: str, host: str) -> WorkerInfo:
    return WorkerInfo(wid, host, 0, "PROVISIONING", 2, 0, 1024, 0, running_tasks=0)


def test_workers_the_backend_provisions_count_until_the_master_lists_them(fake_spark) -> None:
    _fake, port = fake_spark
    asked = [
        _provisioning("pending-127.0.0.4", "127.0.0.4"),  # not at the master yet
        _provisioning("pending-127.0.0.3", "127.0.0.3"),  # w-2 registered meanwhile
        WorkerInfo("w-1", "127.0.0.2", 1, "ALIVE", 2, 2, 1024, 0),  # the master's say counts
        # Registered after the master answered: the backend has it ALIVE, the snapshot not yet.
        WorkerInfo("w-9", "127.0.0.9", 1, "ALIVE", 2, 0, 1024, 0),
    ]
    observer = SparkObserver(
        MasterClient(f"http://127.0.0.1:{port}"),
        AppClient(f"http://127.0.0.1:{port}", "127.0.0.1", [port]),
        ManualClock(T0),
        provisioning=lambda: asked,
    )
    try:
        obs = observer.observe()
    finally:
        observer.close()
    assert [(w.id, w.state) for w in obs.cluster.workers] == [
        ("w-1", "ALIVE"),
        ("w-2", "ALIVE"),
        ("pending-127.0.0.4", "PROVISIONING"),
        ("w-9", "PROVISIONING"),
    ]
    assert (obs.workers, obs.cluster.alive_workers, obs.cluster.provisioning_workers) == (4, 2, 2)
    assert obs.cluster.cores_total == 4  # a provisioning worker offers nothing yet
    # Not even the one the backend already calls ALIVE (its tasks would be unknown, None).
    provisioning = [w for w in obs.cluster.workers if w.state == "PROVISIONING"]
    assert [(w.cores_used, w.running_tasks) for w in provisioning] == [(0, 0), (0, 0)]


def test_a_worker_that_registers_between_the_answers_keeps_its_wait(fake_spark) -> None:
    """Asked for 40 s ago and PROVISIONING at the backend; 5 s later it has registered with the
    backend but the master's snapshot does not list it yet: still PROVISIONING, and 45 s
    waited (not 0, which would plan it as a whole provisioning delay away)."""
    _fake, port = fake_spark
    clock = ManualClock(T0)
    asked = [replace(_provisioning("pending-127.0.0.9", "127.0.0.9"), pending_s=40.0)]
    observer = SparkObserver(
        MasterClient(f"http://127.0.0.1:{port}"),
        AppClient(f"http://127.0.0.1:{port}", "127.0.0.1", [port]),
        clock,
        provisioning=lambda: asked,
    )
    try:
        first = observer.observe()
        clock.advance(5.0)
        asked[:] = [WorkerInfo("w-9", "127.0.0.9", 1, "ALIVE", 2, 0, 1024, 0)]
        second = observer.observe()
    finally:
        observer.close()
    ((w1,),) = [[w for w in first.cluster.workers if w.host == "127.0.0.9"]]
    ((w2,),) = [[w for w in second.cluster.workers if w.host == "127.0.0.9"]]
    assert (w1.state, w1.pending_s) == ("PROVISIONING", 40.0)
    assert (w2.id, w2.state, w2.pending_s) == ("w-9", "PROVISIONING", 45.0)


def test_a_backend_that_cannot_list_its_workers_is_an_error_not_stale(fake_spark) -> None:
    _fake, port = fake_spark

    def broken() -> list[WorkerInfo]:
        raise SparkscalerError("state file unreadable")

    observer = SparkObserver(
        MasterClient(f"http://127.0.0.1:{port}"),
        AppClient(f"http://127.0.0.1:{port}", "127.0.0.1", [port]),
        ManualClock(T0),
        provisioning=broken,
    )
    try:
        obs = observer.observe()
    finally:
        observer.close()
    assert not obs.stale and obs.workers == 2
    assert obs.errors == ("the backend's workers are unknown: state file unreadable",)
