"""The ``trace`` and ``replay`` suites: continuous arrivals, each job with a deadline.

A *case* is one stream of jobs over a span of simulated time. Every policy runs it through the
real controller and guard, from the same seed, so each sees the same jobs at the same times:

- ``trace`` cases take their arrivals from a real trace (a demand series in any layout that
  :mod:`~sparkscaler.sim.traces` reads, or Alibaba's batch tasks) or a daily/weekly shape, and
  their jobs from the calibrated runtime model (:class:`~sparkscaler.sim.workload.ModelJobs`),
  from the recorded real jobs (``jobs="recorded"``: several signatures, each with its own
  profile and runtime model, :class:`~sparkscaler.sim.workload.SignatureJobs`) or from TPC-H
  profiles; ``bursty`` is a generated shape no policy was tuned on
  (:func:`~sparkscaler.sim.arrivals.bursty_growth`: evening peaks, bursts, growth over the
  week). The arrival rate is set so that the offered work is ``utilization`` of N workers.
  A job's deadline is ``deadline_factor`` times its run time alone on N workers.
- the ``replay`` case takes its jobs from the user's history (the store's job records, or a
  directory of Spark event logs): each finished application becomes a job that arrives when it
  was submitted, with its signature, its stages (each task its stage's mean task time) and
  its serial part as the driver time (a record without stages: one stage of all its tasks,
  the rest of its run time the driver's), and with its own deadline
  (``spark.sparkscaler.deadline``), else the config's ``deadline_s``, else
  ``deadline_factor`` times the run time it had.

Learned policies start from what they would have had: the forecaster (``predictive``, and
``hybrid``'s floor) is fitted on the busy slots of the *preceding* period of the same trace,
served by a static cluster of N, when the trace has one (the NASA trace's previous week; another
week of the synthetic shapes; none for the 17-hour Alibaba trace, the 8-day Alibaba 2018
machine-usage series, a demand trace shorter than two periods, or a replay, where it starts
cold and falls back to its reactive rule); the planners
get the calibration's runtime model; the DQNs are trained beforehand in the env with the case's
N, arrival rate and deadlines. With recorded jobs and in a replay, the policies learn as on a
real cluster (:func:`learns`): the store holds the recorded runs from the start (a replay: no
runs), and the controller refits the policy whenever simulated jobs finish (the first
:data:`~sparkscaler.evaluation.simulation.LEARN_RUNS_PER_SIGNATURE` of each signature).
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparkscaler.config import Config
from sparkscaler.core import JobRecord
from sparkscaler.evaluation.lineup import ONLINE_SUFFIX, ORACLE, Calibration, policy_settings
from sparkscaler.evaluation.oracle import run_oracle
from sparkscaler.evaluation.paper_grid import POLICY_KEYS as GRID_KEYS
from sparkscaler.evaluation.simulation import load_recorded, signature_jobs, simulate_workload
from sparkscaler.policies.hybrid import HybridPolicy
from sparkscaler.policies.predictive import PredictivePolicy
from sparkscaler.rl.env import EnvConfig
from sparkscaler.sim.arrivals import (
    Arrivals,
    bursty_growth,
    daily_weekly,
    from_alibaba_batch,
    from_demand,
)
from sparkscaler.sim.cluster import JobResult
from sparkscaler.sim.traces import DemandTrace, read_demand
from sparkscaler.sim.workload import (
    FixedDurations,
    JobSource,
    JobSpec,
    ModelJobs,
    SignatureJobs,
    Stage,
    TpchJobs,
    job_from_record,
    make_workload,
    wave_estimate,
)
from sparkscaler.wiring import simulated_context

DAY_S = 86_400.0
#: The paper-grid's policies but the online DQNs, which learn across rounds of a single job.
POLICY_KEYS = tuple(k for k in GRID_KEYS if not k.endswith(ONLINE_SUFFIX))
#: Continuous cases decide every 30 s: a week at the controller's 5 s is six times the steps
#: for every policy, and a trace's jobs last minutes.
TRACE_INTERVAL_S = 30.0
#: Points kept of each policy's workers-over-time curve for the report.
TIMELINE_POINTS = 600


@dataclass(frozen=True)
class Case:
    """One stream of jobs to run every policy over."""

    name: str
    kind: str  # "daily" | "bursty" | "csv" | "alibaba" | "replay"
    duration_s: float
    max_workers: int
    path: str | None = None
    #: Offered work as a share of N workers: 0.3 keeps a static cluster of N at about 1 % misses
    #: (bursts at the daily peak), so that most misses are a policy's own.
    utilization: float = 0.3
    #: T = this factor times the job's run time alone on N workers.
    deadline_factor: float = 5.0
    #: "model" (the calibration's), "recorded" (the recorded real jobs, several signatures:
    #: :func:`~sparkscaler.evaluation.simulation.signature_jobs`) or a TPC-H directory.
    jobs: str = "model"
    #: A demand trace's column and step (s), as :func:`~sparkscaler.sim.traces.read_demand` takes.
    column: str | None = None
    step_s: float | None = None


def _job_source(case: Case, calibration: Calibration, sizes: tuple[float, float]) -> JobSource:
    if case.jobs == "model":
        return ModelJobs(calibration.runtime_model, sizes)
    if case.jobs == "recorded":
        return recorded_jobs()
    return TpchJobs(Path(case.jobs))


@functools.cache
def recorded_jobs() -> SignatureJobs:
    """The recorded real jobs (each signature at its recorded sizes), fitted once a process."""
    return signature_jobs(load_recorded())


def learns(case: Case) -> bool:
    """Whether the policies of a case learn from its finished jobs as they would on a real
    cluster: with jobs of several signatures (recorded jobs, a replayed history), where what a
    policy learns of each recurring job is what is evaluated."""
    return case.jobs == "recorded" or case.kind == "replay"


def jobs_per_hour(source: JobSource, case: Case, cores: int, seed: int) -> float:
    """The arrival rate at which the offered work is ``utilization`` of N workers."""
    rng = np.random.default_rng([seed, 7])
    work = np.mean([wave_estimate(source.sample(rng), cores) for _ in range(200)])
    return case.utilization * case.max_workers * 3600.0 / float(work)


def demand_periods(trace: DemandTrace, duration_s: float) -> int:
    """2 when the trace holds a period before the evaluated one, else 1.

    The evaluated period starts on the first step at or after one period in: later than that
    when a period is not a whole number of steps.
    """
    second = math.ceil(duration_s / trace.step_s - 1e-9) * trace.step_s
    return 2 if trace.span_s - second >= duration_s else 1


def _thin(
    arrivals: Arrivals, rate_per_hour: float, span_s: float, rng: np.random.Generator
) -> Arrivals:
    """Keep each arrival with the probability that brings the mean rate to ``rate_per_hour``."""
    keep = min(1.0, rate_per_hour * span_s / 3600.0 / max(1, len(arrivals)))
    mask = rng.random(len(arrivals)) < keep
    return Arrivals(arrivals.times[mask], arrivals.weights[mask])


def _arrivals(case: Case, rate: float, seed: int, period: int) -> Arrivals | None:
    """Arrivals of the case's evaluated period (``period`` 0), or of the one before it (-1),
    None when the trace has no such period."""
    rng = np.random.default_rng([seed, 11, period + 1])
    if case.kind == "daily":
        return daily_weekly(rate, case.duration_s, rng)
    if case.kind == "bursty":
        return bursty_growth(rate, case.duration_s, rng)
    assert case.path is not None
    path = Path(case.path)
    if case.kind == "csv":
        trace = read_demand(path, case.column, case.step_s)
        periods = demand_periods(trace, case.duration_s)
        if period + periods < 1:
            return None
        # With two periods, the evaluated one is the second (the first warms the forecaster up).
        offset = pd.Timedelta(seconds=case.duration_s * (period + periods - 1))
        index = trace.demand.index
        start = index[index.searchsorted(index[0] + offset)]
        return from_demand(
            trace,
            case.duration_s,
            rng,
            jobs_per_hour=rate,
            start=start.isoformat(),
            source=str(path),
        )
    if case.kind == "alibaba":
        if period < 0:
            return None
        raw = from_alibaba_batch(path, None)
        span = float(raw.times.max()) if len(raw) else 1.0
        stretched = from_alibaba_batch(path, case.duration_s, time_scale=span / case.duration_s)
        return _thin(stretched, rate, case.duration_s, rng)
    raise ValueError(f"unknown trace kind {case.kind!r}")


def replay_jobs(
    records: Sequence[JobRecord], config: Config, deadline_factor: float
) -> list[JobSpec]:
    """The user's finished applications as jobs (see the module's docstring)."""
    done = sorted((r for r in records if r.success and r.tasks > 0), key=lambda r: r.submit_time)
    if not done:
        raise ValueError("the history holds no finished application with tasks to replay")
    t0 = done[0].submit_time
    cores = config.cluster.worker_cores
    startup = sum(config.simulation.executor_startup_s) / 2
    jobs = []
    for i, r in enumerate(done):
        deadline = r.deadline_s or config.deadline_s or deadline_factor * r.duration_s
        if r.stages:
            jobs.append(job_from_record(r, startup).with_arrival(i, r.submit_time - t0, deadline))
            continue
        task_s = r.task_seconds / r.tasks
        slots = max(1, r.executors) * cores
        driver = max(0.0, r.duration_s - math.ceil(r.tasks / slots) * task_s)
        stage = Stage(0, r.tasks, FixedDurations(task_s))
        jobs.append(
            JobSpec(
                i,
                r.name or r.app_id,
                r.submit_time - t0,
                (stage,),
                r.input_bytes / 1e9,
                deadline,
                driver,
                signature=r.signature,
            )
        )
    return jobs


def load_history(path: Path) -> list[JobRecord]:
    """Job records from a sparkscaler store (``.db``) or a directory of Spark event logs."""
    from sparkscaler.observe.eventlog import scan_event_logs
    from sparkscaler.store import Store

    path = Path(path)
    if path.is_dir():
        return scan_event_logs(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"history {path} not found (a sparkscaler .db or an event-log directory)"
        )
    with Store(path) as store:
        return store.jobs()


@dataclass(frozen=True)
class CaseData:
    """A case made concrete: its jobs, and the jobs of the period before it (or none)."""

    case: Case
    workload: tuple[JobSpec, ...]
    previous: tuple[JobSpec, ...] | None
    rate_per_hour: float
    #: Finished jobs the cluster's store holds before the case begins (the recorded runs of
    #: recorded jobs): what the policies start from.
    history: tuple[JobRecord, ...] = ()


def build_case(
    case: Case,
    config: Config,
    calibration: Calibration,
    sizes: tuple[float, float],
    seed: int,
    history: Sequence[JobRecord] = (),
) -> CaseData:
    cores = config.cluster.worker_cores
    if case.kind == "replay":
        jobs = replay_jobs(history, config, case.deadline_factor)
        span = max(j.arrival for j in jobs) or 1.0
        return CaseData(case, tuple(jobs), None, 3600.0 * len(jobs) / span)
    source = _job_source(case, calibration, sizes)
    rate = jobs_per_hour(source, case, cores, seed)
    slots = case.max_workers * cores

    def workload(period: int) -> tuple[JobSpec, ...] | None:
        arrivals = _arrivals(case, rate, seed, period)
        if arrivals is None:
            return None
        rng = np.random.default_rng([seed, 13, period + 1])
        return tuple(
            make_workload(arrivals, source, rng, deadline_factor=case.deadline_factor, slots=slots)
        )

    current = workload(0)
    assert current is not None
    prior = tuple(source.history) if isinstance(source, SignatureJobs) else ()
    return CaseData(case, current, workload(-1), rate, prior)


def case_config(config: Config, case: Case) -> Config:
    scaling = config.scaling.model_copy(
        update={"max_workers": case.max_workers, "interval_s": TRACE_INTERVAL_S}
    )
    return config.model_copy(update={"scaling": scaling})


def env_config(
    config: Config,
    data: CaseData,
    variant: str,
    calibration: Calibration,
    sizes: tuple[float, float],
) -> EnvConfig:
    """The env a DQN for this case is trained in: its N, arrival rate, jobs and deadlines."""
    from sparkscaler.rl.training import variant_config

    case = data.case
    source: JobSource = (
        _Replayed(data.workload) if case.kind == "replay" else _job_source(case, calibration, sizes)
    )
    env = EnvConfig.from_config(
        case_config(config, case),
        min_workers=min(config.scaling.min_workers, 1),
        arrival_rate_per_hour=data.rate_per_hour,
        max_episode_s=6 * 3600.0,
        deadline_factor=case.deadline_factor,
        jobs=source,
    )
    return variant_config(env, variant)


class _Replayed:
    """Draws jobs from a replayed history (for the DQN's training env)."""

    def __init__(self, jobs: Sequence[JobSpec]) -> None:
        self.jobs = list(jobs)

    def sample(self, rng: np.random.Generator) -> JobSpec:
        return self.jobs[int(rng.integers(len(self.jobs)))]


def _warm_up(policy: Any, config: Config, data: CaseData, seed: int) -> None:
    """Fit the forecaster on the busy slots of the period before, served by a static N (the
    series it learns live: :mod:`~sparkscaler.policies.predictive`)."""
    forecaster = policy.predictive_ if isinstance(policy, HybridPolicy) else policy
    if not isinstance(forecaster, PredictivePolicy) or data.previous is None:
        return
    static = simulated_context(config).build("static", {})
    before = simulate_workload(config, list(data.previous), static, data.case.duration_s, seed=seed)
    line = before.timeline
    start = 1_767_571_200.0 - data.case.duration_s  # the period ends where the evaluated begins
    times = start + np.asarray(line["time_s"])
    forecaster.fit_series(times, np.asarray(line["running"], dtype=float))


def _slowdowns(results: Sequence[JobResult], data: CaseData, cores: int, end: float) -> list[float]:
    reference = {
        j.id: wave_estimate(
            j, min(max((s.num_tasks for s in j.stages), default=1), data.case.max_workers * cores)
        )
        for j in data.workload
    }
    finished = {r.id: r.duration_s for r in results}
    out = []
    for job in data.workload:
        if job.arrival > end:
            continue
        took = finished.get(job.id, end - job.arrival)
        out.append(took / max(reference[job.id], 1e-9))
    return out


def _downsample(times: Sequence[float], values: Sequence[float], points: int) -> list[float]:
    if len(times) <= points:
        return [float(v) for v in values]
    edges = np.linspace(0, len(times), points + 1).astype(int)
    arr = np.asarray(values, dtype=float)
    return [float(arr[a:b].mean()) for a, b in itertools.pairwise(edges)]


def run_case(
    config: Config,
    key: str,
    data: CaseData,
    calibration: Calibration,
    dqn_models: dict[str, str],
    seed: int,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One policy over one case: the numbers of the suite's table, and a timeline to plot.

    ``params`` override the policy's parameters (as a config's ``policy.params``), for a
    benchmark that weighs a setting against the defaults on the same workload."""
    started = time.perf_counter()
    cfg = case_config(config, data.case)
    duration = data.case.duration_s
    cores = cfg.cluster.worker_cores
    jobs = list(data.workload)
    arrived = [j for j in jobs if j.arrival <= duration]
    if key == ORACLE:
        run = run_oracle(cfg, jobs, seed, until=duration)
        sim = run.sim
        results, misses = sim.results, run.misses
        worker_s, actions = sim.worker_seconds(), None
        timeline = None
    else:
        settings = policy_settings(key, calibration, dqn_models)
        context = simulated_context(cfg, calibration.runtime_model)
        policy = context.build(settings.name, {**settings.params, **(params or {})})
        _warm_up(policy, cfg, data, seed)
        result = simulate_workload(
            cfg, jobs, policy, duration, seed=seed, learn=learns(data.case), history=data.history
        )
        results, misses = result.jobs, result.misses
        worker_s, actions = result.worker_hours * 3600.0, result.scale_outs + result.scale_ins
        line = result.timeline
        timeline = {
            "time_s": _downsample(line["time_s"], line["time_s"], TIMELINE_POINTS),
            "workers": _downsample(line["time_s"], line["workers"], TIMELINE_POINTS),
            "demand_workers": _downsample(
                line["time_s"],
                [(r + p) / cores for r, p in zip(line["running"], line["pending"], strict=True)],
                TIMELINE_POINTS,
            ),
        }
    slow = _slowdowns(results, data, cores, duration)
    return {
        "case": data.case.name,
        "policy": key,
        "jobs": len(arrived),
        "misses": misses,
        "miss_pct": round(100.0 * misses / max(1, len(arrived)), 3),
        "worker_hours": round(worker_s / 3600.0, 4),
        "scale_actions": actions,
        "p95_slowdown": round(float(np.percentile(slow, 95)), 4) if slow else None,
        "timeline": timeline,
        "wall_s": time.perf_counter() - started,
    }
