"""Runs the real controller, with any policy, against the simulator over a workload.

This is ``sparkscaler simulate`` and the evaluation's continuous suites: the loop that
:func:`sparkscaler.wiring.simulated_loop` builds (the same controller, guard and policy as on a
real cluster), with the simulator behind the ``Backend``, ``Clock`` and ``Observer`` protocols.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparkscaler import units
from sparkscaler.backends.simulated import SimJobHistory, SimulatedBackend
from sparkscaler.config import Config
from sparkscaler.controller import Step
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies.base import Policy
from sparkscaler.sim.arrivals import Arrivals
from sparkscaler.sim.cluster import JobResult
from sparkscaler.sim.workload import (
    JobSource,
    JobSpec,
    ModelJobs,
    SyntheticJobs,
    TpchJobs,
    make_workload,
    tpch_queries,
)
from sparkscaler.store import Store
from sparkscaler.wiring import make_sim, simulated_loop

#: Runs of each signature a learning simulation hands its policy (see
#: :class:`~sparkscaler.backends.simulated.SimJobHistory`): enough for a per-signature runtime
#: model's leave-one-out choice to settle, few enough that refitting on the whole history each
#: time jobs finish stays cheap over a simulated week.
LEARN_RUNS_PER_SIGNATURE = 30

JOB_SPEC_USAGE = "synthetic | tpch:DIR[,sizes=2g+10g] | model:MODEL.json[,sizes=0.5-3]"


def parse_duration(text: str) -> float:
    """'7d', '12h', '90m', '3600s' or '3600' → seconds: the config's durations, with examples
    at the scale of a simulated run."""
    return units.parse_duration(text, forms="90m, 12h, 7d")


def parse_jobs(spec: str) -> JobSource:
    """A job source from the command line's ``--jobs`` (see ``JOB_SPEC_USAGE``)."""
    kind, _, rest = spec.partition(":")
    path, *options = rest.split(",") if rest else [""]
    opts = dict(o.split("=", 1) for o in options if "=" in o)
    if kind == "synthetic" and not rest:
        return SyntheticJobs()
    if kind == "tpch" and path:
        sizes = opts["sizes"].split("+") if "sizes" in opts else None
        present = {size for _, size in tpch_queries(Path(path))}
        missing = sorted(set(sizes or ()) - present)
        if missing:
            raise ValueError(
                f"{path} has no TPC-H profiles of size {', '.join(missing)}; "
                f"it has {', '.join(sorted(present))}"
            )
        return TpchJobs(Path(path), sizes)
    if kind == "model" and path:
        low, _, high = opts.get("sizes", "0.5-3").partition("-")
        return ModelJobs(RuntimeModel.load(Path(path)), (float(low), float(high or low)))
    raise ValueError(f"unknown job source {spec!r}; use {JOB_SPEC_USAGE}")


@dataclass
class SimulationResult:
    policy: str
    duration_s: float
    jobs_arrived: int
    jobs_done: int
    misses: int
    worker_hours: float
    scale_outs: int
    scale_ins: int
    wall_s: float
    lost_task_hours: float
    jobs: list[JobResult] = field(default_factory=list)
    timeline: dict[str, list[float]] = field(default_factory=dict)

    @property
    def miss_pct(self) -> float:
        return 100.0 * self.misses / self.jobs_arrived if self.jobs_arrived else 0.0

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.duration_s / self.wall_s if self.wall_s else float("inf")

    def summary(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "duration_s": self.duration_s,
            "jobs_arrived": self.jobs_arrived,
            "jobs_done": self.jobs_done,
            "misses": self.misses,
            "miss_pct": round(self.miss_pct, 3),
            "worker_hours": round(self.worker_hours, 3),
            "scale_outs": self.scale_outs,
            "scale_ins": self.scale_ins,
            "lost_task_hours": round(self.lost_task_hours, 3),
            "wall_s": round(self.wall_s, 3),
            "sim_seconds_per_wall_second": round(self.speed, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "jobs": [asdict(j) for j in self.jobs],
            "timeline": self.timeline,
        }


def simulate(
    config: Config,
    arrivals: Arrivals,
    jobs: JobSource,
    policy: Policy | None,
    duration_s: float,
    *,
    deadline_factor: float | None = 3.0,
    deadline_s: float | None = None,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Simulate ``duration_s`` seconds with ``policy``, or the config's (built by the wiring);
    ``progress`` is called with the simulated time."""
    seed = config.simulation.seed if seed is None else seed
    workload = make_workload(
        arrivals,
        jobs,
        np.random.default_rng(seed),
        deadline_factor=deadline_factor,
        deadline_s=deadline_s or config.deadline_s,
        slots=config.scaling.max_workers * config.cluster.worker_cores,
    )
    return simulate_workload(config, workload, policy, duration_s, seed=seed, progress=progress)


def simulate_workload(
    config: Config,
    workload: list[JobSpec],
    policy: Policy | None,
    duration_s: float,
    *,
    seed: int | None = None,
    progress: Callable[[float], None] | None = None,
    learn: bool = False,
    runs_per_signature: int | None = LEARN_RUNS_PER_SIGNATURE,
) -> SimulationResult:
    """Run the controller with ``policy`` (None: the config's) over given jobs (arrival times
    and deadlines set). ``learn``: finished jobs flow back to the loop as job records
    (:class:`~sparkscaler.backends.simulated.SimJobHistory`, the first ``runs_per_signature``
    of each signature), and the controller refits the policy on them as on a real cluster."""
    seed = config.simulation.seed if seed is None else seed
    sim = make_sim(config, workload, seed)
    history = SimJobHistory(sim, runs_per_signature) if learn else None
    keys = ("time_s", "workers", "target", "pending", "running")
    timeline: dict[str, list[float]] = {k: [] for k in keys}

    def record(step: Step) -> None:
        timeline["time_s"].append(sim.now)
        timeline["workers"].append(step.observation.workers)
        timeline["target"].append(step.outcome.target)
        timeline["pending"].append(step.observation.pending_tasks)
        timeline["running"].append(step.observation.running_tasks)
        if progress is not None:
            progress(sim.now)

    with Store(Path(":memory:"), worker_detail=False) as store:
        controller = simulated_loop(config, sim, store, policy=policy, history=history)
        backend = controller.backend
        assert isinstance(backend, SimulatedBackend)
        started = time.perf_counter()
        steps = max(1, int(duration_s // config.scaling.interval_s))
        controller.run(iterations=steps, on_step=record)
        sim.run_until(duration_s)
        wall = time.perf_counter() - started

    arrived = sum(1 for j in workload if j.arrival <= duration_s)
    return SimulationResult(
        policy=controller.policy.name,
        duration_s=duration_s,
        jobs_arrived=arrived,
        jobs_done=len(sim.results),
        misses=len(sim.missed_jobs()),
        worker_hours=sim.worker_seconds() / 3600.0,
        scale_outs=backend.scale_outs,
        scale_ins=backend.scale_ins,
        wall_s=wall,
        lost_task_hours=sim.lost_task_seconds / 3600.0,
        jobs=sim.results,
        timeline=timeline,
    )
