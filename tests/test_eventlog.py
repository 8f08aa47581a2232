"""Event logs -> JobRecords, on logs written here by hand and on logs from a real local Spark."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import zstandard

from sparkscaler.core import JobRecord, StageSummary
from sparkscaler.observe.eventlog import EventLogError, parse_event_log, scan_event_logs

APP_ID = "app-20250101000000-0001"
T0 = 1_700_000_000_000  # ms


def _task(
    launch: int,
    ms: int,
    executor: str,
    *,
    read: int | None = None,
    stage: int = 0,
    run: int | None = None,
    **flags: Any,
) -> dict:
    """A task's end; with ``read`` or ``run`` (Executor Run Time, ms) its metrics."""
    failed = bool(flags)
    metrics: dict[str, Any] = {}
    if read is not None:
        metrics["Input Metrics"] = {"Bytes Read": read}
    if run is not None:
        metrics["Executor Run Time"] = run
    return {
        "Event": "SparkListenerTaskEnd",
        "Stage ID": stage,
        "Task End Reason": {"Reason": "ExceptionFailure" if failed else "Success"},
        "Task Info": {
            "Launch Time": launch,
            "Finish Time": launch + ms,
            "Executor ID": executor,
            "Host": "10.0.0.1",
            "Failed": flags.get("failed", False),
            "Killed": flags.get("killed", False),
        },
        **({"Task Metrics": metrics} if metrics else {}),
    }


def _stage_completed(
    sid: int, tasks: int, submitted: int, completed: int, parents: list[int], attempt: int = 0
) -> dict:
    return {
        "Event": "SparkListenerStageCompleted",
        "Stage Info": {
            "Stage ID": sid,
            "Stage Attempt ID": attempt,
            "Stage Name": f"stage {sid}",
            "Number of Tasks": tasks,
            "Parent IDs": parents,
            "Submission Time": submitted,
            "Completion Time": completed,
        },
    }


def _executor(executor_id: str, host: str) -> dict:
    return {
        "Event": "SparkListenerExecutorAdded",
        "Executor ID": executor_id,
        "Executor Info": {"Host": host, "Total Cores": 2},
    }


def _app(
    app_id: str = APP_ID,
    start: int = T0,
    *,
    job_result: str = "JobSucceeded",
    exit_code: int | None = 0,
    properties: Any = None,
) -> list[dict]:
    """Two Spark jobs, four tasks (two failed or killed) on three executors on two hosts.

    Job 0 runs stage 0 (it reads the input); job 1 runs stage 2 on stage 0's output, which it
    reads again, and skips stage 1 (never submitted: no events of its own).
    """
    if properties is None:
        properties = {"spark.master": "spark://m:7077", "spark.sparkscaler.deadline": "300"}
    end = {"Event": "SparkListenerApplicationEnd", "Timestamp": start + 60_000}
    if exit_code is not None:
        end["ExitCode"] = exit_code
    return [
        {"Event": "SparkListenerLogStart", "Spark Version": "4.3.0"},
        _executor("1", "10.0.0.1"),
        _executor("2", "10.0.0.2"),
        _executor("3", "10.0.0.1"),
        {"Event": "SparkListenerEnvironmentUpdate", "Spark Properties": properties},
        {
            "Event": "SparkListenerApplicationStart",
            "App Name": "etl",
            "App ID": app_id,
            "Timestamp": start,
        },
        {"Event": "SparkListenerJobStart", "Job ID": 0},
        _task(start + 1_000, 1_500, "1", read=100, run=1_200),
        _task(start + 1_000, 2_500, "2", read=200, run=2_300),
        {
            **_task(start + 3_000, 250, "3", failed=True),
            "Task Metrics": None,
        },
        _stage_completed(0, 2, start + 900, start + 3_300, []),
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Job Result": {"Result": "JobSucceeded"}},
        {"Event": "SparkListenerJobStart", "Job ID": 1},
        _task(start + 4_000, 750, "1", killed=True, stage=2, read=50, run=600),
        _stage_completed(2, 1, start + 3_900, start + 4_900, [1, 0]),
        {"Event": "SparkListenerJobEnd", "Job ID": 1, "Job Result": {"Result": job_result}},
        end,
    ]


