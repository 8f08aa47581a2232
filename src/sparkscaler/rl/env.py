"""Gymnasium environment ``sparkscaler/SparkCluster-v0``: scale a simulated Spark cluster.

One step is one step of the controller with the agent as its policy: the loop that
:func:`sparkscaler.wiring.simulated_loop` builds observes the simulator, the agent's action
becomes a :class:`~sparkscaler.core.Decision`, the guard bounds it, cools it down and stabilises
it exactly as it will when the trained policy runs (``EnvConfig``'s cooldowns and stabilisation
window are the config's ``scaling`` rules), the backend acts, and the simulator runs for
``interval_s``. An episode is one workload: by default the OLA 2019 paper's setting, one job of
a random input size that must finish within T; or a window of arrivals for continuous load.

Observation: the vector of :mod:`sparkscaler.policies.encoding` (the mapping a trained policy
applies to a live observation) of the loop's own observation of the simulator. Its job fields
project the running job with a :class:`~sparkscaler.models.job_knowledge.JobKnowledge` whose
prior is the job source's runtime model where it has one (a ``model`` that is a
:class:`~sparkscaler.models.runtime_model.RuntimeModel`, as :class:`~sparkscaler.sim.workload.
ModelJobs` has): the model a loop in the simulator gives its policy, so a trained DQN sees in
evaluation the fields it trained on. Without one they are 0. The knowledge does not learn from
one episode to the next: a seeded reset gives the same episode whatever ran before. The
simulator's ``start_epoch`` is a Monday 00:00 UTC, so on a UTC machine simulated time 0 is
Monday midnight.

Actions, in the paper's order: 0 = do nothing; 1 .. N-1 = scale out by 1 .. N-1;
N .. 2N-2 = scale in by 1 .. N-1. A move past the bounds is clipped to them; a move the guard
holds (a cooldown) or shortens (stabilisation) is what happens, and what is rewarded. With
``action_base="planner"`` (a residual agent) the move is made to the target of a planner that
plans with the job source's runtime model and the loop's provisioning delay, as the planner in
a simulated loop does, rather than to the current size: action 0 is the planner's decision, and
the ``plan`` field of the observation is that target.

Rewards:

- ``paper`` (OLA 2019, our reading). The mean of eight terms, each in [-1, 1]:
  the node term ``1 - 2 (x + y - 1) / (N - 1)`` with x the workers before the action and y the
  signed change made (1 with one worker, -1 with N); the six resource features as utilisations
  ``f / 100`` (busy resources are rewarded); and the deadline slack ``(T - t) / T`` of the
  oldest running job, clipped to [-1, 1]. The published code returned ``done = True`` on every
  step, which makes every step its own episode and leaves Q-learning nothing to bootstrap from;
  here an episode ends only when its jobs are done (terminated) or at ``max_episode_s``
  (truncated).
  Every term is rewarded every step, and most are positive while a job runs, so the return
  grows with the episode's length: on paper-grid (N = 5, T = 5 min) a round held at one worker
  returns about 11 and misses T, one taken to N at once about 2 and meets it (docs/dqn.md).
- ``paper-cost``: the same eight terms as a cost, ``mean - 1`` (in [-2, 0]): no step pays, so a
  longer episode never returns more, and a round that drags on past T costs more the longer it
  drags. The closest variant of ``paper`` that an agent can learn the paper's behaviour from.
- ``cost-sla``: ``-(workers / N) * interval / 3600 * cost_weight`` for the worker-time paid this
  step, minus ``miss_penalty`` for each job that passed its deadline this step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, Self

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sparkscaler.backends.simulated import SimObserver
from sparkscaler.config import ClusterSettings, Config, ScalingSettings, SimulationSettings
from sparkscaler.controller import Controller
from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.models.job_knowledge import JobKnowledge
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies.base import Policy
from sparkscaler.policies.encoding import (
    OBS_HIGH,
    OBS_LOW,
    OBS_NAMES,
    Encoding,
    action_target,
    deadline_slack,
    observation_vector,
)
from sparkscaler.policies.planner import PlannerPolicy
from sparkscaler.sim.arrivals import Arrivals, poisson
from sparkscaler.sim.cluster import LOCAL_EXECUTOR_STARTUP_S, SimCluster
from sparkscaler.sim.workload import JobSource, SyntheticJobs, make_workload
from sparkscaler.store import Store
from sparkscaler.wiring import make_sim, simulated_loop, simulated_provisioning_s

ENV_ID = "sparkscaler/SparkCluster-v0"
REWARDS = ("paper", "paper-cost", "cost-sla")
ACTION_BASES = ("current", "planner")
#: The guard's rules where no config gives them: the config's own defaults.
_SCALING = ScalingSettings()


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines the environment; saved with a trained model."""

    max_workers: int = 5
    min_workers: int = 1
    initial_workers: int = 1
    cores_per_worker: int = 1
    interval_s: float = 30.0
    #: The guard's rules (the config's ``scaling``) that the agent acts behind.
    scale_out_cooldown_s: float = _SCALING.scale_out_cooldown_s
    scale_in_cooldown_s: float = _SCALING.scale_in_cooldown_s
    scale_in_stabilization_s: float = _SCALING.scale_in_stabilization_s
    deadline_s: float = 300.0
    #: When given, each episode draws its deadline T from these (one policy for several T).
    deadline_choices_s: tuple[float, ...] = ()
    #: When given, each job's T is this factor times its run alone on N workers (as the trace
    #: evaluation sets deadlines) instead of ``deadline_s``.
    deadline_factor: float | None = None
    reward: Literal["paper", "paper-cost", "cost-sla"] = "paper"
    provisioning: tuple[float, float] | str = "local"
    executor_startup_s: tuple[float, float] = LOCAL_EXECUTOR_STARTUP_S
    decommission_timeout_s: float = 60.0
    jobs_per_episode: int = 1
    arrival_rate_per_hour: float = 0.0
    max_episode_s: float = 3600.0
    #: The ``cost-sla`` weight of worker-time; None: the variant's (``VARIANT_COST_WEIGHT`` in
    #: :mod:`sparkscaler.rl.training`), else 1.
    cost_weight: float | None = None
    miss_penalty: float = 10.0
    #: What an action's change is made to: the current size, or a planner's target (residual).
    action_base: Literal["current", "planner"] = "current"
    jobs: JobSource = field(default_factory=SyntheticJobs)

    def __post_init__(self) -> None:
        if self.max_workers < 2:
            raise ValueError("max_workers must be at least 2 (one action out, one in)")
        if not 0 <= self.min_workers <= self.initial_workers <= self.max_workers:
            raise ValueError("need 0 <= min_workers <= initial_workers <= max_workers")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, not {self.reward!r}")
        if self.action_base not in ACTION_BASES:
            raise ValueError(
                f"action_base must be one of {', '.join(ACTION_BASES)}, not {self.action_base!r}"
            )

    @property
    def encoding(self) -> Encoding:
        """How observations and actions of this cluster map to numbers."""
        return Encoding(self.max_workers, self.min_workers, self.cores_per_worker)

    @property
    def n_actions(self) -> int:
        return self.encoding.n_actions

    @classmethod
    def from_config(cls, config: Config, **settings: Any) -> EnvConfig:
        """The env of the cluster a config describes (its bounds, pacing and guard rules, its
        workers' cores, the simulator's delays); ``settings`` give the rest, or override."""
        s, sim = config.scaling, config.simulation
        values: dict[str, Any] = {
            "max_workers": s.max_workers,
            "min_workers": s.min_workers,
            "initial_workers": sim.initial_workers,
            "cores_per_worker": config.cluster.worker_cores,
            "interval_s": s.interval_s,
            "scale_out_cooldown_s": s.scale_out_cooldown_s,
            "scale_in_cooldown_s": s.scale_in_cooldown_s,
            "scale_in_stabilization_s": s.scale_in_stabilization_s,
            "provisioning": sim.provisioning,
            "executor_startup_s": sim.executor_startup_s,
            "decommission_timeout_s": s.decommission_timeout_s,
        }
        if config.deadline_s is not None:
            values["deadline_s"] = config.deadline_s
        return cls(**{**values, **settings})

    def loop_config(self) -> Config:
        """The config of the loop the env steps: a config with these ``scaling`` rules runs
        the trained policy behind the same guard."""
        return Config(
            cluster=ClusterSettings(worker_cores=self.cores_per_worker),
            scaling=ScalingSettings(
                min_workers=self.min_workers,
                max_workers=self.max_workers,
                interval_s=self.interval_s,
                scale_out_cooldown_s=self.scale_out_cooldown_s,
                scale_in_cooldown_s=self.scale_in_cooldown_s,
                scale_in_stabilization_s=self.scale_in_stabilization_s,
                decommission_timeout_s=self.decommission_timeout_s,
            ),
            simulation=SimulationSettings(
                provisioning=self.provisioning,
                executor_startup_s=self.executor_startup_s,
                initial_workers=self.initial_workers,
            ),
        )


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
    rebuilt from its description; pass ``jobs`` for any other source."""
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


def reward(
    config: EnvConfig, obs: Observation, workers_before: int, delta: int, new_misses: int
) -> float:
    """The config's reward (module docstring) of a step that ended in ``obs``: ``workers_before``
    the cluster's size when the action was taken, ``delta`` the change the guard let through,
    ``new_misses`` the jobs that passed their deadline during the step. A function of what an
    observation carries, so that a real cluster's history is rewarded as the env rewards."""
    c = config
    if c.reward in ("paper", "paper-cost"):
        node = 1.0 - 2.0 * (workers_before + delta - 1) / (c.max_workers - 1)
        resources = [f / 100.0 for f in obs.features.as_tuple()]
        terms = float(np.mean([node, *resources, deadline_slack(obs)]))
        return terms if c.reward == "paper" else terms - 1.0
    state = obs.cluster
    paying = state.alive_workers + state.provisioning_workers + state.decommissioning_workers
    weight = 1.0 if c.cost_weight is None else c.cost_weight
    cost = paying / c.max_workers * c.interval_s / 3600.0 * weight
    return float(-cost - c.miss_penalty * new_misses)


