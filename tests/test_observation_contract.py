"""An observation field means the same on every backend (DESIGN.md, "Observation").

One scripted scenario, run on the real local cluster through the real observer and on the
simulator through SimObserver: one small job of known input on one worker, a second worker
asked for while it runs, the job to its end. The values differ (a simulated task is not a real
one); what is compared is each field's meaning: units, ranges, when it is None, how workers
are counted by state, what the input size and the deadline are.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sparkscaler.backends.simulated import SimClock, SimObserver, SimulatedBackend
from sparkscaler.clock import WallClock
from sparkscaler.config import Config
from sparkscaler.core import DEADLINE_PROPERTY, INPUT_BYTES_PROPERTY, Observation
from sparkscaler.observe.observer import SparkObserver
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage
from tests.conftest import SharedCluster, free_port, spawn_spark, stop_group

pytestmark = pytest.mark.spark

TASKS = 10
TASK_S = 2.5
DEADLINE_S = 300.0

#: The job: reads a text file in TASKS splits, each task counting its lines then sleeping.
JOB = f"""
import sys, time
from pyspark.sql import SparkSession

master, path, size, deadline, task_s, tasks, ui_port = sys.argv[1:]
spark = (
    SparkSession.builder.master(master)
    .appName("contract")
    .config("{INPUT_BYTES_PROPERTY}", size)
    .config("{DEADLINE_PROPERTY}", deadline)
    .config("spark.ui.port", ui_port)
    .config("spark.executor.memory", "512m")
    .config("spark.executor.heartbeatInterval", "2s")
    .getOrCreate()
)


def slow(lines):
    n = sum(1 for _ in lines)
    time.sleep(float(task_s))
    yield n


