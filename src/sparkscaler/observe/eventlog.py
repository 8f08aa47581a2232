"""Turn Spark event logs into ``JobRecord``s: the history that the models learn from.

The event log is the only record of an application that survives it (the master forgets
finished apps, the driver's UI dies with it), and it is written by every Spark deployment, so
reading it needs no agent on the cluster. Spark 4 writes it rolled and zstd-compressed by
default (``eventlog_v2_<appId>/events_<N>_<appId>.zstd``); a single plain or ``.zstd`` file per
application is also read.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import zstandard

from sparkscaler.core import (
    DEADLINE_PROPERTY,
    INPUT_BYTES_PROPERTY,
    JobRecord,
    job_deadline,
    job_input_bytes,
)

_ROLLED_PREFIX = "eventlog_v2_"
_IN_PROGRESS = ".inprogress"
_COMPACTED = ".compact"
_UNSUPPORTED_CODECS = frozenset({".lz4", ".lzf", ".snappy"})
_PART = re.compile(r"events_(\d+)_")
#: ``SparkListenerExecutorAdded`` uses this id for the driver, which runs tasks in local mode.
_DRIVER = "driver"


class EventLogError(Exception):
    """An event log that cannot be read (corrupt, compacted or an unsupported codec).

    Raised rather than skipped: a log that is silently dropped or half-read would bias the
    history the models are trained on.
    """


def parse_event_log(path: Path) -> JobRecord | None:
    """Summarise one application's event log, or return None if the app has not finished.

    ``path`` is a single plain or ``.zstd`` file, or a rolled ``eventlog_v2_*`` directory whose
    parts are read in numeric order. Malformed lines are skipped, because a log being written
    usually ends in half a line; an app counts as finished only once its
    ``SparkListenerApplicationEnd`` is in the log.
    """
    path = Path(path)
    if path.name.endswith(_IN_PROGRESS):
        return None
    default_id = path.name.removeprefix(_ROLLED_PREFIX).split(".")[0]
    return _summarise(read_events(path), path, default_id)


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every event of one application's log (plain, ``.zstd`` or rolled directory), in order."""
    path = Path(path)
    return _events(_rolled_parts(path) if path.is_dir() else [path])


def scan_event_logs(directory: Path) -> list[JobRecord]:
    """Every finished application in ``spark.eventLog.dir``, oldest submission first.

    Apps still running are skipped (they are picked up by a later scan), and so are hidden files
    such as Hadoop's ``.crc`` checksums and directories that are not rolled event logs.
    """
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(
            f"event log directory {directory} does not exist: point it at the "
            "spark.eventLog.dir of the applications (with spark.eventLog.enabled=true)"
        )
    records = []
    for entry in directory.iterdir():
        if entry.name.startswith(".") or (
            entry.is_dir() and not entry.name.startswith(_ROLLED_PREFIX)
        ):
            continue
        record = parse_event_log(entry)
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda r: (r.submit_time, r.app_id))


def _rolled_parts(directory: Path) -> list[Path]:
    """The ``events_<N>_*`` files of a rolled log, in the order Spark wrote them."""
    parts: list[tuple[int, Path]] = []
    for file in directory.iterdir():
        match = _PART.match(file.name)
        if match is None:
            continue
        if file.name.endswith(_COMPACTED):
            raise EventLogError(
                f"{file}: compacted by the history server, which drops finished tasks; "
                "raise spark.history.fs.eventLog.rolling.maxFilesToRetain to keep full logs"
            )
        parts.append((int(match.group(1)), file))
    return [file for _, file in sorted(parts)]


