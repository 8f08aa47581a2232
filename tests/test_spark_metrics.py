"""The CPU and network features from Spark's task metrics (no Spark), a job's declared input
size, and what the simulator says has been read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sparkscaler.backends.simulated import SimObserver, input_read_bytes
from sparkscaler.core import (
    INPUT_BYTES_PROPERTY,
    AppInfo,
    ClusterState,
    WorkerInfo,
    job_input_bytes,
)
from sparkscaler.observe.spark_app import AppClient, AppLoad
from sparkscaler.observe.spark_metrics import SYSTEM_SHARE, SparkMetricsSampler, worker_hosts
from sparkscaler.observe.stage_work import Work
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage

APP = "app-1"
BASE = "http://driver:4040/api/v1"


def _stage(sid: int, status: str = "ACTIVE", cpu_s: float = 0.0, read: float = 0.0, **more: Any):
    return {
        "stageId": sid,
        "attemptId": 0,
        "status": status,
        "numTasks": 4,
        "numActiveTasks": 1 if status == "ACTIVE" else 0,
        "numCompletedIndices": 1,
        "executorCpuTime": int(cpu_s * 1e9),
        "executorDeserializeCpuTime": 0,
        "inputBytes": read,
        "shuffleRemoteBytesRead": more.get("remote", 0),
        "outputBytes": more.get("output", 0),
        "resultSize": more.get("result", 0),
    }


class _Stages(AppClient):
    """One application whose stages the test sets, by id, as Spark's REST API serves them."""

    def __init__(self) -> None:
        super().__init__("http://master:8080", "driver", [4040])
        self.locator._urls = {APP: BASE}
        self.stages: dict[int, dict[str, Any]] = {}
        self.asked: list[str] = []
        self.properties = [[INPUT_BYTES_PROPERTY, "3g"]]

    def _get(self, url: str, missing_ok: bool = False) -> Any:
        path = url.removeprefix(f"{BASE}/applications/{APP}/")
        self.asked.append(path)
        if path == "environment":
            return {"sparkProperties": self.properties}
        if path == "stages?status=active":
            return [s for s in self.stages.values() if s["status"] == "ACTIVE"]
        if path == "stages":
            return list(self.stages.values())
        if path.startswith("stages/"):
            sid = int(path.split("/")[1].split("?")[0])
            assert missing_ok
            return [self.stages[sid]] if sid in self.stages else None
        return [{"id": "1", "hostPort": "10.0.0.5:1", "totalInputBytes": 700}]


def test_work_counts_every_stage_once_however_short() -> None:
    client = _Stages()
    try:
        client.stages = {0: _stage(0, "COMPLETE", cpu_s=50), 1: _stage(1, cpu_s=5, read=100)}
        first = client.load(APP)
        assert first is not None
        assert first.work == Work()  # first sight: what was done before is not counted
        assert (first.input_bytes, first.input_read_bytes) == (3 * 1024**3, 700.0)

        # Stage 1 grows; stage 2 is submitted and waits for it.
        client.stages[1] = _stage(1, cpu_s=8, read=160)
        client.stages[2] = _stage(2, "PENDING")
        second = client.load(APP)
        assert second is not None
        assert second.work == Work(cpu_s=3, bytes_in=60)

        # Stage 1 finishes (its last counters read once), 2 runs, 3 and 4 start and end
        # between the two looks, 5 waits.
        client.stages[1] = _stage(1, "COMPLETE", cpu_s=9, read=200, output=30, result=5)
        client.stages[2] = _stage(2, cpu_s=1, remote=50)
        client.stages[3] = _stage(3, "COMPLETE", cpu_s=2)
        client.stages[4] = _stage(4, "SKIPPED")
        client.stages[5] = _stage(5, "PENDING")
        third = client.load(APP)
        assert third is not None
        assert third.work == Work(cpu_s=3 + 1 + 1 + 2, bytes_in=60 + 40 + 50, bytes_out=35 + 50)

        # Nothing new: the work stays, and stage 5 (still pending) is asked about again.
        client.asked.clear()
        fourth = client.load(APP)
        assert fourth is not None and fourth.work == third.work
        assert "stages/1?details=false" not in client.asked  # done with
        assert "stages/5?details=false" in client.asked
        assert "stages/6?details=false" in client.asked  # the 404 that says no new stage
        assert client.asked.count("stages") == 0  # the whole list only on first sight
    finally:
        client.close()


def test_an_evicted_stage_does_not_stop_the_count() -> None:
    client = _Stages()
    try:
        client.stages = {0: _stage(0, cpu_s=1)}
        assert client.load(APP) is not None
        # Spark dropped stage 1 from its UI store (spark.ui.retainedStages); 2 is active.
        client.stages = {0: _stage(0, "COMPLETE", cpu_s=1), 2: _stage(2, cpu_s=4)}
        load = client.load(APP)
        assert load is not None and load.work == Work(cpu_s=4)
    finally:
        client.close()


def _cluster(hosts: list[str], cores: int = 2, apps: tuple[str, ...] = (APP,)) -> ClusterState:
    alive = [WorkerInfo(f"w{i}", h, 1, "ALIVE", cores, 0, 1024, 0) for i, h in enumerate(hosts)]
    return ClusterState(
        workers=(*alive, WorkerInfo("dead", "10.9.9.9", 1, "DECOMMISSIONED", 8, 0, 1024, 0)),
        active_apps=tuple(AppInfo(a, a, 1, 0.0) for a in apps),
    )


