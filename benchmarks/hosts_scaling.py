"""Scaling on hosts over SSH (``backend: hosts`` on network-namespace hosts) and on the local
backend, measured the same way on both:

- **reaction** (p50 of ``--runs``): a job of 8 four-second tasks on one 1-core worker under the
  ``dra`` policy; from the stage's submission (event log) to the loop's scale-out decision, to
  the new worker ALIVE at the master, to the driver's first executor on it (event log);
- **drain**: a worker holding an application's shuffle output is decommissioned; seconds until
  the backend has stopped it, and whether the application then read the same result again
  without recomputing (``AGAIN`` equals ``RESULT``, no stage resubmitted);
- **scale-ins**: ``--scale-ins`` cycles of add a worker, let it run tasks, decommission a busy
  one, under a shuffle-heavy application running one job after another; failed Spark jobs
  (must be 0), fetch failures and resubmitted stages.

Needs root, ``ip netns`` and sshd for the hosts backend (as its tests do). Writes
``results/hosts_scaling.json``.

    .venv/bin/python benchmarks/hosts_scaling.py [--backend both|hosts|local] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _cluster import bench_config, save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the namespace test bed lives with the tests

from sparkscaler.backends.daemons import WorkerPool, spark_home  # noqa: E402
from sparkscaler.backends.hosts import HostsCluster  # noqa: E402
from sparkscaler.backends.local import LocalCluster, app_properties  # noqa: E402
from sparkscaler.clock import WallClock  # noqa: E402
from sparkscaler.config import Config  # noqa: E402
from sparkscaler.observe.eventlog import read_events  # noqa: E402
from sparkscaler.observe.spark_master import MasterClient  # noqa: E402
from sparkscaler.store import Store  # noqa: E402
from sparkscaler.wiring import live_loop  # noqa: E402
from tests.netns import netns_hosts, skip_reason  # noqa: E402

#: The applications: ``backlog`` (one wide stage), ``hold`` (a shuffle, then the same result
#: read again once ``go`` exists), ``churn`` (shuffle-heavy jobs one after another until
#: ``go`` exists). Each prints what the benchmark checks.
APP = """
import json, os, sys, time
from operator import add
from pyspark.sql import SparkSession

mode, go = sys.argv[1], sys.argv[2]
sc = SparkSession.builder.appName(mode).getOrCreate().sparkContext


def busy(seconds):
    def run(index, rows):
        time.sleep(seconds)
        return [(x % 97, os.urandom(512)) for x in rows]
    return run


if mode == "backlog":
    sc.parallelize(range(8), 8).mapPartitions(lambda rows: (time.sleep(4), rows)[1]).count()
elif mode == "hold":
    sizes = sc.parallelize(range(40000), 8).mapPartitionsWithIndex(busy(1))
    sizes = sizes.mapValues(len).reduceByKey(add, 4)
    print("RESULT", json.dumps(sorted(sizes.collect())), flush=True)
    while not os.path.exists(go):
        time.sleep(0.2)
    print("AGAIN", json.dumps(sorted(sizes.collect())), flush=True)
else:
    done = 0
    while not os.path.exists(go):
        pairs = sc.parallelize(range(40000), 12).mapPartitionsWithIndex(busy(0.5))
        assert pairs.mapValues(len).reduceByKey(add, 6).count() == 97
        done += 1
    print("JOBS", done, flush=True)
