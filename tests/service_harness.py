"""A live sparkscaler service for the API tests: a real uvicorn server on 127.0.0.1, a real SQLite
store, the real controller and guard, and the simulator behind them.

The simulator stands in for the cluster because a real one takes minutes to start; the
real-cluster path of the service is covered by the browser test. Simulated time runs at
``SPEEDUP`` times real time, so a test sees a few simulated minutes pass in a second.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sparkscaler.backends.simulated import SimClock, SimObserver, SimulatedBackend
from sparkscaler.config import Config
from sparkscaler.observe.observer import Observer
from sparkscaler.service.app import create_app
from sparkscaler.service.auth import resolve_token
from sparkscaler.service.modes import Mode
from sparkscaler.service.runtime import Runtime
from sparkscaler.service.server import ServiceServer
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage
from sparkscaler.store import Store
from sparkscaler.wiring import build_loop, simulated_context
from tests.conftest import free_port

#: Simulated seconds per wall second: an iteration (5 simulated s) every 20 ms.
SPEEDUP = 250.0


def backlog_job() -> JobSpec:
    """One job that arrives at once with far more 30 s tasks than one core can run for an hour:
    a backlog that every reactive policy wants to scale out for."""
    return JobSpec(0, "backlog", 0.0, (Stage(0, 400, FixedDurations(30.0)),), size_gb=4.0)


def service_config(state_dir: Path, **service: Any) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state_dir),
            "scaling": {
                "min_workers": 1,
                "max_workers": 4,
                "interval_s": 5,
                "scale_out_cooldown_s": 10,
                "scale_in_cooldown_s": 30,
                "scale_in_stabilization_s": 60,
            },
            "policy": {"name": "dra", "params": {"idle_timeout_s": 30}},
            "service": {"port": free_port(), **service},
        }
    )


@dataclass
class Service:
    """A running service and what a test needs to look behind it."""

    url: str
    token: str
    config: Config
    runtime: Runtime
    sim: SimCluster
    backend: SimulatedBackend

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0)

    def cluster_size(self) -> int:
        """Workers the simulator runs or provisions, read between two iterations."""
        with self.runtime.lock:
            return sum(1 for w in self.sim.workers.values() if w.state != "DECOMMISSIONED")

    def actions(self) -> int:
        """How many times anything asked the backend to scale."""
        with self.runtime.lock:
            return self.backend.scale_outs + self.backend.scale_ins

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(0.02)

    def decisions(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self.client() as client:
            response = client.get("/api/decisions", params={"limit": limit})
        response.raise_for_status()
        return response.json()

    def wait_for_decisions(self, count: int) -> list[dict[str, Any]]:
        """Wait until the loop has recorded ``count`` decisions; they come newest first."""
        self.wait_for(lambda: len(self.decisions()) >= count, f"{count} decisions")
        return self.decisions()


@contextlib.contextmanager
def running_service(
    state_dir: Path,
    *,
    mode: Mode = "auto",
    jobs: list[JobSpec] | None = None,
    observer: Callable[[SimCluster], Observer] = SimObserver,
    backend_class: Callable[[SimCluster], SimulatedBackend] = SimulatedBackend,
    config: Config | None = None,
) -> Iterator[Service]:
    """Start the service; stop its server, its loop and its store on the way out, failures
    included."""
    cfg = config or service_config(state_dir)
    sim = SimCluster(
        [backlog_job()] if jobs is None else jobs,
        cores_per_worker=1,
        initial_workers=1,
        provisioning=(8.0, 8.0),
        executor_startup_s=(0.0, 0.0),
        seed=0,
    )
    backend = backend_class(sim)
    token, _ = resolve_token(cfg)
    with Store(cfg.store_path) as store:
        context = simulated_context(cfg)
        controller = build_loop(
            cfg,
            backend=backend,
            observer=observer(sim),
            clock=SimClock(sim),
            store=store,
            context=context,
        )
        runtime = Runtime(controller, context, mode=mode, speedup=SPEEDUP)
        server = ServiceServer(create_app(runtime, token=token), "127.0.0.1", cfg.service.port)
        try:
            with runtime, server:
                yield Service(server.url, token, cfg, runtime, sim, backend)
        finally:
            controller.close()