EXPECTED = JobRecord(
    app_id=APP_ID,
    name="etl",
    submit_time=1_700_000_000.0,
    end_time=1_700_000_060.0,
    tasks=4,
    failed_tasks=2,
    task_seconds=5.0,  # 1.5 + 2.5 + 0.25 + 0.75
    executors=3,
    workers=2,
    input_bytes=300,  # what the first stage that read any read (stage 2 reads 50 again)
    spark_jobs=2,
    success=True,
    deadline_s=300.0,
    signature="",  # no spark.sparkscaler.job: the key is the name
    stages=(
        StageSummary(0, tasks=2, task_seconds=3.5, input_bytes=300, duration_s=2.4),
        StageSummary(2, tasks=1, task_seconds=0.6, input_bytes=50, duration_s=1.0, parents=(0, 1)),
    ),
    # Tasks ran over [1, 3.5] and [4, 4.75] s of the app's 60 s: 3.25 s.
    serial_s=56.75,
    max_cores=None,
    first_stage_input_bytes=300,
)


def _text(events: list[dict]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


def _zstd(text: str, frames: int = 1) -> bytes:
    """Compress ``text`` as ``frames`` concatenated zstd frames, as a flushed stream can be."""
    data = text.encode()
    cut = len(data) // frames
    chunks = [data[i * cut : (i + 1) * cut if i < frames - 1 else None] for i in range(frames)]
    return b"".join(zstandard.ZstdCompressor().compress(chunk) for chunk in chunks)


def test_plain_file(tmp_path: Path) -> None:
    log = tmp_path / APP_ID
    log.write_text(_text(_app()))
    assert parse_event_log(log) == EXPECTED


def test_zstd_file_with_concatenated_frames(tmp_path: Path) -> None:
    log = tmp_path / f"{APP_ID}.zstd"
    log.write_bytes(_zstd(_text(_app()), frames=3))
    assert parse_event_log(log) == EXPECTED


def test_rolled_dir_reads_parts_in_numeric_order(tmp_path: Path) -> None:
    events = _app()
    # A later environment update wins, so the deadline shows which part was read last:
    # numeric order reads part 10 last, lexical order would read part 2 last.
    update = {"Event": "SparkListenerEnvironmentUpdate", "Spark Properties": {}}
    parts = {
        1: events[:9],
        2: [*events[9:12], {**update, "Spark Properties": {"spark.sparkscaler.deadline": "1"}}],
        10: [*events[12:], {**update, "Spark Properties": {"spark.sparkscaler.deadline": "42"}}],
    }
    rolled = tmp_path / f"eventlog_v2_{APP_ID}"
    rolled.mkdir()
    for n, part in parts.items():
        (rolled / f"events_{n}_{APP_ID}.zstd").write_bytes(_zstd(_text(part)))
    (rolled / f"appstatus_{APP_ID}").touch()
    (rolled / f".events_1_{APP_ID}.zstd.crc").write_bytes(b"crc\x00\x01")
    assert parse_event_log(rolled) == JobRecord(**{**vars(EXPECTED), "deadline_s": 42.0})


def test_rolled_dir_of_plain_parts(tmp_path: Path) -> None:
    rolled = tmp_path / f"eventlog_v2_{APP_ID}"
    rolled.mkdir()
    events = _app()
    (rolled / f"events_1_{APP_ID}").write_text(_text(events[:7]))
    (rolled / f"events_2_{APP_ID}").write_text(_text(events[7:]))
    assert parse_event_log(rolled) == EXPECTED


def test_unfinished_apps_are_none_and_skipped(tmp_path: Path) -> None:
    running = _app(start=T0 + 1)[:-1]
    (tmp_path / f"{APP_ID}.inprogress").write_text(_text(_app()))  # even if complete
    (tmp_path / "app-running").write_text(_text(running))
    rolled = tmp_path / "eventlog_v2_app-rolled"
    rolled.mkdir()
    (rolled / "events_1_app-rolled.zstd").write_bytes(_zstd(_text(running)))
    (rolled / "appstatus_app-rolled.inprogress").touch()
    for path in tmp_path.iterdir():
        assert parse_event_log(path) is None
    assert scan_event_logs(tmp_path) == []


def test_failed_job_or_exit_code_is_not_success(tmp_path: Path) -> None:
    failed_job = tmp_path / "failed-job"
    failed_job.write_text(_text(_app(job_result="JobFailed")))
    bad_exit = tmp_path / "bad-exit"
    bad_exit.write_text(_text(_app(exit_code=1)))
    no_exit = tmp_path / "no-exit-code"
    no_exit.write_text(_text(_app(exit_code=None)))
    assert parse_event_log(failed_job) == JobRecord(**{**vars(EXPECTED), "success": False})
    assert parse_event_log(bad_exit) == JobRecord(**{**vars(EXPECTED), "success": False})
    assert parse_event_log(no_exit) == EXPECTED


def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    task = json.dumps(_task(T0, 9_000, "1", read=7))
    text = _text(_app())
    lines = text.splitlines(keepends=True)
    lines.insert(8, "not json\n")
    lines.insert(9, "[1, 2]\n")
    log = tmp_path / APP_ID
    log.write_text("".join(lines) + task[: len(task) // 2])  # truncated last line
    assert parse_event_log(log) == EXPECTED


def test_log_without_application_start_is_none(tmp_path: Path) -> None:
    log = tmp_path / "junk"
    log.write_text(_text([e for e in _app() if e["Event"] != "SparkListenerApplicationStart"]))
    assert parse_event_log(log) is None


@pytest.mark.parametrize(
    "properties",
    [
        {"spark.sparkscaler.deadline": "90.5"},
        [["spark.master", "local[2]"], ["spark.sparkscaler.deadline", "90.5"]],
    ],
    ids=["dict", "pairs"],
)
def test_spark_properties_dict_or_pairs(tmp_path: Path, properties: Any) -> None:
    log = tmp_path / APP_ID
    log.write_text(_text(_app(properties=properties)))
    assert parse_event_log(log) == JobRecord(**{**vars(EXPECTED), "deadline_s": 90.5})


def test_no_deadline_property(tmp_path: Path) -> None:
    log = tmp_path / APP_ID
    log.write_text(_text(_app(properties={"spark.master": "local"})))
    assert parse_event_log(log) == JobRecord(**{**vars(EXPECTED), "deadline_s": None})


@pytest.mark.parametrize(("declared", "size"), [("2g", 2 * 1024**3), ("lots", 300), (None, 300)])
def test_a_declared_input_size_is_the_jobs_size(
    tmp_path: Path, declared: str | None, size: int
) -> None:
    """The size a live observation plans with (spark.sparkscaler.inputBytes), so that a model
    learns from the same notion of size; else (or when it is no size) the bytes tasks read."""
    properties = {"spark.sparkscaler.inputBytes": declared} if declared else {}
    log = tmp_path / APP_ID
    log.write_text(_text(_app(properties={**properties, "spark.sparkscaler.deadline": "60"})))
    record = parse_event_log(log)
    assert record == JobRecord(**{**vars(EXPECTED), "input_bytes": size, "deadline_s": 60.0})


@pytest.mark.parametrize(
    ("settings", "signature", "key", "cores"),
    [
        ({"spark.sparkscaler.job": "nightly-etl", "spark.cores.max": "4"}, "nightly-etl", None, 4),
        ({"spark.cores.max": "all"}, "", "etl", None),
        ({"spark.sparkscaler.job": ""}, "", "etl", None),
    ],
)
def test_signature_and_core_cap_from_the_properties(
    tmp_path: Path, settings: dict[str, str], signature: str, key: str | None, cores: int | None
) -> None:
    log = tmp_path / APP_ID
    log.write_text(_text(_app(properties={**settings, "spark.sparkscaler.deadline": "300"})))
    record = parse_event_log(log)
    assert record == JobRecord(**{**vars(EXPECTED), "signature": signature, "max_cores": cores})
    assert record.key == (key or signature)


def test_a_retried_stage_counts_once_with_all_its_task_time(tmp_path: Path) -> None:
    """Stage 1 fails (a fetch failure), stage 0 re-runs its lost partition (attempt 1) and
    stage 1 runs again whole; each stage is one summary with every attempt's work."""
    start = T0
    events = [
        {
            "Event": "SparkListenerApplicationStart",
            "App Name": "retry",
            "App ID": APP_ID,
            "Timestamp": start,
        },
        {"Event": "SparkListenerJobStart", "Job ID": 0},
        _task(start + 100, 900, "1", read=400, run=800),
        _task(start + 100, 900, "2", read=600, run=850),
        _stage_completed(0, 2, start + 50, start + 1_000, []),
        _task(start + 1_100, 400, "1", stage=1, failed=True),  # FetchFailed: no metrics
        _stage_completed(1, 2, start + 1_050, start + 1_500, [0]),
        _task(start + 1_600, 900, "2", read=600, run=880),  # the lost map output, again
        _stage_completed(0, 1, start + 1_550, start + 2_500, [], attempt=1),
        _task(start + 2_600, 300, "1", stage=1, run=250),
        _task(start + 2_600, 350, "2", stage=1, run=300),
        _stage_completed(1, 2, start + 2_550, start + 3_000, [0], attempt=1),
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Job Result": {"Result": "JobSucceeded"}},
        {"Event": "SparkListenerApplicationEnd", "Timestamp": start + 4_000},
    ]
    log = tmp_path / APP_ID
    log.write_text(_text(events))
    record = parse_event_log(log)
    assert record is not None
    assert record.stages == (
        # 2 tasks (the retry ran 1), 0.8 + 0.85 + 0.88 s, 0.95 + 0.95 s of attempts.
        StageSummary(0, tasks=2, task_seconds=2.53, input_bytes=1600, duration_s=1.9),
        StageSummary(1, tasks=2, task_seconds=0.55, input_bytes=0, duration_s=0.9, parents=(0,)),
    )
    # The input: what stage 0 read, its re-read partition included (the bytes tasks read).
    assert (record.input_bytes, record.first_stage_input_bytes) == (1600, 1600)
    # Tasks ran over [0.1, 1.0], [1.1, 1.5], [1.6, 2.5] and [2.6, 2.95] of 4 s.
    assert record.serial_s == pytest.approx(4.0 - 0.9 - 0.4 - 0.9 - 0.35)
    assert record.signature == "" and record.key == "retry"


def test_an_app_without_tasks_is_all_serial(tmp_path: Path) -> None:
    log = tmp_path / APP_ID
    events = [e for e in _app() if e["Event"] not in ("SparkListenerTaskEnd",)]
    log.write_text(_text(events))
    record = parse_event_log(log)
    assert record is not None
    assert (record.serial_s, record.tasks, record.input_bytes) == (60.0, 0, 0)
    # The stages ran (they were submitted and completed) but no task of theirs is in the log.
    assert [(s.stage_id, s.task_seconds) for s in record.stages] == [(0, 0.0), (2, 0.0)]


def test_a_record_survives_the_stores_json(tmp_path: Path) -> None:
    log = tmp_path / APP_ID
    log.write_text(_text(_app()))
    record = parse_event_log(log)
    assert record is not None
    assert JobRecord.from_dict(json.loads(json.dumps(dataclasses.asdict(record)))) == record


def test_bad_deadline_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / APP_ID
    log.write_text(_text(_app(properties={"spark.sparkscaler.deadline": "soon"})))
    with pytest.raises(EventLogError, match="soon"):
        parse_event_log(log)


@pytest.mark.parametrize("codec", ["lz4", "snappy"])
def test_unsupported_codec_names_it_and_suggests_zstd(tmp_path: Path, codec: str) -> None:
    log = tmp_path / f"{APP_ID}.{codec}"
    log.write_bytes(b"\x00binary")
    with pytest.raises(EventLogError, match=rf"{codec}.*spark\.eventLog\.compression\.codec=zstd"):
        parse_event_log(log)


def test_corrupt_zstd_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / f"{APP_ID}.zstd"
    log.write_bytes(b"this is not zstd")
    with pytest.raises(EventLogError, match="cannot read"):
        parse_event_log(log)


def test_compacted_rolled_log_is_an_error(tmp_path: Path) -> None:
    rolled = tmp_path / f"eventlog_v2_{APP_ID}"
    rolled.mkdir()
    (rolled / f"events_3_{APP_ID}.zstd.compact").write_bytes(_zstd(_text(_app())))
    with pytest.raises(EventLogError, match="compacted"):
        parse_event_log(rolled)


def test_scan_sorts_by_submit_time_and_skips_noise(tmp_path: Path) -> None:
    (tmp_path / "app-late").write_text(_text(_app("app-late", start=T0 + 5_000)))
    (tmp_path / "app-early.zstd").write_bytes(_zstd(_text(_app("app-early", start=T0))))
    rolled = tmp_path / "eventlog_v2_app-mid"
    rolled.mkdir()
    (rolled / "events_1_app-mid.zstd").write_bytes(_zstd(_text(_app("app-mid", start=T0 + 1))))
    (tmp_path / ".app-late.crc").write_bytes(b"\x00\x01")
    (tmp_path / "unrelated-dir").mkdir()
    records = scan_event_logs(tmp_path)
    assert [r.app_id for r in records] == ["app-early", "app-mid", "app-late"]
    assert [r.submit_time for r in records] == [1_700_000_000.0, 1_700_000_000.001, 1_700_000_005.0]


def test_scan_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_event_logs(tmp_path / "nope")


_SPARK_APPS = textwrap.dedent(
    """
    import json
    import sys
    from pyspark.sql import SparkSession

    # One app per list of settings, one after another in this process (one JVM start for all).
    for settings in json.loads(sys.argv[1]):
        builder = SparkSession.builder.master("local[2]").appName("eventlog-test")
        for pair in settings:
            key, value = pair.split("=", 1)
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        sc = spark.sparkContext
        print(sc.parallelize(range(8), 8).map(lambda x: x * 2).sum(), flush=True)
        # A job that reads a file (input metrics), then one whose shuffle makes two stages.
        print(sc.textFile(sys.argv[2], 2).map(len).sum(), flush=True)
        print(sorted(sc.parallelize(range(8), 4).map(lambda x: (x % 2, x)).reduceByKey(
            lambda a, b: a + b, 2).collect()), flush=True)
        spark.stop()
    """
)
#: The file the second Spark job reads: 400 lines of 19 characters and a newline.
INPUT_TEXT = "".join(f"line {i:04d} of input\n" for i in range(400))

LAYOUTS = {
    "rolled-zstd": [],  # Spark 4 default: rolled, zstd
    "plain-file": ["spark.eventLog.rolling.enabled=false", "spark.eventLog.compress=false"],
}


@pytest.fixture(scope="module")
def real_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each layout's event-log directory after a real local Spark app wrote it (one app per
    layout, run in turn by one Python process)."""
    if shutil.which("java") is None and "JAVA_HOME" not in os.environ:
        pytest.skip("needs a JVM")
    pytest.importorskip("pyspark")
    base = tmp_path_factory.mktemp("real-eventlogs")
    apps = []
    logs = {}
    for name, layout in LAYOUTS.items():
        logs[name] = base / name
        logs[name].mkdir()
        apps.append(
            [
                "spark.eventLog.enabled=true",
                f"spark.eventLog.dir=file://{logs[name]}",
                "spark.sparkscaler.deadline=120",
                "spark.sparkscaler.job=eventlog-sig",
                "spark.cores.max=2",
                "spark.ui.enabled=false",
                *layout,
            ]
        )
    script = base / "apps.py"
    script.write_text(_SPARK_APPS)
    text = base / "input.txt"
    text.write_text(INPUT_TEXT)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    # The JVM is a child of the app; its own session lets us kill both if anything goes wrong.
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(apps), str(text)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing left over
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, output[-4000:]
    assert output.splitlines().count("56") == len(LAYOUTS), output[-4000:]
    assert output.splitlines().count(str(len(INPUT_TEXT) - 400)) == len(LAYOUTS), output[-4000:]
    return logs


@pytest.mark.spark
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_real_local_spark_app(real_logs: dict[str, Path], layout: str) -> None:
    logs = real_logs[layout]
    (written,) = logs.iterdir()  # one app wrote here, in the layout asked for
    if layout == "rolled-zstd":
        assert written.is_dir() and written.name.startswith("eventlog_v2_local-")
        assert [p.suffix for p in written.glob("events_*")] == [".zstd"]
    else:
        assert written.is_file() and written.name.startswith("local-") and not written.suffix
    records = scan_event_logs(logs)
    assert len(records) == 1, list(logs.rglob("*"))
    record = records[0]
    assert record.app_id.startswith("local-")
    assert record.name == "eventlog-test"
    assert record.tasks == 8 + 2 + 4 + 2
    assert record.failed_tasks == 0
    assert record.spark_jobs == 3
    assert record.success is True
    assert record.deadline_s == 120.0
    assert record.executors == 0  # local mode: only the driver, which is not counted
    assert record.workers >= 1
    assert record.task_seconds > 0
    assert record.end_time > record.submit_time
    assert (record.signature, record.key, record.max_cores) == ("eventlog-sig", "eventlog-sig", 2)
    # The sum, the file read, the shuffle's map and reduce stages: each once, in id order.
    assert [(s.stage_id, s.tasks, s.parents) for s in record.stages] == [
        (0, 8, ()),
        (1, 2, ()),
        (2, 4, ()),
        (3, 2, (2,)),
    ]
    assert all(s.task_seconds >= 0 and s.duration_s > 0 for s in record.stages)
    assert sum(s.task_seconds for s in record.stages) > 0
    # Only the file-reading stage has input: the bytes Hadoop read, which for a file this
    # small is more than its size (each split's reader fills a buffer to the end of the file:
    # 7600 + 3800 here), and for a big one a buffer per split more.
    assert [s.input_bytes > 0 for s in record.stages] == [False, True, False, False]
    assert record.first_stage_input_bytes == record.stages[1].input_bytes
    assert len(INPUT_TEXT) <= record.first_stage_input_bytes <= 2 * len(INPUT_TEXT)
    assert record.input_bytes == record.first_stage_input_bytes  # nothing declared
    # Start-up, the driver between jobs and shutdown: most of a tiny app's time.
    assert 0 < record.serial_s < record.duration_s
