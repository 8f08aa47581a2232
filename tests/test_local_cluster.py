"""The autoscaling loop on a real local Spark standalone cluster (no mocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
import yaml

from sparkscaler.backends.local import LocalCluster
from sparkscaler.clock import WallClock
from sparkscaler.config import Config
from sparkscaler.controller import Controller, Step
from sparkscaler.observe.history import EventLogWatcher
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.observe.spark_master import MasterClient
from sparkscaler.policies import make_policy
from sparkscaler.store import Store
from sparkscaler.workloads.submit import JobSubmitter
from tests.conftest import SharedCluster, assert_all_stopped, state_pids, wait_for

pytestmark = pytest.mark.spark


def _alive(cfg: Config) -> list:
    return MasterClient.cluster_state(MasterClient(cfg.cluster.master_ui_url).fetch()).alive


def test_dra_scales_out_under_backlog_and_back_in_by_decommission(
    shared_spark: SharedCluster, shared_cluster: Config
) -> None:
    cfg, cluster = shared_cluster, shared_spark.backend
    clock, stop = WallClock(), threading.Event()
    steps: list[Step] = []
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    with Store(cfg.store_path) as store:
        controller = Controller(
            observer=SparkObserver.from_config(cfg, clock),
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
    assert scale_ins and all("idle" in d["reason"] for d in scale_ins)
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
    adopted.stop()
    assert_all_stopped(pids)


def test_launch_returns_alive_workers(shared_spark: SharedCluster, shared_cluster: Config) -> None:
    cluster = shared_spark.backend
    before = {w.id for w in _alive(shared_cluster)}
    ids = cluster.launch(2)
    try:
        alive = {w.id for w in _alive(shared_cluster)}
        assert len(ids) == 2 and set(ids) <= alive and len(alive) == 3
        assert alive == before | set(ids)
    finally:  # leave the shared cluster as it was: the two new workers drain (idle) and stop
        shared_spark.note_pids()
        cluster.decommission(ids, timeout=30)
        assert cluster.wait_drained(60)
    assert {w.id for w in _alive(shared_cluster)} == before


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
        assert cli("cluster", "scale", "2").returncode == 0
        assert json.loads(cli("cluster", "status", "--json").stdout)["alive_workers"] == 2
        pids = sorted(set(pids) | set(state_pids(spark_config.state_dir)))
        scaled_in = cli("cluster", "scale", "1")
        assert scaled_in.returncode == 0, scaled_in.stderr
        assert "1 worker(s) alive" in scaled_in.stdout
        assert len(state_pids(spark_config.state_dir)) == 2
        stopped = cli("cluster", "stop")
        assert stopped.returncode == 0 and "stopped 2 process(es)" in stopped.stdout
    finally:
        LocalCluster(spark_config.cluster, spark_config.state_dir).stop()
    assert_all_stopped(pids)
    assert json.loads(cli("cluster", "status", "--json").stdout)["running"] is False
