"""The autoscaling loop on a real local Spark standalone cluster (no mocks)."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.local import LocalCluster
from sparkscaler.clock import WallClock
from sparkscaler.config import ClusterSettings, Config
from sparkscaler.controller import Controller, Step
from sparkscaler.core import Observation
from sparkscaler.observe.history import EventLogWatcher
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.observe.spark_master import MasterClient
from sparkscaler.policies import make_policy
from sparkscaler.processes import process_running
from sparkscaler.store import Store
from sparkscaler.workloads.submit import JobSubmitter
from tests.conftest import (
    SharedCluster,
    assert_all_stopped,
    spark_jvms,
    state_pids,
    wait_for,
)

pytestmark = pytest.mark.spark


def _alive(cfg: Config) -> list:
    return MasterClient.cluster_state(MasterClient(cfg.cluster.master_ui_url).fetch()).alive


class _WithProvisioning:
    """The master's view plus the workers the backend is still starting, which count towards
    the cluster's size (launch returns before they register): the loop must see them, or it
    launches again at every step until they are ALIVE."""

    def __init__(self, observer: SparkObserver, backend: LocalCluster) -> None:
        self.observer, self.backend = observer, backend

    def observe(self) -> Observation:
        obs = self.observer.observe()
        starting = tuple(w for w in self.backend.workers() if w.state == "PROVISIONING")
        cluster = dataclasses.replace(obs.cluster, workers=obs.cluster.workers + starting)
        return dataclasses.replace(obs, cluster=cluster)

    def close(self) -> None:
        self.observer.close()


def test_dra_scales_out_under_backlog_and_back_in_by_decommission(
    shared_spark: SharedCluster, shared_cluster: Config
) -> None:
    cfg, cluster = shared_cluster, shared_spark.backend
    clock, stop = WallClock(), threading.Event()
    steps: list[Step] = []
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    with Store(cfg.store_path) as store:
        controller = Controller(
            observer=_WithProvisioning(SparkObserver.from_config(cfg, clock), cluster),
            policy=make_policy("dra", cfg.policy.params),
            backend=cluster,
            store=store,
            clock=clock,
            scaling=cfg.scaling,
            history=EventLogWatcher(cfg.state_dir / "events"),
        )
        thread = threading.Thread(
            target=controller.run, kwargs={"stop": stop, "on_step": steps.append}, daemon=True
        )
        thread.start()
        try:
            job = submitter.submit("backlog", ["backlog", "--tasks", "16", "--task-seconds", "2"])
            wait_for(job.poll, 240, "the job to finish")
            wait_for(
                lambda: (
                    steps[-1].observation.workers == 1
                    and steps[-1].observation.cluster.decommissioning_workers == 0
                ),
                120,
                "the cluster to scale back to 1 worker",
            )
            wait_for(lambda: store.jobs(), 30, "the job's event log to reach the store")
        finally:
            stop.set()
            clock.interrupt()
            thread.join(timeout=60)
            submitter.stop_all()
        decisions = store.decisions(10_000)
        jobs = store.jobs()

    assert job.returncode == 0, job.log.read_text()[-2000:]
    assert max(s.observation.workers for s in steps) >= 2
    acted = [d for d in decisions if d["acted"]]
    assert any(d["action"] == "scale_out" for d in acted)
    scale_ins = [d for d in acted if d["action"] == "scale_in"]
    assert scale_ins and all("idle" in d["reason"] for d in scale_ins), [
        (d["time"], d["current"], d["target"], d["reason"]) for d in scale_ins
    ]
    assert any(s.observation.cluster.decommissioning_workers > 0 for s in steps), (
        "scale-in must go through Spark's decommission (DECOMMISSIONED state)"
    )
    assert len(cluster.workers()) == 1 and len(_alive(cfg)) == 1
    assert len(jobs) == 1 and jobs[0].success and jobs[0].tasks == 16 and jobs[0].workers >= 2


def test_worker_decommissioned_mid_job_loses_no_work(
    shared_spark: SharedCluster, shared_cluster: Config
) -> None:
    cfg, cluster = shared_cluster, shared_spark.backend
    cluster.launch(1)
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    try:
        job = submitter.submit("victim", ["backlog", "--tasks", "12", "--task-seconds", "3"])
        wait_for(
            lambda: all(w.busy for w in _alive(cfg)) and len(_alive(cfg)) == 2,
            180,
            "both workers to run tasks",
        )
        victim = next(w for w in cluster.workers() if w.serving and w.busy)
        cluster.decommission([victim.id], timeout=60)
        wait_for(
            lambda: victim.id not in {w.id for w in cluster.workers()},
            90,
            "the decommissioned worker to drain and stop",
        )
        wait_for(job.poll, 180, "the job to finish")
    finally:
        submitter.stop_all()
    log = job.log.read_text()
    assert job.returncode == 0, log[-2000:]
    assert "tasks done" in log
    assert "decommission" in log.lower()
    assert len(_alive(cfg)) == 1


def test_restarted_backend_readopts_and_stops_every_jvm(
    cluster: LocalCluster, spark_config: Config
) -> None:
    cluster.launch(1)
    pids = cluster.pids
    assert len(pids) == 3
    adopted = LocalCluster(spark_config.cluster, spark_config.state_dir)
    assert adopted.running and sorted(adopted.pids) == sorted(pids)
    assert {w.host for w in adopted.workers()} == {w.host for w in cluster.workers()}
    before = {w.host for w in adopted.workers()}
    [added] = adopted.launch(1)  # never on a host that already has one of our workers
    assert added.removeprefix("pending-") not in before
    adopted.wait_alive(120)
    assert len({w.host for w in cluster.workers()}) == 3
    pids = adopted.pids
    assert len(pids) == 4
    adopted.stop()
    assert_all_stopped(pids)


def _decommission_and_die(settings: ClusterSettings, state_dir: Path, worker_id: str) -> None:
    """Another sparkscaler decommissions ``worker_id`` and is killed before the drain ends."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from sparkscaler.backends.local import LocalCluster\n"
        "from sparkscaler.config import ClusterSettings\n"
        "settings = ClusterSettings.model_validate_json(sys.argv[1])\n"
        "cluster = LocalCluster(settings, Path(sys.argv[2]))\n"
        "cluster.decommission([sys.argv[3]], 60)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    args = [settings.model_dump_json(), str(state_dir), worker_id]
    died = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, timeout=60)
    assert died.returncode == -signal.SIGKILL, died.stderr.decode()


