"""Client for the standalone master's JSON endpoint (``/json/``) and its decommission endpoint."""

from __future__ import annotations

from typing import Any

import httpx

from sparkscaler.core import AppInfo, ClusterState, WorkerInfo


class MasterUnavailable(ConnectionError):
    """The master did not answer, or answered with something that is not its JSON."""


class MasterClient:
    def __init__(self, ui_url: str, timeout_s: float = 2.0) -> None:
        self.ui_url = ui_url.rstrip("/")
        self.timeout_s = timeout_s
        # One pooled client: a new one per request costs ~60 ms (it builds an SSL context).
        self._http = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def fetch(self) -> dict[str, Any]:
        try:
            response = self._http.get(f"{self.ui_url}/json/")
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise MasterUnavailable(
                f"Spark master at {self.ui_url} did not answer: {error}"
            ) from error
        if not isinstance(data, dict) or "workers" not in data:
            raise MasterUnavailable(f"{self.ui_url}/json/ is not a Spark master's status page")
        return data

    def decommission_host(self, host: str) -> None:
        """Ask the master to decommission the worker(s) on ``host`` (Spark's own mechanism).

        The master only accepts this from an allowed address: the local backend sets
        ``spark.master.ui.decommission.allow.mode=LOCAL`` and calls from this machine.
        """
        try:
            response = self._http.post(f"{self.ui_url}/workers/kill/", params={"host": host})
        except httpx.HTTPError as error:
            raise MasterUnavailable(
                f"cannot reach the master to decommission {host}: {error}"
            ) from error
        if response.status_code == 404:
            raise MasterUnavailable(f"the master has no worker on {host} to decommission")
        if response.status_code == 405:
            raise MasterUnavailable(
                f"the master does not allow decommissioning {host} from here: set "
                "spark.master.ui.decommission.allow.mode (LOCAL for this machine) on the master"
            )
        if response.status_code >= 400:
            raise MasterUnavailable(
                f"the master failed to decommission {host} (HTTP {response.status_code})"
            )

    @staticmethod
    def worker_info(
        raw: dict[str, Any], idle_s: float = 0.0, running_tasks: int | None = None
    ) -> WorkerInfo:
        return WorkerInfo(
            id=raw["id"],
            host=raw["host"],
            port=int(raw.get("port", 0)),
            state=raw.get("state", "UNKNOWN"),
            cores=int(raw.get("cores", 0)),
            cores_used=int(raw.get("coresused", 0)),
            memory_mb=int(raw.get("memory", 0)),
            memory_used_mb=int(raw.get("memoryused", 0)),
            idle_s=idle_s,
            running_tasks=running_tasks,
        )

    @staticmethod
    def cluster_state(
        data: dict[str, Any],
        idle_s: dict[str, float] | None = None,
        tasks_by_host: dict[str, int] | None = None,
    ) -> ClusterState:
        """Turn ``/json/`` into a :class:`ClusterState`; DEAD workers are left out.

        ``tasks_by_host``, when the applications' executors were read, gives each worker's
        running tasks (0 for a worker with no executor).
        """
        idle_s = idle_s or {}
        workers = tuple(
            MasterClient.worker_info(
                w,
                idle_s.get(w["id"], 0.0),
                None if tasks_by_host is None else tasks_by_host.get(w["host"], 0),
            )
            for w in data.get("workers", [])
            if w.get("state") != "DEAD"
        )
        apps = tuple(
            AppInfo(
                id=a["id"],
                name=a.get("name", ""),
                cores=int(a.get("cores", 0)),
                start_time=float(a.get("starttime", 0)) / 1000.0,
                state=a.get("state", "RUNNING"),
            )
            for a in data.get("activeapps", [])
        )
        waiting_drivers = sum(
            1
            for d in data.get("activedrivers", [])
            if d.get("state") in ("SUBMITTED", "RELAUNCHING")
        )
        return ClusterState(
            workers=workers,
            active_apps=apps,
            waiting_apps=sum(1 for a in apps if a.state == "WAITING"),
            waiting_drivers=waiting_drivers,
        )
