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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from sparkscaler.core import Decision, JobRecord, Observation


class PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Policy(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[PolicyParams]] = PolicyParams
    version: ClassVar[str] = "1"
    #: What :meth:`save` writes (a learned model may need its own format).
    file_suffix: ClassVar[str] = ".json"

    def __init__(self, **params: Any) -> None:
        self.params = self.Params(**params)

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
