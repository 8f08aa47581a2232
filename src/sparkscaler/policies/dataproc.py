"""Google Cloud Dataproc's basic autoscaling algorithm, moved from YARN to Spark standalone.

Sources: the Dataproc guide "Autoscale Dataproc clusters"
(https://cloud.google.com/dataproc/docs/concepts/configuring-clusters/autoscaling), section "How
autoscaling works", and the REST reference of ``projects.locations.autoscalingPolicies``
(``BasicAutoscalingAlgorithm``, ``BasicYarnAutoscalingConfig``):

- ``cooldownPeriod``: "Duration between scaling events. A scaling period starts after the update
  operation from the previous event has completed." Bounds [2m, 1d], default 2m.
- ``scaleUpFactor`` (required, [0.0, 1.0]): the fraction of the average pending memory over the
  last cooldown period for which to add workers; 1.0 scales up until no memory is pending.
- ``scaleDownFactor`` (required, [0.0, 1.0]): the same for removing workers; 1.0 scales down until
  no memory is left available, 0 never removes a worker.
- ``scaleUpMinWorkerFraction`` / ``scaleDownMinWorkerFraction`` ([0.0, 1.0], default 0.0): the
  smallest change, as a fraction of the cluster's size, worth making ("in a 20-worker cluster, a
  threshold of 0.1 means the autoscaler must recommend at least a 2-worker scale-up").

The rule, as "How autoscaling works" gives it::

    exact Δworkers = avg(pending memory - available memory) / memory per worker
    Δworkers = ROUND_UP(exact Δworkers x scaleUpFactor)      if exact Δworkers > 0
             = ROUND_DOWN(exact Δworkers x scaleDownFactor)  otherwise (towards zero)
    scale up   if Δworkers >= scaleUpMinWorkerFraction x cluster size
    scale down if |Δworkers| >= scaleDownMinWorkerFraction x cluster size

with the averages taken over the last cooldown period. The factors are required in Dataproc (no
default); here both default to 1.0, the plain rule that aims at no pending and no idle memory.
The graceful-decommission timeout is the guard's, not the policy's.

From YARN to Spark standalone. YARN's pending memory is the memory asked for by containers it
cannot place yet; its available memory is the memory of healthy NodeManagers that no container
holds. In a standalone cluster an executor keeps its cores for the application's whole life, so
the allocation says nothing; what waits and what is free are task slots. With one slot per core
and every worker the same, one slot is worth ``worker memory / worker cores``:

- pending memory   = pending tasks x memory per slot;
- available memory = free slots x memory per slot, free slots = ``cores_total - running tasks``
  on the ALIVE workers (PROVISIONING workers offer nothing yet, as a booting NodeManager offers
  YARN nothing);
- memory per worker = worker memory, so exact Δworkers = avg(pending tasks - free slots) /
  slots per worker: the memory cancels, and the rule is exact in slots. The reason still reports
  megabytes, as Dataproc would. With no worker ALIVE, a worker's slots come from
  ``cores_per_worker`` (else 1), so pending work still starts a cluster.

This is close to what Dataproc itself later added for standalone clusters (a
``sparkStandaloneConfig`` whose factors are fractions of the executors still required).

Memory the policy keeps, as Dataproc does: the samples of the last cooldown period (for the
averages), its last recommendation, and when the last change happened. Within
``cooldown_period_s`` of its last change it holds its recommendation; the period starts when the
update completed, so while workers are still PROVISIONING after a change the clock is not yet
running. Between changes it re-evaluates on every observation (Dataproc itself evaluates once per
period). The result is clipped to ``[min_workers, max_workers]``. A stale observation holds.
Its cooldown period and averages are the pacing it brings (``own_rules``): behind sparkscaler's
guard only the bounds are added.
"""

from __future__ import annotations

import math
from collections import deque

from pydantic import Field

from sparkscaler.core import Decision, Observation
from sparkscaler.policies.base import GUARD_RULES, Policy, PolicyParams
from sparkscaler.units import Duration


class DataprocParams(PolicyParams):
    scale_up_factor: float = Field(1.0, ge=0, le=1)
    scale_down_factor: float = Field(1.0, ge=0, le=1)
    scale_up_min_worker_fraction: float = Field(0.0, ge=0, le=1)
    scale_down_min_worker_fraction: float = Field(0.0, ge=0, le=1)
    cooldown_period_s: Duration = Field(
        120.0, ge=120, le=86400, description="Dataproc cooldownPeriod: bounds [2m, 1d]"
    )
    cores_per_worker: int | None = Field(
        None, ge=1, description="task slots of a worker when none is ALIVE to report them"
    )


