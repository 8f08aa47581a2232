"""The ``paper-grid`` suite: the OLA 2019 experiment (Thonglek et al.), policy by policy.

A cell is a deadline T (minutes) and a most-workers N. It runs ``rounds`` rounds; each round one
job arrives at an idle cluster (``simulation.initial_workers``), its input size drawn uniformly
from the size range by a generator seeded with the round only, so every policy and every cell
sees the same jobs. The job's run time follows the calibrated runtime model with its residual
noise (:class:`~sparkscaler.sim.workload.ModelJobs`). A round *fails* when the job's run time
exceeds T; its cost is the worker-time billed from the job's arrival to its end (a round ends
when the job ends, or at ``ROUND_CAP`` times T, and a job still running then has failed).

Each policy runs through the real controller and guard, the loop that
:func:`sparkscaler.wiring.simulated_loop` builds from a config naming the policy, on a fresh
policy per round (a round starts at the same simulated instant, so state kept from one round
would see time go back).
The online DQNs are the exception: like the paper's agent they carry their network from round
to round and learn while they act (Stable-Baselines3 ``learn`` over the rounds as episodes),
which is where their "sacrifice period" comes from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sparkscaler.config import Config
from sparkscaler.evaluation.lineup import ONLINE_SUFFIX, ORACLE, Calibration, policy_settings
from sparkscaler.evaluation.oracle import run_oracle_round
from sparkscaler.evaluation.simulation import require_policy_ran
from sparkscaler.rl.env import EnvConfig, SparkClusterEnv
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import JobSpec, ModelJobs
from sparkscaler.store import Store
from sparkscaler.wiring import make_sim, simulated_loop

DEADLINES_MIN = (5, 6, 7, 8, 9, 10)
MAX_WORKERS = (5, 6, 7, 8, 9, 10)
ROUNDS = 100
BLOCK = 25
#: A round ends at this many times T even if its job has not (the job has failed by then).
ROUND_CAP = 10.0
#: The DQNs act every 30 s, the env step they learn with: at the controller's 5 s an online
#: agent would need six times the steps (and the wall time) to see the same rounds.
DQN_INTERVAL_S = 30.0
POLICY_KEYS = (
    ORACLE,
    "static",
    "hpa",
    "dra",
    "dataproc",
    "regression",
    "dqn-paper-online",
    "dqn-paper-cost-online",
    "dqn-paper",
    "dqn-improved-online",
    "dqn-improved",
    "dqn-residual",
    "planner",
    "predictive",
    "hybrid",
)


@dataclass(frozen=True)
class GridSettings:
    deadlines_min: tuple[int, ...] = DEADLINES_MIN
    max_workers: tuple[int, ...] = MAX_WORKERS
    rounds: int = ROUNDS
    sizes: tuple[float, float] | None = None
    """Input sizes (the model's unit); default: :meth:`Calibration.default_sizes`."""
    policies: tuple[str, ...] = POLICY_KEYS


@dataclass(frozen=True)
class Round:
    size: float
    run_s: float
    failed: bool
    worker_s: float


@dataclass
class CellResult:
    """One policy's rounds in one (T, N) cell."""

    policy: str
    deadline_min: int
    max_workers: int
    rounds: list[Round] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self, oracle: CellResult | None) -> dict[str, Any]:
        failed = [r.failed for r in self.rounds]
        blocks = [sum(failed[i : i + BLOCK]) for i in range(0, len(failed), BLOCK)]
        worker_min = sum(r.worker_s for r in self.rounds) / 60.0
        out: dict[str, Any] = {
            "policy": self.policy,
            "T_min": self.deadline_min,
            "N": self.max_workers,
            "rounds": len(self.rounds),
            "failures": sum(failed),
            "failure_pct": round(100.0 * sum(failed) / max(1, len(failed)), 2),
            "failures_per_block": blocks,
            "last_failure_round": max((i + 1 for i, f in enumerate(failed) if f), default=None),
            "worker_minutes": round(worker_min, 3),
        }
        if oracle is not None:
            saved = [o.failed for o in oracle.rounds]
            out["avoidable_failures"] = sum(f and not o for f, o in zip(failed, saved, strict=True))
            oracle_min = sum(r.worker_s for r in oracle.rounds) / 60.0
            out["ratio_to_oracle"] = round(worker_min / oracle_min, 4) if oracle_min else None
        return out


