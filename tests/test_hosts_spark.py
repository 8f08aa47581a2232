"""``backend: hosts`` on real Spark: workers on three namespace "machines" started over SSH.

One test bed (three network namespaces, an sshd each) and one master for the module; each test
leaves the cluster at one worker. Skipped where namespaces cannot be built (not root, no
``ip netns``, no sshd) or Java is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from sparkscaler.backends import daemons
from sparkscaler.backends.base import BackendError
from sparkscaler.backends.daemons import spark_home
from sparkscaler.backends.hosts import HostsCluster
from sparkscaler.backends.local import app_properties
from sparkscaler.clock import WallClock
from sparkscaler.config import Config
from sparkscaler.controller import Controller, Step
from sparkscaler.observe.spark_master import MasterClient
from sparkscaler.store import Store
from sparkscaler.wiring import live_loop
from tests.conftest import spark_test_config, wait_for
from tests.netns import Testbed, netns_hosts, skip_reason

pytestmark = [pytest.mark.spark, pytest.mark.isolated]


@dataclass
class HostsPool:
    bed: Testbed
    config: Config
    cluster: HostsCluster

    def master_workers(self) -> list[dict]:
        return list(MasterClient(self.config.cluster.master_ui_url).fetch()["workers"])

    def live_per_host(self) -> Counter[str]:
        """Workers the master has not written off, per host: never more than one."""
        return Counter(w["host"] for w in self.master_workers() if w["state"] != "DEAD")

    def alive(self) -> int:
        return sum(1 for w in self.master_workers() if w["state"] == "ALIVE")

    def at_one(self) -> bool:
        states = [w.state for w in self.cluster.workers()]
        return states == ["ALIVE"] and self.live_per_host().total() == 1

    def back_to_one(self) -> None:
        """Decommission every worker but one and wait until they are gone."""
        workers = sorted(self.cluster.workers(), key=lambda w: (w.state != "ALIVE", w.id))
        if workers[1:]:
            self.cluster.decommission([w.id for w in workers[1:]], timeout=30)
        assert self.cluster.wait_drained(90)
        wait_for(self.at_one, 60, "the cluster to be back at one worker")


def hosts_config(bed: Testbed, state_dir: Path) -> Config:
    """The Spark tests' small, fast-reacting cluster, its workers on the namespace hosts."""
    data = spark_test_config(state_dir).model_dump(mode="json", exclude_none=True)
    data["backend"] = "hosts"
    data["cluster"].update(master_host=bed.gateway, worker_ui_port=8081)
    data["hosts"] = [
        {
            "address": h.address,
            "ssh_user": "root",
            "ssh_key": str(bed.key),
            "work_dir": str(state_dir / "hosts" / h.address),
        }
        for h in bed.hosts
    ]
    return Config.model_validate(data)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostsPool]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make install puts Java 17 in place)")
    work = tmp_path_factory.mktemp("hosts")
    with netns_hosts(3, work / "bed") as bed:
        config = hosts_config(bed, work / "state")
        cluster = HostsCluster(config)
        try:
            cluster.start(1)
            yield HostsPool(bed, config, cluster)
        finally:
            cluster.stop()
            left = bed.leftovers()
        assert not left, f"processes left in the namespaces after stop: {left}"


@pytest.fixture
def one_worker(pool: HostsPool) -> Iterator[HostsPool]:
    """The module's cluster at one worker; put back at one worker afterwards."""
    wait_for(pool.at_one, 60, "the cluster to be at one worker")
    try:
        yield pool
    finally:
        for host in pool.bed.hosts:
            if host.sshd is None:
                host.start_sshd()
        if not pool.at_one():
            pool.back_to_one()


