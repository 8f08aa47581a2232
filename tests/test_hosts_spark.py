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
import textwrap
import threading
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
from tests.conftest import free_port, wait_for
from tests.netns import Testbed, netns_hosts, skip_reason

pytestmark = pytest.mark.spark


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
    return Config.model_validate(
        {
            "backend": "hosts",
            "state_dir": str(state_dir),
            "cluster": {
                "master_host": bed.gateway,
                "master_port": free_port(),
                "master_ui_port": free_port(),
                "worker_ui_port": 8081,
                "worker_cores": 1,
                "worker_memory": "1g",
            },
            "scaling": {
                "min_workers": 1,
                "max_workers": 3,
                "interval_s": 1,
                "scale_out_cooldown_s": 2,
                "scale_in_cooldown_s": 2,
                "scale_in_stabilization_s": 3,
                "decommission_timeout_s": 60,
            },
            "policy": {"name": "dra", "params": {"idle_timeout_s": 5}},
            "hosts": [
                {
                    "address": h.address,
                    "ssh_user": "root",
                    "ssh_key": str(bed.key),
                    "work_dir": str(state_dir / "hosts" / h.address),
                }
                for h in bed.hosts
            ],
        }
    )


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
    pool.cluster.wait_alive(120)

    down.start_sshd()
    wait_for(lambda: not pool.cluster.unreachable(), 10, "the host to be tried again")
    assert pool.cluster.launch(1) == [f"pending-{down.address}"]
    pool.cluster.wait_alive(120)
    assert pool.alive() == 3 and max(pool.live_per_host().values()) == 1


def test_restart_mid_scale_readopts_without_a_second_worker(one_worker: HostsPool) -> None:
    """A process killed while its workers are PROVISIONING: the next one adopts them, finishes
    the scale-out without starting any host twice, and can scale them in."""
    pool = one_worker
    config_file = pool.config.state_dir / "restart.json"
    config_file.write_text(pool.config.model_dump_json())
    script = textwrap.dedent(
        f"""
        import os, signal
        from sparkscaler.backends.hosts import HostsCluster
        from sparkscaler.config import Config
        config = Config.model_validate_json(open({str(config_file)!r}).read())
        print(HostsCluster(config).launch(2), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert "pending-" in killed.stdout

    adopted = HostsCluster(pool.config)
    try:
        states = sorted(w.state for w in adopted.workers())
        assert len(states) == 3, states
        with Store(pool.config.store_path) as store:
            controller = _controller(pool.config, adopted, store)
            step = controller.scale_to(3, "the restarted loop asks for the same size")
            controller.close()
        assert step.outcome.action == "none" and step.error is None
        with pytest.raises(BackendError, match="no more hosts free"):
            adopted.launch(1)
        adopted.wait_alive(120)
        assert pool.alive() == 3 and set(pool.live_per_host().values()) == {1}
        assert sorted(adopted.pids) == sorted(pool.cluster.pids)
    finally:
        adopted.launcher_ssh.close()


def _controller(config: Config, cluster: HostsCluster, store: Store) -> Controller:
    """The loop of ``sparkscaler run`` on this backend."""
    return live_loop(config, store, WallClock(), backend=cluster)


def test_cluster_commands_start_status_scale_stop_on_hosts(
    one_worker: HostsPool, tmp_path: Path
) -> None:
    """A second cluster of its own (master, state) on the same machines: it leaves the host
    that runs the first cluster's worker alone, and stops only what it started."""
    pool = one_worker
    (busy_host,) = {w.host for w in pool.cluster.workers()}
    config = hosts_config(pool.bed, tmp_path / "state")
    config_file = tmp_path / "hosts.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sparkscaler", *args, "--config", str(config_file)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    try:
        assert "1 worker(s)" in cli("cluster", "start", "--workers", "1").stdout
        status = json.loads(cli("cluster", "status", "--json").stdout)
        assert status["backend"] == "hosts" and status["alive_workers"] == 1
        assert busy_host not in {w["host"] for w in status["workers"]}
        assert "2 worker(s) alive" in cli("cluster", "scale", "2").stdout
        assert "1 worker(s) alive" in cli("cluster", "scale", "1").stdout
        assert "stopped" in cli("cluster", "stop").stdout
    finally:
        HostsCluster(config).stop()  # whatever a failed command left
    assert pool.at_one()
    others = [h for h in pool.bed.hosts if h.address != busy_host]
    left = {h.namespace: h.others() for h in others if h.others()}
    assert not left, f"the second cluster left processes: {left}"


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
    partitions = 30
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
