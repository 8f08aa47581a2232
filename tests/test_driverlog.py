"""Driver INFO logs -> the OLA 2019 paper's memory features and run time.

Hand-computed snippets first; then the paper's own logs against the authors' per-run CSVs
(skipped when ../shared/data is absent).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sparkscaler.observe.driverlog import (
    _BLOCK_MANAGER,
    DriverLogError,
    LoggedRun,
    driver_log_features,
    load_thonglek_logs,
    parse_driver_log,
)

THONGLEK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "thonglek-spark-runs"

SNIPPET = """\
17/09/14 10:25:27 INFO SparkContext: Running Spark version 2.2.0
17/09/14 10:25:28 INFO MemoryStore: MemoryStore started with capacity 366.3 MB
17/09/14 10:25:28 INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID app-7
17/09/14 10:25:28 INFO StandaloneAppClient$ClientEndpoint: Executor added: app-7/0 on \
worker-1 (10.0.0.27:45352) with 4 cores
17/09/14 10:25:30 INFO MemoryStore: Block broadcast_0 stored as values in memory \
(estimated size 238.5 KB, free 366.1 MB)
17/09/14 10:25:30 INFO MemoryStore: Block broadcast_0_piece0 stored as bytes in memory \
(estimated size 1.5 MB, free 366.0 MB)
17/09/14 10:25:30 INFO BlockManagerInfo: Added broadcast_0_piece0 in memory on \
10.0.0.14:43227 (size: 23.1 KB, free: 366.3 MB)
17/09/14 10:25:41 INFO BlockManagerInfo: Added taskresult_4 in memory on 10.0.0.27:34249 \
(size: 4.3 MB, free: 3.3 GB)
17/09/14 10:25:41 INFO BlockManagerInfo: Removed taskresult_4 on 10.0.0.27:34249 in memory \
(size: 4.3 MB, free: 3.4 GB)
17/09/14 10:26:58 INFO BlockManagerInfo: Updated broadcast_0_piece0 on disk on \
10.0.0.14:41813 (current size: 23.1 KB, original size: 0.0 B)
17/09/14 10:26:59 INFO SparkContext: Successfully stopped SparkContext
"""


def test_snippet_features_hand_computed(tmp_path: Path) -> None:
    log = tmp_path / "run.txt"
    log.write_text(SNIPPET)
    f = driver_log_features(log)
    assert f.start == dt.datetime(2017, 9, 14, 10, 25, 27)
    assert f.end == dt.datetime(2017, 9, 14, 10, 26, 59)
    assert f.duration_s == 92.0
    # MemoryStore blocks, values and bytes alike: (0.2385 + 1.5) / 2 MB; "started with" is no block.
    assert f.memory_store_blocks == 2
    assert f.avg_mem_transformation == pytest.approx(0.86925)
    assert f.avg_free_transformation == pytest.approx(366.05)
    # BlockManagerInfo Added and Removed in memory: (0.0231 + 4.3 + 4.3) / 3 MB; "Updated ...
    # on disk" has no size/free pair and is not counted. GB -> MB in steps of 1000.
    assert f.block_manager_events == 3
    assert f.avg_mem_action == pytest.approx(8.6231 / 3)
    assert f.avg_free_action == pytest.approx((366.3 + 3300.0 + 3400.0) / 3)
    assert f.executors == 1
    assert f.app_id == "app-7"
    assert not f.failed
    # In the authors' CSV units (KB).
    row = f.csv_row()
    assert row["USED_M"] == pytest.approx(869.25)
    assert row["USED_B"] == pytest.approx(2874.3666667)
    assert row["FREE_M"] == pytest.approx(366050.0)
    assert row["TIME"] == 92.0


def test_overwritten_log_uses_earliest_and_latest_timestamps() -> None:
    # A log truncated while an older driver still wrote to it: NUL padding, then that driver's
    # last lines, stamped before the new run's end.
    lines = [
        "17/09/14 13:16:14 INFO SparkContext: Running Spark version 2.2.0",
        "17/09/14 13:22:05 INFO ShutdownHookManager: Shutdown hook called",
        "\x00\x00\x00\x0017/09/14 13:16:40 ERROR Utils: Uncaught exception in thread Thread-2",
        "17/09/14 13:16:40 INFO ShutdownHookManager: Shutdown hook called",
    ]
    f = parse_driver_log(lines)
    assert f.duration_s == 351.0  # 13:16:14 -> 13:22:05, not 26 s to the last line
    assert not f.failed  # an uncaught exception in a shutdown thread is not a failed job


def test_failed_run_is_flagged() -> None:
    lines = [
        "17/09/14 10:32:41 INFO DAGScheduler: Job 0 finished: collect at W.scala:196, took 23.9 s",
        "17/09/14 10:44:07 INFO DAGScheduler: Job 1 failed: collect at W.scala:438, took 682.6 s",
    ]
    assert parse_driver_log(lines).failed
    assert not parse_driver_log(lines[:1]).failed
    crash = 'Exception in thread "main" org.apache.spark.SparkException: Job 1 cancelled'
    assert parse_driver_log([lines[0], crash]).failed


def test_no_memory_lines_gives_nan_not_zero() -> None:
    f = parse_driver_log(["17/09/14 10:00:00 INFO SparkContext: hello"])
    assert f.duration_s == 0.0
    assert math.isnan(f.avg_mem_action) and math.isnan(f.avg_mem_transformation)
    assert f.memory_store_blocks == f.block_manager_events == 0


def test_iso_timestamps_with_milliseconds() -> None:
    lines = [
        "2024-03-01 09:00:00,250 INFO SparkContext: Running Spark version 3.5.1",
        "2024-03-01 09:01:30.750 INFO SparkContext: Successfully stopped SparkContext",
    ]
    assert parse_driver_log(lines).duration_s == pytest.approx(90.5)


def test_not_a_driver_log(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(DriverLogError, match="not a Spark driver log"):
        driver_log_features(path)


def test_load_thonglek_logs_layout(tmp_path: Path) -> None:
    for workers, size, run, start, end in [
        (1, "0.5", "001", "10:00:00", "10:01:30"),
        (1, "1.0", "001", "11:00:00", "11:03:00"),
        (2, "0.5", "001", "12:00:00", "12:01:29"),
    ]:
        folder = tmp_path / f"{workers}_workernodes" / size
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{run}.txt").write_text(
            f"17/09/14 {start} INFO SparkContext: Running\n17/09/14 {end} INFO SparkContext: End\n"
        )
    failed = tmp_path / "2_workernodes" / "1.0"
    failed.mkdir()
    (failed / "001.txt").write_text(
        "17/09/14 13:00:00 INFO a\n17/09/14 13:09:00 INFO DAGScheduler: Job 1 failed: x\n"
    )
    runs = load_thonglek_logs(tmp_path)
    assert [(r.workers, r.size_gb, r.seconds) for r in runs] == [
        (1, 0.5, 90.0),
        (1, 1.0, 180.0),
        (2, 0.5, 89.0),
    ]
    assert len(load_thonglek_logs(tmp_path, include_failed=True)) == 4
    with pytest.raises(FileNotFoundError):
        load_thonglek_logs(tmp_path / "1_workernodes")


# --------------------------------------------------------------------- the paper's data

needs_data = pytest.mark.skipif(
    not (THONGLEK / "worker1.csv").is_file() or not (THONGLEK / "1_workernodes").is_dir(),
    reason=f"the Thonglek et al. data set is not at {THONGLEK} (see ../shared/data/README.md)",
)


Paper = tuple[list[LoggedRun], dict[tuple[int, float, int], Any]]


@pytest.fixture(scope="module")
def paper() -> Paper:
    """Every successful run's log features, and the rows of worker{N}.csv by (N, size, run).

    Rows of a SIZE block are in run order: 001.txt is that block's first row. (The memory
    columns match row by row, which is how the mapping was established.)
    """
    runs = load_thonglek_logs(THONGLEK)
    rows: dict[tuple[int, float, int], Any] = {}
    for workers in (1, 2, 3):
        csv = pd.read_csv(THONGLEK / f"worker{workers}.csv")
        csv["RUN"] = csv.groupby("SIZE").cumcount() + 1
        for row in csv.itertuples(index=False):
            rows[(workers, round(row.SIZE, 1), row.RUN)] = row
    return runs, rows


def _row(rows: dict[tuple[int, float, int], Any], run: LoggedRun) -> Any:
    key = (run.workers, round(run.size_gb, 1), int(run.path.stem))
    assert key in rows, f"no CSV row for {run.path}"
    return rows[key]


@needs_data
def test_runs_are_the_csv_rows_and_two_failed(paper: Paper) -> None:
    runs, table = paper
    assert len(runs) == len(table) == 375
    every = load_thonglek_logs(THONGLEK, include_failed=True)
    failed = sorted(
        (r.workers, r.size_gb, r.path.name) for r in every if r.features.failed
    )  # the 1-worker runs at 2.5 and 3.0 GB ran the driver out of heap
    assert failed == [(1, 2.5, "001.txt"), (1, 3.0, "001.txt")]
    # "N_workernodes" logs show N + 1 executors (a fact worth knowing when reading N).
    assert {r.features.executors - r.workers for r in runs} == {1}


@needs_data
def test_memory_features_reproduce_the_authors_csv(
    paper: Paper,
) -> None:
    runs, table = paper
    mismatches = []
    for run in runs:
        row, ours = _row(table, run), run.features.csv_row()
        for column in ("USED_B", "USED_M", "FREE_M"):
            if not np.isclose(ours[column], getattr(row, column), rtol=1e-6):
                mismatches.append((run.workers, run.size_gb, run.path.name, column))
    # Documented exceptions: 3 workers / 3.0 GB, whose CSV USED_M is 1000 KB higher in every
    # run, and 1 worker / 2.0 GB / 005.txt, a file overwritten while an older driver wrote to it.
    expected = {(3, 3.0, f"{i:03d}.txt", "USED_M") for i in range(1, 26)}
    expected.add((1, 2.0, "005.txt", "USED_B"))
    assert set(mismatches) == expected
    for run in runs:
        if (run.workers, run.size_gb) == (3, 3.0):
            offset = _row(table, run).USED_M - run.features.csv_row()["USED_M"]
            assert offset == pytest.approx(1000.0, abs=1e-6)


@needs_data
def test_free_b_counts_gb_values_as_zero(paper: Paper) -> None:
    """The authors' FREE_B: BlockManagerInfo ``free`` in KB, with GB values parsed as 0."""
    runs, table = paper
    kb = {"KB": 1.0, "MB": 1000.0, "GB": 0.0}
    for run in runs[::7]:
        if (run.workers, run.size_gb, run.path.name) == (1, 2.0, "005.txt"):
            continue
        text = run.path.read_bytes().decode("utf-8", errors="replace")
        frees = [float(m[3]) * kb[m[4]] for m in _BLOCK_MANAGER.finditer(text)]
        assert np.mean(frees) == pytest.approx(_row(table, run).FREE_B, rel=1e-6), run.path


