"""Spark dynamic allocation's rule, applied to standalone workers instead of executors.

Source: Spark's ``ExecutorAllocationManager`` and the "Dynamic Resource Allocation" section of
the job-scheduling guide. The rule, with one executor per worker:

- workers needed = ceil((running + pending tasks) x allocation ratio / task slots per worker);
- scale out when tasks have been pending for ``backlog_timeout_s``
  (``spark.dynamicAllocation.schedulerBacklogTimeout``, 1 s), then again every
  ``sustained_backlog_timeout_s`` (``...sustainedSchedulerBacklogTimeout``, 1 s) while the backlog
  lasts, adding 1, 2, 4, ... workers per round (the ramp doubles only when the full increase
  fit under the need and the maximum, else it restarts at 1), never above either;
- scale in only by removing workers that have been idle for ``idle_timeout_s``
  (``spark.dynamicAllocation.executorIdleTimeout``, 60 s), never below the need.

Its timeouts are all the pacing Spark applies, so they are the guard rules it brings
(``own_rules``): behind sparkscaler's guard only the bounds are added.
"""

from __future__ import annotations

import math

from pydantic import Field

from sparkscaler.core import Decision, Observation
from sparkscaler.policies.base import GUARD_RULES, Policy, PolicyParams
from sparkscaler.units import Duration


class DraParams(PolicyParams):
    backlog_timeout_s: Duration = Field(1.0, ge=0)
    sustained_backlog_timeout_s: Duration = Field(1.0, ge=0)
    idle_timeout_s: Duration = Field(60.0, ge=0)
    allocation_ratio: float = Field(1.0, gt=0, le=1)
    cores_per_worker: int | None = Field(
        None, ge=1, description="task slots per worker; default: what the workers report"
    )
    task_cpus: int = Field(1, ge=1, description="spark.task.cpus")


class DynamicAllocationPolicy(Policy):
    name = "dra"
    Params = DraParams
    own_rules = GUARD_RULES

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.to_add_ = 1
        self.next_add_time_: float | None = None

    def _slots_per_worker(self, obs: Observation) -> int:
        cores = self.params.cores_per_worker or obs.cluster.cores_per_worker or 1
        return max(1, int(cores) // self.params.task_cpus)

    def decide(self, observation: Observation) -> Decision:
        p, obs = self.params, observation
        current = obs.workers
        tasks = obs.running_tasks + obs.pending_tasks
        needed = math.ceil(tasks * p.allocation_ratio / self._slots_per_worker(obs))

        if obs.pending_tasks == 0:
            self.to_add_, self.next_add_time_ = 1, None
        elif obs.backlog_age_s >= p.backlog_timeout_s:
            if self.next_add_time_ is None or obs.time >= self.next_add_time_:
                return self._ramp(obs, current, needed)
            return self._decision(current, f"{obs.pending_tasks} tasks pending; next round soon")
        else:
            return self._decision(
                current,
                f"{obs.pending_tasks} tasks pending for {obs.backlog_age_s:.1f} s, "
                f"below the {p.backlog_timeout_s:g} s backlog timeout",
            )

        idle = [w for w in obs.cluster.alive if not w.busy and w.idle_s >= p.idle_timeout_s]
        removable = max(0, min(len(idle), current - needed))
        if removable:
            return self._decision(
                current - removable,
                f"{removable} worker(s) idle for over {p.idle_timeout_s:g} s; {needed} needed "
                f"for {tasks} running task(s)",
            )
        return self._decision(current, f"no backlog; {tasks} running task(s) need {needed}")

    def _ramp(self, obs: Observation, current: int, needed: int) -> Decision:
        ceiling = needed if obs.max_workers is None else min(needed, obs.max_workers)
        target = max(current, min(current + self.to_add_, ceiling))
        added = target - current
        ramp = self.to_add_
        self.to_add_ = ramp * 2 if added == ramp else 1
        self.next_add_time_ = obs.time + self.params.sustained_backlog_timeout_s
        return self._decision(
            target,
            f"{obs.pending_tasks} tasks pending for {obs.backlog_age_s:.0f} s: "
            f"+{added} (ramp step {ramp}, {needed} needed)",
        )
