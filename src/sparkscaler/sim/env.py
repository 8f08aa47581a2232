"""Gymnasium environment ``sparkscaler/SparkCluster-v0``: scale a simulated Spark cluster.

One step is one control interval: the agent picks an action, the simulator runs for
``interval_s``, and the agent sees the cluster and is rewarded. An episode is one workload: by
default the OLA 2019 paper's setting, one job of a random input size that must finish within T;
or a window of arrivals for continuous load.

Observation (float32, all scaled to about [-1, 1]):
``cu cs mt ma bi bo`` (the paper's six features, /100), workers / N, provisioning / N,
backlog (pending tasks per slot of N workers, clipped at 1), deadline slack (T - t) / T clipped
to [-1, 1] (0 with no job), sin and cos of the hour of day, weekday / 6.

Actions, in the paper's order: 0 = do nothing; 1 .. N-1 = scale out by 1 .. N-1;
N .. 2N-2 = scale in by 1 .. N-1. A move past the bounds is clipped to them.

Rewards:

- ``paper`` (OLA 2019, our reading). The mean of eight terms, each in [-1, 1]:
  the node term ``1 - 2 (x + y - 1) / (N - 1)`` with x the workers before the action and y its
  signed size (1 with one worker, -1 with N); the six resource features as utilisations
  ``f / 100`` (busy resources are rewarded); and the deadline slack ``(T - t) / T`` of the
  oldest running job, clipped to [-1, 1]. The published code returned ``done = True`` on every
  step, which makes every step its own episode and leaves Q-learning nothing to bootstrap from;
  here an episode ends only when its jobs are done (terminated) or at ``max_episode_s``
  (truncated).
- ``cost-sla``: ``-(workers / N) * interval / 3600 * cost_weight`` for the worker-time paid this
  step, minus ``miss_penalty`` for each job that passed its deadline this step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sparkscaler.controller import choose_victims
from sparkscaler.sim.arrivals import Arrivals, poisson
from sparkscaler.sim.cluster import LOCAL_EXECUTOR_STARTUP_S, SimCluster
from sparkscaler.sim.workload import JobSource, SyntheticJobs, make_workload

ENV_ID = "sparkscaler/SparkCluster-v0"
OBS_NAMES = (
    "cu",
    "cs",
    "mt",
    "ma",
    "bi",
    "bo",
    "workers",
    "provisioning",
    "backlog",
    "slack",
    "hour_sin",
    "hour_cos",
    "weekday",
)


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines the environment; saved with a trained model."""

    max_workers: int = 5
    min_workers: int = 1
    initial_workers: int = 1
    cores_per_worker: int = 1
    interval_s: float = 30.0
    deadline_s: float = 300.0
    reward: Literal["paper", "cost-sla"] = "paper"
    provisioning: tuple[float, float] | str = "local"
    executor_startup_s: tuple[float, float] = LOCAL_EXECUTOR_STARTUP_S
    decommission_timeout_s: float = 60.0
    jobs_per_episode: int = 1
    arrival_rate_per_hour: float = 0.0
    max_episode_s: float = 3600.0
    cost_weight: float = 1.0
    miss_penalty: float = 10.0
    jobs: JobSource = field(default_factory=SyntheticJobs)

    def __post_init__(self) -> None:
        if self.max_workers < 2:
            raise ValueError("max_workers must be at least 2 (one action out, one in)")
        if not 0 <= self.min_workers <= self.initial_workers <= self.max_workers:
            raise ValueError("need 0 <= min_workers <= initial_workers <= max_workers")
        if self.reward not in ("paper", "cost-sla"):
            raise ValueError(f"reward must be 'paper' or 'cost-sla', not {self.reward!r}")

    @property
    def n_actions(self) -> int:
        return 2 * (self.max_workers - 1) + 1


def action_delta(action: int, max_workers: int) -> int:
    """The signed change in workers an action asks for (paper order: none, out…, in…)."""
    if action == 0:
        return 0
    if action < max_workers:
        return action
    return -(action - (max_workers - 1))


def delta_action(delta: int, max_workers: int) -> int:
    """The action that asks for ``delta`` workers (the inverse of :func:`action_delta`)."""
    if delta == 0:
        return 0
    return delta if delta > 0 else max_workers - 1 - delta


