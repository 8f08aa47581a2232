"""Scaling policies, selectable by name in the config (``policy.name``).

The registry names each policy's module and imports it only when the policy is used, so that
``sparkscaler --help`` and the rule policies never load scikit-learn, PyTorch or Gymnasium.
A policy that needs an optional dependency group (an *extra*) says which one to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sparkscaler.errors import MissingExtraError, format_validation_error

if TYPE_CHECKING:
    from sparkscaler.models.runtime_model import RuntimeModel
    from sparkscaler.policies.base import Policy


@dataclass(frozen=True)
class _Entry:
    module: str
    cls: str
    #: The extra a policy needs, and the modules whose absence means it is not installed.
    extra: str | None = None
    needs: tuple[str, ...] = ()


_ENTRIES: dict[str, _Entry] = {
    "static": _Entry("static", "StaticPolicy"),
    "hpa": _Entry("hpa", "HpaPolicy"),
    "dra": _Entry("dra", "DynamicAllocationPolicy"),
    "dataproc": _Entry("dataproc", "DataprocPolicy"),
    "regression": _Entry("regression", "RegressionPolicy", "ml", ("sklearn",)),
    "planner": _Entry("planner", "PlannerPolicy"),
    "predictive": _Entry("predictive", "PredictivePolicy", "ml", ("sklearn", "joblib")),
    "dqn": _Entry("dqn", "DqnPolicy", "rl", ("torch", "stable_baselines3", "gymnasium")),
    "hybrid": _Entry("hybrid", "HybridPolicy", "ml", ("sklearn", "joblib")),
}


class _Registry(Mapping[str, "type[Policy]"]):
    """``POLICIES[name]`` is the policy's class, its module imported on first use."""

    def __getitem__(self, name: str) -> type[Policy]:
        entry = _ENTRIES[name]
        module = importlib.import_module(f"sparkscaler.policies.{entry.module}")
        return getattr(module, entry.cls)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return iter(_ENTRIES)

    def __len__(self) -> int:
        return len(_ENTRIES)


POLICIES: Mapping[str, type[Policy]] = _Registry()
POLICY_NAMES: tuple[str, ...] = tuple(_ENTRIES)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked by sys.modules[m] = None
        return False


def required_extra(name: str) -> str | None:
    """The extra policy ``name`` needs that is not installed, or None when it can run here."""
    entry = _ENTRIES[name]
    return entry.extra if not all(_installed(m) for m in entry.needs) else None


def ensure_installed(name: str) -> None:
    """Raise :class:`MissingExtraError` when policy ``name`` needs an extra that is missing:
    checked before a command starts anything, so that it fails at once and in one line."""
    entry = _ENTRIES[name]
    for module in entry.needs:
        if not _installed(module):
            raise MissingExtraError(f"the {name} policy", entry.extra or "ml", module)


def validate_policy_settings(name: str, params: dict[str, Any]) -> list[str]:
    """Problems with a policy name and its parameters, one line each (empty when valid)."""
    from pydantic import ValidationError

    if name not in _ENTRIES:
        return [
            f"policy.name: unknown policy {name!r}; choose one of {', '.join(sorted(POLICY_NAMES))}"
        ]
    try:
        POLICIES[name].Params(**params)
    except ValidationError as error:
        return [f"policy.params.{line}" for line in format_validation_error(error)]
    return []


def make_policy(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    runtime_model: RuntimeModel | None = None,
    provisioning_s: float = 0.0,
) -> Policy:
    """The policy ``name`` built from ``params`` (and, for a policy that plans with them, a
    runtime model and a provisioning delay: :meth:`Policy.for_loop`); ValueError when they are
    invalid, :class:`MissingExtraError` when it needs an extra that is not installed.

    Loops get their policy from :func:`sparkscaler.wiring.build_policy`, which says where the
    model and the delay come from."""
    problems = validate_policy_settings(name, params or {})
    if problems:
        raise ValueError("; ".join(problems))
    ensure_installed(name)
    return POLICIES[name].for_loop(
        params or {}, runtime_model=runtime_model, provisioning_s=provisioning_s
    )


__all__ = [
    "POLICIES",
    "POLICY_NAMES",
    "ensure_installed",
    "make_policy",
    "required_extra",
    "validate_policy_settings",
]
