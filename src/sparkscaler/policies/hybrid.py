"""The default policy: a predictive floor, a reactive correction, a planner for deadlines.

Each part answers a different failure of the others:

- ``predictive`` (Random-Forest forecast of the next hour's peak demand) raises the floor before
  a daily or weekly peak arrives, which a reactive rule only sees once the backlog is there;
- ``reactive`` (Spark dynamic allocation's rule) corrects for what the forecast did not see: an
  unexpected burst, a pattern it has not learned yet;
- ``planner`` (Ernest runtime model) sizes the cluster for a running job's deadline T, when the
  job carries one and a runtime model has been learned; without a model it would only ask for N,
  so it is left out until ``fit`` (or ``planner_model``) has given it one.

The target is the highest of the parts' targets: each part is a reason *not* to be smaller, so
the cluster scales in only when every part agrees. One exception: while the planner sizes a
deadline job, the load already there does not vote: neither the reactive rule nor the reactive
half of the forecaster (its ``max(forecast, demand now)``, or its whole answer while it has no
model). Both would grow the cluster with the backlog, up to N, and a backlog is what a job sized
to finish just within T has for most of its run: that growth buys time the deadline does not
need, at the price of worker-hours (the evaluation's paper-grid measures it). The forecast itself
still raises the floor, for load expected next, and the planner asks for N once a job runs past
its predicted time. The decision's reason names the part that decided and shows what the others
wanted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from pydantic import Field

from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.policies.dra import DraParams, DynamicAllocationPolicy
from sparkscaler.policies.planner import PlannerParams, PlannerPolicy
from sparkscaler.policies.predictive import PredictiveParams, PredictivePolicy


class HybridParams(PolicyParams):
    predictive: PredictiveParams = Field(default_factory=PredictiveParams)
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
        """Its planner plans with the loop's runtime model and provisioning delay (unless
        ``params.planner`` sets a delay of its own)."""
        planner = {"provisioning_s": provisioning_s, **params.get("planner", {})}
        return cls(planner_model=runtime_model, **{**params, "planner": planner})

    def __init__(self, *, planner_model: RuntimeModel | None = None, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self.predictive_ = PredictivePolicy(**p.predictive.model_dump())
        self.reactive_ = DynamicAllocationPolicy(**p.reactive.model_dump())
        self.planner_ = PlannerPolicy(model=planner_model, **p.planner.model_dump())

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """The forecaster learns the demand pattern and the planner its runtime model from the
        same finished jobs; the reactive rule has nothing to learn."""
        self.predictive_.fit(history)
        self.planner_.fit(history)
        return self

    def decide(self, observation: Observation) -> Decision:
        parts = {
            "predictive floor": self.predictive_.decide(observation),
            "reactive": self.reactive_.decide(observation),
        }
        voting = list(parts)
        if (
            observation.deadline_s is not None
            and observation.job_running
            and self.planner_.model_ is not None
        ):
            parts["deadline planner"] = self.planner_.decide(observation)
            voting = ["deadline planner"]
            forecast = self.predictive_.forecast_workers_
            if forecast is not None:
                top = observation.max_workers if observation.max_workers is not None else forecast
                parts["forecast"] = self._decision(
                    min(forecast, top), f"forecast alone asks for {min(forecast, top)}"
                )
                voting.append("forecast")
        part = max(voting, key=lambda name: parts[name].target)
        chosen = parts[part]
        others = ", ".join(f"{name} {d.target}" for name, d in parts.items() if name != part)
        return Decision(
            target=chosen.target,
            policy=self.name,
            reason=f"{part} decided: {chosen.reason} (others: {others})",
            model_version=f"{self.version}:{chosen.policy}-{chosen.model_version}",
            forecast_tasks=parts["predictive floor"].forecast_tasks,
        )

    def save(self, path: Path) -> None:
        """The parameters at ``path``, each learned part beside it (``<stem>.<part>…``)."""
        path = Path(path)
        super().save(path)
        self.predictive_.save(_part_path(path, "predictive", PredictivePolicy.file_suffix))
        if self.planner_.model_ is not None:
            self.planner_.save(_part_path(path, "planner", PlannerPolicy.file_suffix))

    @classmethod
    def load(cls, path: Path) -> Self:
        path = Path(path)
        policy = super().load(path)
        policy.predictive_ = PredictivePolicy.load(
            _part_path(path, "predictive", PredictivePolicy.file_suffix)
        )
        planner = _part_path(path, "planner", PlannerPolicy.file_suffix)
        if planner.exists():
            policy.planner_ = PlannerPolicy.load(planner)
        return policy
