"""Submits the project's PySpark jobs with ``spark-submit`` and owns their driver processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sparkscaler.backends.local import app_properties, spark_home, write_properties
from sparkscaler.config import ClusterSettings
from sparkscaler.core import DEADLINE_PROPERTY, INPUT_BYTES_PROPERTY, SIGNATURE_PROPERTY
from sparkscaler.processes import signals_deferred, terminate_groups, wait_until
from sparkscaler.workloads import jobs


@dataclass
class SubmittedJob:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    submitted_at: float
    finished_at: float | None = None
    returncode: int | None = field(default=None)

    def poll(self) -> bool:
        """True once the driver has exited (and records when and how)."""
        if self.returncode is None:
            code = self.process.poll()
            if code is not None:
                self.returncode, self.finished_at = code, time.time()
        return self.returncode is not None

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0


class JobSubmitter:
    def __init__(self, cluster: ClusterSettings, state_dir: Path) -> None:
        self.cluster = cluster
        self.state_dir = state_dir
        self.jobs: list[SubmittedJob] = []

    def submit(
        self,
        name: str,
        job_args: list[str],
        deadline_s: float | None = None,
        *,
        cores_max: int | None = None,
        signature: str | None = None,
        input_bytes: int | None = None,
    ) -> SubmittedJob:
        """Start ``spark-submit`` for one job in its own process group; returns at once.

        ``cores_max`` caps the cores the application holds (``spark.cores.max``). A standalone
        master otherwise gives the first application every free core for its whole life and
        schedules applications first come, first served, so that jobs arriving while it runs
        wait with no executor at all, however many workers the autoscaler adds.

        ``signature`` names the recurring job (``spark.sparkscaler.job``: runs of one signature
        share their history) and ``input_bytes`` declares its size
        (``spark.sparkscaler.inputBytes``).
        """
        conf = write_properties(
            self.state_dir / "conf" / "app.conf", app_properties(self.state_dir)
        )
        (self.state_dir / "events").mkdir(parents=True, exist_ok=True)
        cmd = [
            str(spark_home() / "bin" / "spark-submit"),
            "--master",
            self.cluster.master_url,
            "--properties-file",
            str(conf),
            "--name",
            name,
            "--driver-memory",
            "512m",
            "--executor-memory",
            f"{min(self.cluster.worker_memory_mb, 1024)}m",
        ]
        if deadline_s is not None:
            cmd += ["--conf", f"{DEADLINE_PROPERTY}={deadline_s:g}"]
        if cores_max is not None:
            cmd += ["--conf", f"spark.cores.max={cores_max}"]
        if signature is not None:
            cmd += ["--conf", f"{SIGNATURE_PROPERTY}={signature}"]
        if input_bytes is not None:
            cmd += ["--conf", f"{INPUT_BYTES_PROPERTY}={input_bytes}"]
        cmd += [jobs.__file__, *job_args, "--name", name]
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": self.cluster.master_host,
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
        log = self.state_dir / "logs" / f"job-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        job = SubmittedJob(name, process, log, time.time())
        self.jobs.append(job)
        return job

    def running(self) -> list[SubmittedJob]:
        return [j for j in self.jobs if not j.poll()]

    def wait(self, timeout: float) -> bool:
        """Block until every submitted driver has exited; False on timeout."""
        return wait_until(lambda: not self.running(), timeout)

    def stop_all(self, grace_s: float = 10.0) -> None:
        """Stop every driver still running (its process group: JVM and Python)."""
        running = {job.process.pid: job.process for job in self.running()}
        with signals_deferred():
            terminate_groups(running, lambda pid: running[pid].poll() is None, grace_s)
            for process in running.values():
                process.wait()
