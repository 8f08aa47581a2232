"""The four data jobs of ``sparkscaler.workloads.jobs`` on a real local cluster, at a small scale.

The session's shared cluster (a master and one worker, ``shared_spark`` in conftest) serves the
whole module. One driver runs the four jobs one after another in one application, with the
settings ``spark-submit`` of a single job gives them (``sized_job_settings``): a driver JVM
takes 10-15 s to start on a busy 2-core machine, and four of them were most of this module's
time. One job submitted through ``spark-submit`` on its own is the demo's and the local
cluster tests' (``JobSubmitter``).
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import SharedCluster, assert_all_stopped, spawn_spark, stop_group

pytestmark = pytest.mark.spark

#: Each kind at the smallest scale whose result still checks what its test asserts, on two
#: partitions (a shuffle still moves data between tasks). The forecast needs one whole station
#: (10,950 days, scale 0.0438) for its test quarter of more than 1,000 station-days; the others
#: keep their shape at any size: 10,000 Zipf lines, 600 linked pages, 8,000 points in 8 blobs.
SCALES = {"forecast": 0.05, "wordcount": 0.01, "pagerank": 0.01, "kmeans": 0.01}
PARTITIONS = 2

#: The driver: each kind's summary line, as ``jobs.main`` prints it.
DRIVER = """
import sys
from pyspark.sql import SparkSession
from sparkscaler.workloads.jobs import SIZED_JOBS, sized_job_settings

master, memory, partitions, *kinds = sys.argv[1:]
builder = SparkSession.builder.master(master).appName("sparkscaler-test-workloads")
builder = builder.config("spark.executor.memory", memory).config("spark.driver.memory", "512m")
spark = sized_job_settings(builder, int(partitions)).getOrCreate()
try:
    for item in kinds:
        kind, scale = item.split("=")
        line = SIZED_JOBS[kind](spark, float(scale), int(partitions))
        sys.stdout.write(f"sparkscaler-job {kind}: {line}\\n")
        sys.stdout.flush()
finally:
    spark.stop()
"""


@pytest.fixture(scope="module")
def output(shared_spark: SharedCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """What the driver printed after running every kind to its end on the shared cluster; the
    driver's process group is stopped and checked gone (the cluster's daemons at the end of the
    session)."""
    folder = Path(tmp_path_factory.mktemp("workloads"))
    with shared_spark.borrowed(folder / "state") as cfg:
        script, log = folder / "driver.py", folder / "driver.log"
        script.write_text(DRIVER)
        memory = f"{min(cfg.cluster.worker_memory_mb, 1024)}m"
        kinds = [f"{kind}={scale}" for kind, scale in SCALES.items()]
        args = [sys.executable, str(script), cfg.cluster.master_url, memory, str(PARTITIONS)]
        driver = spawn_spark([*args, *kinds], log, cfg.cluster.master_host)
        try:
            code = driver.wait(timeout=300)
        finally:
            stop_group(driver, 20)
        assert_all_stopped([driver.pid])
        text = log.read_text()
        assert code == 0, text[-3000:]
        return text


def summary(output: str, kind: str) -> str:
    """The ``sparkscaler-job <kind>:`` line of ``kind``."""
    lines = [line for line in output.splitlines() if line.startswith(f"sparkscaler-job {kind}: ")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def test_forecast_beats_predicting_the_mean(output: str) -> None:
    line = summary(output, "forecast")
    found = re.search(r"test MSE (\S+) \(humidity variance (\S+)\) on (\d+) station-days", line)
    assert found, line
    mse, variance, test_rows = float(found[1]), float(found[2]), int(found[3])
    assert math.isfinite(mse) and 0 < mse < 0.7 * variance, line
    assert test_rows > 1000, line


def test_wordcount_top_words_follow_zipf(output: str) -> None:
    line = summary(output, "wordcount")
    found = re.search(r"(\d+) words, top 5 (.*)$", line)
    assert found, line
    words = int(found[1])
    counts = [int(pair.split("=")[1]) for pair in found[2].split(", ")]
    assert len(counts) == 5 and counts == sorted(counts, reverse=True), line
    assert counts[-1] > 0 and sum(counts) < words, line
    assert counts[0] > 1.5 * counts[1], "Zipf: the top word is far more frequent than the next"


def test_pagerank_keeps_the_rank_sum(output: str) -> None:
    line = summary(output, "pagerank")
    found = re.search(r"(\d+) nodes, rank sum (\S+), top 3 (.*)$", line)
    assert found, line
    nodes, total = int(found[1]), float(found[2])
    top = [float(pair.split("=")[1]) for pair in found[3].split(", ")]
    assert math.isclose(total, nodes, rel_tol=1e-6), "no dangling node: no rank leaks"
    assert len(top) == 3 and top == sorted(top, reverse=True) and top[-1] > 1.0, line


def test_kmeans_finds_the_blobs(output: str) -> None:
    line = summary(output, "kmeans")
    found = re.search(r"(\d+) points, cost (\S+) after (\d+) iterations, silhouette (\S+)", line)
    assert found, line
    cost, silhouette = float(found[2]), float(found[4])
    assert math.isfinite(cost) and cost > 0, line
    assert 0.3 < silhouette <= 1.0, line
