"""Turn Spark event logs into ``JobRecord``s: the history that the models learn from.

The event log is the only record of an application that survives it (the master forgets
finished apps, the driver's UI dies with it), and it is written by every Spark deployment, so
reading it needs no agent on the cluster. Spark 4 writes it rolled and zstd-compressed by
default (``eventlog_v2_<appId>/events_<N>_<appId>.zstd``); a single plain or ``.zstd`` file per
application is also read.

Besides the totals, a record keeps what a recurring job's history needs: its signature
(``spark.sparkscaler.job``), every submitted stage (tasks, task run time, input, parents), the
time no task ran (``serial_s``, what more workers cannot shorten), its ``spark.cores.max``,
and its size: declared, else the input its first stage read, as the live observation takes it.
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
    SIGNATURE_PROPERTY,
    JobRecord,
    StageSummary,
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
    tasks = failed_tasks = task_ms = spark_jobs = 0
    jobs_succeeded = True
    executors: set[str] = set()
    hosts: set[str] = set()
    busy: list[tuple[int, int]] = []
    stages = _Stages()
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerTaskEnd":
            info = event.get("Task Info") or {}
            tasks += 1
            failed_tasks += bool(info.get("Failed") or info.get("Killed"))
            launch, finish = info.get("Launch Time"), info.get("Finish Time")
            if launch and finish:
                task_ms += max(finish - launch, 0)
                busy.append((launch, finish))
            stages.task_end(event)
        elif kind == "SparkListenerStageCompleted":
            stages.completed(event.get("Stage Info") or {})
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
    first_input = stages.first_input()
    declared = _declared_input(properties)
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
        input_bytes=first_input if declared is None else declared,
        spark_jobs=spark_jobs,
        success=jobs_succeeded and not exit_code,
        deadline_s=_deadline(properties, path),
        signature=str(properties.get(SIGNATURE_PROPERTY) or ""),
        stages=stages.summaries(),
        serial_s=_idle_ms(submit_ms, end_ms, busy) / 1000,
        max_cores=_max_cores(properties),
        first_stage_input_bytes=first_input,
    )


class _Stages:
    """The stages of one application as its events tell them: every attempt that was submitted
    ends in a ``SparkListenerStageCompleted`` (failed ones too); tasks end, by stage id, in
    ``SparkListenerTaskEnd``. A stage that was never submitted (skipped: its output was there
    already) has neither."""

    def __init__(self) -> None:
        self.run_ms: dict[int, int] = {}
        self.read: dict[int, int] = {}
        self.info: dict[int, list[dict[str, Any]]] = {}

    def task_end(self, event: dict[str, Any]) -> None:
        sid = event.get("Stage ID")
        metrics = event.get("Task Metrics") or {}
        if sid is None or not metrics:
            return
        self.run_ms[sid] = self.run_ms.get(sid, 0) + int(metrics.get("Executor Run Time") or 0)
        read = (metrics.get("Input Metrics") or {}).get("Bytes Read") or 0
        self.read[sid] = self.read.get(sid, 0) + int(read)

    def completed(self, info: dict[str, Any]) -> None:
        sid = info.get("Stage ID")
        if sid is not None:
            self.info.setdefault(int(sid), []).append(info)

    def first_input(self) -> int:
        """The input read by the lowest-id stage that read any: the job's input, since the
        stages after it read what earlier stages wrote (shuffle, cache) rather than input."""
        return next((self.read[sid] for sid in sorted(self.read) if self.read[sid] > 0), 0)

    def summaries(self) -> tuple[StageSummary, ...]:
        """One summary per submitted stage, lowest id first. A retried stage counts once: its
        first attempt's tasks (a retry runs only the partitions still missing), the task time
        and input of all its attempts, and the time its attempts ran."""
        out = []
        for sid in sorted(self.info):
            attempts = self.info[sid]
            ran_ms = 0
            for info in attempts:
                submitted, completed = info.get("Submission Time"), info.get("Completion Time")
                if submitted and completed:
                    ran_ms += max(0, completed - submitted)
            out.append(
                StageSummary(
                    stage_id=sid,
                    tasks=max(int(info.get("Number of Tasks") or 0) for info in attempts),
                    task_seconds=self.run_ms.get(sid, 0) / 1000,
                    input_bytes=float(self.read.get(sid, 0)),
                    duration_s=ran_ms / 1000,
                    parents=tuple(
                        sorted({int(p) for info in attempts for p in info.get("Parent IDs") or ()})
                    ),
                )
            )
        return tuple(out)


def _idle_ms(start_ms: int, end_ms: int, busy: list[tuple[int, int]]) -> int:
    """The application's time (``start_ms`` to ``end_ms``) in which none of its tasks ran: its
    time minus the union of its tasks' [launch, finish] intervals."""
    covered, reach = 0, start_ms
    for launch, finish in sorted(busy):
        launch, finish = max(launch, reach), min(finish, end_ms)
        if finish > launch:
            covered += finish - launch
            reach = finish
    return max(0, end_ms - start_ms - covered)


def _max_cores(properties: dict[str, Any]) -> int | None:
    """The application's ``spark.cores.max`` (None: unset, or not a number of cores)."""
    try:
        cores = int(properties.get("spark.cores.max") or 0)
    except ValueError:
        return None
    return cores if cores > 0 else None


def _declared_input(properties: dict[str, Any]) -> int | None:
    """The job's whole input as it declared it (``spark.sparkscaler.inputBytes``): the size a
    live observation plans with, so a model learns from the same notion of size. Without it (or
    with one that is not a size) the input its first stage read stands in, as it does live
    (``observe.spark_app.job_input``): a job that reads its input again later, or a cached
    table many times, has one size however often it reads it."""
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
