"""The CPU and network features from Spark's task metrics (no Spark), a job's declared input
size, and what the simulator says has been read."""

from __future__ import annotations

from typing import Any

import pytest

from sparkscaler.backends.simulated import SimObserver, input_read_bytes
from sparkscaler.core import (
    INPUT_BYTES_PROPERTY,
    AppInfo,
    ClusterState,
    WorkerInfo,
    job_input_bytes,
)
from sparkscaler.observe.spark_app import AppClient, AppLoad, Work
from sparkscaler.observe.spark_metrics import SYSTEM_SHARE, SparkMetricsSampler, worker_hosts
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage

APP = "app-1"
BASE = "http://driver:4040/api/v1"


def _stage(sid: int, cpu_s: float = 0.0, read: float = 0.0, remote: float = 0.0, **more: Any):
    return {
        "stageId": sid,
        "attemptId": 0,
        "numTasks": 4,
        "numActiveTasks": 1,
        "numCompletedIndices": 1,
        "executorCpuTime": int(cpu_s * 1e9),
        "executorDeserializeCpuTime": 0,
        "inputBytes": read,
        "shuffleRemoteBytesRead": remote,
        "outputBytes": more.get("output", 0),
        "resultSize": more.get("result", 0),
    }


class _Stages(AppClient):
    """One application whose active stages and finished stages the test sets."""

    def __init__(self) -> None:
        super().__init__("http://master:8080", "driver", [4040])
        self.locator._urls = {APP: BASE}
        self.active: list[dict[str, Any]] = []
        self.final: dict[int, dict[str, Any]] = {}
        self.asked: list[str] = []

    def _get(self, url: str) -> Any:
        self.asked.append(url.removeprefix(f"{BASE}/applications/{APP}"))
        if url.endswith("/environment"):
            return {"sparkProperties": [[INPUT_BYTES_PROPERTY, "3g"]]}
        if url.endswith("stages?status=active"):
            return self.active
        if "/stages/" in url:
            return self.final[int(url.split("/stages/")[1].split("/")[0])]
        return [{"id": "1", "hostPort": "10.0.0.5:1", "totalInputBytes": 700}]


def test_work_counts_active_stages_growth_and_the_last_of_finished_ones() -> None:
    client = _Stages()
    try:
        client.active = [_stage(0, cpu_s=5, read=100)]
        first = client.load(APP)
        assert first is not None
        assert first.work == Work()  # first sight: what was done before is not counted
        assert (first.input_bytes, first.input_read_bytes) == (3 * 1024**3, 700.0)

        client.active = [_stage(0, cpu_s=8, read=160), _stage(1, cpu_s=1, remote=50)]
        second = client.load(APP)
        assert second is not None
        assert second.work == Work(cpu_s=3 + 1, bytes_in=60 + 50, bytes_out=50)

        # Stage 0 finished (its last counters read once), stage 1 grew, 2 started.
        client.final[0] = _stage(0, cpu_s=9, read=200, output=30, result=5)
        client.active = [_stage(1, cpu_s=2, remote=50), _stage(2, cpu_s=0.5)]
        third = client.load(APP)
        assert third is not None
        assert third.work == Work(cpu_s=4 + 1 + 1 + 0.5, bytes_in=110 + 40, bytes_out=50 + 30 + 5)
        assert client.asked.count("/stages/0/0?details=false") == 1
        assert client.asked.count("/environment") == 1
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
    client._get = lambda url: (  # type: ignore[method-assign]
        {"sparkProperties": [[INPUT_BYTES_PROPERTY, "lots"]]} if url.endswith("environment") else []
    )
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
