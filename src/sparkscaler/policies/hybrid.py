"""The default policy: a predictive floor, a reactive correction, a planner for deadlines.

Each part answers a different failure of the others:

- ``predictive`` (a quantile forecast of the busy slots the next lead time will need, by
  weekday, hour and recent history: :mod:`~sparkscaler.policies.predictive`) keeps the cluster
  at the capacity the coming minutes need at its ``quantile`` (0.9 here), so that a queue does
  not build up behind the running jobs at a daily or weekly peak, which a planner that sizes
  only the jobs already there, and a reactive rule, see only once the jobs are late;
- ``reactive`` (Spark dynamic allocation's rule) corrects for what the forecast did not see: an
  unexpected burst, a pattern it has not learned yet, a job the planner cannot size;
- ``planner`` (per-signature job knowledge, progress-aware: :mod:`~sparkscaler.policies.planner`)
  sizes the cluster for the running jobs' deadlines. It takes part from the start: a job whose
  signature it knows (from its past runs, or the prior model a loop may give it) is planned,
  one it has never seen is left to the reactive part ("new signature: reactive") until its
  first runs have finished and been learned (the controller refits the policy then).

The target is the highest of the parts' targets: each part is a reason *not* to be smaller, so
the cluster scales in only when every part agrees. While the planner sizes jobs, the load
already there does not vote for the jobs it plans: neither the reactive rule nor the reactive
half of the forecaster (its ``max(forecast, demand now)``, or its whole answer while it has no
model). Both would grow the cluster with the backlog, up to N, and a backlog is what a job sized
to finish just within T has for most of its run: that growth buys time the deadline does not
need, at the price of worker-hours (the evaluation's paper-grid measures it). The forecast
itself still raises the floor, for load expected next.

The forecast floor applies while a job is in the cluster, not while it is idle. On the daily
trace, every deadline the planner missed fell while the cluster was at N with a backlog: what
the floor buys is capacity ready for the jobs that arrive while others run. A job that
arrives at an idle cluster is one the planner sizes well on its own (its provisioning delay
included). On the daily trace the floor's quantile trades misses against worker-hours: 23
misses at 637 worker-hours at the median, 14 at 728 at 0.8, 13 (as few as ``hpa``) at 777 at
0.9 (docs/forecaster.md). While the cluster is idle the forecaster still observes (it learns
from every decision), and its floor is shown in the reason.

The jobs the planner does not plan (a new signature, no deadline) still need workers beside
the planned ones. Their load is handed to the reactive rule on its own: the tasks of those jobs
only (running, and pending in their active stages), on the workers left once the planned jobs'
are set aside, and its answer is added to the planner's. So a new job grows the cluster as
Spark's own allocation would grow it for that job, and a planned job's backlog never counts
twice. (A new job that queues for the same workers as a planned one, both without
``spark.cores.max``, delays the planned job by its run, which the planner does not know; the
reactive rule's extra workers are what covers it.) With no job planned at all, the forecaster
and the reactive rule decide on the whole observation, as they do alone.

The decision's reason names the part that decided and shows what the others wanted; it carries
the planner's predicted run times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator

from sparkscaler.core import Decision, JobContext, JobRecord, Observation
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.policies.dra import DraParams, DynamicAllocationPolicy
from sparkscaler.policies.planner import PlannerParams, PlannerPolicy
from sparkscaler.policies.predictive import PredictiveParams, PredictivePolicy

#: The forecast quantile hybrid provisions to unless its ``predictive`` params name one (the
#: forecaster alone provisions to the median): on the daily trace, the floor that misses no
#: more deadlines than the best rule policy (docs/forecaster.md).
FORECAST_QUANTILE = 0.9


class HybridParams(PolicyParams):
    predictive: PredictiveParams = Field(
        default_factory=lambda: PredictiveParams(quantile=FORECAST_QUANTILE)
    )

    @field_validator("predictive", mode="before")
    @classmethod
    def _hybrid_quantile(cls, value: Any) -> Any:
        """A partial ``predictive`` (a loop's lead time, a user's one setting) keeps hybrid's
        quantile rather than the forecaster's own default."""
        if isinstance(value, Mapping):
            return {"quantile": FORECAST_QUANTILE, **value}
        return value

    reactive: DraParams = Field(default_factory=DraParams)
    planner: PlannerParams = Field(default_factory=PlannerParams)


def _part_path(path: Path, part: str, suffix: str) -> Path:
    return path.with_name(f"{path.stem}.{part}{suffix}")