def test_a_new_backend_finishes_the_drain_it_inherits(
    shared_spark: SharedCluster, shared_cluster: Config
) -> None:
    cluster, config = shared_spark.backend, shared_spark.config
    [pending] = cluster.launch(1)
    host = pending.removeprefix("pending-")
    try:
        cluster.wait_alive(120)
        worker = cluster.record().workers[host]
        assert worker.worker_id is not None
        _decommission_and_die(config.cluster, config.state_dir, worker.worker_id)
        assert cluster.record().workers[host].decommission_deadline is not None
        adopted = LocalCluster(config.cluster, config.state_dir)
        assert adopted.wait_drained(60)
        assert not process_running(worker.pid, worker.create_time)
    finally:
        shared_spark.note_pids()
        if host in cluster.record().workers:
            cluster.decommission([pending], 30)
            cluster.wait_drained(60)


def test_a_worker_that_dies_at_start_is_dropped_with_its_reason(
    shared_spark: SharedCluster, shared_cluster: Config
) -> None:
    cluster = shared_spark.backend
    [pending] = cluster.launch(1)
    host = pending.removeprefix("pending-")
    daemon = cluster.record().workers[host]
    os.killpg(daemon.pid, signal.SIGKILL)  # the JVM we have just started, and its group
    with pytest.raises(BackendError, match=f"worker {re.escape(host)} exited at start"):
        cluster.wait_alive(60)
    assert host not in cluster.record().workers
    assert pending not in {w.id for w in cluster.workers()}
    assert cluster.problems()[-1].host == host


def test_launch_returns_at_once_with_provisioning_workers_that_become_alive(
    shared_spark: SharedCluster, shared_cluster: Config
) -> None:
    cluster = shared_spark.backend
    before = {w.id for w in _alive(shared_cluster)}
    began = time.monotonic()
    ids = cluster.launch(2)
    took = time.monotonic() - began
    try:
        assert took < 2.0, f"launch blocked for {took:.1f} s"
        assert (
            sorted(ids)
            == sorted(f"pending-{h}" for h in cluster.record().workers if f"pending-{h}" in ids)
            and len(ids) == 2
        )
        listed = {w.id: w for w in cluster.workers()}  # a JVM takes seconds to register
        assert [listed[i].state for i in ids] == ["PROVISIONING"] * 2
        since = time.monotonic() - began  # pending_s: seconds since the launch asked for it
        assert all(0.0 <= listed[i].pending_s <= since + 0.1 for i in ids)
        assert all(listed[i].cores == 1 and listed[i].memory_mb == 1024 for i in ids)
        cluster.wait_alive(120)
        alive = {w.id for w in _alive(shared_cluster)}
        assert len(alive) == 3 and before < alive
        assert {w.state for w in cluster.workers()} == {"ALIVE"}
        assert {w.id for w in cluster.workers()} == alive
    finally:  # leave the shared cluster as it was: the two new workers drain (idle) and stop
        shared_spark.note_pids()
        cluster.decommission([w.id for w in cluster.workers() if w.id not in before], 30)
        assert cluster.wait_drained(60)
    assert {w.id for w in _alive(shared_cluster)} == before


