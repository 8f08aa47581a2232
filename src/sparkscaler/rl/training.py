"""Train the ``dqn`` policy: a Stable-Baselines3 DQN in ``sparkscaler/SparkCluster-v0``.

:func:`train_dqn` writes two files that :class:`sparkscaler.policies.dqn.DqnPolicy` loads: the SB3
model (``out``, a zip) and its metadata (``out.with_suffix(".json")``): the env config, the
variant, the observation names, scaling and mask, the seed, timesteps, wall time and the learning
curve (episode rewards from a ``Monitor``).

Four variants:

- ``paper`` (OLA 2019): the paper's state, the six resource features and the worker count; the
  env's other fields (provisioning, backlog, slack, calendar) are masked to 0, and the mask is
  saved so that the policy applies the same one live; the paper's reward, as we read it.
- ``paper-cost``: the paper's state and the paper's eight reward terms, as a cost per step
  (``paper-cost`` in :mod:`sparkscaler.rl.env`): under ``paper`` a round held at one worker
  that misses T returns several times what a round at N that meets it does, so an agent that
  learns it learns to miss (docs/dqn.md).
- ``improved``: the full observation and the ``cost-sla`` reward. The paper's reward averages a
  node term with resource *utilisations* and the running job's slack, so it pays for busy
  resources and few workers and never for the thing the benchmarks count: a job finished late
  costs it nothing more than a job finishing just in time. ``cost-sla`` prices exactly what the
  benchmarks measure (worker-time paid, including provisioning and draining workers, and one
  penalty per missed deadline), and the slack, backlog and provisioning fields are what an agent
  needs to see a deadline coming and a worker already on its way.
- ``residual``: the improved variant's state and reward, acting on the planner's target rather
  than on the current size (``action_base="planner"`` in :mod:`sparkscaler.rl.env`): action 0 is
  the planner's decision, and the agent learns when to add to it or take from it (residual
  reinforcement learning). An agent that must find the planner's sizing by trial from scratch
  learns "go to N" first (docs/dqn.md); one that starts from it learns only the corrections.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from sparkscaler.policies.encoding import OBS_NAMES, OBS_SCALING
from sparkscaler.rl.env import ENV_ID, EnvConfig, SparkClusterEnv, config_from_dict, config_to_dict

Variant = Literal["paper", "paper-cost", "improved", "residual"]

#: The observation fields each variant sees; the others are masked to 0.
VARIANT_FEATURES: dict[str, tuple[str, ...]] = {
    "paper": ("cu", "cs", "mt", "ma", "bi", "bo", "workers"),
    "paper-cost": ("cu", "cs", "mt", "ma", "bi", "bo", "workers"),
    "improved": tuple(n for n in OBS_NAMES if n != "plan"),
    "residual": OBS_NAMES,
}
VARIANT_REWARD: dict[str, Literal["paper", "paper-cost", "cost-sla"]] = {
    "paper": "paper",
    "paper-cost": "paper-cost",
    "improved": "cost-sla",
    "residual": "cost-sla",
}
#: What each variant's action changes: the current size, or the planner's target.
VARIANT_BASE: dict[str, Literal["current", "planner"]] = {
    "paper": "current",
    "paper-cost": "current",
    "improved": "current",
    "residual": "planner",
}

#: DQN settings for a small discrete problem (tens of steps per episode, at most 19 actions):
#: a small network, learning from the first few hundred steps, a target network refreshed
#: every 500 steps, and exploration decaying over the first 30 % of training.
DQN_KWARGS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "buffer_size": 50_000,
    "learning_starts": 200,
    "batch_size": 64,
    "gamma": 0.97,
    "train_freq": 4,
    "gradient_steps": 1,
    "target_update_interval": 500,
    "exploration_fraction": 0.3,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "policy_kwargs": {"net_arch": [64, 64]},
}
#: DQN settings for learning *while acting*, from the few thousand steps of a hundred rounds (the
#: paper's online agent, :func:`sparkscaler.evaluation.paper_grid.run_cell`): with
#: :data:`DQN_KWARGS` the target network is refreshed only a few times in a whole cell and a
#: round's 10-30 steps of delayed pay-off never reach the first step's Q-value, so the agent
#: acts on the immediate reward (see docs/dqn.md). Here every step trains on 4 batches, the
#: target is refreshed every 100 steps, 20-step returns carry a round's outcome back to its
#: first decisions, and once the exploration period is over the agent acts greedily (a random
#: scale-in late in a round is a failure that no learning caused).
ONLINE_DQN_KWARGS: dict[str, Any] = {
    **DQN_KWARGS,
    "learning_starts": 50,
    "gamma": 0.99,
    "train_freq": 1,
    "gradient_steps": 4,
    "n_steps": 20,
    "target_update_interval": 100,
    "exploration_final_eps": 0.0,
}

#: Settings a variant trains with by default, over :data:`DQN_KWARGS`. A residual agent's
#: offsets matter only through what they do to the round's end (a miss, or the workers paid for
#: until then), so it learns from 10-step returns with a slower-moving target: on paper-grid
#: N = 5 (cost weight 30, 60k steps) they take it from 1.24x the oracle's worker-minutes to
#: 1.17x at the same failures (docs/dqn.md).
VARIANT_KWARGS: dict[str, dict[str, Any]] = {
    "residual": {
        "n_steps": 10,
        "gamma": 0.99,
        "target_update_interval": 250,
        "exploration_final_eps": 0.02,
        "learning_starts": 1000,
    },
}

#: The ``cost-sla`` weight of worker-time a variant trains with unless the env config sets one.
#: A residual agent at weight 1 learns to add workers to every plan (1.33x the oracle on
#: paper-grid N = 5, as "go to N"); at 3 it keeps closer to the plan (1.19-1.27x on paper-grid
#: over four training seeds). Weight 10 is better and steadier on paper-grid (1.14-1.17x over
#: three seeds), but on the trace suite neither weight is steady across seeds (docs/dqn.md,
#: "One training seed is not a measurement"), so the default stays at 3.
VARIANT_COST_WEIGHT: dict[str, float] = {"residual": 3.0}


def variant_mask(variant: Variant) -> np.ndarray:
    """1 for each observation field the variant sees, 0 for the others (OBS_NAMES order)."""
    if variant not in VARIANT_FEATURES:
        raise ValueError(f"variant must be one of {', '.join(VARIANT_FEATURES)}, not {variant!r}")
    seen = VARIANT_FEATURES[variant]
    return np.array([1.0 if name in seen else 0.0 for name in OBS_NAMES], dtype=np.float32)


def variant_config(config: EnvConfig, variant: str) -> EnvConfig:
    """The config with the variant's reward, action base and (where it sets none) cost weight."""
    variant_mask(variant)  # type: ignore[arg-type]
    weight = config.cost_weight
    if weight is None:
        weight = VARIANT_COST_WEIGHT.get(variant, 1.0)
    return replace(
        config,
        reward=VARIANT_REWARD[variant],
        action_base=VARIANT_BASE[variant],
        cost_weight=weight,
    )