def _events(files: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """The JSON events of ``files`` in order, skipping lines that are not a JSON object."""
    for file in files:
        try:
            with _open_text(file) as lines:
                for line in lines:
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(event, dict):
                        yield event
        except FileNotFoundError:
            raise  # gone while being read (Spark renames parts as it finishes): not a bad log
        except (OSError, zstandard.ZstdError) as exc:
            raise EventLogError(f"cannot read event log {file}: {exc}") from exc


def _open_text(file: Path) -> IO[str]:
    """Open an event log file as text, decompressing by the codec suffix Spark gives it."""
    if file.name.endswith(".zstd"):
        raw = zstandard.ZstdDecompressor().stream_reader(file.open("rb"), read_across_frames=True)
        return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    if file.suffix in _UNSUPPORTED_CODECS:
        raise EventLogError(
            f"{file}: event logs compressed with {file.suffix[1:]} are not supported; "
            "set spark.eventLog.compression.codec=zstd (the Spark 4 default)"
        )
    return file.open(encoding="utf-8", errors="replace")


def _summarise(events: Iterable[dict[str, Any]], path: Path, default_id: str) -> JobRecord | None:
    """Fold the events of one application into a JobRecord (None if it has not finished)."""
    app_id, name = default_id, ""
    submit_ms = end_ms = exit_code = None
    properties: dict[str, Any] = {}
    tasks = failed_tasks = task_ms = input_bytes = spark_jobs = 0
    jobs_succeeded = True
    executors: set[str] = set()
    hosts: set[str] = set()
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerTaskEnd":
            info = event.get("Task Info") or {}
            tasks += 1
            failed_tasks += bool(info.get("Failed") or info.get("Killed"))
            launch, finish = info.get("Launch Time"), info.get("Finish Time")
            if launch and finish:
                task_ms += max(finish - launch, 0)
            metrics = event.get("Task Metrics") or {}
            input_bytes += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
        elif kind == "SparkListenerJobStart":
            spark_jobs += 1
        elif kind == "SparkListenerJobEnd":
            result = (event.get("Job Result") or {}).get("Result")
            jobs_succeeded = jobs_succeeded and result == "JobSucceeded"
        elif kind == "SparkListenerExecutorAdded":
            # Local mode has only the driver's entry: it counts as a worker, not an executor.
            executor_id = str(event.get("Executor ID"))
            if executor_id != _DRIVER:
                executors.add(executor_id)
            host = (event.get("Executor Info") or {}).get("Host")
            if host:
                hosts.add(host)
        elif kind == "SparkListenerEnvironmentUpdate":
            # Spark 4 writes a JSON object; older versions a list of [key, value] pairs.
            properties = dict(event.get("Spark Properties") or {})
        elif kind == "SparkListenerApplicationStart":
            app_id = event.get("App ID") or app_id
            name = event.get("App Name", name)
            submit_ms = event.get("Timestamp")
        elif kind == "SparkListenerApplicationEnd":
            end_ms = event.get("Timestamp")
            exit_code = event.get("ExitCode")
    if submit_ms is None or end_ms is None:
        return None
    return JobRecord(
        app_id=app_id,
        name=name,
        submit_time=submit_ms / 1000,
        end_time=end_ms / 1000,
        tasks=tasks,
        failed_tasks=failed_tasks,
        task_seconds=task_ms / 1000,
        executors=len(executors),
        workers=len(hosts),
        input_bytes=_declared_input(properties) or input_bytes,
        spark_jobs=spark_jobs,
        success=jobs_succeeded and not exit_code,
        deadline_s=_deadline(properties, path),
    )


def _declared_input(properties: dict[str, Any]) -> int | None:
    """The job's whole input as it declared it (``spark.sparkscaler.inputBytes``): the size a
    live observation plans with, so a model learns from the same notion of size. Without it (or
    with one that is not a size) the bytes its tasks read stand in."""
    value = properties.get(INPUT_BYTES_PROPERTY)
    try:
        return int(job_input_bytes(value)) if value else None
    except ValueError:
        return None


def _deadline(properties: dict[str, Any], path: Path) -> float | None:
    """The submitter's deadline in seconds, if it set ``spark.sparkscaler.deadline``."""
    value = properties.get(DEADLINE_PROPERTY)
    if value is None:
        return None
    try:
        return job_deadline(value)
    except ValueError as error:
        raise EventLogError(f"{path}: {error}") from None
