"""Each running job's own context in the live observation (signature, size, deadline, cores,
stage progress), from hand-written REST payloads served by a tiny local HTTP server (no Spark)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sparkscaler.clock import ManualClock
from sparkscaler.core import AppInfo, JobContext, StageProgress
from sparkscaler.observe.spark_app import AppLoad, job_input
from sparkscaler.observe.stage_work import attempt_progress, merge_attempts
from tests.test_observe_units import (
    AT_T0_MINUS_30,
    T0,
    FakeApp,
    FakeSpark,
    _app,
    _observer,
    serving,
)

BASE = "/api/v1/applications"


@pytest.fixture
def fake_spark() -> Iterator[tuple[FakeSpark, int]]:
    """The fake master and app-1 of the observer's tests, served on a port of this machine."""
    fake = FakeSpark()
    with serving(fake) as port:
        yield fake, port


def _stage(status: str, tasks: int, done: int = 0, running: int = 0, **more: object) -> dict:
    return {
        "status": status,
        "numTasks": tasks,
        "numCompletedIndices": done,
        "numActiveTasks": running,
        "submissionTime": AT_T0_MINUS_30,
        **more,
    }


# ------------------------------------------------------------------------------- units
def test_an_attempt_as_spark_reports_it() -> None:
    stage = {
        "stageId": 3,
        "attemptId": 0,
        "status": "ACTIVE",
        "numTasks": 8,
        "numActiveTasks": 2,
        "numCompleteTasks": 6,  # two of them speculative copies
        "numCompletedIndices": 4,
        "executorRunTime": 12_500,
        "inputBytes": 4096,
    }
    assert attempt_progress(stage) == StageProgress(3, 8, 4, 2, 12.5, 4096.0, "ACTIVE")
    # Without completed indices (older Spark) completed attempts count, at most every task.
    del stage["numCompletedIndices"]
    assert attempt_progress(stage).done == 6
    assert attempt_progress({**stage, "numCompleteTasks": 11}).done == 8
    assert attempt_progress({"stageId": 0}) == StageProgress(0, 0)


def test_a_retried_stage_is_one_stage_with_all_its_work_and_the_retrys_tasks_left() -> None:
    failed = StageProgress(
        2, 10, done=6, running=1, task_seconds=30, input_bytes=60, status="FAILED"
    )
    # The retry runs the 4 partitions still missing; 1 of them done so far.
    retry = StageProgress(2, 4, done=1, running=2, task_seconds=5, input_bytes=10)
    merged = merge_attempts({0: failed, 1: retry})
    assert merged == StageProgress(2, 10, 7, 3, 35.0, 70.0, "ACTIVE")
    assert merge_attempts({1: retry, 0: failed}) == merged  # by attempt id, not dict order
    assert merge_attempts({0: failed}) == failed
    done = merge_attempts({0: failed, 1: StageProgress(2, 4, 4, status="COMPLETE")})
    assert (done.tasks, done.done, done.status) == (10, 10, "COMPLETE")


def test_a_jobs_size_declared_else_from_its_first_stage() -> None:
    generate = StageProgress(0, 4, 4, status="COMPLETE")  # no input metrics (generated data)
    reading = StageProgress(1, 8, done=2, running=2, input_bytes=500.0)
    later = StageProgress(2, 8, done=8, input_bytes=10_000.0, status="COMPLETE")
    assert job_input(3e9, (generate, reading)) == (3e9, "declared")
    # While it runs: bytes read so far scaled up by its tasks over those done (8 / 2).
    assert job_input(None, (generate, reading, later)) == (2000.0, "first stage")
    finished = StageProgress(1, 8, 8, input_bytes=1900.0, status="COMPLETE")
    assert job_input(None, (generate, finished, later)) == (1900.0, "first stage")
    # Read a little (a heartbeat) but no task done yet: no scale to go by.
    started = StageProgress(1, 8, done=0, running=2, input_bytes=64.0)
    assert job_input(None, (generate, started, later)) == (None, "unknown")
    assert job_input(None, (generate,)) == (None, "unknown")
    assert job_input(None, ()) == (None, "unknown")


