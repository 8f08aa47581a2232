"""Runs the real controller, with any policy, against the simulator over a workload.

This is ``sparkscaler simulate`` and the evaluation's continuous suites: the loop that
:func:`sparkscaler.wiring.simulated_loop` builds (the same controller, guard and policy as on a
real cluster), with the simulator behind the ``Backend``, ``Clock`` and ``Observer`` protocols.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sparkscaler import units
from sparkscaler.backends.simulated import SimJobHistory, SimulatedBackend
from sparkscaler.config import Config
from sparkscaler.controller import Controller, Step
from sparkscaler.core import JobRecord
from sparkscaler.errors import SparkscalerError
from sparkscaler.models.runtime_model import RuntimeModel, fit_runs, runs_from_jobs
from sparkscaler.policies.base import Policy
from sparkscaler.sim.arrivals import Arrivals
from sparkscaler.sim.cluster import LOCAL_EXECUTOR_STARTUP_S, JobResult
from sparkscaler.sim.workload import (
    JobSource,
    JobSpec,
    ModelJobs,
    SignatureJobs,
    SyntheticJobs,
    TpchJobs,
    fit_signature,
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
#: At most one refit per this many simulated seconds in a learning simulation: a policy's fit
#: can cost a second (a forecaster's forest), and a simulated day finishes a job a minute.
LEARN_EVERY_S = 600.0

JOB_SPEC_USAGE = (
    "synthetic | tpch:DIR[,sizes=2g+10g] | model:MODEL.json[,sizes=0.5-3] | "
    "recorded[:RUNS][,sizes=0.1-2]"
)


class PolicyFailedError(SparkscalerError, RuntimeError):
    """The policy raised during a simulated run: the loop held the size instead, as a live
    loop does, so the run measured the hold, not the policy."""


def require_policy_ran(controller: Controller, steps: int) -> None:
    """PolicyFailedError when the policy of ``controller`` raised on any of its ``steps``.

    Why here and not in the loop: a live autoscaler must outlive a policy bug (it holds and
    logs), but a simulated run that held on the policy's behalf would report a hold's misses
    and worker-hours under the policy's name. That happened once: a benchmark that lazily
    imported a policy whose code changed under it reported the DQN "staying at 1 worker"."""
    if controller.policy_failures:
        raise PolicyFailedError(
            f"policy {controller.policy.name} raised on {controller.policy_failures} of "
            f"{steps} simulated steps (the first: {controller.first_policy_failure}); the loop "
            "held the size instead, so the run is not a measurement of the policy"
        )


def load_recorded(path: Path | None = None) -> list[JobRecord]:
    """Recorded runs of real jobs, as job records: the package's recordings of the four PySpark
    jobs (:func:`sparkscaler.models.recorded_runs.load_recorded_runs`) by default, else those
    of ``path``: a sparkscaler store (``.db``), a directory of Spark event logs, or a JSON-lines
    file of recorded runs."""
    if path is None or path.suffix == ".jsonl":
        from sparkscaler.models.recorded_runs import load_recorded_runs

        runs = load_recorded_runs() if path is None else load_recorded_runs(path)
        return [run.record for run in runs]
    if path.is_dir():
        from sparkscaler.observe.eventlog import scan_event_logs

        return scan_event_logs(path)
    if not path.is_file():
        raise FileNotFoundError(f"recorded runs {path} not found (.jsonl, .db or event logs)")
    with Store(path) as store:
        return store.jobs()


def signature_jobs(
    records: Sequence[JobRecord],
    *,
    cores_per_worker: int = 1,
    executor_startup_s: float = sum(LOCAL_EXECUTOR_STARTUP_S) / 2,
    sizes_gb: tuple[float, float] | None = None,
) -> SignatureJobs:
    """Jobs of every signature among ``records`` (their runs of real jobs), each drawn from its
    own profile (:func:`~sparkscaler.sim.workload.fit_signature`) with its own Ernest model of
    whole run times beside it (where it has two runs or more), and the records as the history
    to start from. ``cores_per_worker``: the recording cluster's; ``executor_startup_s``: what
    the simulator will add to each run (its profile's driver phase is that much shorter)."""
    by_key: dict[str, list[JobRecord]] = {}
    for r in records:
        if r.success and r.stages and r.input_bytes > 0:
            by_key.setdefault(r.key, []).append(r)
    if not by_key:
        raise ValueError("no successful recorded run with stages and a size")
    profiles = []
    for key in sorted(by_key):
        runs = by_key[key]
        usable = runs_from_jobs(runs)
        model = fit_runs(usable, source=f"recorded runs of {key}") if len(usable) >= 2 else None
        profiles.append(fit_signature(runs, cores_per_worker, model))
    kept = tuple(r for key in sorted(by_key) for r in by_key[key])
    return SignatureJobs(profiles, None, sizes_gb, executor_startup_s, kept)


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
    if kind == "recorded":
        sizes = None
        if "sizes" in opts:
            low, _, high = opts["sizes"].partition("-")
            sizes = (float(low), float(high or low))
        return signature_jobs(load_recorded(Path(path) if path else None), sizes_gb=sizes)
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
    learn: bool | None = None,
) -> SimulationResult:
    """Simulate ``duration_s`` seconds with ``policy``, or the config's (built by the wiring);
    ``progress`` is called with the simulated time. ``learn`` (None: for jobs of recorded
    signatures): the policy learns from finished jobs as on a real cluster; with jobs of recorded
    signatures it starts from their recorded runs, as a cluster that has run them would
    (:func:`simulate_workload`)."""
    seed = config.simulation.seed if seed is None else seed
    workload = make_workload(
        arrivals,
        jobs,
        np.random.default_rng(seed),
        deadline_factor=deadline_factor,
        deadline_s=deadline_s or config.deadline_s,
        slots=config.scaling.max_workers * config.cluster.worker_cores,
    )
    recorded = isinstance(jobs, SignatureJobs)
    return simulate_workload(
        config,
        workload,
        policy,
        duration_s,
        seed=seed,
        progress=progress,
        learn=recorded if learn is None else learn,
        history=jobs.history if recorded else (),
    )


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
    learn_every_s: float = LEARN_EVERY_S,
    history: Sequence[JobRecord] = (),
) -> SimulationResult:
    """Run the controller with ``policy`` (None: the config's) over given jobs (arrival times
    and deadlines set). ``learn``: finished jobs flow back to the loop as job records
    (:class:`~sparkscaler.backends.simulated.SimJobHistory`, the first ``runs_per_signature``
    of each signature, at most once per ``learn_every_s``), and the controller refits the
    policy on them as on a real cluster.
    ``history``: finished jobs the store holds from the start (and the policy is fitted on),
    as a cluster's store holds the runs before the simulated span."""
    seed = config.simulation.seed if seed is None else seed
    sim = make_sim(config, workload, seed)
    finished = SimJobHistory(sim, runs_per_signature, learn_every_s) if learn else None
    prior = list(history)
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
        if prior:
            store.add_jobs(prior)
            if policy is not None:
                policy.fit(store.jobs())
        controller = simulated_loop(config, sim, store, policy=policy, history=finished)
        backend = controller.backend
        assert isinstance(backend, SimulatedBackend)
        started = time.perf_counter()
        steps = max(1, int(duration_s // config.scaling.interval_s))
        controller.run(iterations=steps, on_step=record)
        sim.run_until(duration_s)
        wall = time.perf_counter() - started
        require_policy_ran(controller, steps)

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