total = spark.sparkContext.textFile(path, int(tasks)).mapPartitions(slow).sum()
print("LINES", total, flush=True)
spark.stop()
"""


def _input_file(path: Path) -> int:
    path.write_text("".join(f"{i},{'x' * 40}\n" for i in range(50_000)))
    return path.stat().st_size


# ------------------------------------------------------------------------------- the meaning
def check_meaning(seq: list[Observation], size: float) -> None:
    """Every field of every observation of the scenario, as the contract defines it."""
    for obs in seq:
        c = obs.cluster
        assert not obs.stale
        assert obs.time > 1e9  # epoch seconds
        assert obs.workers == c.alive_workers + c.provisioning_workers
        assert all(w.state in ("ALIVE", "PROVISIONING", "DECOMMISSIONED") for w in c.workers)
        for w in c.workers:
            assert w.cores == 1 and w.memory_mb == 1024  # per worker: cores, MiB
            if w.state == "PROVISIONING":
                assert (w.cores_used, w.running_tasks) == (0, 0)  # offers nothing yet
            assert w.pending_s >= 0 and (w.state == "PROVISIONING" or w.pending_s == 0)
        assert c.cores_total == c.alive_workers  # the ALIVE workers' cores only
        assert c.memory_total_mb == 1024 * c.alive_workers
        # Tasks as the scheduler lists them: Spark's status store may still list a task that
        # ended as its successor starts, so more running tasks than cores is not a breach.
        assert obs.running_tasks >= 0
        assert obs.pending_tasks >= 0
        assert obs.backlog_age_s >= 0 and (obs.pending_tasks or obs.backlog_age_s == 0)
        assert all(0.0 <= f <= 100.0 for f in obs.features.as_tuple())
        running = bool(c.active_apps)
        assert running == (obs.oldest_job_elapsed_s is not None)
        if obs.errors:
            continue  # an app whose REST API is not up yet: its load is unknown, not zero
        if running:
            assert len(c.active_apps) == 1 and c.waiting_apps == 0
            assert obs.input_bytes == size  # the whole input, known before it is read
            assert obs.input_read_bytes is not None
            # Read so far; Hadoop's reader counts what it buffered, up to 256 KiB a task more.
            assert 0 <= obs.input_read_bytes <= size + TASKS * 256 * 1024
            assert obs.deadline_s == DEADLINE_S
            assert obs.oldest_job_elapsed_s is not None and obs.oldest_job_elapsed_s >= 0
            check_job(obs)
        else:
            assert (obs.input_bytes, obs.input_read_bytes) == (None, None)
            assert (obs.running_tasks, obs.pending_tasks) == (0, 0)
            assert obs.jobs == ()
    during = [o for o in seq if o.cluster.active_apps and not o.errors]
    # The job's own context over its run: time and tasks done only grow, and it is seen at work.
    elapsed = [o.jobs[0].elapsed_s for o in during]
    assert elapsed == sorted(elapsed)
    done = [o.jobs[0].tasks_done for o in during]
    assert done == sorted(done)
    assert any(0 < d < TASKS for d in done)
    assert any(o.jobs[0].stages and o.jobs[0].stages[0].running > 0 for o in during)
    reads = [o.input_read_bytes or 0.0 for o in during]
    assert reads == sorted(reads)  # input read only grows
    assert max(reads) >= size / 2
    # One worker with a backlog, then two serving the job.
    assert any(o.cluster.alive_workers == 1 and o.pending_tasks > 0 for o in during)
    assert any(o.cluster.alive_workers == 2 and o.running_tasks == 2 for o in during)
    assert seq[-1].cluster.alive_workers == 2 and not seq[-1].cluster.active_apps


def check_job(obs: Observation) -> None:
    """The one running job's context: the master's app, named and signed by its name (it sets
    no ``spark.sparkscaler.job``), its declared size and deadline, time since it was submitted,
    one stage of TASKS tasks whose finished tasks took at least their sleep each."""
    (app,) = obs.cluster.active_apps
    (job,) = obs.jobs
    assert (job.app_id, job.name, job.signature) == (app.id, "contract", "contract")
    assert (job.input_bytes, job.input_source) == (obs.input_bytes, "declared")
    assert job.deadline_s == DEADLINE_S
    assert job.elapsed_s == pytest.approx(obs.oldest_job_elapsed_s, abs=1.0)
    assert (job.cores, job.max_cores) == (app.cores, None)
    assert len(job.stages) <= 1  # none yet while the driver starts, then the one stage
    for stage in job.stages:
        assert stage.tasks == TASKS and stage.status in ("PENDING", "ACTIVE", "COMPLETE")
        if stage.status == "PENDING":
            # Spark lists a job's stage as PENDING from the job's submission until the stage's
            # own (the simulator: until its driver phase ends): nothing of it has run yet.
            assert (stage.done, stage.running, stage.task_seconds) == (0, 0, 0.0)
        assert 0 <= stage.done <= TASKS and 0 <= stage.running <= obs.cluster.alive_workers + 1
        assert job.tasks_left == TASKS - stage.done
        assert stage.task_seconds >= TASK_S * stage.done - 1e-9
        assert stage.task_seconds <= 3 * TASK_S * stage.done + 1e-9
        assert 0.0 <= stage.input_bytes <= obs.input_bytes + TASKS * 256 * 1024


def check_pending(seq: list[Observation]) -> None:
    """A PROVISIONING worker's ``pending_s`` counts from when it was asked for: the same
    instant (time - pending_s) in every observation that shows it, just before the first of
    them (the scenario observes right after it asks)."""
    shown = [(obs.time, w) for obs in seq for w in obs.cluster.workers if w.state == "PROVISIONING"]
    assert shown, "no observation showed the new worker PROVISIONING"
    first = shown[0][0]
    instants = [t - w.pending_s for t, w in shown]
    assert all(first - 0.5 < t <= first + 1e-6 for t in instants), (first, instants)


# ------------------------------------------------------------------------------- the scenario
Step = Callable[[], None]


def scenario(
    observe: Callable[[], Observation], wait: Callable[[float], None], launch: Step
) -> list[Observation]:
    """Observe each second: until the job queues on one worker, then ask for a second worker
    and go on until the job has ended on two."""
    seq: list[Observation] = []
    launched = False
    for _ in range(180):
        obs = observe()
        seq.append(obs)
        if not launched and obs.cluster.active_apps and obs.pending_tasks > 1:
            launch()
            launched = True
            seq.append(observe())  # right after asking: the new worker is PROVISIONING
        if launched and not obs.cluster.active_apps and obs.cluster.alive_workers == 2:
            return seq
        wait(1.0)
    raise AssertionError("the scenario did not end in 180 steps")


def test_sim_and_local_observations_mean_the_same(
    shared_spark: SharedCluster, shared_cluster: Config, tmp_path: Path
) -> None:
    size = _input_file(tmp_path / "input.txt")

    # The simulator: the same job and cluster shape, this machine's provisioning delays.
    job = JobSpec(
        id=1,
        name="contract",
        arrival=3.0,
        stages=(Stage(0, TASKS, FixedDurations(TASK_S)),),
        size_gb=size / 1e9,
        deadline_s=DEADLINE_S,
    )
    sim = SimCluster([job], initial_workers=1, provisioning="local", memory_mb_per_worker=1024)
    sim_seq = scenario(
        SimObserver(sim).observe, SimClock(sim).sleep, lambda: SimulatedBackend(sim).launch(1)
    )

    # The local cluster: the real job through spark-submit's Python entry, the real observer.
    cfg, backend = shared_cluster, shared_spark.backend
    script = tmp_path / "job.py"
    script.write_text(JOB)
    observer = SparkObserver.from_config(
        cfg, WallClock(), roots=backend.worker_pids, provisioning=backend.workers
    )
    ui_port = free_port()
    args = [cfg.cluster.master_url, str(tmp_path / "input.txt"), str(size)]
    args += [f"{DEADLINE_S:g}", str(TASK_S), str(TASKS), str(ui_port)]
    driver = spawn_spark(
        [sys.executable, str(script), *args], tmp_path / "job.log", cfg.cluster.master_host
    )
    try:
        spark_seq = scenario(observer.observe, time.sleep, lambda: backend.launch(1))
        assert driver.wait(timeout=60) == 0, (tmp_path / "job.log").read_text()[-2000:]
    finally:
        observer.close()
        stop_group(driver, 15)
        shared_spark.restore()

    # Errors are allowed only while the new driver's UI was not up yet.
    assert all(
        e.startswith("no REST API found for application") for o in spark_seq for e in o.errors
    )
    for seq in (sim_seq, spark_seq):
        check_meaning(seq, size)
        check_pending(seq)
    assert sim_seq[0].cluster.active_apps == () and sim_seq[0].input_bytes is None
    provisioning = [o.cluster.provisioning_workers for o in spark_seq]
    assert max(o.cluster.provisioning_workers for o in sim_seq) == 1
    assert max(provisioning) == 1, "the local backend's new worker was never PROVISIONING"
