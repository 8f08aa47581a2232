"""EventLogWatcher on event logs written here by hand: each finished app is handed over once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard

from sparkscaler.core import JobRecord
from sparkscaler.observe import eventlog, history
from sparkscaler.observe.history import EventLogWatcher

T0_MS = 1_700_000_000_000


def _events(app_id: str, start_ms: int, *, finished: bool = True) -> list[dict[str, Any]]:
    """One Spark job with one 2 s task that reads 64 bytes on one executor."""
    events: list[dict[str, Any]] = [
        {"Event": "SparkListenerLogStart", "Spark Version": "4.3.0"},
        {
            "Event": "SparkListenerExecutorAdded",
            "Executor ID": "1",
            "Executor Info": {"Host": "10.0.0.1", "Total Cores": 2},
        },
        {
            "Event": "SparkListenerEnvironmentUpdate",
            "Spark Properties": {"spark.sparkscaler.deadline": "90"},
        },
        {
            "Event": "SparkListenerApplicationStart",
            "App Name": f"etl {app_id}",
            "App ID": app_id,
            "Timestamp": start_ms,
        },
        {"Event": "SparkListenerJobStart", "Job ID": 0},
        {
            "Event": "SparkListenerTaskEnd",
            "Stage ID": 0,
            "Task Info": {
                "Launch Time": start_ms + 1_000,
                "Finish Time": start_ms + 3_000,
                "Executor ID": "1",
                "Host": "10.0.0.1",
                "Failed": False,
                "Killed": False,
            },
            "Task Metrics": {"Input Metrics": {"Bytes Read": 64}},
        },
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Job Result": {"Result": "JobSucceeded"}},
    ]
    if finished:
        events.append(
            {"Event": "SparkListenerApplicationEnd", "Timestamp": start_ms + 30_000, "ExitCode": 0}
        )
    return events


def _record(app_id: str, start_ms: int) -> JobRecord:
    return JobRecord(
        app_id=app_id,
        name=f"etl {app_id}",
        submit_time=start_ms / 1000,
        end_time=start_ms / 1000 + 30.0,
        tasks=1,
        failed_tasks=0,
        task_seconds=2.0,
        executors=1,
        workers=1,
        input_bytes=64,
        spark_jobs=1,
        success=True,
        deadline_s=90.0,
        serial_s=28.0,  # 30 s, of which the task ran 2
        first_stage_input_bytes=64,
    )


def _text(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


def _write(path: Path, events: list[dict[str, Any]], mtime: float | None = None) -> Path:
    path.write_text(_text(events))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names the watcher parsed, in order (the real parser still does the work)."""
    calls: list[str] = []
    real = history.parse_event_log

    def spy(path: Path) -> JobRecord | None:
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(history, "parse_event_log", spy)
    return calls


def test_a_finished_log_is_handed_over_once(tmp_path: Path, parses: list[str]) -> None:
    _write(tmp_path / "app-a", _events("app-a", T0_MS))
    _write(tmp_path / "app-b", _events("app-b", T0_MS + 5_000))
    watcher = EventLogWatcher(tmp_path)
    assert watcher.poll() == [_record("app-a", T0_MS), _record("app-b", T0_MS + 5_000)]
    assert parses == ["app-a", "app-b"]

    assert watcher.poll() == []
    # Even a finished log that is touched again is not read again.
    os.utime(tmp_path / "app-a", (1e9, 2e9))
    assert watcher.poll() == []
    assert parses == ["app-a", "app-b"]


def test_an_unfinished_log_is_parsed_again_only_when_it_changes(
    tmp_path: Path, parses: list[str]
) -> None:
    log = _write(tmp_path / "app-r", _events("app-r", T0_MS, finished=False), mtime=1e9)
    watcher = EventLogWatcher(tmp_path)
    assert watcher.poll() == []
    assert watcher.poll() == []
    assert parses == ["app-r"]  # unchanged: not parsed a second time

    # The end is written but the mtime is what the watcher saw: not looked at.
    _write(log, _events("app-r", T0_MS), mtime=1e9)
    assert watcher.poll() == []
    assert parses == ["app-r"]

    os.utime(log, (1e9 + 1, 1e9 + 1))
    assert watcher.poll() == [_record("app-r", T0_MS)]
    assert watcher.poll() == []
    assert parses == ["app-r", "app-r"]


def test_a_rolled_log_is_handed_over_once_its_last_part_ends_it(
    tmp_path: Path, parses: list[str]
) -> None:
    app = "app-rolled"
    rolled = tmp_path / f"eventlog_v2_{app}"
    rolled.mkdir()
    events = _events(app, T0_MS)
    part1 = rolled / f"events_1_{app}.zstd"
    part1.write_bytes(zstandard.ZstdCompressor().compress(_text(events[:5]).encode()))
    os.utime(part1, (1e9, 1e9))
    status = rolled / f"appstatus_{app}.inprogress"
    status.touch()
    os.utime(status, (1e9, 1e9))
    watcher = EventLogWatcher(tmp_path)
    assert watcher.poll() == []
    assert watcher.poll() == []
    assert parses == [rolled.name]

    _write(rolled / f"events_2_{app}", events[5:], mtime=1e9 + 5)
    status.rename(rolled / f"appstatus_{app}")
    assert watcher.poll() == [_record(app, T0_MS)]
    assert watcher.poll() == []
    assert parses == [rolled.name, rolled.name]