class PlanBase:
    """The planner a residual agent corrects, asked once per observation: the env asks it for
    the ``plan`` field of the state, and the loop's next step for the base of the action, both
    of the same observation."""

    def __init__(self, planner: PlannerPolicy) -> None:
        self.planner = planner
        self._last: tuple[Observation, Decision] | None = None

    def fit(self, history: Sequence[JobRecord]) -> None:
        """Learn the episode's finished jobs, as the planner in a simulated loop does (the env
        calls ``fit([])`` at each reset: a seeded reset gives the same episode)."""
        self.planner.fit(history)
        self._last = None

    def decide(self, observation: Observation) -> Decision:
        if self._last is None or self._last[0] is not observation:
            self._last = (observation, self.planner.decide(observation))
        return self._last[1]


class AgentPolicy(Policy):
    """The agent as the loop's policy: it asks for what the env's current action says, as a
    trained DQN does (:meth:`sparkscaler.policies.dqn.DqnPolicy.decide`); the guard does the
    rest."""

    name = "agent"

    def __init__(self, encoding: Encoding, base: PlanBase | None = None) -> None:
        super().__init__()
        self.encoding = encoding
        self.base = base
        self.action = 0

    def fit(self, history: Sequence[JobRecord]) -> Self:
        if self.base is not None:
            self.base.fit(history)
        return self

    def decide(self, observation: Observation) -> Decision:
        base = self.base.decide(observation).target if self.base is not None else None
        return self._decision(
            *action_target(self.action, observation.workers, self.encoding, base=base)
        )