def test_a_load_as_a_job_takes_the_masters_name_cores_and_start() -> None:
    app = AppInfo("app-9", "etl nightly", cores=6, start_time=T0 - 42)
    stages = (StageProgress(0, 4, 1, input_bytes=100.0),)
    load = AppLoad("app-9", deadline_s=None, max_cores=6, stages=stages)
    assert load.job(app, T0, 600.0) == JobContext(
        app_id="app-9",
        name="etl nightly",
        signature="etl nightly",  # neither spark.sparkscaler.job nor a name from /environment
        elapsed_s=42.0,
        deadline_s=600.0,
        input_bytes=400.0,
        input_source="first stage",
        stages=stages,
        cores=6,
        max_cores=6,
    )
    own = AppLoad("app-9", deadline_s=90.0, signature="etl", input_bytes=5.0)
    job = own.job(app, T0 - 50, None)  # a clock behind the master's: not negative
    assert (job.signature, job.deadline_s, job.elapsed_s) == ("etl", 90.0, 0.0)
    assert (job.input_bytes, job.input_source, job.max_cores) == (5.0, "declared", None)


# ------------------------------------------------------------------------------- observer
def _second_app(fake: FakeSpark) -> None:
    """app-2: older than app-1, named by spark.sparkscaler.job, capped at 4 cores, 3 stages."""
    fake.master["activeapps"].append({**_app("app-2", start_s=T0 - 400), "cores": 4})
    fake.apps["app-2"] = FakeApp(
        stages=[
            _stage("COMPLETE", 4, 4, executorRunTime=8_000, inputBytes=4_000),
            _stage("ACTIVE", 6, 3, 2, executorRunTime=9_000),
            _stage("PENDING", 6),
        ],
        properties=[
            ["spark.app.name", "wordcount-2g"],
            ["spark.sparkscaler.job", "wordcount"],
            ["spark.cores.max", "4"],
            ["spark.sparkscaler.deadline", "5min"],
        ],
    )


def test_every_running_job_with_its_own_context_oldest_first(fake_spark) -> None:
    fake, port = fake_spark
    _second_app(fake)
    clock = ManualClock(T0)
    observer = _observer(port, clock, default_deadline_s=900.0)
    try:
        obs = observer.observe()
    finally:
        observer.close()
    assert obs.errors == () and obs.warnings == ()
    assert [job.app_id for job in obs.jobs] == ["app-2", "app-1"]  # started T0 - 400, T0 - 100
    wordcount, job1 = obs.jobs
    assert wordcount == JobContext(
        app_id="app-2",
        name="job app-2",  # the master's name for it
        signature="wordcount",
        elapsed_s=400.0,
        deadline_s=300.0,
        input_bytes=4000.0,  # its first stage, complete: what it read
        input_source="first stage",
        stages=(
            StageProgress(0, 4, 4, 0, 8.0, 4000.0, "COMPLETE"),
            StageProgress(1, 6, 3, 2, 9.0, 0.0, "ACTIVE"),
            StageProgress(2, 6, 0, 0, 0.0, 0.0, "PENDING"),
        ),
        cores=4,
        max_cores=4,
    )
    assert (wordcount.tasks_done, wordcount.tasks_left, wordcount.task_seconds) == (7, 9, 17.0)
    # app-1 is named "job" in its environment, sets a deadline of 300 and no core cap.
    assert (job1.signature, job1.deadline_s, job1.max_cores, job1.cores) == ("job", 300.0, None, 2)
    assert (job1.input_bytes, job1.input_source) == (None, "unknown")
    assert [(s.stage_id, s.tasks, s.done, s.running) for s in job1.stages] == [
        (0, 10, 3, 2),
        (1, 4, 0, 0),
    ]
    # The aggregates are what they were: the tightest deadline, no declared size.
    assert (obs.deadline_s, obs.input_bytes) == (300.0, None)
    assert obs.oldest_job_elapsed_s == pytest.approx(400.0)


def test_stage_progress_follows_the_job_and_reads_a_final_stage_no_more(fake_spark) -> None:
    fake, port = fake_spark
    _second_app(fake)
    clock = ManualClock(T0)
    observer = _observer(port, clock)
    stages = fake.apps["app-2"].stages
    try:
        observer.observe()
        # Stage 1 finishes, 2 starts; stage 3 is submitted, runs and ends between two looks;
        # stage 4 will be skipped (its output is there already).
        stages[1].update(status="COMPLETE", numCompletedIndices=6, numActiveTasks=0)
        stages[2].update(status="ACTIVE", numActiveTasks=2, numCompletedIndices=1)
        stages.append(_stage("COMPLETE", 2, 2, executorRunTime=1_000))
        stages.append(_stage("PENDING", 3))
        clock.advance(2)
        second = observer.observe()
        stages[4]["status"] = "SKIPPED"
        fake.requests.clear()
        clock.advance(2)
        third = observer.observe()
        fake.requests.clear()
        clock.advance(2)
        fourth = observer.observe()
    finally:
        observer.close()
    assert [(s.stage_id, s.done, s.status) for s in second.jobs[0].stages] == [
        (0, 4, "COMPLETE"),
        (1, 6, "COMPLETE"),
        (2, 1, "ACTIVE"),
        (3, 2, "COMPLETE"),
        (4, 0, "PENDING"),
    ]
    assert [s.status for s in third.jobs[0].stages] == [
        "COMPLETE",
        "COMPLETE",
        "ACTIVE",
        "COMPLETE",
        "SKIPPED",
    ]
    assert third.jobs[0].tasks_left == 5  # stage 2's; a skipped stage has none left
    assert fourth.jobs[0].stages == third.jobs[0].stages
    # No request of its own: the stages' progress comes from the reads the work counting does,
    # and a final stage is not read again.
    app2 = [r.removeprefix(f"{BASE}/app-2/") for r in fake.requests if "/app-2/" in r]
    assert sorted(app2) == ["allexecutors", "stages/5?details=false", "stages?status=active"]