"""


# ------------------------------------------------------------------ clusters
@contextlib.contextmanager
def hosts_cluster(work: Path) -> Iterator[tuple[Config, WorkerPool]]:
    reason = skip_reason()
    if reason:
        raise SystemExit(f"the hosts backend cannot be measured here: {reason}")
    with netns_hosts(4, work / "bed") as bed:
        local = bench_config(work / "state", {"idle_timeout_s": 600})
        data = local.model_dump(mode="json", exclude_none=True)
        data["backend"] = "hosts"
        data["cluster"].update(master_host=bed.gateway, worker_ui_port=8081)
        data["scaling"].update(interval_s=1, scale_out_cooldown_s=0)
        data["hosts"] = [
            {
                "address": h.address,
                "ssh_user": "root",
                "ssh_key": str(bed.key),
                "work_dir": str(work / "hosts" / h.address),
            }
            for h in bed.hosts
        ]
        config = Config.model_validate(data)
        cluster = HostsCluster(config)
        try:
            cluster.start(1)
            yield config, cluster
        finally:
            cluster.stop()


@contextlib.contextmanager
def local_cluster(work: Path) -> Iterator[tuple[Config, WorkerPool]]:
    config = bench_config(
        work / "state", {"idle_timeout_s": 600}, interval_s=1, scale_out_cooldown_s=0
    )
    cluster = LocalCluster(config.cluster, config.state_dir)
    try:
        cluster.start(1)
        yield config, cluster
    finally:
        cluster.stop()


# ------------------------------------------------------------------ helpers
def submit(config: Config, mode: str, go: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the benchmark's application in ``mode``; its driver binds the master's address,
    which the executors on every host can reach."""
    state = config.state_dir
    script = state / "bench_app.py"
    script.write_text(APP)
    conf = state / "conf" / "bench-app.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text("".join(f"{k} {v}\n" for k, v in app_properties(state).items()))
    (state / "events").mkdir(exist_ok=True)
    home = spark_home()
    cmd = [str(home / "bin" / "spark-submit"), "--master", config.cluster.master_url]
    cmd += ["--properties-file", str(conf), "--executor-memory", "512m"]
    cmd += ["--driver-memory", "512m", str(script), mode, str(go)]
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": config.cluster.master_host,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    log = state / "logs" / f"bench-{mode}-{time.time():.0f}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, log


def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def alive_ids(config: Config) -> set[str]:
    workers = MasterClient(config.cluster.master_ui_url).fetch()["workers"]
    return {w["id"] for w in workers if w["state"] == "ALIVE"}


def back_to_one(cluster: WorkerPool) -> None:
    extra = sorted(w.id for w in cluster.workers())[1:]
    if extra:
        cluster.decommission(extra, timeout=60)
    if not cluster.wait_drained(120):
        raise SystemExit("the cluster did not drain back to one worker")


def app_events(config: Config, since: float) -> list[dict[str, Any]]:
    """The events of the one application whose log appeared at ``since`` or later."""
    logs = [p for p in (config.state_dir / "events").iterdir() if p.stat().st_mtime >= since]
    newest = max(logs, key=lambda p: p.stat().st_mtime)
    return list(read_events(newest))


# ------------------------------------------------------------------ measurements
def reaction(config: Config, cluster: WorkerPool) -> dict[str, float]:
    before, started = alive_ids(config), time.time()
    hosts_before = _hosts_of(config, before)
    alive_at: list[float] = []
    stop, clock = threading.Event(), WallClock()

    def watch() -> None:
        while not stop.is_set() and not alive_at:
            if alive_ids(config) - before:
                alive_at.append(time.time())
            time.sleep(0.1)

    with Store(config.state_dir / f"reaction-{started:.0f}.db") as store:
        loop = live_loop(config, store, clock, backend=cluster)
        threads = [
            threading.Thread(target=loop.run, kwargs={"stop": stop}, daemon=True),
            threading.Thread(target=watch, daemon=True),
        ]
        for thread in threads:
            thread.start()
        job, log = submit(config, "backlog", config.state_dir / "unused")
        try:
            job.wait(300)
        finally:
            stop.set()
            clock.interrupt()
            for thread in threads:
                thread.join(60)
            loop.close()
        decided = min(d["time"] for d in store.decisions(10_000) if d["action"] == "scale_out")
    if job.returncode != 0 or not alive_at:
        raise SystemExit(f"reaction run failed (rc {job.returncode}); see {log}")
    new_hosts = {w.host for w in cluster.workers()} - hosts_before
    events = app_events(config, started)
    submitted = min(
        e["Stage Info"]["Submission Time"] / 1000
        for e in events
        if e["Event"] == "SparkListenerStageSubmitted"
    )
    executor = min(
        e["Timestamp"] / 1000
        for e in events
        if e["Event"] == "SparkListenerExecutorAdded" and e["Executor Info"]["Host"] in new_hosts
    )
    back_to_one(cluster)
    return {
        "backlog_to_decision_s": round(decided - submitted, 2),
        "backlog_to_alive_s": round(alive_at[0] - submitted, 2),
        "backlog_to_executor_s": round(executor - submitted, 2),
    }


def _hosts_of(config: Config, ids: set[str]) -> set[str]:
    workers = MasterClient(config.cluster.master_ui_url).fetch()["workers"]
    return {w["host"] for w in workers if w["id"] in ids}


