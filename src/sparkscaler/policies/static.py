"""A fixed-size cluster: what most users run today, and the baseline every other policy must beat.

The rule: always ``workers`` workers; by default (``workers: null``) the upper bound the controller
enforces (``max_workers``, N in the paper), i.e. "N workers, always on". The target is clipped to
the observation's ``min_workers``/``max_workers`` when they are known, and the reason says when
that happened. With neither a count nor a maximum there is no N to hold, so the policy keeps the
cluster at its current size.
"""

from __future__ import annotations

from pydantic import Field

from sparkscaler.core import Decision, Observation
from sparkscaler.policies.base import Policy, PolicyParams


class StaticParams(PolicyParams):
    workers: int | None = Field(
        None, ge=1, description="the fixed worker count; default: the controller's max_workers"
    )


class StaticPolicy(Policy):
    name = "static"
    Params = StaticParams

    def decide(self, observation: Observation) -> Decision:
        obs, wanted = observation, self.params.workers
        if wanted is None:
            if obs.max_workers is None:
                current = max(obs.workers, obs.min_workers)
                return self._decision(
                    current, f"static: no worker count and no max_workers; holding {current}"
                )
            return self._decision(
                obs.max_workers, f"static: always {obs.max_workers} worker(s) (max_workers)"
            )
        target = max(wanted, obs.min_workers)
        if obs.max_workers is not None:
            target = min(target, obs.max_workers)
        if target != wanted:
            return self._decision(
                target,
                f"static: {wanted} worker(s) wanted, clipped to {target} by the bounds "
                f"[{obs.min_workers}, {obs.max_workers}]",
            )
        return self._decision(target, f"static: always {target} worker(s)")
