"""What a learning policy sees and does, as numbers: Observation → vector, action ↔ worker delta.

The one mapping shared by the Gymnasium env a DQN trains in (:mod:`sparkscaler.rl.env`) and the
DQN policy that later runs live (:mod:`sparkscaler.policies.dqn`), kept here, free of gymnasium,
so that a policy never imports the env it was trained in: the live observation is encoded exactly
as the simulated one was.

Observation (float32, all scaled to about [-1, 1]): ``cu cs mt ma bi bo`` (the paper's six
features, /100), workers / N, provisioning / N, backlog (pending tasks per slot of N workers,
clipped at 1), deadline slack (T - t) / T clipped to [-1, 1] (0 with no job), sin and cos of the
hour of day, weekday / 6. The calendar is the observation's local time (as
:func:`sparkscaler.core.time_features`). Then what is known of the running jobs, given a
:class:`~sparkscaler.models.job_knowledge.JobKnowledge` (the planner's per-signature run-time
knowledge, :meth:`~sparkscaler.models.job_knowledge.JobKnowledge.project`), for the job with a
deadline most at risk: ``finish_now``, its projected time left on the current workers (ALIVE and
PROVISIONING) over its time left to T, and ``finish_max`` the same on N workers, each ratio
clipped to [0, 2] and halved (so 0.5 is "just in time", 1 "twice too slow, or past T"), and
``work_left``, the share of its work still to do. They are 0 without a job with a deadline that
the knowledge can project, or without knowledge: a variant that does not see them loses nothing.
Last, ``plan``: the target of the planner a residual agent corrects, / N (0 without one).

Actions, in the paper's order: 0 = do nothing; 1 .. N-1 = scale out by 1 .. N-1;
N .. 2N-2 = scale in by 1 .. N-1. The change is made to the current size, or, for a residual
agent, to the planner's target: its action 0 is the planner's decision.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkscaler.core import JobContext, Observation
from sparkscaler.models.job_knowledge import JobKnowledge

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
    "finish_now",
    "finish_max",
    "work_left",
    "plan",
)
#: The fields that carry job knowledge (0 unless :func:`observation_vector` is given some).
JOB_FIELDS = ("finish_now", "finish_max", "work_left")
#: The bounds of each feature in :data:`OBS_NAMES` order (the env's observation space).
OBS_LOW = np.array([0.0] * 9 + [-1.0, -1.0, -1.0, 0.0] + [0.0] * 4, dtype=np.float32)
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
    "finish_now": "min(2, projected s left on current workers / s left to T) / 2, for the job "
    "most at risk; 0 if none is known",
    "finish_max": "the same on max_workers",
    "work_left": "1 - that job's projected progress (task-seconds done over done plus left)",
    "plan": "the planner's target / max_workers, for a residual agent; 0 otherwise",
}


@dataclass(frozen=True)
class Encoding:
    """The cluster an encoding is for: N (the action set and the scale of the counts), the
    fewest workers, and the task slots of a worker (the scale of the backlog)."""

    max_workers: int
    min_workers: int = 1
    cores_per_worker: int = 1

    @classmethod
    def from_env_config(cls, data: Mapping[str, Any]) -> Encoding:
        """The encoding of an env config saved beside a model (its other settings do not
        matter for mapping observations)."""
        return cls(
            int(data["max_workers"]),
            int(data.get("min_workers", 1)),
            int(data.get("cores_per_worker", 1)),
        )

    @property
    def n_actions(self) -> int:
        return 2 * (self.max_workers - 1) + 1


def deadline_slack(obs: Observation) -> float:
    """(T - t) / T of the oldest running job, clipped to [-1, 1]; 0 without a job or deadline."""
    if not obs.deadline_s or obs.oldest_job_elapsed_s is None:
        return 0.0
    return float(np.clip((obs.deadline_s - obs.oldest_job_elapsed_s) / obs.deadline_s, -1.0, 1.0))


def _ratio(left_s: float, to_deadline_s: float) -> float:
    """min(2, left / time to T) / 2; 1 once T has passed."""
    if to_deadline_s <= 0:
        return 1.0
    return min(2.0, left_s / to_deadline_s) / 2.0


def job_fields(
    obs: Observation, encoding: Encoding, knowledge: JobKnowledge | None
) -> tuple[float, float, float]:
    """``finish_now``, ``finish_max`` and ``work_left`` (module docstring)."""
    if knowledge is None:
        return 0.0, 0.0, 0.0
    cpw = obs.cluster.cores_per_worker or float(encoding.cores_per_worker)
    now = max(1, obs.workers)
    worst: tuple[float, float, float] | None = None
    for job in obs.jobs:
        deadline = _deadline(job, obs)
        if deadline is None:
            continue
        found = knowledge.projections(job, sorted({now, encoding.max_workers}), cpw)
        if found is None:
            continue
        by_n = {p.workers: p for p in found}
        to_go = deadline - job.elapsed_s
        fields = (
            _ratio(by_n[now].left_s, to_go),
            _ratio(by_n[encoding.max_workers].left_s, to_go),
            1.0 - by_n[now].progress,
        )
        if worst is None or fields[0] > worst[0]:
            worst = fields
    return worst or (0.0, 0.0, 0.0)


def _deadline(job: JobContext, obs: Observation) -> float | None:
    """The job's own T, else the observation's (the loop's default)."""
    return job.deadline_s if job.deadline_s else obs.deadline_s or None


def observation_vector(
    obs: Observation,
    encoding: Encoding,
    knowledge: JobKnowledge | None = None,
    plan: int | None = None,
) -> np.ndarray:
    """The observation (float32, :data:`OBS_NAMES` order) a network sees of an Observation;
    the job fields need ``knowledge``, the ``plan`` field the planner's target."""
    c = obs.cluster
    t = dt.datetime.fromtimestamp(obs.time)
    hour = t.hour + t.minute / 60.0 + (t.second + t.microsecond / 1e6) / 3600.0
    backlog = obs.pending_tasks / (encoding.max_workers * encoding.cores_per_worker)
    values = [
        *(f / 100.0 for f in obs.features.as_tuple()),
        c.alive_workers / encoding.max_workers,
        c.provisioning_workers / encoding.max_workers,
        min(1.0, backlog),
        deadline_slack(obs),
        math.sin(2 * math.pi * hour / 24.0),
        math.cos(2 * math.pi * hour / 24.0),
        t.weekday() / 6.0,
        *job_fields(obs, encoding, knowledge),
        (plan or 0) / encoding.max_workers,
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


def describe_action(delta: int) -> str:
    if delta > 0:
        return f"scale out by {delta}"
    if delta < 0:
        return f"scale in by {-delta}"
    return "do nothing"


def action_target(
    action: int, current: int, encoding: Encoding, detail: str = "", base: int | None = None
) -> tuple[int, str]:
    """The worker count an action asks for, clipped to the encoding's [min_workers,
    max_workers], and the action in words: ``detail`` after the move, then whether it was
    clipped. The action's change is made to ``base`` (a residual agent's planner target) when
    given, else to ``current``."""
    delta = action_delta(action, encoding.max_workers)
    start = current if base is None else base
    target = min(max(start + delta, encoding.min_workers), encoding.max_workers)
    if base is None:
        words = describe_action(delta) + detail
    else:
        words = f"the planner's {base} {f'{delta:+d}' if delta else 'kept'}{detail}"
    if target != start + delta:
        bound = "max" if target == encoding.max_workers else "min"
        words += f"; clipped to {target} ({bound}_workers)"
    return target, words
