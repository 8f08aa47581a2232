"""Keep training a saved DQN on a real cluster's history: the transitions in the store.

A running loop writes every observation and every guarded decision to the store
(:mod:`sparkscaler.store`). Two consecutive observations of one loop and the decision taken on
the first are a transition:

- the state is the first observation's vector (the same
  :func:`~sparkscaler.policies.encoding.observation_vector` the env and the policy use, the job
  fields projected with a :class:`~sparkscaler.models.job_knowledge.JobKnowledge` fitted on the
  store's finished jobs);
- the action is the change the guard let through (``target - current``, the move the env
  rewards too). For a residual model it is the change to the planner's target that the
  decision corrected (its ``base_target``), which is also the state's ``plan`` field: only a
  loop that ran a residual model stores one;
- the reward is the env's own (:func:`~sparkscaler.rl.env.reward`) of the second observation,
  with a miss for each finished job whose run passed its deadline in between;
- the next state is the second observation's vector. A step with no job running on either
  side ends an episode.

:func:`continue_training` loads a model trained by :func:`~sparkscaler.rl.training.train_dqn`,
adds the transitions to its replay buffer and runs SB3's own ``train`` on them (off-policy
Q-learning needs nothing else), then writes the model with its metadata extended by what it
was trained on, so that a model's sidecar lists every data source it learned from.

Only what the store keeps can be rebuilt: with ``worker_detail`` off it keeps counts, not
workers (the vector needs only the counts) and no per-job contexts (the job fields are then 0).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparkscaler.core import (
    ClusterState,
    Features,
    JobContext,
    JobRecord,
    Observation,
    StageProgress,
    WorkerInfo,
)
from sparkscaler.models.job_knowledge import JobKnowledge
from sparkscaler.policies.encoding import delta_action, observation_vector
from sparkscaler.rl.env import EnvConfig, config_from_dict, reward
from sparkscaler.rl.training import silent_logger
from sparkscaler.store import Store


@dataclass(frozen=True)
class Transitions:
    """Transitions as the replay buffer takes them (masked vectors, one row each)."""

    obs: np.ndarray
    next_obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    first_time: float
    last_time: float

    def __len__(self) -> int:
        return len(self.actions)


def observation_from_row(row: dict[str, Any]) -> Observation:
    """The observation a store row keeps (``Store.observations``)."""
    if row.get("worker_detail"):
        workers = tuple(WorkerInfo(**w) for w in json.loads(row["worker_detail"]))
    else:
        counts = (("ALIVE", row["workers"]), ("PROVISIONING", row["provisioning"]))
        counts += (("DECOMMISSIONED", row["decommissioning"]),)
        workers = tuple(
            WorkerInfo(f"{state}-{i}", "", 0, state, 0, 0, 0, 0)
            for state, count in counts
            for i in range(count or 0)
        )
    jobs = ()
    if row.get("jobs"):
        jobs = tuple(
            JobContext(**{**j, "stages": tuple(StageProgress(**s) for s in j["stages"])})
            for j in json.loads(row["jobs"])
        )
    return Observation(
        time=row["time"],
        cluster=ClusterState(workers, waiting_apps=row["waiting_apps"] or 0),
        running_tasks=row["running_tasks"] or 0,
        pending_tasks=row["pending_tasks"] or 0,
        backlog_age_s=row["backlog_age_s"] or 0.0,
        features=Features(*(row[f] or 0.0 for f in ("cu", "cs", "mt", "ma", "bi", "bo"))),
        input_bytes=row["input_bytes"],
        oldest_job_elapsed_s=row["oldest_job_elapsed_s"],
        deadline_s=row["deadline_s"],
        stale=bool(row["stale"]),
        input_read_bytes=row["input_read_bytes"],
        jobs=jobs,
    )


def _missed_between(records: list[JobRecord], start: float, end: float) -> int:
    """Finished jobs whose deadline fell in (start, end] and that ran past it."""
    return sum(
        1
        for r in records
        if r.deadline_s
        and start < r.submit_time + r.deadline_s <= end
        and r.duration_s > r.deadline_s
    )


def store_transitions(
    store_path: Path, config: EnvConfig, mask: np.ndarray, since: float = 0.0
) -> Transitions:
    """Every transition of the store's loop after ``since`` (module docstring)."""
    path = Path(store_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such store")
    with Store(path) as store:
        rows = store.observations(since=since, limit=10_000_000)
        decisions = {d["observation_id"]: d for d in store.decisions_since(since)}
        records = store.jobs()
    encoding = config.encoding
    residual = config.action_base == "planner"
    knowledge = JobKnowledge(cores_per_worker=float(config.cores_per_worker)).fit(records)
    observations = [observation_from_row(r) for r in rows]
    plans = [decisions.get(r["id"], {}).get("base_target") for r in rows]
    vectors = [
        observation_vector(o, encoding, knowledge, plan=p if residual else None) * mask
        for o, p in zip(observations, plans, strict=True)
    ]
    top = encoding.max_workers - 1
    obs, nxt, actions, rewards, dones, times = [], [], [], [], [], []
    for i in range(len(rows) - 1):
        decision = decisions.get(rows[i]["id"])
        if decision is None or observations[i].stale or observations[i + 1].stale:
            continue
        if residual and (plans[i] is None or plans[i + 1] is None):
            continue  # not a residual agent's step: its state and action have no plan
        before, after = observations[i], observations[i + 1]
        current, target = decision["current"], decision["target"]
        base = plans[i] if residual else current
        misses = _missed_between(records, before.time, after.time)
        obs.append(vectors[i])
        nxt.append(vectors[i + 1])
        actions.append(delta_action(int(np.clip(target - base, -top, top)), encoding.max_workers))
        rewards.append(reward(config, after, current, target - current, misses))
        dones.append(before.job_running and not after.job_running)
        times.append(before.time)
    width = len(mask)
    return Transitions(
        np.asarray(obs, np.float32).reshape(-1, width),
        np.asarray(nxt, np.float32).reshape(-1, width),
        np.asarray(actions, np.int64),
        np.asarray(rewards, np.float32),
        np.asarray(dones, np.float32),
        min(times, default=0.0),
        max(times, default=0.0),
    )


def continue_training(
    model_path: Path, store_path: Path, out: Path, gradient_steps: int, seed: int = 0
) -> dict[str, Any]:
    """Train the model at ``model_path`` on the store's transitions for ``gradient_steps``
    batches and write it to ``out`` (zip and sidecar); returns the new metadata."""
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.utils import set_random_seed

    model_path, out = Path(model_path), Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"out must be a .zip path, not {out}")
    if gradient_steps < 1:
        raise ValueError("gradient_steps must be at least 1")
    metadata = json.loads(model_path.with_suffix(".json").read_text())
    config = config_from_dict(metadata["env_config"], jobs=_NoJobs())
    mask = np.asarray(metadata["obs_mask"], np.float32)
    data = store_transitions(store_path, config, mask)
    if not len(data) and config.action_base == "planner":
        raise ValueError(
            f"{store_path}: no step of a residual DQN to learn from: a residual model learns "
            "from the decisions of a loop that ran one (they keep the planner target they "
            "corrected)"
        )
    if not len(data):
        raise ValueError(f"{store_path}: no transition to learn from (no decided observations)")
    set_random_seed(seed)
    # the replay buffer set up afresh from the model's n_steps, as when it was made (a saved
    # n-step buffer class would only make SB3 warn that n_steps is ignored)
    model = DQN.load(model_path, device="cpu", custom_objects={"replay_buffer_class": None})
    model.set_random_seed(seed)
    model.set_logger(silent_logger())
    model._current_progress_remaining = 0.0  # the schedules' end point
    buffer = model.replay_buffer
    assert buffer is not None
    for row in range(len(data)):
        buffer.add(
            data.obs[row : row + 1],
            data.next_obs[row : row + 1],
            data.actions[row : row + 1],
            data.rewards[row : row + 1],
            data.dones[row : row + 1],
            [{}],
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        model.train(gradient_steps=gradient_steps, batch_size=model.batch_size)
    finally:
        torch.set_num_threads(threads)
    source = {
        "source": "store",
        "store": str(Path(store_path).resolve()),
        "transitions": len(data),
        "from_time": data.first_time,
        "to_time": data.last_time,
        "gradient_steps": gradient_steps,
        "seed": seed,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "trained_at": time.time(),
    }
    earlier = metadata.get("trained_on") or [_simulator_source(metadata)]
    metadata = {
        **metadata,
        "params": {"model_path": str(out)},
        "trained_on": [*earlier, source],
        "continued_from": str(model_path),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    out.with_suffix(".json").write_text(json.dumps(metadata, indent=2))
    return metadata


def _simulator_source(metadata: dict[str, Any]) -> dict[str, Any]:
    """What a sidecar written before ``trained_on`` existed says it was trained on."""
    return {
        "source": "simulator",
        "env_config": metadata.get("env_config"),
        "reward": metadata.get("reward"),
        "timesteps": metadata.get("timesteps"),
        "seed": metadata.get("seed"),
    }


class _NoJobs:
    """The job source of a config rebuilt only for its encoding and reward: never sampled."""

    def sample(self, rng: np.random.Generator) -> Any:
        raise RuntimeError("a store's transitions need no simulated jobs")


__all__ = ["Transitions", "continue_training", "observation_from_row", "store_transitions"]