def test_unreachable_host_is_skipped_with_a_reason_and_retried(
    one_worker: HostsPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = one_worker
    monkeypatch.setattr(daemons, "UNREACHABLE_RETRY_S", 3.0)
    down = pool.bed.hosts[-1]
    down.stop_sshd()
    started = pool.cluster.launch(2)
    assert len(started) == 1 and down.address not in started[0]
    unreachable = pool.cluster.unreachable()
    assert list(unreachable) == [down.address]
    assert "refused" in unreachable[down.address] and down.address in unreachable[down.address]
    problems = [p.message for p in pool.cluster.problems() if p.host == down.address]
    assert problems and "unreachable over SSH" in problems[-1]

    down.start_sshd()
    wait_for(lambda: not pool.cluster.unreachable(), 10, "the host to be tried again")
    assert pool.cluster.launch(1) == [f"pending-{down.address}"]
    pool.cluster.wait_alive(120)
    assert pool.alive() == 3 and max(pool.live_per_host().values()) == 1


def test_run_restarted_mid_scale_readopts_without_a_second_worker(
    one_worker: HostsPool, tmp_path: Path
) -> None:
    """`sparkscaler run` killed (SIGKILL: no clean-up at all) while the workers it launched are
    PROVISIONING: the next `run` adopts them, starts no host twice, and they come up."""
    pool = one_worker
    data = pool.config.model_dump(mode="json", exclude_none=True)
    data["policy"] = {"name": "static", "params": {"workers": 3}}
    data["store"] = str(tmp_path / "run.db")
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(data))
    run = [sys.executable, "-m", "sparkscaler", "run", "--config", str(config_file)]
    with (tmp_path / "first-run.log").open("wb") as log:
        first = subprocess.Popen(run, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: sum(w.state == "PROVISIONING" for w in pool.cluster.workers()) == 2,
            60,
            "the first run to launch two workers",
        )
    finally:
        first.kill()
        first.wait()
    launched_at = time.time()
    second = subprocess.run([*run, "--once"], capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr

    pool.cluster.wait_alive(120)
    assert pool.alive() == 3 and set(pool.live_per_host().values()) == {1}
    with pytest.raises(BackendError, match="no more hosts free"):
        pool.cluster.launch(1)
    with Store(tmp_path / "run.db") as store:
        after = [d for d in store.decisions(100) if d["time"] >= launched_at]
    assert after, "the second run decided nothing"
    assert not any(d["acted"] and d["action"] == "scale_out" for d in after), after


def _controller(config: Config, cluster: HostsCluster, store: Store) -> Controller:
    """The loop of ``sparkscaler run`` on this backend."""
    return live_loop(config, store, WallClock(), backend=cluster)


def test_cluster_status_and_scale_commands_on_hosts(one_worker: HostsPool, tmp_path: Path) -> None:
    """The cluster commands on this backend (start and stop are the fixture's, through the
    same backend calls), on the module's cluster and state directory."""
    pool = one_worker
    config_file = tmp_path / "hosts.yaml"
    config_file.write_text(yaml.safe_dump(pool.config.model_dump(mode="json", exclude_none=True)))

    def cli(*args: str) -> str:
        command = [sys.executable, "-m", "sparkscaler", *args, "--config", str(config_file)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    status = json.loads(cli("cluster", "status", "--json"))
    assert status["backend"] == "hosts" and status["alive_workers"] == 1
    assert sorted(status["managed_pids"]) == sorted(pool.cluster.pids)
    assert "2 worker(s) alive" in cli("cluster", "scale", "2")
    assert pool.alive() == 2 and set(pool.live_per_host().values()) == {1}
    assert "1 worker(s) alive" in cli("cluster", "scale", "1")
    assert pool.at_one()


#: The job of test (a): a slow wide stage, a shuffle, then (once the test says the cluster has
#: scaled back in, by creating the go file) the same result read again from the shuffle files,
#: some of which the decommissioned executors migrated before they left.
SHUFFLE_JOB = """
import json, os, sys, time
from pyspark.sql import SparkSession

go, partitions = sys.argv[1], int(sys.argv[2])
sc = SparkSession.builder.appName("hosts-shuffle").getOrCreate().sparkContext


def slow(index, rows):
    time.sleep(2)
    host = os.environ.get("SPARK_LOCAL_IP", "?")
    return [(x % 10, (x, [host])) for x in rows]


def merge(a, b):
    return a[0] + b[0], sorted(set(a[1]) | set(b[1]))


sums = sc.parallelize(range(partitions * 100), partitions).mapPartitionsWithIndex(slow)
sums = sums.reduceByKey(merge, 4)
first = sorted(sums.collect())
print("HOSTS", json.dumps(sorted({h for _, (_, hosts) in first for h in hosts})), flush=True)
print("RESULT", json.dumps([[k, total] for k, (total, _) in first]), flush=True)
deadline = time.time() + 240
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.5)
again = sorted(sums.collect())
print("AGAIN", json.dumps([[k, total] for k, (total, _) in again]), flush=True)
"""


def _submit(config: Config, script: Path, go: Path, partitions: int) -> subprocess.Popen[bytes]:
    conf = config.state_dir / "conf" / "app.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("".join(f"{k} {v}\n" for k, v in app_properties(config.state_dir).items()))
    (config.state_dir / "events").mkdir(parents=True, exist_ok=True)
    home = spark_home()
    cmd = [str(home / "bin" / "spark-submit"), "--master", config.cluster.master_url]
    cmd += ["--properties-file", str(conf), "--executor-memory", "512m"]
    # a leaving executor exits once a pass of block migration finds nothing left: every 5 s
    # here rather than Spark's 30 s, so that a drain takes seconds
    cmd += ["--conf", "spark.storage.decommission.replicationReattemptInterval=5s"]
    cmd += ["--driver-memory", "512m", str(script), str(go), str(partitions)]
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": config.cluster.master_host,  # the executors on the hosts call back
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    log = (config.state_dir / "logs" / "shuffle-job.log").open("wb")
    return subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def test_shuffle_job_runs_across_hosts_while_the_loop_scales_1_3_1(
    one_worker: HostsPool, tmp_path: Path
) -> None:
    pool, config = one_worker, one_worker.config
    script, go = tmp_path / "shuffle_job.py", tmp_path / "go"
    script.write_text(SHUFFLE_JOB)
    partitions = 20
    steps: list[Step] = []
    stop = threading.Event()
    log = config.state_dir / "logs" / "shuffle-job.log"
    with Store(tmp_path / "store.db") as store:
        controller = _controller(config, pool.cluster, store)
        loop = threading.Thread(
            target=controller.run, kwargs={"stop": stop, "on_step": steps.append}, daemon=True
        )
        loop.start()
        job = _submit(config, script, go, partitions)
        try:
            wait_for(lambda: "RESULT" in log.read_text(), 300, "the shuffle job's first result")
            wait_for(
                lambda: [w.state for w in pool.cluster.workers()] == ["ALIVE"],
                180,
                "the loop to scale back in to one worker while the application lives",
            )
            go.touch()
            job.wait(120)
        finally:
            stop.set()
            controller.clock.interrupt()
            loop.join(60)
            controller.close()
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
        decisions = store.decisions(10_000)

    output = log.read_text()
    assert job.returncode == 0, output[-3000:]
    lines = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1]
        for line in output.splitlines()
        if line.startswith(("HOSTS ", "RESULT ", "AGAIN "))
    }
    expected = [[k, sum(x for x in range(partitions * 100) if x % 10 == k)] for k in range(10)]
    assert json.loads(lines["RESULT"]) == expected
    assert json.loads(lines["AGAIN"]) == expected
    assert len(json.loads(lines["HOSTS"])) >= 2, "the wide stage ran on one host only"
    assert max(s.observation.workers for s in steps) == 3
    acted = [d for d in decisions if d["acted"]]
    assert any(d["action"] == "scale_out" for d in acted)
    assert any(d["action"] == "scale_in" for d in acted)
    assert any(s.observation.cluster.decommissioning_workers > 0 for s in steps), (
        "scale-in must go through Spark's decommission"
    )
    assert pool.at_one()
