"""``sparkscaler evaluate --spark MASTER_URL``: the same tasks on a Spark cluster, the same numbers.

A small paper-grid (the quick grid's four cells, three cheap policies and the oracle, no DQN) is
evaluated once in this process and once on the shared local cluster through joblibspark; the
suites must be equal to the last digit, the tasks must have run in the cluster's executor (its
log says so), and the driver's JVM must be gone afterwards. Without Spark: the errors a user
gets for a master URL that is malformed, or where no master listens, or without joblibspark,
and the one for a task that fails on an executor.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from sparkscaler.cli import app
from sparkscaler.config import Config
from sparkscaler.evaluation.harness import EvaluationTaskError, Task, _run_parallel
from sparkscaler.evaluation.spark_session import spark_backend
from tests.conftest import SharedCluster, free_port

runner = CliRunner()
SMALL = ["paper-grid", "--quick", "--policy", "static", "--policy", "hpa", "--policy", "regression"]


def _flat(output: str) -> str:
    """The words of a command's output, without the lines and borders of rich's error box."""
    return " ".join(output.replace("│", " ").split())


def _executor_logs(state_dir: Path) -> set[Path]:
    """The stderr of every executor the shared cluster's workers have run (one folder each)."""
    return set((state_dir / "work").glob("*/app-*/*/stderr"))


@pytest.mark.spark
def test_the_same_numbers_on_a_spark_cluster(
    shared_spark: SharedCluster, shared_cluster: Config, tmp_path: Path
) -> None:
    before_logs = _executor_logs(shared_spark.config.state_dir)
    before_children = {p.pid for p in psutil.Process().children(recursive=True)}

    started = time.perf_counter()
    local = runner.invoke(app, ["evaluate", *SMALL, "-j", "1", "--out", str(tmp_path / "local")])
    local_s = time.perf_counter() - started
    assert local.exit_code == 0, local.output

    started = time.perf_counter()
    master = shared_cluster.cluster.master_url
    on_spark = runner.invoke(
        app, ["evaluate", *SMALL, "--spark", master, "--out", str(tmp_path / "spark")]
    )
    spark_s = time.perf_counter() - started
    assert on_spark.exit_code == 0, on_spark.output
    print(f"local {local_s:.1f} s, --spark {spark_s:.1f} s", file=sys.stderr)

    mine = json.loads((tmp_path / "local" / "results.json").read_text())
    theirs = json.loads((tmp_path / "spark" / "results.json").read_text())
    assert theirs["complete"] and theirs["options"]["spark"] == master
    grid = theirs["suites"]["paper-grid"]
    assert {r["policy"] for r in grid["cells"]} == {"oracle", "static", "hpa", "regression"}
    assert len(grid["cells"]) == 16 and grid["rounds"]["hpa@T5N5"]["worker_s"]
    assert json.dumps(theirs["suites"], sort_keys=True) == json.dumps(
        mine["suites"], sort_keys=True
    )
    assert (tmp_path / "spark" / "results.csv").read_text() == (
        tmp_path / "local" / "results.csv"
    ).read_text()

    # The tasks ran in an executor of the cluster, not in this process.
    (log,) = _executor_logs(shared_spark.config.state_dir) - before_logs
    assert "Finished task" in log.read_text()
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before_children
    assert not left, f"processes left behind (the driver's JVM?): {left}"


@pytest.mark.spark
def test_a_task_that_fails_on_an_executor_is_named_with_its_error(shared_cluster: Config) -> None:
    """joblibspark alone would report ``'_ExceptionWithTraceback' object is not iterable``."""
    tasks = [Task("fine 4", math.sqrt, (4.0,), "run", ("fine",))]
    tasks += [Task("sqrt of -1", math.sqrt, (-1.0,), "run", ("boom",))]
    done: dict[tuple, object] = {}
    with (
        spark_backend(shared_cluster.cluster.master_url, 2) as n_jobs,
        pytest.raises(EvaluationTaskError) as failed,
    ):
        _run_parallel(tasks, n_jobs, done.__setitem__)
    assert str(failed.value).startswith(
        "evaluation task 'sqrt of -1' failed: ValueError: math domain error (at harness.py:"
    ), failed.value


def test_a_master_url_that_is_not_spark_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--spark", "http://host:8080", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "spark://HOST:7077" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "results.json").exists()


def test_a_master_that_does_not_answer_is_named(tmp_path: Path) -> None:
    url = f"spark://127.0.0.1:{free_port()}"  # nothing listens there
    result = runner.invoke(app, ["evaluate", "--spark", url, "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert f"no Spark master answers at {url}" in _flat(result.output)
    assert not (tmp_path / "results.json").exists()


def test_without_joblibspark_the_extra_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "joblibspark", None)  # import joblibspark fails
    result = runner.invoke(app, ["evaluate", "--spark", "spark://127.0.0.1:7077"])
    assert result.exit_code == 2
    assert "sparkscaler[spark-eval]" in _flat(result.output)
