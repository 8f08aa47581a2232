"""Kubernetes' Horizontal Pod Autoscaler (``autoscaling/v2``), with workers in place of pods.

Sources: the Kubernetes task page "Horizontal Pod Autoscaling"
(https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/), sections
"Algorithm details", "Configurable scaling behavior" and "Default Behavior"; the API reference of
``HPAScalingRules`` (stabilisation window 0-3600 s, policy period 1-1800 s, ``selectPolicy``
default ``Max``); and the controller it describes, ``pkg/controller/podautoscaler/horizontal.go``
(``recordInitialRecommendation``, ``stabilizeRecommendationWithBehaviors``,
``convertDesiredReplicasWithBehaviorRate``, ``calculateScale{Up,Down}Limit...``) with
``replica_calculator.go``.

The rule, every decision:

1. ``desired = ceil(current x metric / target)``; no change while ``|metric / target - 1| <=
   tolerance`` (0.1). Workers that are still PROVISIONING are HPA's not-yet-ready pods: they have
   no metric, count as 0 % on a scale-up (which damps it) and are left out on a scale-down; if that
   flips the direction or lands inside the tolerance, nothing changes.
2. Stabilisation: every raw recommendation is remembered; the result is the current size brought
   into ``[min of the recommendations in the last scale_up_stabilization_s (0 s: none),
   max of those in the last scale_down_stabilization_s (300 s)]``. As HPA does on its first
   reconcile, the history starts with the current size, so a fresh policy never shrinks the
   cluster during its first window.
3. Rate (the default ``behavior``, as the docs state it)::

       scaleDown: {stabilizationWindowSeconds: 300,
                   policies: [{type: Percent, value: 100, periodSeconds: 15}]}
       scaleUp:   {stabilizationWindowSeconds: 0,
                   policies: [{type: Percent, value: 100, periodSeconds: 15},
                              {type: Pods, value: 4, periodSeconds: 15}],
                   selectPolicy: Max}

   i.e. up by the larger of +4 workers and +100 % per 15 s, down by up to 100 % per 15 s (to the
   minimum in one step). Each policy's allowance is measured from the size at the start of its
   period, ``current - added + removed`` within the last ``period`` seconds; ``Max`` takes the
   policy allowing the largest change, ``Min`` the smallest, ``Disabled`` none. Then the result is
   clipped to ``[min_workers, max_workers]``; a size already outside them is moved straight back
   in, as HPA does before looking at metrics.

What "current" and "scale events" mean here. HPA's ``currentReplicas`` is the target's
``spec.replicas``, the size HPA itself last asked for (pods that are still starting included), and
its scale events are the changes it made to that number. A policy cannot see whether the guard
acted on its last decision, so it does the same: ``current_`` is its own last recommendation
(starting from the observed size, ALIVE + PROVISIONING), and its scale events are the changes
between its recommendations. When the guard holds (a cooldown), the policy does not mistake the
unchanged cluster for a new reason to ask again, and its rate limits stay what HPA's would be. The
metrics are always measured on the workers that are really there.

The metric (``metric``), each a utilisation in percent:

- ``tasks`` (default): demand, ``(running + pending tasks) / task slots x 100``; HPA's per-pod
  "AverageValue" metric with a target of ``target_utilization`` % of a worker's slots, so
  ``desired = ceil((running + pending) / (slots per worker x target))``. It is the default because
  it measures what Spark wants: on a small local box (2 cores shared by every worker JVM) CPU
  saturates whatever the backlog, and says nothing about how many more workers would help.
- ``cpu``: ``cu + cs``, the workers' CPU user + system time relative to their cores (HPA's classic
  CPU target).
- ``cores``: allocation, ``cores_used / cores_total x 100``. A standalone application takes every
  free core, so this reads 100 % whenever any application runs; kept for the comparison.

With no worker at all HPA is disabled (0 replicas switches it off). Here, ``tasks`` treats the
empty cluster as one worker for the formula (its slots from ``cores_per_worker``, else 1), so
pending work still starts a cluster; ``cpu`` and ``cores`` have nothing to measure without an
ALIVE worker and hold the current size. A stale observation holds too, as HPA skips a round whose
metrics it could not fetch.

Behind sparkscaler's guard, HPA keeps its own pacing: its stabilisation and rate limits are the
guard rules it brings (``own_rules``), so the guard applies only the bounds, and the cluster
moves as HPA alone would move it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, Self

from pydantic import Field, model_validator

from sparkscaler.core import Decision, Observation
from sparkscaler.policies.base import GUARD_RULES, Policy, PolicyParams
from sparkscaler.units import Duration

Select = Literal["Max", "Min", "Disabled"]


def _ceil(x: float) -> int:
    """ceil that ignores float noise (24 / 20 x 100 / 80 x 4 must be 6, not 7)."""
    return math.ceil(x - 1e-9)


class HpaParams(PolicyParams):
    metric: Literal["cpu", "cores", "tasks"] = "tasks"
    target_utilization: float = Field(80.0, gt=0, description="target utilisation, percent")
    tolerance: float = Field(0.1, ge=0)
    scale_down_stabilization_s: Duration = Field(300.0, ge=0, le=3600)
    scale_up_stabilization_s: Duration = Field(0.0, ge=0, le=3600)
    scale_up_pods: int | None = Field(4, gt=0, description="Pods policy: workers per period")
    scale_up_percent: float | None = Field(100.0, gt=0, description="Percent policy")
    scale_up_period_s: Duration = Field(15.0, gt=0, le=1800)
    scale_up_select: Select = "Max"
    scale_down_pods: int | None = Field(None, gt=0, description="Pods policy (none by default)")
    scale_down_percent: float | None = Field(100.0, gt=0, le=100, description="Percent policy")
    scale_down_period_s: Duration = Field(15.0, gt=0, le=1800)
    scale_down_select: Select = "Max"
    cores_per_worker: int | None = Field(
        None, ge=1, description="task slots of a worker when none is ALIVE to report them"
    )

    @model_validator(mode="after")
    def _one_policy_per_direction(self) -> Self:
        for direction in ("up", "down"):
            select = getattr(self, f"scale_{direction}_select")
            pods = getattr(self, f"scale_{direction}_pods")
            percent = getattr(self, f"scale_{direction}_percent")
            if select != "Disabled" and pods is None and percent is None:
                raise ValueError(
                    f"scale_{direction}: give scale_{direction}_pods or scale_{direction}_percent "
                    f"(or set scale_{direction}_select to Disabled)"
                )
        return self


class HpaPolicy(Policy):
    name = "hpa"
    Params = HpaParams
    own_rules = GUARD_RULES

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.current_: int | None = None  # HPA's spec.replicas: the last recommendation
        # (time, raw desired) of the recommendations that can still win: decreasing for the
        # scale-down window's maximum, increasing for the scale-up window's minimum
        self.down_window_: deque[tuple[float, int]] = deque()
        self.up_window_: deque[tuple[float, int]] = deque()
        self.up_events_: list[tuple[float, int]] = []  # (time, workers added)
        self.down_events_: list[tuple[float, int]] = []  # (time, workers removed)

    # ------------------------------------------------------------------ the decision
    def decide(self, observation: Observation) -> Decision:
        obs = observation
        if self.current_ is None:  # recordInitialRecommendation
            self.current_ = obs.workers
            self._remember(obs.time, obs.workers)
        current = self.current_
        if obs.stale:
            return self._decision(current, f"stale observation: holding {current} worker(s)")

        lo, hi = obs.min_workers, obs.max_workers
        if hi is not None and current > hi:
            target, reason = hi, f"{current} worker(s) above max_workers: {hi}"
        elif current < lo:
            target, reason = lo, f"{current} worker(s) below min_workers: {lo}"
        else:
            raw, why = self._desired(obs, current)
            stable, up, down = self._stabilize(obs.time, current, raw)
            target, limit = self._limit(obs.time, current, stable, lo, hi)
            reason = why
            if stable != raw:
                p = self.params
                if raw < current:
                    reason += (
                        f"; highest recommendation in the last "
                        f"{p.scale_down_stabilization_s:g} s is {down}, so {stable}"
                    )
                else:
                    reason += (
                        f"; lowest recommendation in the last "
                        f"{p.scale_up_stabilization_s:g} s is {up}, so {stable}"
                    )
            if limit:
                reason += f"; {limit}"
            if target != raw:
                reason += f" -> {target}"

        self._record_event(obs.time, current, target)
        self.current_ = target
        return self._decision(target, reason)

    def _metric(self, obs: Observation) -> tuple[float | None, int, str]:
        """(utilisation %, workers it was measured on, description); None: nothing to measure."""
        c, metric = obs.cluster, self.params.metric
        ready = c.alive_workers
        if metric == "tasks":
            demand = obs.running_tasks + obs.pending_tasks
            if ready:
                slots, counted = c.cores_total, ready
            else:  # no worker: treat the cluster as one worker for the formula
                slots, counted = self._slots_per_worker(obs), 1
            slots = max(slots, 1)
            return demand / slots * 100, counted, f"{demand} task(s) on {slots} slot(s)"
        if not ready:
            return None, 0, f"no ALIVE worker to measure {metric} on"
        if metric == "cpu":
            f = obs.features
            return f.cu + f.cs, ready, f"cpu user {f.cu:.0f}% + system {f.cs:.0f}%"
        used, total = c.cores_used, max(c.cores_total, 1)
        return used / total * 100, ready, f"{used}/{total} cores allocated"

    def _slots_per_worker(self, obs: Observation) -> int:
        cores = self.params.cores_per_worker or obs.cluster.cores_per_worker or 1
        return max(1, int(cores))

    def _desired(self, obs: Observation, current: int) -> tuple[int, str]:
        """replica_calculator: the raw desired size and why."""
        p = self.params
        metric, ready, what = self._metric(obs)
        if metric is None:
            return current, f"{what}: holding {current}"
        head = f"{p.metric} {metric:.0f}% vs target {p.target_utilization:g}% ({what})"
        ratio = metric / p.target_utilization
        pods = max(obs.workers, ready)
        if ratio > 1 and pods > ready:  # not-yet-ready workers count as 0 % on a scale-up
            ratio = ready * metric / (p.target_utilization * pods)
            head += f", {pods - ready} provisioning at 0%"
        if abs(ratio - 1) <= p.tolerance:
            return current, f"{head}: ratio {ratio:.2f} within 1±{p.tolerance:g}, keep {current}"
        desired = _ceil(ready * metric / p.target_utilization)
        if (ratio < 1 and desired > current) or (ratio > 1 and desired < current):
            return current, f"{head}: ratio {ratio:.2f} would reverse direction, keep {current}"
        return desired, (
            f"{head}: ratio {ratio:.2f}, ceil({ready} x {metric:.0f} / "
            f"{p.target_utilization:g}) = {desired}"
        )

    def _stabilize(self, now: float, current: int, raw: int) -> tuple[int, int, int]:
        """(stabilised size, lowest and highest recommendation in their windows).

        HPA scans every recommendation of the window; the two monotonic queues give the same
        minimum and maximum in O(1) amortised, so a 3600 s window at 1 s stays cheap.
        """
        p = self.params
        up_cutoff = now - p.scale_up_stabilization_s
        down_cutoff = now - p.scale_down_stabilization_s
        while self.up_window_ and self.up_window_[0][0] <= up_cutoff:
            self.up_window_.popleft()
        while self.down_window_ and self.down_window_[0][0] <= down_cutoff:
            self.down_window_.popleft()
        up = min(raw, self.up_window_[0][1]) if self.up_window_ else raw
        down = max(raw, self.down_window_[0][1]) if self.down_window_ else raw
        self._remember(now, raw)
        return min(max(current, up), down), up, down

    def _remember(self, now: float, rec: int) -> None:
        while self.down_window_ and self.down_window_[-1][1] <= rec:
            self.down_window_.pop()
        self.down_window_.append((now, rec))
        while self.up_window_ and self.up_window_[-1][1] >= rec:
            self.up_window_.pop()
        self.up_window_.append((now, rec))

    def _changes(self, now: float, period: float) -> tuple[int, int]:
        cutoff = now - period
        added = sum(n for t, n in self.up_events_ if t > cutoff)
        removed = sum(n for t, n in self.down_events_ if t > cutoff)
        return added, removed

    def _limit(
        self, now: float, current: int, desired: int, lo: int, hi: int | None
    ) -> tuple[int, str]:
        """convertDesiredReplicasWithBehaviorRate: the rate policies, then the bounds."""
        if desired > current:
            limit = max(self._up_limit(now, current), current)
            if hi is not None and hi <= limit:
                allowed, why = hi, f"max_workers {hi}"
            else:
                allowed, why = limit, f"scale-up limit {limit} ({self._rule('up')})"
            if desired > allowed:
                return allowed, why
        elif desired < current:
            limit = min(self._down_limit(now, current), current)
            if lo >= limit:
                allowed, why = lo, f"min_workers {lo}"
            else:
                allowed, why = limit, f"scale-down limit {limit} ({self._rule('down')})"
            if desired < allowed:
                return allowed, why
        return desired, ""

    def _up_limit(self, now: float, current: int) -> int:
        p = self.params
        if p.scale_up_select == "Disabled":
            return current
        added, removed = self._changes(now, p.scale_up_period_s)
        start = current - added + removed
        proposals = []
        if p.scale_up_pods is not None:
            proposals.append(start + p.scale_up_pods)
        if p.scale_up_percent is not None:
            proposals.append(_ceil(start * (1 + p.scale_up_percent / 100)))
        return max(proposals) if p.scale_up_select == "Max" else min(proposals)

    def _down_limit(self, now: float, current: int) -> int:
        p = self.params
        if p.scale_down_select == "Disabled":
            return current
        added, removed = self._changes(now, p.scale_down_period_s)
        start = current - added + removed
        proposals = []
        if p.scale_down_pods is not None:
            proposals.append(start - p.scale_down_pods)
        if p.scale_down_percent is not None:
            proposals.append(math.floor(start * (1 - p.scale_down_percent / 100) + 1e-9))
        # the largest change down is the smallest size
        return min(proposals) if p.scale_down_select == "Max" else max(proposals)

    def _rule(self, direction: Literal["up", "down"]) -> str:
        """The behaviour of one direction in words, e.g. "max(+4, +100%) per 15 s"."""
        p, sign = self.params, "+" if direction == "up" else "-"
        select = getattr(p, f"scale_{direction}_select")
        if select == "Disabled":
            return f"scale-{direction} disabled"
        pods = getattr(p, f"scale_{direction}_pods")
        percent = getattr(p, f"scale_{direction}_percent")
        parts = [f"{sign}{pods}"] if pods is not None else []
        parts += [f"{sign}{percent:g}%"] if percent is not None else []
        rule = parts[0] if len(parts) == 1 else f"{select.lower()}({', '.join(parts)})"
        return f"{rule} per {getattr(p, f'scale_{direction}_period_s'):g} s"

    def _record_event(self, now: float, current: int, target: int) -> None:
        """storeScaleEvent, pruned to the longest policy period."""
        if target > current:
            self.up_events_.append((now, target - current))
        elif target < current:
            self.down_events_.append((now, current - target))
        cutoff = now - max(self.params.scale_up_period_s, self.params.scale_down_period_s)
        self.up_events_ = [e for e in self.up_events_ if e[0] > cutoff]
        self.down_events_ = [e for e in self.down_events_ if e[0] > cutoff]