class SparkClusterEnv(gym.Env[np.ndarray, np.int64]):
    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012

    def __init__(
        self, config: EnvConfig | None = None, render_mode: str | None = None, **kw: Any
    ) -> None:
        self.config = replace(config or EnvConfig(), **kw)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.config.n_actions)
        low = np.array([0] * 9 + [-1, -1, -1, 0], dtype=np.float32)
        high = np.ones(len(OBS_NAMES), dtype=np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.sim: SimCluster | None = None
        self._missed: set[int] = set()

    # ------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        c = self.config
        rng = self.np_random
        if c.arrival_rate_per_hour > 0:
            arrivals = poisson(c.arrival_rate_per_hour, c.max_episode_s, rng)
        else:
            arrivals = Arrivals(np.zeros(c.jobs_per_episode), np.ones(c.jobs_per_episode))
        jobs = make_workload(arrivals, c.jobs, rng, deadline_s=c.deadline_s)
        self.sim = SimCluster(
            jobs,
            cores_per_worker=c.cores_per_worker,
            initial_workers=c.initial_workers,
            provisioning=c.provisioning,
            executor_startup_s=c.executor_startup_s,
            seed=int(rng.integers(2**31)),
        )
        self._missed = set()
        self.sim.run_until(0.0)
        return self._observation(), self._info()

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        c, sim = self.config, self.sim
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        state = sim.cluster_state()
        current = state.alive_workers + state.provisioning_workers
        target = min(
            max(current + action_delta(int(action), c.max_workers), c.min_workers), c.max_workers
        )
        if target > current:
            sim.launch(target - current)
        elif target < current:
            sim.decommission(choose_victims(state, current - target), c.decommission_timeout_s)
        sim.run_until(sim.now + c.interval_s)

        new_misses = self._count_new_misses()
        reward = self._reward(current, target - current, new_misses)
        terminated = sim.idle
        truncated = not terminated and sim.now >= c.max_episode_s
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.sim is None:
            return None
        obs = dict(zip(OBS_NAMES, self._observation(), strict=True))
        return " ".join(f"{k}={v:.2f}" for k, v in obs.items())

    # ------------------------------------------------------------------ internals
    def _count_new_misses(self) -> int:
        """Jobs that passed their deadline since the last step (finished late or still running)."""
        sim = self.sim
        assert sim is not None
        late = {r.id for r in sim.results if r.missed}
        for job_id in sim.active:
            job = sim.jobs[job_id]
            if job.spec.deadline_s is not None and sim.now - job.spec.arrival > job.spec.deadline_s:
                late.add(job_id)
        new = late - self._missed
        self._missed |= new
        return len(new)

    def _slack(self) -> float:
        sim = self.sim
        assert sim is not None
        oldest = sim.oldest_job()
        if oldest is None or not oldest.spec.deadline_s:
            return 0.0
        t = sim.now - oldest.spec.arrival
        return float(np.clip((oldest.spec.deadline_s - t) / oldest.spec.deadline_s, -1.0, 1.0))

    def _reward(self, workers_before: int, delta: int, new_misses: int) -> float:
        c, sim = self.config, self.sim
        assert sim is not None
        if c.reward == "paper":
            node = 1.0 - 2.0 * (workers_before + delta - 1) / (c.max_workers - 1)
            resources = [f / 100.0 for f in sim.features().as_tuple()]
            return float(np.mean([node, *resources, self._slack()]))
        state = sim.cluster_state()
        paying = state.alive_workers + state.provisioning_workers + state.decommissioning_workers
        cost = paying / c.max_workers * c.interval_s / 3600.0 * c.cost_weight
        return float(-cost - c.miss_penalty * new_misses)

    def _observation(self) -> np.ndarray:
        c, sim = self.config, self.sim
        assert sim is not None
        state = sim.cluster_state()
        hour = (sim.now / 3600.0) % 24.0
        weekday = (sim.now // 86400.0) % 7
        backlog = sim.pending_tasks / (c.max_workers * c.cores_per_worker)
        values = [
            *(f / 100.0 for f in sim.features().as_tuple()),
            state.alive_workers / c.max_workers,
            state.provisioning_workers / c.max_workers,
            min(1.0, backlog),
            self._slack(),
            math.sin(2 * math.pi * hour / 24.0),
            math.cos(2 * math.pi * hour / 24.0),
            weekday / 6.0,
        ]
        return np.clip(
            np.asarray(values, dtype=np.float32),
            self.observation_space.low,
            self.observation_space.high,
        )

    def _info(self) -> dict[str, Any]:
        sim = self.sim
        assert sim is not None
        return {
            "time_s": sim.now,
            "workers": sim.cluster_state().alive_workers,
            "pending_tasks": sim.pending_tasks,
            "jobs_done": len(sim.results),
            "misses": len(self._missed),
            "worker_seconds": sim.worker_seconds(),
        }


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="sparkscaler.sim.env:SparkClusterEnv")
