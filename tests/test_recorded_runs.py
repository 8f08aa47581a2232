"""The recorded real runs of the four PySpark jobs: the file format, its safe appends, and the
package's own recordings (what the job knowledge benchmark and ``--jobs recorded`` read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparkscaler.core import JobContext, JobRecord, StageProgress
from sparkscaler.models.recorded_runs import (
    RECORDED_RUNS,
    RecordedRun,
    append_recorded_runs,
    load_recorded_runs,
)


def _run(kind: str = "wordcount", workers: int = 2) -> RecordedRun:
    record = JobRecord(
        "app-1", f"rec-{kind}", 100.0, 160.0, 24, 0, 40.0, 2, 2, 8_000_000, 2, True,
        signature=kind, max_cores=workers,
    )  # fmt: skip
    timeline = tuple(
        JobContext(
            "app-1",
            f"rec-{kind}",
            kind,
            t,
            None,
            8e6,
            "declared",
            (StageProgress(0, 16, done, 2, 2.0 * done, 1e5 * done, "ACTIVE"),),
            2,
            workers,
        )
        for t, done in ((5.0, 0), (20.0, 6), (40.0, 14))
    )
    return RecordedRun(kind, 0.1, workers, 1.0, workers, 0.3, record, timeline)


def test_a_run_survives_its_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    runs = [_run("wordcount"), _run("kmeans", 1)]
    append_recorded_runs(path, runs[:1])
    append_recorded_runs(path, runs[1:])
    assert load_recorded_runs(path) == runs
    assert not list(tmp_path.glob("*.partial"))


def test_the_context_at_a_time_is_the_last_one_seen_by_then() -> None:
    run = _run()
    assert run.context_at(25.0).elapsed_s == 20.0
    assert run.context_at(25.0).tasks_done == 6
    assert run.context_at(100.0).tasks_done == 14
    start = run.context_at(1.0)
    assert (start.elapsed_s, start.stages, start.tasks_done) == (0.0, (), 0)
    assert (start.signature, start.input_bytes, start.input_source) == (
        "wordcount",
        8e6,
        "declared",
    )
    assert start.max_cores == 2


def test_a_bad_line_is_named_and_a_missing_file_says_how_to_record(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    append_recorded_runs(path, [_run()])
    with path.open("a") as out:
        out.write(json.dumps({"kind": "wordcount"}) + "\n")
    with pytest.raises(ValueError, match=r"runs\.jsonl:2: not a recorded run"):
        load_recorded_runs(path)
    with pytest.raises(FileNotFoundError, match=r"record_job_runs\.py"):
        load_recorded_runs(tmp_path / "none.jsonl")


def test_the_package_recordings_cover_four_jobs_at_several_sizes_and_worker_counts() -> None:
    """What the issue asks the numbers to be measured on: each job at three sizes or more on two
    worker counts or more, each run succeeded, signed with its kind, observed while it ran."""
    runs = load_recorded_runs(RECORDED_RUNS)
    kinds = {r.kind for r in runs}
    assert kinds == {"wordcount", "pagerank", "kmeans", "forecast"}
    for kind in kinds:
        mine = [r for r in runs if r.kind == kind]
        assert len({r.scale for r in mine}) >= 3, kind
        assert len({r.workers for r in mine}) >= 2, kind
    for run in runs:
        assert run.record.success and run.record.key == run.kind
        assert run.record.max_cores == run.cores_max == run.workers
        assert run.record.input_bytes > 0 and run.record.stages
        elapsed = [c.elapsed_s for c in run.timeline]
        # A short job may be seen once only: its REST API answers some 10 s after submission.
        assert elapsed == sorted(elapsed) and elapsed, run.record.name
        assert all(0 <= t <= run.record.duration_s + 5 for t in elapsed), run.record.name
        # What the observer saw by the end agrees with the event log's tally.
        assert run.timeline[-1].tasks_done <= run.record.tasks
    assert sorted(len(r.timeline) for r in runs)[len(runs) // 2] >= 10