class _SharedObservation:
    """The observer of the env's loop. The observation the env takes once the simulator has run
    (the agent's next state, and its reward) is the one the loop's next step decides on: the
    simulator does not move in between, so it is taken once, not twice."""

    def __init__(self, observer: SimObserver) -> None:
        self.observer = observer
        self._next: Observation | None = None

    def take(self) -> Observation:
        """Observe now, and keep it for the loop's next step."""
        self._next = self.observer.observe()
        return self._next

    def observe(self) -> Observation:
        taken, self._next = self._next, None
        return taken if taken is not None else self.observer.observe()

    def close(self) -> None:
        self.observer.close()


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
        self.loop: Controller | None = None
        self._observer: _SharedObservation | None = None
        self._loop_config = self.config.loop_config()
        self._missed: set[int] = set()
        model = getattr(self.config.jobs, "model", None)
        self.prior = model if isinstance(model, RuntimeModel) else None
        self.plan_base: PlanBase | None = None
        if self.config.action_base == "planner":
            planner = PlannerPolicy.for_loop(
                {},
                runtime_model=self.prior,
                provisioning_s=simulated_provisioning_s(self._loop_config),
            )
            self.plan_base = PlanBase(planner)
        self._agent = AgentPolicy(self.config.encoding, self.plan_base)
        self.knowledge = JobKnowledge(
            prior=self.prior, cores_per_worker=float(self.config.cores_per_worker)
        ).fit([])

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
        self.close()
        self.sim = make_sim(self._loop_config, jobs, seed=int(rng.integers(2**31)))
        # a fresh loop, and so a fresh guard, for every episode
        store = Store(Path(":memory:"), worker_detail=False)
        self._observer = _SharedObservation(SimObserver(self.sim))
        self.loop = simulated_loop(
            self._loop_config, self.sim, store, policy=self._agent, observer=self._observer
        )
        self._missed = set()
        if self.plan_base is not None:
            self.plan_base.fit([])
        self.sim.run_until(0.0)
        return self._vector(self._observer.take()), self._info()

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.sim is None or self.loop is None:
            raise RuntimeError("call reset() before step()")
        c, sim = self.config, self.sim
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        self._agent.action = int(action)
        outcome = self.loop.step().outcome
        self.loop.clock.sleep(c.interval_s)

        new_misses = self._count_new_misses()
        assert self._observer is not None
        obs = self._observer.take()
        reward = self._reward(obs, outcome.current, outcome.target - outcome.current, new_misses)
        terminated = sim.idle
        truncated = not terminated and sim.now >= c.max_episode_s
        return self._vector(obs), reward, terminated, truncated, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.sim is None:
            return None
        vector = self._vector(self.observe())
        obs = dict(zip(OBS_NAMES, vector, strict=True))
        return " ".join(f"{k}={v:.2f}" for k, v in obs.items())

    def close(self) -> None:
        """Release the episode's loop (its in-memory store)."""
        if self.loop is not None:
            self.loop.close()
            self.loop.store.close()
            self.loop = None

    # ------------------------------------------------------------------ internals
    def _vector(self, obs: Observation) -> np.ndarray:
        plan = self.plan_base.decide(obs).target if self.plan_base is not None else None
        return observation_vector(obs, self.config.encoding, self.knowledge, plan)

    def _count_new_misses(self) -> int:
        """Jobs that passed their deadline since the last step (finished late or still running)."""
        sim = self.sim
        assert sim is not None
        new = sim.missed_jobs() - self._missed
        self._missed |= new
        return len(new)

    def _reward(self, obs: Observation, workers_before: int, delta: int, new_misses: int) -> float:
        return reward(self.config, obs, workers_before, delta, new_misses)

    def observe(self) -> Observation:
        """The simulator's observation now, as a policy running on it sees it."""
        assert self._observer is not None
        return self._observer.observer.observe()

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
    gym.register(id=ENV_ID, entry_point="sparkscaler.rl.env:SparkClusterEnv")
