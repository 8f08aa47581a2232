"""Running applications' REST API (``/api/v1``): tasks running and waiting, executor memory.

The master's ``/json/`` does not say where a driver's UI is, so the UI ports Spark hands out
(4040, 4041, ... on the driver's host) are probed and each application id is mapped to the base
URL that serves it. The mapping is cached and probed again only when an unknown id shows up.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from sparkscaler.core import DEADLINE_PROPERTY, job_deadline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppLoad:
    """One application's load, summed over its active stages and live executors."""

    app_id: str
    running_tasks: int = 0
    pending_tasks: int = 0
    backlog_since: float | None = None
    tasks_by_host: dict[str, int] = field(default_factory=dict)
    storage_memory_used: float = 0.0
    execution_memory_peak: float = 0.0
    executor_memory: float = 0.0
    input_bytes: float = 0.0
    deadline_s: float | None = None
    warnings: tuple[str, ...] = ()


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


def tasks_by_host(executors: list[dict[str, Any]]) -> dict[str, int]:
    """Running tasks per executor host: what makes a worker busy. A standalone executor keeps
    its cores for its application's whole life, so the master's "cores used" cannot tell an
    idle worker from a busy one."""
    busy: dict[str, int] = {}
    for ex in executors:
        if ex.get("id") == "driver" or not ex.get("isActive", True):
            continue
        host = str(ex.get("hostPort", "")).rsplit(":", 1)[0]
        busy[host] = busy.get(host, 0) + int(ex.get("activeTasks", 0))
    return busy


def executor_memory(executors: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(storage used, execution peak, unified memory, input bytes) over live non-driver executors.

    Spark's REST API reports storage memory as it is now but execution memory only as the peak
    seen in executor heartbeats, so ``ma`` is a peak: the closest the API gets to the paper's
    "memory used by actions".
    """
    storage = execution = total = input_bytes = 0.0
    for ex in executors:
        if ex.get("id") == "driver" or not ex.get("isActive", True):
            continue
        metrics = ex.get("memoryMetrics") or {}
        storage += metrics.get("usedOnHeapStorageMemory", ex.get("memoryUsed", 0))
        storage += metrics.get("usedOffHeapStorageMemory", 0)
        peak = ex.get("peakMemoryMetrics") or {}
        execution += peak.get("OnHeapExecutionMemory", 0) + peak.get("OffHeapExecutionMemory", 0)
        total += ex.get("maxMemory", 0)
        input_bytes += ex.get("totalInputBytes", 0)
    return storage, execution, total, input_bytes


class AppClient:
    def __init__(
        self,
        host: str,
        ports: list[int],
        timeout_s: float = 2.0,
        reprobe_s: float = 1.0,
    ) -> None:
        self.host = host
        self.ports = ports
        self.timeout_s = timeout_s
        self.reprobe_s = reprobe_s
        self._urls: dict[str, str] = {}
        self._deadlines: dict[str, tuple[float | None, tuple[str, ...]]] = {}
        self._last_probe = float("-inf")
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _get(self, url: str) -> Any:
        response = self._http.get(url)
        response.raise_for_status()
        return response.json()

    def _probe(self) -> None:
        """Ask every candidate UI port, all at once, which applications it serves.

        At once, because a driver that is still starting can take seconds to answer, and a
        new application's backlog is exactly what the autoscaler must not see late.
        """
        self._last_probe = time.monotonic()

        def ask(port: int) -> tuple[str, Any]:
            base = f"http://{self.host}:{port}/api/v1"
            try:
                return base, self._get(f"{base}/applications")
            except (httpx.HTTPError, ValueError):
                return base, []

        found: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=len(self.ports) or 1) as pool:
            for base, apps in pool.map(ask, self.ports):
                for app in apps if isinstance(apps, list) else []:
                    found[app["id"]] = base
        self._urls = found

    def url_of(self, app_id: str) -> str | None:
        if app_id not in self._urls and time.monotonic() - self._last_probe >= self.reprobe_s:
            self._probe()
        return self._urls.get(app_id)

    def _deadline(self, base: str, app_id: str) -> tuple[float | None, tuple[str, ...]]:
        """The app's ``spark.sparkscaler.deadline`` and the warning that it was ignored.

        A malformed value counts as none, so that it cannot hide the app's load; the warning
        rides along with every load of the app (into the decisions' reasons) and is logged once.
        """
        if app_id not in self._deadlines:
            env = self._get(f"{base}/applications/{app_id}/environment")
            properties = dict(env.get("sparkProperties", []))
            value = properties.get(DEADLINE_PROPERTY)
            try:
                self._deadlines[app_id] = (job_deadline(value) if value else None, ())
            except ValueError as error:
                name = properties.get("spark.app.name")
                warning = f"{f'{app_id} ({name})' if name else app_id}: {error}, ignored"
                log.warning("%s", warning)
                self._deadlines[app_id] = (None, (warning,))
        return self._deadlines[app_id]

    def load(self, app_id: str) -> AppLoad | None:
        """The load of one application, or None when its UI cannot be found."""
        base = self.url_of(app_id)
        if base is None:
            return None
        try:
            stages = self._get(f"{base}/applications/{app_id}/stages?status=active")
            executors = self._get(f"{base}/applications/{app_id}/executors")
            deadline, warnings = self._deadline(base, app_id)
        except (httpx.HTTPError, ValueError):
            self._urls.pop(app_id, None)
            return None
        running, pending, since = stage_tasks(stages)
        storage, execution, total, input_bytes = executor_memory(executors)
        return AppLoad(
            app_id,
            running,
            pending,
            since,
            tasks_by_host(executors),
            storage,
            execution,
            total,
            input_bytes,
            deadline,
            warnings,
        )