class DataprocPolicy(Policy):
    name = "dataproc"
    Params = DataprocParams
    own_rules = GUARD_RULES

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.samples_: deque[tuple[float, int, int]] = deque()  # (time, pending, free slots)
        self.target_: int | None = None
        self.cooldown_from_: float | None = None

    def decide(self, observation: Observation) -> Decision:
        p, obs, c = self.params, observation, observation.cluster
        previous = obs.workers if self.target_ is None else self.target_
        if obs.stale:
            return self._decision(previous, f"stale observation: holding {previous} worker(s)")

        if self.cooldown_from_ is not None and c.provisioning_workers:
            # the update is still running: the cooldown starts once it has completed
            self.cooldown_from_ = max(self.cooldown_from_, obs.time)
        free = max(0, c.cores_total - obs.running_tasks)
        self.samples_.append((obs.time, obs.pending_tasks, free))
        cutoff = obs.time - p.cooldown_period_s
        while self.samples_ and self.samples_[0][0] <= cutoff:
            self.samples_.popleft()

        if self.cooldown_from_ is not None:
            since = obs.time - self.cooldown_from_
            if since < p.cooldown_period_s:
                held = self._clip(previous, obs)
                what = (
                    f"{c.provisioning_workers} worker(s) still provisioning"
                    if c.provisioning_workers
                    else f"last change {since:.0f} s ago"
                )
                return self._finish(
                    held,
                    previous,
                    obs,
                    f"cooldown ({what}, < {p.cooldown_period_s:g} s): holding {held}",
                )

        target, reason = self._evaluate(obs)
        return self._finish(target, previous, obs, reason)

    def _finish(self, target: int, previous: int, obs: Observation, reason: str) -> Decision:
        if target != previous:
            self.cooldown_from_ = obs.time
        self.target_ = target
        return self._decision(target, reason)

    def _clip(self, n: int, obs: Observation) -> int:
        n = max(n, obs.min_workers)
        return n if obs.max_workers is None else min(n, obs.max_workers)

    def _evaluate(self, obs: Observation) -> tuple[int, str]:
        p, c = self.params, obs.cluster
        current = obs.workers
        if c.alive_workers:
            slots_per_worker = c.cores_total / c.alive_workers
            mb_per_slot: float | None = c.memory_total_mb / max(c.cores_total, 1)
        else:
            slots_per_worker = float(self.params.cores_per_worker or c.cores_per_worker or 1)
            mb_per_slot = None
        n = len(self.samples_)
        pending = sum(s[1] for s in self.samples_) / n
        free = sum(s[2] for s in self.samples_) / n
        exact = (pending - free) / max(slots_per_worker, 1e-9)

        if mb_per_slot is not None:
            head = (
                f"pending {pending:g} task(s) x {mb_per_slot:.0f} MB = "
                f"{pending * mb_per_slot:.0f} MB, available {free:g} slot(s) = "
                f"{free * mb_per_slot:.0f} MB"
            )
            per_worker = f"{slots_per_worker * mb_per_slot:.0f} MB"
        else:
            head = f"pending {pending:g} task(s), no ALIVE worker"
            per_worker = f"{slots_per_worker:g} slot(s)"
        head += f" (mean of {n} sample(s) over {p.cooldown_period_s:g} s)"
        head += f": exact delta {exact:+.2f} worker(s) of {per_worker}"

        if exact > 0:
            step = math.ceil(exact * p.scale_up_factor - 1e-9)
            need = p.scale_up_min_worker_fraction * current
            how = f"ROUND_UP({exact:.2f} x {p.scale_up_factor:g}) = +{step}"
            if step <= 0 or step < need:
                return self._clip(current, obs), (
                    f"{head}; {how}, below {need:g} ({p.scale_up_min_worker_fraction:g} x "
                    f"{current}): keep {current}"
                )
            target = self._clip(current + step, obs)
        elif exact < 0:
            step = math.floor(-exact * p.scale_down_factor + 1e-9)
            need = p.scale_down_min_worker_fraction * current
            how = f"ROUND_DOWN({exact:.2f} x {p.scale_down_factor:g}) = -{step}"
            if step <= 0 or step < need:
                return self._clip(current, obs), (
                    f"{head}; {how}, below {need:g} ({p.scale_down_min_worker_fraction:g} x "
                    f"{current}): keep {current}"
                )
            target = self._clip(current - step, obs)
        else:
            return self._clip(current, obs), f"{head}: keep {current}"
        wanted = current + step if exact > 0 else current - step
        clipped = f", clipped to [{obs.min_workers}, {obs.max_workers}]" if target != wanted else ""
        return target, f"{head}; {how} -> {target}{clipped}"