class HybridPolicy(Policy):
    name = "hybrid"
    Params = HybridParams

    @classmethod
    def for_loop(
        cls,
        params: Mapping[str, Any],
        *,
        runtime_model: RuntimeModel | None = None,
        provisioning_s: float = 0.0,
    ) -> Self:
        """Its planner plans with the loop's runtime model (as the prior for jobs without
        history) and provisioning delay, and its forecaster raises the floor that delay ahead
        (unless ``params.planner`` or ``params.predictive`` sets a delay of its own)."""
        planner = {"provisioning_s": provisioning_s, **params.get("planner", {})}
        predictive = {"lead_s": provisioning_s, **params.get("predictive", {})}
        return cls(
            planner_model=runtime_model,
            **{**params, "planner": planner, "predictive": predictive},
        )

    def __init__(self, *, planner_model: RuntimeModel | None = None, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self.predictive_ = PredictivePolicy(**p.predictive.model_dump())
        self.reactive_ = DynamicAllocationPolicy(**p.reactive.model_dump())
        self.planner_ = PlannerPolicy(model=planner_model, **p.planner.model_dump())

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """The planner learns each recurring job from the finished jobs, and the forecaster the
        busy slots they made while it has observed none itself (a loop's start:
        :meth:`PredictivePolicy.fit`); the reactive rule has nothing to learn."""
        self.predictive_.fit(history)
        self.planner_.fit(history)
        return self

    def decide(self, observation: Observation) -> Decision:
        obs = observation
        forecaster = self.predictive_.decide(obs)  # it records the busy slots every decision
        parts = {"predictive floor": forecaster}
        plan = self.planner_.plan(obs) if obs.jobs else None
        planned = [j for j in plan.jobs if j.kind == "planned"] if plan is not None else []
        predicted: dict[str, float] = {}
        if plan is None or not planned:
            parts["reactive"] = self.reactive_.decide(obs)
            voting = list(parts) if obs.job_running else ["reactive"]
        else:
            top = (
                obs.max_workers if obs.max_workers is not None else self.planner_.params.max_workers
            )
            cpw = plan.cores_per_worker
            sized = math.ceil(sum(j.slots for j in planned) / cpw - 1e-9)
            reasons = [j.reason for j in plan.jobs if j.kind == "planned"]
            others = [
                (job, j) for job, j in zip(obs.jobs, plan.jobs, strict=True) if j.kind != "planned"
            ]
            target, why = sized, ""
            if others:
                load = unplanned_load(obs, [job for job, _ in others], sized)
                reactive = self.reactive_.decide(load)
                target += reactive.target
                reasons += [f"{j.label}: {j.kind}: reactive" for _, j in others]
                why = f" + reactive {reactive.target} for the others ({reactive.reason})"
            target = min(max(target, obs.min_workers, 1), top)
            parts["deadline planner"] = self._decision(
                target, f"{'; '.join(reasons)} -> {sized} planned{why}"
            )
            predicted = plan.predicted_s
            voting = ["deadline planner"]
            forecast = self.predictive_.forecast_workers_
            if forecast is not None:
                parts["forecast"] = self._decision(
                    min(forecast, top), f"forecast alone asks for {min(forecast, top)}"
                )
                voting.append("forecast")
        part = max(voting, key=lambda name: parts[name].target)
        chosen = parts[part]
        others_text = ", ".join(
            f"{name} {d.target}" + ("" if name in voting else " (idle cluster: not applied)")
            for name, d in parts.items()
            if name != part
        )
        source, version = chosen.policy, chosen.model_version
        if part == "deadline planner":
            source, version = self.planner_.name, self.planner_.model_version
        return Decision(
            target=chosen.target,
            policy=self.name,
            reason=f"{part} decided: {chosen.reason} (others: {others_text})",
            model_version=f"{self.version}:{source}-{version}",
            forecast_tasks=forecaster.forecast_tasks,
            predicted_s=predicted,
        )

    def save(self, path: Path) -> None:
        """The parameters at ``path``, each learned part beside it (``<stem>.<part>…``)."""
        path = Path(path)
        super().save(path)
        self.predictive_.save(_part_path(path, "predictive", PredictivePolicy.file_suffix))
        self.planner_.save(_part_path(path, "planner", PlannerPolicy.file_suffix))

    @classmethod
    def load(cls, path: Path) -> Self:
        path = Path(path)
        policy = super().load(path)
        policy.predictive_ = PredictivePolicy.load(
            _part_path(path, "predictive", PredictivePolicy.file_suffix)
        )
        policy.planner_ = PlannerPolicy.load(_part_path(path, "planner", PlannerPolicy.file_suffix))
        return policy


def unplanned_load(
    obs: Observation, jobs: Sequence[JobContext], planned_workers: int
) -> Observation:
    """The observation as the reactive rule sees the jobs the planner does not plan: only their
    tasks (running, and pending in their active stages), on the workers left once
    ``planned_workers`` are set aside for the planned jobs (ALIVE busy ones first, then idle,
    then those still provisioning), so that its answer is the workers those jobs need on top."""
    running = sum(s.running for job in jobs for s in job.stages)
    pending = sum(
        max(0, s.tasks - s.done - s.running)
        for job in jobs
        for s in job.stages
        if s.status == "ACTIVE"
    )
    order = sorted(
        obs.cluster.workers,
        key=lambda w: (w.state != "ALIVE", w.state == "ALIVE" and not w.busy, w.idle_s),
    )
    aside = {w.id for w in order[:planned_workers]}
    kept = tuple(w for w in obs.cluster.workers if w.id not in aside)
    top = obs.max_workers
    return replace(
        obs,
        cluster=replace(obs.cluster, workers=kept),
        running_tasks=running,
        pending_tasks=pending,
        backlog_age_s=obs.backlog_age_s if pending else 0.0,
        min_workers=0,
        max_workers=None if top is None else max(0, top - planned_workers),
        jobs=tuple(jobs),
    )