@needs_data
def test_durations_agree_with_csv_time(paper: Paper) -> None:
    runs, table = paper
    gap = np.array([_row(table, r).TIME - r.seconds for r in runs])
    rel = np.abs(gap) / np.array([_row(table, r).TIME for r in runs])
    close = np.mean((gap >= -0.5) & (gap <= 2.5))
    # TIME (ms resolution) starts a second or two before the log's first line when both describe
    # the same run. In 8 of the 15 (workers, size) groups every run agrees so; in the others some
    # TIME values are off by up to 28 s although the memory columns match row for row, so they
    # were evidently measured on other runs. Hence: most runs agree closely, all within 10 %.
    assert 0.0 <= float(np.median(gap)) <= 2.0, f"median TIME - log span {np.median(gap):.2f} s"
    assert close >= 0.75, f"only {close:.0%} of runs within -0.5..2.5 s of TIME"
    assert rel.max() < 0.10, f"worst run off by {rel.max():.1%}"


@needs_data
def test_durations_grow_with_size_not_workers(
    paper: Paper,
) -> None:
    runs, _ = paper
    frame = pd.DataFrame([r.as_dict() for r in runs])
    medians = frame.groupby(["workers", "size_gb"]).seconds.median()
    for workers in (1, 2, 3):
        by_size = medians.loc[workers]
        assert by_size.is_monotonic_increasing and by_size.is_unique, by_size.to_dict()
    # ~175 s per GB, and no speedup from 1 to 3 workers (2.0 GB: within 5 %).
    at_2gb = [medians.loc[(w, 2.0)] for w in (1, 2, 3)]
    assert max(at_2gb) / min(at_2gb) < 1.05, at_2gb
    slope = np.polyfit(frame.size_gb, frame.seconds, 1)[0]
    assert 150 < slope < 200, f"{slope:.0f} s per GB"
