"""Deadline planner: the fewest workers that an Ernest runtime model says will meet T.

Source: Venkataraman et al., "Ernest: Efficient Performance Prediction for Large-Scale Advanced
Analytics" (NSDI 2016), whose model ``t(s, n) = θ0 + θ1·s/n + θ2·s + θ3·n + θ4·log n`` is
:class:`~sparkscaler.models.runtime_model.RuntimeModel`, put to Ernest's own use: choosing the
cluster size for a time budget. With ``s`` the running job's input
size (``input_bytes / 1e9`` GB), T its deadline and N the most workers allowed:

- no job running -> the minimum workers; no deadline known -> the current size; input size
  unknown -> N;
- target = the smallest n in [max(1, min workers), N] with
  ``(1 - f) · t_q(s, n) + d · max(0, 1 - alive / n) <= T - elapsed``, where
  ``t_q = t · (1 + margin)``, the margin is the ``q`` quantile of the model's relative training
  residuals (never negative), and ``d`` (``provisioning_s``) is how long a requested worker takes
  to run tasks: until the ``n - alive`` new workers arrive, the ``alive`` ones work at
  ``alive / n`` of the rate;
- a running job is shrunk (target below its current size) only if the smaller size meets T
  with ``scale_in_slack`` (20 %) of the time left to spare: shrinking stakes the deadline on the
  progress estimate;
- if the model says extra workers buy nothing (``model.scales(s, N)`` is false: less than
  ``scale_threshold`` times faster on N than on 1) the same search applies, and the reason says
  the job does not scale; if then no n meets T, the smallest n, since more would be wasted;
- if no n meets T (and the job scales) -> N, and the reason says the deadline cannot be met;
- a job that has already run longer than ``t_q`` on its current size (the model was wrong about
  it and cannot say what is left) gets N if it scales, else keeps its current size.

Remaining work of the running jobs (our approximation; Ernest predicts whole runs only): ``s``
is the input of every running job together. On ``n`` workers the model processes
``s / t_q(s, n)`` GB a second, so the input done is the sum of ``dt · s / t_q(s, alive)`` over
the intervals between decisions, with ``alive`` the workers that were running tasks then (a
worker still provisioning does no work); input that leaves (a job finished) is taken off it, and
input that arrives is simply more to do. The policy keeps that running sum while jobs run (the
only memory it has); for jobs it meets already running it starts from ``elapsed / t_q(s, alive
now)`` of ``s``. With ``f`` the share of ``s`` done, what is left takes ``(1 - f)`` of a whole
run on any n.
Start-up cost is thereby treated as spread over the run, and progress is underestimated when the
job runs faster than ``t_q``, both on the safe side.

Learning: ``fit(history)`` refits the model on the finished jobs
(:func:`~sparkscaler.models.runtime_model.runs_from_jobs`) once at least ``min_runs`` are usable,
replacing the prior model (not blending with it). Until then the policy uses the model given as
``model`` (Python) or ``model_path`` (a :meth:`RuntimeModel.save` file, read once when the policy
is built), and without either it asks for N workers, reason "no runtime model yet".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import Field

from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.models.runtime_model import RuntimeModel, runs_from_jobs
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.units import Duration


class PlannerParams(PolicyParams):
    q: float = Field(0.9, ge=0, le=1, description="residual quantile for the safety margin")
    min_runs: int = Field(5, ge=2, description="finished jobs needed before the model is refit")
    model_path: str | None = Field(
        None, description="RuntimeModel JSON used until min_runs jobs have finished"
    )
    deadline_s: Duration | None = Field(
        None, gt=0, description="T when the observation carries no deadline"
    )
    max_workers: int = Field(10, ge=1, description="N when the observation carries no maximum")
    scale_threshold: float = Field(
        1.1, gt=1, description="speedup on N over 1 worker below which the job does not scale"
    )
    scale_in_slack: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="a running job is shrunk only if the smaller size leaves this share of T spare",
    )
    provisioning_s: Duration = Field(
        0.0,
        ge=0,
        description="seconds before a requested worker runs tasks (provisioning + executor start)",
    )


class PlannerPolicy(Policy):
    name = "planner"
    Params = PlannerParams

    @classmethod
    def for_loop(
        cls,
        params: Mapping[str, Any],
        *,
        runtime_model: RuntimeModel | None = None,
        provisioning_s: float = 0.0,
    ) -> Self:
        """Plans with the loop's runtime model and provisioning delay, unless ``params`` names
        a model file or a delay of its own."""
        return cls(model=runtime_model, **{"provisioning_s": provisioning_s, **params})

    def __init__(self, *, model: RuntimeModel | None = None, **params: Any) -> None:
        super().__init__(**params)
        if model is None and self.params.model_path is not None:
            model = RuntimeModel.load(self.params.model_path)
        self.model_: RuntimeModel | None = model
        self.model_origin_: str = "given" if model is not None else "none"
        self.jobs_seen_: int = 0
        self._derived_for: RuntimeModel | None = None
        self._derived_origin = ""
        self._derived_value: tuple[float, str] = (0.0, "")
        # (time of the last decision, GB done, GB running, alive workers then, oldest job's
        # start); None while no job runs
        self._job_progress: tuple[float, float, float, int, float] | None = None

    # ------------------------------------------------------------------ fitting

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Refit the runtime model from finished jobs once ``min_runs`` of them are usable."""
        runs = runs_from_jobs(history)
        self.jobs_seen_ = len(runs)
        if len(runs) < self.params.min_runs:
            return self
        try:
            model = RuntimeModel(source=f"{len(runs)} finished jobs").fit(
                [r.size_gb for r in runs], [r.workers for r in runs], [r.seconds for r in runs]
            )
        except ValueError:
            return self  # runs with no signal: keep the model there is
        self.model_, self.model_origin_ = model, "jobs"
        return self

    def _derived(self) -> tuple[float, str]:
        """The model's margin at ``q`` and its version tag, recomputed only when it changes."""
        if self._derived_for is not self.model_ or self._derived_origin != self.model_origin_:
            if self.model_ is None:
                self._derived_value = (0.0, f"{self.version}:none")
            else:
                state = self.model_.to_dict()
                digest = hashlib.sha256(
                    json.dumps([state["coef"], state["residuals"]]).encode()
                ).hexdigest()[:8]
                self._derived_value = (
                    self.model_.margin(self.params.q),
                    f"{self.version}:{self.model_origin_}-{state['n_runs']}runs-{digest}",
                )
            self._derived_for, self._derived_origin = self.model_, self.model_origin_
        return self._derived_value

    @property
    def model_version(self) -> str:
        return self._derived()[1]

    # ------------------------------------------------------------------ deciding

    def _make(self, target: int, reason: str) -> Decision:
        return Decision(
            target=target, policy=self.name, reason=reason, model_version=self.model_version
        )

    def decide(self, observation: Observation) -> Decision:
        obs, p = observation, self.params
        floor = max(0, obs.min_workers)
        if not obs.job_running:
            self._job_progress = None
            return self._make(floor, f"no job running: {floor} (min workers)")
        top = obs.max_workers if obs.max_workers is not None else p.max_workers
        if top < 1:
            return self._make(top, f"a job is running but at most {top} workers are allowed")
        lo = min(max(1, floor), top)
        if self.model_ is None:
            return self._make(
                top,
                f"no runtime model yet ({self.jobs_seen_} of {p.min_runs} finished jobs): "
                f"N = {top}",
            )
        deadline = obs.deadline_s if obs.deadline_s is not None else p.deadline_s
        if deadline is None:
            hold = min(max(obs.workers, lo), top)
            return self._make(hold, f"no deadline T known: holding {hold}")
        if obs.input_bytes is None or obs.input_bytes <= 0:
            return self._make(top, f"input size unknown: N = {top}")

        model, size = self.model_, obs.input_bytes / 1e9
        margin = self._derived()[0]
        elapsed = max(0.0, obs.oldest_job_elapsed_s or 0.0)
        left = deadline - elapsed
        # One prediction for every size 1..N: t_q(s, n) = t(s, n) * (1 + margin).
        t_q = np.asarray(model.predict(size, np.arange(1, top + 1)), dtype=float) * (1 + margin)
        counts, whole = np.arange(lo, top + 1), t_q[lo - 1 :]
        now = min(max(obs.workers, 1), top)
        done = self._progress(obs, size, t_q, elapsed)
        # RuntimeModel.scales(size, top, threshold), from the same predictions.
        speedup = float(t_q[0] / t_q[top - 1])
        scales = speedup >= p.scale_threshold
        when = f"{size:.2f} GB, {left:.0f} s of T = {deadline:g} s left"
        speed = f"speedup {speedup:.2f}x on {top}"
        if done >= 1.0:
            # Late against the model itself: it cannot say how much is left.
            n = top if scales else now
            why = "N" if scales else f"does not scale ({speed}), holding"
            return self._make(n, f"{when}: has run past its predicted time on {now}; {why} {n}")
        if elapsed > 0:
            when += f", ~{done:.0%} done"
        # Workers still to come help only after the provisioning delay d: until then the alive
        # ones do the work at alive/n of the rate, so the run is d * (1 - alive/n) longer.
        alive = obs.cluster.alive_workers
        late = p.provisioning_s * np.clip(1.0 - alive / counts, 0.0, None)
        remaining = (1.0 - done) * whole + late
        meets = np.flatnonzero(remaining <= left)

        if meets.size:
            first = int(meets[0])
            # Shrinking a running job stakes its deadline on the progress estimate: only with
            # scale_in_slack of the time left to spare.
            if elapsed > 0 and counts[first] < now:
                safe = np.flatnonzero(remaining <= left * (1.0 - p.scale_in_slack))
                first = max(first, min(int(safe[0]) if safe.size else now - lo, now - lo))
            n = int(counts[first])
            predicted = f"predicted {remaining[first]:.0f} s with q{p.q:g} margin"
            if not scales:
                return self._make(
                    n, f"{when}: does not scale ({speed}); {n} worker(s) meet T ({predicted})"
                )
            return self._make(n, f"{when}: {n} worker(s) meet T ({predicted})")
        best = float(remaining.min())
        if not scales:
            return self._make(
                lo,
                f"{when}: deadline cannot be met (best {best:.0f} s) and the job does not scale "
                f"({speed}): {lo}",
            )
        return self._make(
            top, f"{when}: deadline cannot be met (best {best:.0f} s on up to {top}): N = {top}"
        )

    def _progress(self, obs: Observation, size: float, t_q: np.ndarray, elapsed: float) -> float:
        """Share of the running input done, from the input processed since it was first seen.

        On ``n`` workers the model processes ``s / t_q(s, n)`` GB a second. Input that leaves
        (a job finished) is taken off what was done; input that arrives adds to what is left.
        """
        assert self.model_ is not None
        alive = min(max(obs.cluster.alive_workers, 1), len(t_q))
        state = self._job_progress
        started = obs.time - elapsed  # the oldest running job's start: only ever moves later
        if state is not None and obs.time >= state[0] and started >= state[4] - 1.0:
            last, done_gb, last_size, last_alive, _ = state
            t_last = float(self.model_.predict(last_size, last_alive)) * (1 + self._derived()[0])
            done_gb += (obs.time - last) * last_size / t_last
            if size < last_size:
                done_gb = max(0.0, done_gb - (last_size - size))
        else:
            done_gb = size * min(1.0, elapsed / t_q[alive - 1])
        self._job_progress = (obs.time, done_gb, size, alive, started)
        return min(1.0, done_gb / size)

    # -------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        data = {
            "name": self.name,
            "params": self.get_params(),
            "learned": {
                "model": None if self.model_ is None else self.model_.to_dict(),
                "model_origin": self.model_origin_,
                "jobs_seen": self.jobs_seen_,
            },
        }
        Path(path).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        data = json.loads(Path(path).read_text())
        if data.get("name") != cls.name:
            raise ValueError(f"{path} holds a {data.get('name')!r} policy, not {cls.name!r}")
        learned = data.get("learned") or {}
        model_data = learned.get("model")
        model = None if model_data is None else RuntimeModel.from_dict(model_data)
        params = dict(data.get("params", {}))
        if model is not None:
            # The saved model is the state to restore; do not re-read model_path.
            policy = cls(model=model, **{**params, "model_path": None})
            policy.params = cls.Params(**params)
        else:
            policy = cls(**params)
        policy.model_origin_ = str(learned.get("model_origin", policy.model_origin_))
        policy.jobs_seen_ = int(learned.get("jobs_seen", 0))
        return policy