def drain(config: Config, cluster: WorkerPool, work: Path) -> dict[str, Any]:
    cluster.launch(1)
    cluster.wait_alive(180)
    go = work / f"go-{time.time():.0f}"
    job, log = submit(config, "hold", go)
    try:
        wait(lambda: "RESULT" in log.read_text(), 300, "the hold application's result")
        busy = [w for w in cluster.workers() if w.state == "ALIVE" and w.cores_used > 0]
        victim = busy[-1]
        began = time.monotonic()
        cluster.decommission([victim.id], timeout=120)
        wait(
            lambda: victim.id not in {w.id for w in cluster.workers()},
            180,
            "the decommissioned worker to be stopped",
        )
        drain_s = time.monotonic() - began
        go.touch()
        job.wait(120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, 9)
            job.wait()
    output = log.read_text()
    found = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1]
        for line in output.splitlines()
        if line.startswith(("RESULT ", "AGAIN "))
    }
    back_to_one(cluster)
    return {
        "drain_s": round(drain_s, 2),
        "exit_code": job.returncode,
        "same_result": found.get("RESULT") is not None
        and found.get("RESULT") == found.get("AGAIN"),
        "stages_resubmitted": output.count("Resubmitting"),
    }


def scale_ins(config: Config, cluster: WorkerPool, work: Path, count: int) -> dict[str, Any]:
    go = work / f"stop-churn-{time.time():.0f}"
    started = time.time()
    job, log = submit(config, "churn", go)
    drains = []
    try:
        for _ in range(count):
            cluster.launch(1)
            cluster.wait_alive(180)
            time.sleep(4)  # its executor starts and takes tasks (and writes shuffle files)
            alive = [w for w in cluster.workers() if w.state == "ALIVE"]
            victim = max(alive, key=lambda w: (w.cores_used, w.id))
            began = time.monotonic()
            cluster.decommission([victim.id], timeout=120)
            wait(lambda v=victim: v.id not in {w.id for w in cluster.workers()}, 180, "a drain")
            drains.append(time.monotonic() - began)
            if job.poll() is not None:
                break
        go.touch()
        job.wait(300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, 9)
            job.wait()
    events = app_events(config, started)
    ends = [e for e in events if e["Event"] == "SparkListenerJobEnd"]
    failed = [e for e in ends if e["Job Result"]["Result"] != "JobSucceeded"]
    fetch_failures = sum(
        1
        for e in events
        if e["Event"] == "SparkListenerTaskEnd"
        and e.get("Task End Reason", {}).get("Reason") == "FetchFailed"
    )
    output = log.read_text()
    back_to_one(cluster)
    return {
        "scale_ins": len(drains),
        "jobs": len(ends),
        "failed_jobs": len(failed),
        "fetch_failures": fetch_failures,
        "exit_code": job.returncode,
        "drain_s_p50": round(statistics.median(drains), 2) if drains else None,
        "app_said": next((line for line in output.splitlines() if line.startswith("JOBS")), ""),
    }


def measure(name: str, runs: int, count: int) -> dict[str, Any]:
    opener = hosts_cluster if name == "hosts" else local_cluster
    with tempfile.TemporaryDirectory(prefix=f"sparkscaler-bench-{name}-") as tmp:
        work = Path(tmp)
        with opener(work) as (config, cluster):
            reactions = []
            for i in range(runs):
                reactions.append(reaction(config, cluster))
                print(f"{name} reaction {i + 1}/{runs}: {reactions[-1]}", flush=True)
            drained = drain(config, cluster, work)
            print(f"{name} drain: {drained}", flush=True)
            churn = scale_ins(config, cluster, work, count)
            print(f"{name} scale-ins: {churn}", flush=True)
    p50 = {k: round(statistics.median(r[k] for r in reactions), 2) for k in reactions[0]}
    return {"reaction_runs": reactions, "reaction_p50": p50, "drain": drained, "scale_ins": churn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", "hosts", "local"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale-ins", type=int, default=10)
    args = parser.parse_args()
    names = ["hosts", "local"] if args.backend == "both" else [args.backend]
    results = {name: measure(name, args.runs, args.scale_ins) for name in names}
    print(json.dumps(results, indent=2))
    print(f"written to {save('hosts_scaling', results)}")


if __name__ == "__main__":
    main()
