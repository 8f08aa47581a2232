"""The four data jobs of ``sparkscaler.workloads.jobs`` on a real local cluster, at a small scale.

The session's shared cluster (a master and one worker, ``shared_spark`` in conftest) serves the
whole module. The master runs the jobs one after another on the worker's single core; two are
submitted at a time, so that the next driver starts up while the last one computes, without four
JVMs starting at once on two cores.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkscaler.config import Config
from sparkscaler.workloads.submit import JobSubmitter, SubmittedJob
from tests.conftest import SharedCluster, assert_all_stopped

pytestmark = pytest.mark.spark

#: Each kind at the smallest scale whose result still checks what its test asserts, on two
#: partitions (a shuffle still moves data between tasks). The forecast needs one whole station
#: (10,950 days, scale 0.0438) for its test quarter of more than 1,000 station-days; the others
#: keep their shape at any size: 10,000 Zipf lines, 600 linked pages, 8,000 points in 8 blobs.
SCALES = {"forecast": "0.05", "wordcount": "0.01", "pagerank": "0.01", "kmeans": "0.01"}
KINDS = tuple(SCALES)


@pytest.fixture(scope="module")
def finished(
    shared_spark: SharedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, SubmittedJob]]:
    """Every kind run to its end on the shared cluster; every driver stopped after (the
    cluster's own daemons are stopped and checked gone at the end of the session)."""
    with shared_spark.borrowed(Path(tmp_path_factory.mktemp("workloads")) / "state") as cfg:
        yield from _run_all(cfg)


def _run_all(cfg: Config) -> Iterator[dict[str, SubmittedJob]]:
    submitter = JobSubmitter(cfg.cluster, cfg.state_dir)
    try:
        jobs: dict[str, SubmittedJob] = {}
        deadline = time.monotonic() + 300
        while len(jobs) < len(KINDS) or submitter.running():
            if len(jobs) < len(KINDS) and len(submitter.running()) < 2:
                kind = KINDS[len(jobs)]
                small = ["--scale", SCALES[kind], "--partitions", "2"]
                jobs[kind] = submitter.submit(kind, [kind, *small])
                continue
            assert time.monotonic() < deadline, "the jobs did not finish within 5 minutes"
            time.sleep(0.5)
        yield jobs
    finally:
        drivers = [job.process.pid for job in submitter.jobs]
        submitter.stop_all()
        assert_all_stopped(sorted(drivers))


def summary(job: SubmittedJob, kind: str) -> str:
    """The job's ``sparkscaler-job <kind>:`` line, once it has exited successfully."""
    log = job.log.read_text()
    assert job.succeeded, log[-3000:]
    lines = [line for line in log.splitlines() if line.startswith(f"sparkscaler-job {kind}: ")]
    assert len(lines) == 1, log[-3000:]
    return lines[0]


def test_forecast_beats_predicting_the_mean(finished: dict[str, SubmittedJob]) -> None:
    line = summary(finished["forecast"], "forecast")
    found = re.search(r"test MSE (\S+) \(humidity variance (\S+)\) on (\d+) station-days", line)
    assert found, line
    mse, variance, test_rows = float(found[1]), float(found[2]), int(found[3])
    assert math.isfinite(mse) and 0 < mse < 0.7 * variance, line
    assert test_rows > 1000, line


def test_wordcount_top_words_follow_zipf(finished: dict[str, SubmittedJob]) -> None:
    line = summary(finished["wordcount"], "wordcount")
    found = re.search(r"(\d+) words, top 5 (.*)$", line)
    assert found, line
    words = int(found[1])
    counts = [int(pair.split("=")[1]) for pair in found[2].split(", ")]
    assert len(counts) == 5 and counts == sorted(counts, reverse=True), line
    assert counts[-1] > 0 and sum(counts) < words, line
    assert counts[0] > 1.5 * counts[1], "Zipf: the top word is far more frequent than the next"


def test_pagerank_keeps_the_rank_sum(finished: dict[str, SubmittedJob]) -> None:
    line = summary(finished["pagerank"], "pagerank")
    found = re.search(r"(\d+) nodes, rank sum (\S+), top 3 (.*)$", line)
    assert found, line
    nodes, total = int(found[1]), float(found[2])
    top = [float(pair.split("=")[1]) for pair in found[3].split(", ")]
    assert math.isclose(total, nodes, rel_tol=1e-6), "no dangling node: no rank leaks"
    assert len(top) == 3 and top == sorted(top, reverse=True) and top[-1] > 1.0, line


def test_kmeans_finds_the_blobs(finished: dict[str, SubmittedJob]) -> None:
    line = summary(finished["kmeans"], "kmeans")
    found = re.search(r"(\d+) points, cost (\S+) after (\d+) iterations, silhouette (\S+)", line)
    assert found, line
    cost, silhouette = float(found[2]), float(found[4])
    assert math.isfinite(cost) and cost > 0, line
    assert 0.3 < silhouette <= 1.0, line