def test_in_progress_and_hidden_files_are_not_read(tmp_path: Path, parses: list[str]) -> None:
    # Complete, but Spark has not renamed it yet: not ours to read.
    _write(tmp_path / "app-p.inprogress", _events("app-p", T0_MS))
    _write(tmp_path / ".app-p.crc", _events("app-p", T0_MS))
    watcher = EventLogWatcher(tmp_path)
    assert watcher.poll() == []
    assert parses == []
    (tmp_path / "app-p.inprogress").rename(tmp_path / "app-p")
    assert watcher.poll() == [_record("app-p", T0_MS)]
    assert parses == ["app-p"]


def test_known_app_ids_are_not_handed_over_again(tmp_path: Path) -> None:
    _write(tmp_path / "app-old", _events("app-old", T0_MS))
    _write(tmp_path / "app-new", _events("app-new", T0_MS + 1_000))
    watcher = EventLogWatcher(tmp_path, known_app_ids={"app-old", "app-elsewhere"})
    assert watcher.poll() == [_record("app-new", T0_MS + 1_000)]

    # The same applications again under other names (a copy, a recompressed log).
    _write(tmp_path / "app-new.copy", _events("app-new", T0_MS + 1_000))
    (tmp_path / "app-old.zstd").write_bytes(
        zstandard.ZstdCompressor().compress(_text(_events("app-old", T0_MS)).encode())
    )
    _write(tmp_path / "app-elsewhere", _events("app-elsewhere", T0_MS))
    _write(tmp_path / "app-third", _events("app-third", T0_MS + 2_000))
    assert watcher.poll() == [_record("app-third", T0_MS + 2_000)]
    assert watcher.poll() == []


@pytest.mark.parametrize(
    ("name", "content"),
    [("app-lz.lz4", b"\x04\x22\x4d\x18 lz4 frame"), ("app-z.zstd", b"not zstd at all")],
)
def test_an_unreadable_log_is_warned_about_and_skipped_for_good(
    tmp_path: Path,
    parses: list[str],
    caplog: pytest.LogCaptureFixture,
    name: str,
    content: bytes,
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    _write(tmp_path / "app-ok", _events("app-ok", T0_MS))
    watcher = EventLogWatcher(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sparkscaler.observe.history"):
        # The bad log does not keep the good one from being handed over.
        assert watcher.poll() == [_record("app-ok", T0_MS)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert name in warnings[0].getMessage()
    assert warnings[0].name == "sparkscaler.observe.history"

    caplog.clear()
    os.utime(bad, (2e9, 2e9))  # even a change does not bring it back
    with caplog.at_level(logging.WARNING, logger="sparkscaler.observe.history"):
        assert watcher.poll() == []
        assert watcher.poll() == []
    assert caplog.records == []
    assert parses.count(name) == 1


def test_a_log_that_vanishes_before_it_is_read_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The directory listing still names it, but there is nothing behind the name (yet).
    target = tmp_path / "elsewhere" / "app-v"
    target.parent.mkdir()
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    (events_dir / "app-v").symlink_to(target)
    watcher = EventLogWatcher(events_dir)
    with caplog.at_level(logging.WARNING, logger="sparkscaler.observe.history"):
        assert watcher.poll() == []
        assert watcher.poll() == []
    assert caplog.records == []  # not an unreadable log: nothing to warn about

    _write(target, _events("app-v", T0_MS))
    assert watcher.poll() == [_record("app-v", T0_MS)]


def _vanish_once(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Make the first event file the parser opens vanish just before it is opened (as if it
    were renamed meanwhile); returns the (original, moved) pair so that the test can put it
    back. The parser's own FileNotFoundError then surfaces as an EventLogError caused by it."""
    moved: list[tuple[Path, Path]] = []
    real = eventlog._open_text

    def open_text(file: Path) -> Any:
        if not moved:
            away = file.with_name(f".moving-{file.name}")
            file.rename(away)
            moved.append((file, away))
        return real(file)

    monkeypatch.setattr(eventlog, "_open_text", open_text)
    return moved


@pytest.mark.parametrize("layout", ["file", "rolled"])
def test_a_log_that_vanishes_while_it_is_parsed_is_retried_next_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, layout: str
) -> None:
    if layout == "file":
        entry = _write(tmp_path / "app-m", _events("app-m", T0_MS), mtime=1e9)
    else:
        entry = tmp_path / "eventlog_v2_app-m"
        entry.mkdir()
        events = _events("app-m", T0_MS)
        _write(entry / "events_1_app-m", events[:4], mtime=1e9)
        _write(entry / "events_2_app-m", events[4:], mtime=1e9)
    moved = _vanish_once(monkeypatch)
    watcher = EventLogWatcher(tmp_path)
    with caplog.at_level(logging.WARNING, logger="sparkscaler.observe.history"):
        assert watcher.poll() == []
    assert [m[0].name for m in moved] == ["app-m" if layout == "file" else "events_1_app-m"]
    assert caplog.records == []  # a vanished file is no reason to give the log up

    original, away = moved[0]
    away.rename(original)  # back, with the same mtime
    assert watcher.poll() == [_record("app-m", T0_MS)]
    assert entry.exists()


def test_a_missing_directory_is_no_logs_until_it_appears(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    watcher = EventLogWatcher(directory)
    assert watcher.poll() == []
    directory.mkdir()
    _write(directory / "app-late", _events("app-late", T0_MS))
    assert watcher.poll() == [_record("app-late", T0_MS)]
