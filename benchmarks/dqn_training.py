"""DQN training wall time and learning curves, both variants, against random actions.

Trains the ``paper`` variant (the OLA 2019 state and reward) and the ``improved`` one (full
observation, cost-SLA reward) in ``sparkscaler/SparkCluster-v0`` with N = 5, a 300 s deadline
and local provisioning, seeded. Each trained model, and uniformly random actions, are then
evaluated on the same 50 seeded episodes *with the model's own reward*. Writes the learning
curves to ``docs/dqn_learning_curve.png``.

    .venv/bin/python benchmarks/dqn_training.py [--timesteps 30000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _cluster import save

from sparkscaler.rl.env import EnvConfig
from sparkscaler.rl.training import evaluate_model, evaluate_policy_random, train_dqn

PLOT = Path(__file__).resolve().parents[1] / "docs" / "dqn_learning_curve.png"


def moving_mean(values: list[float], window: int = 20) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if len(data) < window:
        return data
    return np.convolve(data, np.ones(window) / window, mode="valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = EnvConfig(max_workers=5, deadline_s=300.0, provisioning="local")
    results = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    with tempfile.TemporaryDirectory() as tmp:
        for axis, variant in zip(axes, ("paper", "improved"), strict=True):
            trained = train_dqn(
                base, variant, args.timesteps, args.seed, Path(tmp) / f"{variant}.zip"
            )
            reward = "paper" if variant == "paper" else "cost-sla"
            config = dataclasses.replace(base, reward=reward)
            model = evaluate_model(trained.model_path, episodes=50, seed=10_000)
            random = evaluate_policy_random(config, episodes=50, seed=10_000)
            curve = json.loads(trained.metadata_path.read_text())["learning_curve"]
            results[variant] = {
                "reward": reward,
                "timesteps": args.timesteps,
                "episodes": trained.episodes,
                "wall_time_s": round(trained.wall_time_s, 1),
                "mean_episode_reward_dqn": round(model, 4),
                "mean_episode_reward_random": round(random, 4),
            }
            print(variant, results[variant], flush=True)
            smooth = moving_mean(curve["episode_rewards"])
            axis.plot(
                curve["timesteps"][len(curve["timesteps"]) - len(smooth) :],
                smooth,
                label="DQN (20-episode mean)",
            )
            axis.axhline(random, color="grey", linestyle="--", label="random actions")
            axis.set_title(f"{variant} variant ({reward} reward)")
            axis.set_xlabel("training steps")
            axis.set_ylabel("episode reward")
            axis.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    print(f"plot: {PLOT}")
    print(f"written to {save('dqn_training', results)}")


if __name__ == "__main__":
    main()
