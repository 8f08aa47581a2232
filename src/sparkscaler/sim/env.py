"""Gymnasium environment ``sparkscaler/SparkCluster-v0``: scale a simulated Spark cluster.

One step is one control interval: the agent picks an action, the simulator runs for
``interval_s``, and the agent sees the cluster and is rewarded. An episode is one workload: by
default the OLA 2019 paper's setting, one job of a random input size that must finish within T;
or a window of arrivals for continuous load.

Observation (float32, all scaled to about [-1, 1]), computed by :func:`observation_vector` from
the :class:`~sparkscaler.core.Observation` that :class:`~sparkscaler.backends.simulated.SimObserver`
makes of the simulator, so that a policy trained here maps a live observation the same way:
``cu cs mt ma bi bo`` (the paper's six features, /100), workers / N, provisioning / N,
backlog (pending tasks per slot of N workers, clipped at 1), deadline slack (T - t) / T clipped
to [-1, 1] (0 with no job), sin and cos of the hour of day, weekday / 6. The calendar is the
observation's local time (as :func:`sparkscaler.core.time_features`); the simulator's
``start_epoch`` is a Monday 00:00 UTC, so on a UTC machine simulated time 0 is Monday midnight.

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

import datetime as dt
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sparkscaler.backends.simulated import SimObserver
from sparkscaler.core import Observation, choose_victims
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
#: The bounds of each feature in :data:`OBS_NAMES` order (the env's observation space).
OBS_LOW = np.array([0.0] * 9 + [-1.0, -1.0, -1.0, 0.0], dtype=np.float32)
OBS_HIGH = np.ones(len(OBS_NAMES), dtype=np.float32)
#: How each feature is scaled, for the metadata saved beside a trained model.
OBS_SCALING = {
    "cu": "percent / 100",
    "cs": "percent / 100",
    "mt": "percent / 100",
    "ma": "percent / 100",
    "bi": "percent / 100",
    "bo": "percent / 100",
    "workers": "ALIVE workers / max_workers",
    "provisioning": "PROVISIONING workers / max_workers",
    "backlog": "pending tasks / (max_workers * cores_per_worker), clipped to [0, 1]",
    "slack": "(deadline_s - oldest_job_elapsed_s) / deadline_s, clipped to [-1, 1]; 0 if unknown",
    "hour_sin": "sin(2 pi h / 24), h = local hour of day with fraction",
    "hour_cos": "cos(2 pi h / 24)",
    "weekday": "local weekday (0 = Monday) / 6",
}


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines the environment; saved with a trained model."""

    max_workers: int = 5
    min_workers: int = 1
    initial_workers: int = 1
    cores_per_worker: int = 1
    interval_s: float = 30.0
    deadline_s: float = 300.0
    #: When given, each episode draws its deadline T from these (one policy for several T).
    deadline_choices_s: tuple[float, ...] = ()
    #: When given, each job's T is this factor times its run alone on N workers (as the trace
    #: evaluation sets deadlines) instead of ``deadline_s``.
    deadline_factor: float | None = None
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


def config_to_dict(config: EnvConfig) -> dict[str, Any]:
    """The config as JSON-ready values; ``jobs`` becomes ``{"type": ..., **its fields}``."""
    data = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "jobs"}
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
    jobs = config.jobs
    described: dict[str, Any] = {"type": type(jobs).__name__}
    if isinstance(jobs, SyntheticJobs):
        described |= {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(jobs).items()}
    elif is_dataclass(jobs):
        described["repr"] = repr(jobs)[:500]
    data["jobs"] = described
    return data


def config_from_dict(data: dict[str, Any], jobs: JobSource | None = None) -> EnvConfig:
    """Rebuild a config written by :func:`config_to_dict`. Only :class:`SyntheticJobs` can be
    rebuilt from its description; pass ``jobs`` for any other source (or when the jobs do not
    matter, as to a policy that only maps observations)."""
    values = {k: v for k, v in data.items() if k != "jobs"}
    for name in ("executor_startup_s", "provisioning", "deadline_choices_s"):
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    if jobs is None:
        described = dict(data.get("jobs") or {"type": "SyntheticJobs"})
        if described.pop("type") != "SyntheticJobs":
            raise ValueError(f"cannot rebuild the job source {data['jobs']!r}: pass jobs=")
        jobs = SyntheticJobs(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in described.items()}
        )
    return EnvConfig(**values, jobs=jobs)