class MaskObservation(gym.ObservationWrapper[np.ndarray, np.int64, np.ndarray]):
    """Zeroes the observation fields a variant does not see (0 is inside every field's bounds)."""

    def __init__(self, env: gym.Env[np.ndarray, np.int64], mask: np.ndarray) -> None:
        super().__init__(env)
        self.mask = np.asarray(mask, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (observation * self.mask).astype(np.float32)


def make_env(config: EnvConfig, mask: np.ndarray) -> MaskObservation:
    return MaskObservation(SparkClusterEnv(config), mask)


@dataclass(frozen=True)
class TrainResult:
    model_path: Path
    metadata_path: Path
    variant: str
    timesteps: int
    episodes: int
    wall_time_s: float
    #: mean reward of the last (up to) 20 training episodes
    final_mean_reward: float
    metadata: dict[str, Any]


def _progress_callback(progress: bool, timesteps: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback, ProgressBarCallback

    if not progress:
        return None
    try:
        import rich  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError:
        pass
    else:
        return ProgressBarCallback()

    class PrintProgress(BaseCallback):
        """A line on stderr every 10 % (SB3's bar needs tqdm and rich)."""

        def __init__(self) -> None:
            super().__init__()
            self.every = max(1, timesteps // 10)

        def _on_step(self) -> bool:
            if self.num_timesteps % self.every == 0:
                print(
                    f"dqn: {self.num_timesteps}/{timesteps} steps "
                    f"({100 * self.num_timesteps // timesteps} %)",
                    file=sys.stderr,
                    flush=True,
                )
            return True

    return PrintProgress()


def silent_logger() -> Any:
    """An SB3 logger that writes nothing. SB3's default (``configure(None, [""])`` when
    ``verbose=0``) makes an empty ``/tmp/SB3-<time>`` directory at every ``learn``; one run of
    the fast tests left 42."""
    from stable_baselines3.common.logger import Logger

    return Logger(None, [])


def new_dqn(env: Any, *, seed: int, **kwargs: Any) -> Any:
    """An SB3 DQN on the CPU that logs nothing, as every sparkscaler training makes it."""
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    model.set_logger(silent_logger())
    return model


def train_dqn(
    config: EnvConfig,
    variant: Variant,
    timesteps: int,
    seed: int,
    out: Path,
    progress: bool = False,
    n_envs: int = 1,
    subprocesses: bool = False,
    hyperparameters: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a DQN for ``timesteps`` env steps and write ``out`` (zip) and its ``.json``.

    The variant sets the reward (``config.reward`` is replaced) and the observation mask.
    ``n_envs`` environments step side by side (SB3's ``make_vec_env``; env i seeded with
    ``seed + i``), in one process each with ``subprocesses`` (``SubprocVecEnv``), and every
    vector step trains ``n_envs`` times as many batches, so that each transition is learned from
    as often as with one env. ``hyperparameters`` override :data:`DQN_KWARGS` and the variant's
    :data:`VARIANT_KWARGS`.
    Seeded: the same arguments give the same model on one machine.
    """
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if timesteps <= 0:
        raise ValueError("timesteps must be positive")
    if n_envs < 1:
        raise ValueError("n_envs must be at least 1")
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"out must be a .zip path, not {out}")
    mask = variant_mask(variant)
    config = variant_config(config, variant)
    kwargs = {**DQN_KWARGS, **VARIANT_KWARGS.get(variant, {}), **(hyperparameters or {})}
    kwargs["gradient_steps"] = kwargs["gradient_steps"] * n_envs
    env = make_vec_env(
        make_env,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={"config": config, "mask": mask},
        vec_env_cls=SubprocVecEnv if subprocesses else DummyVecEnv,
    )
    model = new_dqn(env, seed=seed, **kwargs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64x64 network: threads cost more than they save
    started = time.perf_counter()
    try:
        model.learn(total_timesteps=timesteps, callback=_progress_callback(progress, timesteps))
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - started

    # The episodes of all envs in the order they ended (the envs step in lockstep), at the
    # training step they ended.
    episodes = sorted(
        (int(end) * n_envs, i, float(r), int(n))
        for i, (rs, ns) in enumerate(
            zip(
                env.env_method("get_episode_rewards"),
                env.env_method("get_episode_lengths"),
                strict=True,
            )
        )
        for r, n, end in zip(rs, ns, np.cumsum(ns), strict=True)
    )
    ends = [t for t, _, _, _ in episodes]
    rewards = [r for _, _, r, _ in episodes]
    lengths = [n for _, _, _, n in episodes]
    metadata: dict[str, Any] = {
        "name": "dqn",
        "params": {"model_path": str(out)},
        "variant": variant,
        "reward": config.reward,
        "env_config": config_to_dict(config),
        "obs_names": list(OBS_NAMES),
        "obs_scaling": OBS_SCALING,
        "obs_mask": mask.tolist(),
        "n_actions": config.n_actions,
        "actions": "0 = none; 1..N-1 = scale out by 1..N-1; N..2N-2 = scale in by 1..N-1"
        + ("" if config.action_base == "current" else ", all from the planner's target"),
        "algorithm": "stable-baselines3 DQN, MlpPolicy",
        "hyperparameters": kwargs,
        "n_envs": n_envs,
        "vec_env": "SubprocVecEnv" if subprocesses else "DummyVecEnv",
        "seed": seed,
        "timesteps": timesteps,
        "training_wall_time_s": round(wall, 3),
        "episodes": len(rewards),
        "learning_curve": {"timesteps": ends, "episode_rewards": rewards, "lengths": lengths},
        "trained_at": time.time(),
    }
    # Every data source the model learned from, in order; more are appended by
    # :func:`sparkscaler.rl.store_learning.continue_training`.
    metadata["trained_on"] = [
        {
            "source": "simulator",
            "env_id": ENV_ID,
            "jobs": metadata["env_config"]["jobs"],
            "reward": config.reward,
            "timesteps": timesteps,
            "seed": seed,
            "n_envs": n_envs,
        }
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    sidecar = out.with_suffix(".json")
    sidecar.write_text(json.dumps(metadata, indent=2))
    env.close()
    tail = rewards[-20:]
    return TrainResult(
        model_path=out,
        metadata_path=sidecar,
        variant=variant,
        timesteps=timesteps,
        episodes=len(rewards),
        wall_time_s=wall,
        final_mean_reward=float(np.mean(tail)) if tail else float("nan"),
        metadata=metadata,
    )


def _run_episodes(env: gym.Env[np.ndarray, np.int64], act: Any, episodes: int, seed: int) -> float:
    totals = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        totals.append(total)
    return float(np.mean(totals))


def evaluate_policy_random(config: EnvConfig, episodes: int, seed: int) -> float:
    """Mean episode reward of uniformly random actions; episode i is reset with ``seed + i``."""
    env = SparkClusterEnv(config)
    env.action_space.seed(seed)
    return _run_episodes(env, lambda _obs: int(env.action_space.sample()), episodes, seed)


def evaluate_model(path: Path, episodes: int, seed: int, config: EnvConfig | None = None) -> float:
    """Mean episode reward of a saved model acting greedily, in the env it was trained in
    (rebuilt from its metadata, or ``config``); episode i is reset with ``seed + i``."""
    from sparkscaler.policies.dqn import DqnPolicy

    policy = DqnPolicy.load(Path(path))
    assert policy.model_ is not None and policy.metadata_ is not None
    if config is None:
        config = config_from_dict(policy.metadata_["env_config"])
    mask = np.asarray(policy.metadata_["obs_mask"], dtype=np.float32)
    env = make_env(config, mask)
    return _run_episodes(env, policy.predict_action, episodes, seed)


__all__ = [
    "DQN_KWARGS",
    "ONLINE_DQN_KWARGS",
    "VARIANT_BASE",
    "VARIANT_COST_WEIGHT",
    "VARIANT_FEATURES",
    "VARIANT_KWARGS",
    "MaskObservation",
    "TrainResult",
    "Variant",
    "evaluate_model",
    "evaluate_policy_random",
    "new_dqn",
    "silent_logger",
    "train_dqn",
    "variant_config",
    "variant_mask",
]