def test_a_pool_attached_to_a_master_it_did_not_start_leaves_it_alone(
    shared_spark: SharedCluster, shared_cluster: Config, tmp_path: Path
) -> None:
    settings = shared_spark.config.cluster.model_copy(update={"attach": True})
    attached = LocalCluster(settings, tmp_path / "attached")
    assert attached.running and attached.pids == []  # it answers, and it is not ours
    assert attached.start(0, start_attached=True) == []  # so `cluster start` starts none
    attached.stop()
    assert shared_spark.backend.running and shared_spark.alive_workers() == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_interrupted_leaves_no_process(spark_config: Config, tmp_path: Path, sig: int) -> None:
    """`sparkscaler run` that started its own cluster stops all of it on Ctrl-C or SIGTERM."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(spark_config.model_dump(mode="json", exclude_none=True)))
    env = {**os.environ, "SPARKSCALER_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkscaler", "run", "--config", str(config_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        wait_for(
            lambda: len(_alive(spark_config)) == 1 if _master_up(spark_config) else False,
            120,
            "the run command to start its cluster",
        )
        pids = state_pids(spark_config.state_dir)
        assert len(pids) == 2
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130), output.decode()
        assert b"Traceback" not in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            LocalCluster(spark_config.cluster, spark_config.state_dir).stop()
    assert_all_stopped(pids)
    assert not any(
        "org.apache.spark.deploy" in " ".join(p.info["cmdline"] or [])
        and str(spark_config.cluster.master_port) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(["cmdline"])
    )


def _master_up(cfg: Config) -> bool:
    try:
        MasterClient(cfg.cluster.master_ui_url).fetch()
    except ConnectionError:
        return False
    return True


def test_cluster_commands_start_status_scale_stop(spark_config: Config, tmp_path: Path) -> None:
    """The cluster commands a person types, as subprocesses, against one state directory."""
    import json

    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(spark_config.model_dump(mode="json", exclude_none=True)))
    env = {**os.environ, "SPARKSCALER_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sparkscaler", *args, "--config", str(config_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    pids: list[int] = []
    try:
        started = cli("cluster", "start", "--workers", "1")
        assert started.returncode == 0, started.stderr
        pids = state_pids(spark_config.state_dir)
        status = json.loads(cli("cluster", "status", "--json").stdout)
        assert status["running"] and status["alive_workers"] == 1
        scaled_out = cli("cluster", "scale", "3")
        assert scaled_out.returncode == 0, scaled_out.stderr
        assert "3 worker(s) alive" in scaled_out.stdout
        status = json.loads(cli("cluster", "status", "--json").stdout)
        assert status["alive_workers"] == 3
        pids = sorted(set(pids) | set(state_pids(spark_config.state_dir)))
        # A `cluster scale` killed after it decommissioned a worker: the next one finishes
        # that drain as well as its own.
        victim = max(w["id"] for w in status["workers"])
        _decommission_and_die(spark_config.cluster, spark_config.state_dir, victim)
        scaled_in = cli("cluster", "scale", "1")
        assert scaled_in.returncode == 0, scaled_in.stderr
        assert "1 worker(s) alive" in scaled_in.stdout
        assert len(state_pids(spark_config.state_dir)) == 2
        assert len(spark_jvms(spark_config.cluster.master_port)) == 2
        stopped = cli("cluster", "stop")
        assert stopped.returncode == 0 and "stopped 2 process(es)" in stopped.stdout
    finally:
        LocalCluster(spark_config.cluster, spark_config.state_dir).stop()
    assert_all_stopped(pids)
    assert json.loads(cli("cluster", "status", "--json").stdout)["running"] is False