def round_jobs(model: Any, sizes: tuple[float, float], rounds: int, seed: int) -> list[JobSpec]:
    """The jobs of rounds 1..``rounds``, the same for every cell and policy."""
    source = ModelJobs(model, sizes)
    return [source.sample(np.random.default_rng([seed, r])) for r in range(rounds)]


def cell_config(config: Config, max_workers: int, key: str = "") -> Config:
    """The config of one cell: N workers at most, and the DQNs' own decision interval."""
    update: dict[str, Any] = {
        "max_workers": max_workers,
        "min_workers": min(config.scaling.min_workers, 1),
    }
    if key.startswith("dqn"):
        update["interval_s"] = DQN_INTERVAL_S
    return config.model_copy(update={"scaling": config.scaling.model_copy(update=update)})


def policy_config(config: Config, key: str, ctx: RunContext) -> Config:
    """The config of a cell that names the policy of ``key``, as a user's config would."""
    return config.model_copy(
        update={"policy": policy_settings(key, ctx.calibration, ctx.dqn_models)}
    )


def _outcome(sim: SimCluster, job: JobSpec) -> Round:
    if sim.results:
        end = sim.results[0].finished
        run = end - job.arrival
    else:
        end = run = sim.now
    deadline = job.deadline_s if job.deadline_s is not None else math.inf
    return Round(job.size_gb, run, run > deadline, sim.worker_seconds(until=end))


def _controller_round(config: Config, job: JobSpec, key: str, ctx: RunContext, seed: int) -> Round:
    sim = make_sim(config, [job], seed)
    assert job.deadline_s is not None
    with Store(Path(":memory:"), worker_detail=False) as store:
        controller = simulated_loop(
            policy_config(config, key, ctx),
            sim,
            store,
            runtime_model=ctx.calibration.runtime_model,
            default_deadline_s=job.deadline_s,
        )
        cap = ROUND_CAP * job.deadline_s
        sim.run_until(0.0)
        steps = 0
        while not sim.results and sim.now < cap:
            controller.step()
            steps += 1
            sim.run_until(sim.now + config.scaling.interval_s)
        require_policy_ran(controller, steps)
    return _outcome(sim, job)


class _Rounds:
    """A job source that hands out the cell's rounds in order (for the online DQN's env); its
    ``model`` is the runtime model the env's job knowledge projects with, as every other
    policy of the cell is given it."""

    def __init__(self, jobs: Sequence[JobSpec], model: Any = None) -> None:
        self.jobs = list(jobs)
        self.model = model
        self.next = 0

    def sample(self, rng: np.random.Generator) -> JobSpec:
        job = self.jobs[self.next % len(self.jobs)]
        self.next += 1
        return job


class _RoundLog(gym.Wrapper[np.ndarray, np.int64, np.ndarray, np.int64]):
    """Records each episode (round) as it ends."""

    def __init__(self, env: SparkClusterEnv, jobs: Sequence[JobSpec]) -> None:
        super().__init__(env)
        self.jobs = jobs
        self.rounds: list[Round] = []

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            env = self.env.unwrapped
            assert isinstance(env, SparkClusterEnv) and env.sim is not None
            job = self.jobs[len(self.rounds)]
            self.rounds.append(_outcome(env.sim, job))
        return obs, reward, terminated, truncated, info