def test_worker_hosts_counts_machines_with_every_loopback_address_as_one() -> None:
    assert worker_hosts(_cluster(["127.0.0.2", "127.0.0.3", "localhost"])) == 1
    assert worker_hosts(_cluster(["10.0.0.5", "10.0.0.6", "10.0.0.5", "127.0.0.2"])) == 3
    assert worker_hosts(ClusterState()) == 0


def test_sampler_turns_work_into_percentages_of_cores_and_links() -> None:
    sampler = SparkMetricsSampler(link_capacity_mbit=8.0)  # 1e6 bytes/s per host
    cluster = _cluster(["10.0.0.5", "10.0.0.6"])  # 4 cores, 2 links
    assert sampler.sample(100.0, cluster, [AppLoad(APP)]) == (0.0, 0.0, 0.0, 0.0)
    grown = AppLoad(APP, work=Work(cpu_s=20.0, bytes_in=4e6, bytes_out=1e6))
    cu, cs, bi, bo = sampler.sample(110.0, cluster, [grown])
    # 20 CPU s over 10 s = 2 of the 4 cores: 50 %, split user/system.
    assert cu + cs == pytest.approx(50.0)
    assert cs == pytest.approx(50.0 * SYSTEM_SHARE)
    assert (bi, bo) == (pytest.approx(20.0), pytest.approx(5.0))  # 4e5/s and 1e5/s of 2e6/s
    # Clipped at 100, never negative (an app restarted its counters).
    huge = AppLoad(APP, work=Work(cpu_s=1e6, bytes_in=0, bytes_out=0))
    assert sampler.sample(111.0, cluster, [huge])[:2] == (
        pytest.approx(100.0),
        pytest.approx(100.0),
    )
    assert sampler.sample(112.0, cluster, [AppLoad(APP)]) == (0.0, 0.0, 0.0, 0.0)


def test_an_app_that_missed_a_reading_is_measured_over_the_whole_span() -> None:
    sampler = SparkMetricsSampler()
    cluster = _cluster(["10.0.0.5"], cores=1)
    sampler.sample(0.0, cluster, [AppLoad(APP)])
    assert sampler.sample(5.0, cluster, []) == (0.0, 0.0, 0.0, 0.0)  # did not answer
    cu, cs, _, _ = sampler.sample(10.0, cluster, [AppLoad(APP, work=Work(cpu_s=5.0))])
    assert cu + cs == pytest.approx(50.0)  # 5 s of CPU over 10 s, not over 5 s


@pytest.mark.parametrize(
    ("value", "size"),
    [("2g", 2 * 1024**3), ("512mb", 512 * 1024**2), ("300k", 300 * 1024), ("2e9", 2e9), (7, 7)],
)
def test_a_declared_input_size_in_bytes_or_sparks_notation(value: object, size: float) -> None:
    assert job_input_bytes(value) == size  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["lots", "2.5g", "0", "-1", "nan", "inf"])
def test_an_unreadable_input_size_names_the_property(value: str) -> None:
    with pytest.raises(ValueError, match=rf"^{INPUT_BYTES_PROPERTY}={value!r} is not a"):
        job_input_bytes(value)


def test_an_unreadable_input_size_is_ignored_with_a_warning() -> None:
    client = _Stages()
    client.properties = [[INPUT_BYTES_PROPERTY, "lots"]]
    try:
        load = client.load(APP)
    finally:
        client.close()
    assert load is not None and load.input_bytes is None
    assert load.warnings == (
        f"{APP}: {INPUT_BYTES_PROPERTY}='lots' is not a size in bytes, ignored",
    )


def test_the_simulator_reads_input_as_its_input_stages_progress() -> None:
    durations = FixedDurations(10.0)
    job = JobSpec(
        id=1,
        name="j",
        arrival=0.0,
        size_gb=2.0,
        stages=(Stage(0, 4, durations), Stage(1, 2, durations, parents=(0,))),
    )
    sim = SimCluster([job], cores_per_worker=2, initial_workers=1, executor_startup_s=(0.0, 0.0))
    observer = SimObserver(sim)
    sim.run_until(0.0)
    start = observer.observe()
    assert (start.input_bytes, start.input_read_bytes) == (2e9, 0.0)
    sim.run_until(10.5)  # 2 of the 4 input tasks done
    assert observer.observe().input_read_bytes == pytest.approx(1e9)
    assert input_read_bytes(sim) == pytest.approx(1e9)
    sim.run_until(25.0)  # all input read; the second stage still runs
    mid = observer.observe()
    assert (mid.input_bytes, mid.input_read_bytes) == (2e9, pytest.approx(2e9))
    sim.run_until(100.0)
    done = observer.observe()
    assert (done.input_bytes, done.input_read_bytes) == (None, None)


def test_a_read_failing_part_way_counts_nothing_twice_and_nothing_lost() -> None:
    client = _Stages()
    try:
        client.stages = {0: _stage(0, cpu_s=1), 1: _stage(1, "PENDING")}
        assert client.load(APP) is not None
        client.stages = {0: _stage(0, cpu_s=3), 1: _stage(1, "COMPLETE", cpu_s=2)}
        broken = client._get

        def fails_on_stage_1(url: str, missing_ok: bool = False) -> Any:
            if "stages/1?" in url:
                raise httpx.ConnectError("driver went away for a moment")
            return broken(url, missing_ok)

        client._get = fails_on_stage_1  # type: ignore[method-assign]
        assert client.load(APP) is None
        client._get = broken  # type: ignore[method-assign]
        client.locator._urls = {APP: BASE}
        load = client.load(APP)
        assert load is not None and load.work == Work(cpu_s=2 + 2)
    finally:
        client.close()
