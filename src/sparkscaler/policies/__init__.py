"""Scaling policies, selectable by name in the config (``policy.name``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.policies.dataproc import DataprocPolicy
from sparkscaler.policies.dqn import DqnPolicy
from sparkscaler.policies.dra import DynamicAllocationPolicy
from sparkscaler.policies.hpa import HpaPolicy
from sparkscaler.policies.hybrid import HybridPolicy
from sparkscaler.policies.planner import PlannerPolicy
from sparkscaler.policies.predictive import PredictivePolicy
from sparkscaler.policies.regression import RegressionPolicy
from sparkscaler.policies.static import StaticPolicy

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (
        StaticPolicy,
        HpaPolicy,
        DynamicAllocationPolicy,
        DataprocPolicy,
        RegressionPolicy,
        PlannerPolicy,
        PredictivePolicy,
        DqnPolicy,
        HybridPolicy,
    )
}


def validate_policy_settings(name: str, params: dict[str, Any]) -> list[str]:
    """Problems with a policy name and its parameters, one line each (empty when valid)."""
    if name not in POLICIES:
        return [
            f"policy.name: unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}"
        ]
    try:
        POLICIES[name].Params(**params)
    except ValidationError as error:
        from sparkscaler.config import format_validation_error

        return [f"policy.params.{line}" for line in format_validation_error(error)]
    return []


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    problems = validate_policy_settings(name, params or {})
    if problems:
        raise ValueError("; ".join(problems))
    return POLICIES[name](**(params or {}))


__all__ = ["POLICIES", "Policy", "PolicyParams", "make_policy", "validate_policy_settings"]