def deadline_slack(obs: Observation) -> float:
    """(T - t) / T of the oldest running job, clipped to [-1, 1]; 0 without a job or deadline."""
    if not obs.deadline_s or obs.oldest_job_elapsed_s is None:
        return 0.0
    return float(np.clip((obs.deadline_s - obs.oldest_job_elapsed_s) / obs.deadline_s, -1.0, 1.0))


def observation_vector(obs: Observation, config: EnvConfig) -> np.ndarray:
    """The env's observation (float32, :data:`OBS_NAMES` order) of one :class:`Observation`.

    The one mapping from what a policy sees to what the network sees: the env calls it on the
    simulator's :class:`SimObserver` observation, a trained policy on the live one. N, the
    cores per worker for the backlog, come from ``config`` (the env the model was trained in).
    """
    c = obs.cluster
    t = dt.datetime.fromtimestamp(obs.time)
    hour = t.hour + t.minute / 60.0 + (t.second + t.microsecond / 1e6) / 3600.0
    backlog = obs.pending_tasks / (config.max_workers * config.cores_per_worker)
    values = [
        *(f / 100.0 for f in obs.features.as_tuple()),
        c.alive_workers / config.max_workers,
        c.provisioning_workers / config.max_workers,
        min(1.0, backlog),
        deadline_slack(obs),
        math.sin(2 * math.pi * hour / 24.0),
        math.cos(2 * math.pi * hour / 24.0),
        t.weekday() / 6.0,
    ]
    return np.clip(np.asarray(values, dtype=np.float32), OBS_LOW, OBS_HIGH)


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
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.sim: SimCluster | None = None
        self.observer: SimObserver | None = None
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
        deadline = float(rng.choice(c.deadline_choices_s)) if c.deadline_choices_s else c.deadline_s
        if c.deadline_factor is not None:
            slots = c.max_workers * c.cores_per_worker
            jobs = make_workload(
                arrivals, c.jobs, rng, deadline_factor=c.deadline_factor, slots=slots
            )
        else:
            jobs = make_workload(arrivals, c.jobs, rng, deadline_s=deadline)
        self.sim = SimCluster(
            jobs,
            cores_per_worker=c.cores_per_worker,
            initial_workers=c.initial_workers,
            provisioning=c.provisioning,
            executor_startup_s=c.executor_startup_s,
            seed=int(rng.integers(2**31)),
        )
        self.observer = SimObserver(self.sim)
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
        obs = self.observe()
        reward = self._reward(obs, current, target - current, new_misses)
        terminated = sim.idle
        truncated = not terminated and sim.now >= c.max_episode_s
        return observation_vector(obs, c), reward, terminated, truncated, self._info()

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
        new = sim.missed_jobs() - self._missed
        self._missed |= new
        return len(new)

    def _reward(self, obs: Observation, workers_before: int, delta: int, new_misses: int) -> float:
        c = self.config
        if c.reward == "paper":
            node = 1.0 - 2.0 * (workers_before + delta - 1) / (c.max_workers - 1)
            resources = [f / 100.0 for f in obs.features.as_tuple()]
            return float(np.mean([node, *resources, deadline_slack(obs)]))
        state = obs.cluster
        paying = state.alive_workers + state.provisioning_workers + state.decommissioning_workers
        cost = paying / c.max_workers * c.interval_s / 3600.0 * c.cost_weight
        return float(-cost - c.miss_penalty * new_misses)

    def observe(self) -> Observation:
        """The simulator's :class:`Observation`, as a policy running on it would see it."""
        assert self.observer is not None
        return self.observer.observe()

    def _observation(self) -> np.ndarray:
        return observation_vector(self.observe(), self.config)

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
