"""The one interface every scaling policy follows, after scikit-learn's estimators.

Parameters are constructor arguments (validated by the policy's ``Params`` model, so the config
file and the REST API get the same checks); ``fit`` learns from finished jobs and returns self;
learned state ends with ``_``; ``decide`` maps one observation to a :class:`Decision` and never
touches the cluster or sleeps. A policy may keep the short memory its published algorithm has
(Spark's allocation ramp, HPA's recommendations), but nothing that acts.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict

from sparkscaler.core import Decision, JobRecord, Observation

if TYPE_CHECKING:  # numpy, pandas and scipy: not loaded for a rule policy
    from sparkscaler.models.runtime_model import RuntimeModel


#: The guard's pacing rules (bounds are always applied): its cooldown after an action, and its
#: scale-in stabilisation (scale in only to the highest target of a recent window).
GuardRule = Literal["cooldown", "stabilization"]
GUARD_RULES: frozenset[GuardRule] = frozenset(("cooldown", "stabilization"))


class PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Policy(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[PolicyParams]] = PolicyParams
    version: ClassVar[str] = "1"
    #: What :meth:`save` writes (a learned model may need its own format).
    file_suffix: ClassVar[str] = ".json"
    #: The guard rules this policy's published algorithm has in its own form (HPA's
    #: stabilisation window and rate limits, Spark's backlog and idle timeouts, Dataproc's
    #: cooldown period): the guard leaves those to it and applies only the others, so that a
    #: faithful peer behaves behind the guard as its original does, within the bounds.
    own_rules: ClassVar[frozenset[GuardRule]] = frozenset()

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)

    @classmethod
    def for_loop(
        cls,
        params: Mapping[str, Any],
        *,
        runtime_model: RuntimeModel | None = None,
        provisioning_s: float = 0.0,
    ) -> Self:
        """The policy as a loop runs it: built from ``params`` and what the loop knows of its
        cluster, the runtime model of its jobs so far and how long a requested worker takes to
        run tasks. A policy that plans with either takes them here (a parameter set in
        ``params`` wins); the others ignore them."""
        return cls(**params)

    def get_params(self) -> dict[str, Any]:
        return self.params.model_dump()

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Learn from finished jobs; rule-based policies have nothing to learn."""
        return self

    @abstractmethod
    def decide(self, observation: Observation) -> Decision:
        """The worker count wanted now, with a one-line reason."""

    def _decision(self, target: int, reason: str) -> Decision:
        return Decision(target=target, policy=self.name, reason=reason, model_version=self.version)

    def save(self, path: Path) -> None:
        """Write what is needed to rebuild this policy; learned policies add their model."""
        path.write_text(json.dumps({"name": self.name, "params": self.get_params()}, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        data = json.loads(path.read_text())
        if data.get("name") != cls.name:
            raise ValueError(f"{path} holds a {data.get('name')!r} policy, not {cls.name!r}")
        return cls(**data.get("params", {}))
