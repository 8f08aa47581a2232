"""Running applications' REST API (``/api/v1``): tasks, executor memory, the work done so far.

Where each application's API is, is :mod:`sparkscaler.observe.app_discovery`'s business. Per
application and observation this module reads the active stages (tasks running and waiting),
all executors (where tasks run, memory, input read so far), the stages' work counters and
progress (:mod:`sparkscaler.observe.stage_work`, which says what that costs) and, once, the
environment (the job's signature, declared deadline and input size, ``spark.cores.max``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from sparkscaler.core import (
    DEADLINE_PROPERTY,
    INPUT_BYTES_PROPERTY,
    SIGNATURE_PROPERTY,
    AppInfo,
    JobContext,
    StageProgress,
    job_deadline,
    job_input_bytes,
)
from sparkscaler.observe.app_discovery import AppLocator
from sparkscaler.observe.stage_work import Reader, StageWork, Work

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppLoad:
    """One application's load, summed over its active stages and its executors.

    ``input_bytes`` is the job's whole input as it declared it (``spark.sparkscaler.
    inputBytes``), None when it did not; ``input_read_bytes`` what its executors, live or gone,
    have read so far; ``work`` the work done since the app was first seen. ``signature``,
    ``max_cores`` and ``stages`` (every stage Spark knows of, lowest id first) are what
    :meth:`job` needs besides the master's view of the app.
    """

    app_id: str
    running_tasks: int = 0
    pending_tasks: int = 0
    backlog_since: float | None = None
    tasks_by_host: dict[str, int] = field(default_factory=dict)
    storage_memory_used: float = 0.0
    execution_memory_peak: float = 0.0
    executor_memory: float = 0.0
    input_bytes: float | None = None
    input_read_bytes: float = 0.0
    deadline_s: float | None = None
    warnings: tuple[str, ...] = ()
    work: Work = field(default_factory=Work)
    signature: str = ""
    max_cores: int | None = None
    stages: tuple[StageProgress, ...] = ()

    def job(self, app: AppInfo, now: float, default_deadline_s: float | None) -> JobContext:
        """This application as one running job: the master's name, cores and start time, its
        own deadline (else ``default_deadline_s``) and its size (:func:`job_input`)."""
        size, source = job_input(self.input_bytes, self.stages)
        return JobContext(
            app_id=self.app_id,
            name=app.name,
            signature=self.signature or app.name,
            elapsed_s=max(0.0, now - app.start_time),
            deadline_s=self.deadline_s if self.deadline_s is not None else default_deadline_s,
            input_bytes=size,
            input_source=source,
            stages=self.stages,
            cores=app.cores,
            max_cores=self.max_cores,
        )


def job_input(
    declared: float | None, stages: tuple[StageProgress, ...]
) -> tuple[float | None, Literal["declared", "first stage", "unknown"]]:
    """A running job's whole input and where it comes from: as declared; else its first stage's
    input (the lowest-id stage that has read any, which is what reads the job's input): once
    that stage is complete the bytes it read, while it runs the bytes read so far scaled up by
    its tasks over those done (from the first task done on; a task's input counts once it ends
    or heartbeats, so this leans high early on); else unknown. The event logs' records mean the
    same by size (``JobRecord.input_bytes``), so a model fitted on them takes this size."""
    if declared is not None:
        return declared, "declared"
    first = next((s for s in stages if s.input_bytes > 0), None)
    if first is not None:
        if first.status == "COMPLETE":
            return first.input_bytes, "first stage"
        if first.done >= 1:
            return first.input_bytes * first.tasks / first.done, "first stage"
    return None, "unknown"


def _spark_time(text: str | None) -> float | None:
    """Spark's REST timestamps ('2026-11-21T07:51:04.123GMT') as epoch seconds."""
    if not text:
        return None
    try:
        parsed = dt.datetime.strptime(text.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None
    return parsed.timestamp()


def stage_tasks(stages: list[dict[str, Any]]) -> tuple[int, int, float | None]:
    """(running, pending, backlog since) over active stages.

    Pending = numTasks - active - completed indices: a task whose attempt failed is pending
    again until a retry succeeds (Spark's own allocation manager counts it so), which
    ``numFailedTasks``, a count of failed attempts, would hide. The backlog is as old as the
    oldest stage that still has pending tasks, from Spark's own submission time, so that a 1 s
    backlog timeout does not become one observation interval.
    """
    running = pending = 0
    since: float | None = None
    for stage in stages:
        active = int(stage.get("numActiveTasks", 0))
        done = int(stage.get("numCompletedIndices", stage.get("numCompleteTasks", 0)))
        waiting = max(0, int(stage.get("numTasks", 0)) - active - done)
        running += active
        pending += waiting
        submitted = _spark_time(stage.get("submissionTime"))
        if waiting and submitted is not None:
            since = submitted if since is None else min(since, submitted)
    return running, pending, since


def _live_executors(executors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [ex for ex in executors if ex.get("id") != "driver" and ex.get("isActive", True)]


def tasks_by_host(executors: list[dict[str, Any]]) -> dict[str, int]:
    """Running tasks per executor host: what makes a worker busy. A standalone executor keeps
    its cores for its application's whole life, so the master's "cores used" cannot tell an
    idle worker from a busy one."""
    busy: dict[str, int] = {}
    for ex in _live_executors(executors):
        host = str(ex.get("hostPort", "")).rsplit(":", 1)[0]
        busy[host] = busy.get(host, 0) + int(ex.get("activeTasks", 0))
    return busy


def executor_memory(executors: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(storage used, execution peak, unified memory) over live non-driver executors.

    Spark's REST API reports storage memory as it is now but execution memory only as the peak
    seen in executor heartbeats, so ``ma`` is a peak: the closest the API gets to the paper's
    "memory used by actions". ``maxMemory`` is the executor's unified (storage + execution)
    region, on and off heap.
    """
    storage = execution = total = 0.0
    for ex in _live_executors(executors):
        metrics = ex.get("memoryMetrics") or {}
        storage += metrics.get("usedOnHeapStorageMemory", ex.get("memoryUsed", 0))
        storage += metrics.get("usedOffHeapStorageMemory", 0)
        peak = ex.get("peakMemoryMetrics") or {}
        execution += peak.get("OnHeapExecutionMemory", 0) + peak.get("OffHeapExecutionMemory", 0)
        total += ex.get("maxMemory", 0)
    return storage, execution, total


def input_read(executors: list[dict[str, Any]]) -> float:
    """Input bytes read so far by every executor the app has had (``/allexecutors``), gone ones
    included, so that a decommissioned worker's reading still counts."""
    return float(sum(ex.get("totalInputBytes", 0) for ex in executors if ex.get("id") != "driver"))


@dataclass(frozen=True)
class _Declared:
    deadline_s: float | None
    input_bytes: float | None
    warnings: tuple[str, ...]
    signature: str = ""
    max_cores: int | None = None


def _max_cores(value: str) -> int:
    """``spark.cores.max`` as the master reads it (a whole number of cores above 0)."""
    try:
        cores = int(value)
    except ValueError:
        raise ValueError(f"spark.cores.max={value!r} is not a number of cores") from None
    if cores < 1:
        raise ValueError(f"spark.cores.max={value!r} is not a positive number of cores")
    return cores


class AppClient:
    def __init__(
        self,
        master_ui_url: str,
        probe_host: str,
        probe_ports: list[int],
        timeout_s: float = 2.0,
        reprobe_s: float = 1.0,
    ) -> None:
        self.timeout_s = timeout_s
        self._http = httpx.Client(timeout=timeout_s)
        self.locator = AppLocator(self._http, master_ui_url, probe_host, probe_ports, reprobe_s)
        self._declared: dict[str, _Declared] = {}
        self._work: dict[str, StageWork] = {}

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str, missing_ok: bool = False) -> Any:
        """The JSON at ``url``; with ``missing_ok`` None for Spark's 404 (no such stage)."""
        response = self._http.get(url)
        if missing_ok and response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def retain(self, app_ids: list[str]) -> None:
        """Forget applications that are no longer running."""
        self.locator.retain(app_ids)
        for cache in (self._declared, self._work):
            for key in [k for k in cache if k not in app_ids]:
                del cache[key]

    def _declared_settings(self, base: str, app_id: str) -> _Declared:
        """The app's signature (``spark.sparkscaler.job``, else ``spark.app.name``),
        ``spark.sparkscaler.deadline``, ``spark.sparkscaler.inputBytes`` and
        ``spark.cores.max``: read once, since an application's properties do not change.

        A malformed value counts as none, so that it cannot hide the app's load; the warning
        rides along with every load of the app (into the decisions' reasons) and is logged once.
        """
        if app_id not in self._declared:
            env = self._get(f"{base}/applications/{app_id}/environment")
            properties = dict(env.get("sparkProperties", []))
            name = properties.get("spark.app.name")
            who = f"{app_id} ({name})" if name else app_id
            values: list[float | None] = []
            warnings: list[str] = []
            for key, parse in (
                (DEADLINE_PROPERTY, job_deadline),
                (INPUT_BYTES_PROPERTY, job_input_bytes),
                ("spark.cores.max", _max_cores),
            ):
                value = properties.get(key)
                try:
                    values.append(parse(value) if value else None)
                except ValueError as error:
                    warning = f"{who}: {error}, ignored"
                    log.warning("%s", warning)
                    warnings.append(warning)
                    values.append(None)
            cores = values[2]
            self._declared[app_id] = _Declared(
                values[0],
                values[1],
                tuple(warnings),
                str(properties.get(SIGNATURE_PROPERTY) or name or ""),
                None if cores is None else int(cores),
            )
        return self._declared[app_id]

    def _reader(self, base: str, app_id: str) -> Reader:
        return lambda path: self._get(f"{base}/applications/{app_id}/{path}", missing_ok=True)

    def load(self, app_id: str) -> AppLoad | None:
        """The load of one application, or None when its REST API cannot be found or read."""
        base = self.locator.base(app_id)
        if base is None:
            return None
        try:
            stages = self._get(f"{base}/applications/{app_id}/stages?status=active")
            executors = self._get(f"{base}/applications/{app_id}/allexecutors")
            declared = self._declared_settings(base, app_id)
            tracker = self._work.setdefault(app_id, StageWork())
            work = tracker.update(self._reader(base, app_id), stages)
        except (httpx.HTTPError, ValueError, TypeError, AttributeError, KeyError):
            self.locator.forget(app_id)
            return None
        running, pending, since = stage_tasks(stages)
        storage, execution, total = executor_memory(executors)
        return AppLoad(
            app_id,
            running,
            pending,
            since,
            tasks_by_host(executors),
            storage,
            execution,
            total,
            declared.input_bytes,
            input_read(executors),
            declared.deadline_s,
            declared.warnings,
            work,
            declared.signature,
            declared.max_cores,
            tracker.stages(),
        )