def test_a_retried_stage_is_one_stage_in_the_jobs_progress(fake_spark) -> None:
    fake, port = fake_spark
    fake.app1.stages = [
        _stage("COMPLETE", 4, 4, executorRunTime=4_000),
        _stage("FAILED", 10, 6, executorRunTime=30_000, stageId=1, attemptId=0),
    ]
    clock = ManualClock(T0)
    observer = _observer(port, clock)
    try:
        first = observer.observe()
        # The retry of stage 1 runs the 4 partitions left (attempt 1), 1 done so far.
        fake.app1.stages.append(
            _stage("ACTIVE", 4, 1, 2, executorRunTime=2_000, stageId=1, attemptId=1)
        )
        clock.advance(2)
        second = observer.observe()
    finally:
        observer.close()
    assert first.jobs[0].stages[1] == StageProgress(1, 10, 6, 0, 30.0, 0.0, "FAILED")
    assert second.jobs[0].stages == (
        StageProgress(0, 4, 4, 0, 4.0, 0.0, "COMPLETE"),
        StageProgress(1, 10, 7, 2, 32.0, 0.0, "ACTIVE"),
    )


def test_a_jobs_size_from_its_first_stage_grows_into_what_it_read(fake_spark) -> None:
    fake, port = fake_spark
    fake.app1.properties = [["spark.app.name", "scan"]]
    fake.app1.stages = [_stage("ACTIVE", 8, 0, 2)]
    clock = ManualClock(T0)
    observer = _observer(port, clock)
    seen = []
    try:
        seen.append(observer.observe().jobs[0])
        for done, read, status in (
            (2, 300, "ACTIVE"),
            (6, 1_000, "ACTIVE"),
            (8, 1_400, "COMPLETE"),
        ):
            fake.app1.stages[0].update(numCompletedIndices=done, inputBytes=read, status=status)
            clock.advance(2)
            seen.append(observer.observe().jobs[0])
    finally:
        observer.close()
    assert [(j.input_bytes, j.input_source) for j in seen] == [
        (None, "unknown"),
        (1200.0, "first stage"),  # 300 * 8 / 2
        (pytest.approx(1333.3, abs=0.1), "first stage"),
        (1400.0, "first stage"),
    ]


def test_a_malformed_core_cap_is_a_warning_and_no_cap(fake_spark, caplog) -> None:
    fake, port = fake_spark
    fake.app1.properties = [["spark.app.name", "job"], ["spark.cores.max", "lots"]]
    observer = _observer(port, ManualClock(T0))
    try:
        with caplog.at_level(logging.WARNING, logger="sparkscaler.observe.spark_app"):
            obs = observer.observe()
    finally:
        observer.close()
    assert obs.jobs[0].max_cores is None
    assert obs.warnings == (
        "app-1 (job): spark.cores.max='lots' is not a number of cores, ignored",
    )
    assert (obs.running_tasks, obs.pending_tasks) == (2, 9)  # the load is still counted


def test_a_job_whose_api_is_not_found_is_not_in_the_jobs(fake_spark) -> None:
    fake, port = fake_spark
    fake.master["activeapps"].append(_app("app-lost", start_s=T0 - 900))
    observer = _observer(port, ManualClock(T0))
    try:
        obs = observer.observe()
    finally:
        observer.close()
    assert obs.errors == ("no REST API found for application app-lost",)
    assert [job.app_id for job in obs.jobs] == ["app-1"]
    assert obs.oldest_job_elapsed_s == pytest.approx(900.0)  # the master's view still counts it


def test_no_app_no_jobs(fake_spark) -> None:
    fake, port = fake_spark
    fake.master["activeapps"] = []
    observer = _observer(port, ManualClock(T0))
    try:
        assert observer.observe().jobs == ()
    finally:
        observer.close()
