"""The guard between a policy's wish and the cluster: bounds, cooldowns, stabilisation, holds.

Kept apart from the policies as Kubernetes keeps ``horizontal.go`` apart from
``replica_calculator.go``: a policy says what size it wants; the guard decides whether acting on
it now is safe. It never predicts, and it explains every refusal in the decision's reason.

A policy whose published algorithm paces itself (``Policy.own_rules``: HPA's stabilisation and
rate limits, Spark's timeouts, Dataproc's cooldown period) is not paced a second time: the guard
applies only the rules the policy does not bring, and the bounds, which it always applies.
"""

from __future__ import annotations

from collections import deque

from sparkscaler.config import ScalingSettings
from sparkscaler.core import Decision, GuardedDecision, Observation
from sparkscaler.policies.base import GuardRule


class Guard:
    def __init__(
        self, settings: ScalingSettings, own_rules: frozenset[GuardRule] = frozenset()
    ) -> None:
        """``own_rules``: the rules the policy behind this guard brings itself, left to it."""
        self.settings = settings
        self.own_rules = own_rules
        self._recommendations: deque[tuple[float, int]] = deque()
        self._last_action_time: float | None = None

    def _hold(self, decision: Decision | None, current: int, why: str) -> GuardedDecision:
        return GuardedDecision(decision, current, current, "hold", why)

    def note_action(self, time: float) -> None:
        """A scale action taken outside the guard (by hand, through the service) starts the
        cooldowns as one of its own would: the policy must not undo it at once."""
        self._last_action_time = time

    def evaluate(self, decision: Decision | None, obs: Observation) -> GuardedDecision:
        """The target to act on for this observation, or a hold with the reason."""
        s, now, current = self.settings, obs.time, obs.workers
        if obs.stale:
            why = obs.errors[0] if obs.errors else "no observation"
            return self._hold(decision, current, f"holding at {current}: metrics stale ({why})")
        if decision is None:
            return self._hold(
                decision, current, f"holding at {current}: the policy gave no decision"
            )

        wanted = decision.target
        target = min(max(wanted, s.min_workers), s.max_workers)
        reason = decision.reason
        if wanted > s.max_workers:
            reason += f"; capped at the maximum of {s.max_workers}"
        elif wanted < s.min_workers:
            reason += f"; kept at the minimum of {s.min_workers}"

        out_of_bounds = current < s.min_workers or current > s.max_workers
        if out_of_bounds:
            self._last_action_time = now
            action = "scale_out" if target > current else "scale_in"
            return GuardedDecision(decision, current, target, action, reason + "; restoring bounds")

        stabilise = "stabilization" not in self.own_rules
        if stabilise:
            self._recommendations.append((now, target))
        while self._recommendations and (
            not stabilise or self._recommendations[0][0] < now - s.scale_in_stabilization_s
        ):
            self._recommendations.popleft()

        if target < current and self._recommendations:
            highest = max(t for _, t in self._recommendations)
            if highest > target:
                stabilised = min(highest, current)
                reason += (
                    f"; stabilised {target} → {stabilised} (highest target in the last "
                    f"{s.scale_in_stabilization_s:g} s)"
                )
                target = stabilised
        if target == current:
            return GuardedDecision(decision, current, current, "none", reason)

        cooldown = s.scale_out_cooldown_s if target > current else s.scale_in_cooldown_s
        since = None if self._last_action_time is None else now - self._last_action_time
        if since is not None and since < cooldown and "cooldown" not in self.own_rules:
            return self._hold(
                decision,
                current,
                f"{reason}; holding at {current} (wants {target}): cooldown, "
                f"{cooldown - since:.0f} s left",
            )
        self._last_action_time = now
        return GuardedDecision(
            decision, current, target, "scale_out" if target > current else "scale_in", reason
        )