def env_config(
    config: Config,
    calibration: Calibration,
    sizes: tuple[float, float],
    max_workers: int,
    deadlines_s: Sequence[float],
    variant: str,
) -> EnvConfig:
    """The Gymnasium env of a paper-grid cell: the cell's cluster, the calibrated jobs."""
    from sparkscaler.rl.training import variant_config

    env = EnvConfig.from_config(
        config,
        max_workers=max_workers,
        min_workers=min(config.scaling.min_workers, 1),
        deadline_s=float(deadlines_s[0]),
        deadline_choices_s=tuple(float(d) for d in deadlines_s),
        max_episode_s=ROUND_CAP * max(deadlines_s),
        jobs=ModelJobs(calibration.runtime_model, sizes),
    )
    return variant_config(env, variant)


def _online_dqn(
    config: Config, jobs: Sequence[JobSpec], variant: str, ctx: RunContext, seed: int
) -> list[Round]:
    """An untrained DQN that learns during the rounds (SB3 ``learn``, one episode a round)."""
    import torch
    from stable_baselines3.common.callbacks import StopTrainingOnMaxEpisodes

    from sparkscaler.rl.training import (
        ONLINE_DQN_KWARGS,
        MaskObservation,
        new_dqn,
        variant_mask,
    )

    deadline = jobs[0].deadline_s
    assert deadline is not None
    base = env_config(
        config, ctx.calibration, ctx.sizes, config.scaling.max_workers, [deadline], variant
    )
    log = _RoundLog(
        SparkClusterEnv(replace(base, jobs=_Rounds(jobs, ctx.calibration.runtime_model))), jobs
    )
    env = MaskObservation(log, variant_mask(variant))  # type: ignore[arg-type]
    total = len(jobs) * math.ceil(ROUND_CAP * deadline / config.scaling.interval_s)
    # Explore over about the first block of rounds of a usual length, as the paper's agent did.
    explore = BLOCK * math.ceil(deadline / config.scaling.interval_s)
    kwargs = {**ONLINE_DQN_KWARGS, "exploration_fraction": min(1.0, explore / total)}
    torch.set_num_threads(1)
    # No reset here: ``learn`` resets the env with the model's seed, and every reset takes the
    # next round's job, so one here would shift the rounds by one against the other policies.
    model = new_dqn(env, seed=seed, **kwargs)
    model.learn(total_timesteps=total, callback=StopTrainingOnMaxEpisodes(len(jobs)))
    return log.rounds[: len(jobs)]


@dataclass(frozen=True)
class RunContext:
    """What every cell of a run shares (plain data: it is sent to worker processes)."""

    calibration: Calibration
    sizes: tuple[float, float]
    seed: int
    rounds: int
    dqn_models: dict[str, str] = field(default_factory=dict)


def run_cell(
    config: Config, key: str, deadline_min: int, max_workers: int, ctx: RunContext
) -> CellResult:
    """Every round of one policy in one cell."""
    import time

    started = time.perf_counter()
    cell = cell_config(config, max_workers, key)
    jobs = [
        job.with_arrival(i, 0.0, 60.0 * deadline_min)
        for i, job in enumerate(
            round_jobs(ctx.calibration.runtime_model, ctx.sizes, ctx.rounds, ctx.seed)
        )
    ]
    result = CellResult(key, deadline_min, max_workers)
    if key == ORACLE:
        for r, job in enumerate(jobs):
            run = run_oracle_round(cell, job, ctx.seed + r)
            result.rounds.append(_outcome(run.sim, job))
    elif key.endswith(ONLINE_SUFFIX):
        variant = key.removeprefix("dqn-").removesuffix(ONLINE_SUFFIX)
        result.rounds = _online_dqn(cell, jobs, variant, ctx, ctx.seed)
    else:
        models = {k: v for k, v in ctx.dqn_models.items() if k.endswith(f"@{max_workers}")}
        cell_ctx = RunContext(
            ctx.calibration,
            ctx.sizes,
            ctx.seed,
            ctx.rounds,
            {k.split("@")[0]: v for k, v in models.items()},
        )
        for r, job in enumerate(jobs):
            result.rounds.append(_controller_round(cell, job, key, cell_ctx, ctx.seed + r))
    result.wall_s = time.perf_counter() - started
    return result
