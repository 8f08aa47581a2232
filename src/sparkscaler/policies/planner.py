"""Deadline planner: the fewest workers that meet every running job's deadline T, re-planned
from the jobs' progress every decision.

Sources: Ernest (Venkataraman et al., NSDI 2016) for a job's run time against its input size and
workers, learned per recurring job (:class:`~sparkscaler.models.job_knowledge.JobKnowledge`:
Ernest where a signature's runs vary enough, else its runs' work scaled by size, else a prior
model); Jockey (Ferguson et al., EuroSys 2012) for planning a running job from its progress: the
time left is predicted from the work its stages have left (and the stages its past runs had
still to come), and the allocation re-planned every interval against the time left to T, with
slack for what the prediction cannot see.

Every decision, with ``cpw`` the cores of a worker, ``d`` the provisioning delay
(``provisioning_s``: how long a requested worker takes to run tasks) and N the most workers:

- the running jobs (``Observation.jobs``, oldest first) fall into groups that share workers:
  the jobs that could use every worker (no ``spark.cores.max``, or one as large as the cluster)
  are one group, since a standalone master hands free cores to the oldest application that
  wants them, so they run one after another on the same workers; a job capped below that
  (``cap = ceil(spark.cores.max / cpw)`` workers) is a group of its own, beside the others;
- a group is sized for its jobs that have a deadline (their own ``spark.sparkscaler.deadline``,
  else ``deadline_s``) and whose signature is known (its own runs, else the prior model): the
  smallest ``n`` in ``[1, cap]`` with which each of them finishes within ``T - elapsed``, its
  time left on ``n`` workers with its margin (:meth:`JobKnowledge.project`) counted after the
  known jobs before it in the group (its serial part overlaps theirs), plus
  the work the missing workers do not do while they come, ``Σ wait / n`` over the ``n - ready``
  workers it lacks (the ``ready`` ones, those the group holds and idle ALIVE workers no job
  holds, work from the start): a worker already asked for waits what is left of ``d`` since it
  was (``WorkerInfo.pending_s``), a new one the whole ``d``; with every wait ``d`` this is
  ``d · (1 - ready / n)``. So a job is scaled out as soon as its projected finish on the
  current workers passes T, and a worker that has booted for a minute is not planned as one
  still a whole delay away (which asked for more while the first ones booted);
- a group of several known jobs (a queue) is sized to finish each of them ``queue_slack``
  (60 %) of its time left early: a queue that only just meets its deadlines leaves nothing for
  the jobs that arrive next, and N caps how fast it can be drained (on the trace suite, without
  it, every job that missed its deadline had spent most of its run behind others at N);
- shrinking running jobs (``n`` below the workers the group holds) stakes their deadlines on
  the projection: only to a size that meets T with ``scale_in_slack`` (20 %) of the time left
  to spare, else the group keeps what it has;
- if no ``n`` meets T: ``cap`` if more workers make its first such job faster (the expected
  time left on ``cap`` at least ``scale_threshold`` times shorter than on 1), else 1 worker,
  since more would be wasted; the reason says the deadline cannot be met;
- a group with no such job holds the workers it has; a job with a deadline whose signature was
  never seen, when there is no prior model, is not planned ("new signature"): the planner
  alone gives it all it can use (``cap``), as it cannot tell what it needs; the hybrid policy
  leaves it to its reactive part. Its runs are learned once they finish (the controller refits
  the policy when jobs finish).

The target is the workers for the groups' task slots together (``min(n · cpw,
spark.cores.max)`` each), at least ``max(1, min workers)`` while a job runs and at most N; with
no job running, the minimum. Several jobs get workers side by side only if they set
``spark.cores.max`` (or executors sized so that several applications fit on the workers): else
they queue (docs/planner.md). An observation that shows running applications but no job context
(an application's REST API not found yet) holds the cluster's size.

``Decision.predicted_s`` carries each known job's expected whole run time (from its start, no
margin) on the workers it was sized for; the reason names per job the knowledge used
("wordcount: Ernest on 5 runs, ~40% done", "kmeans: prior model", "new signature").

Learning: ``fit(history)`` refits the knowledge on the finished jobs (each signature on its own
latest runs). The prior model (``model`` in Python, or ``model_path``, a
:meth:`RuntimeModel.save` file read once when the policy is built) is the knowledge of every
signature without history, and a shape to scale to a signature's first runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field

from sparkscaler.core import Decision, JobContext, JobRecord, Observation
from sparkscaler.models.job_knowledge import (
    JobKnowledge,
    Projection,
    job_slots,
    useful_workers,
)
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.units import Duration


class PlannerParams(PolicyParams):
    q: float = Field(0.9, ge=0, le=1, description="residual quantile for the safety margin")
    min_runs: int = Field(
        4, ge=3, description="runs of a job on 2+ worker counts before its own Ernest model"
    )
    model_path: str | None = Field(
        None, description="RuntimeModel JSON: the prior model for jobs without history"
    )
    deadline_s: Duration | None = Field(
        None, gt=0, description="T for a job that carries no deadline of its own"
    )
    max_workers: int = Field(10, ge=1, description="N when the observation carries no maximum")
    scale_threshold: float = Field(
        1.1, gt=1, description="speedup on all it can use over 1 worker below which a job does "
        "not scale",
    )  # fmt: skip
    scale_in_slack: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="a running job is shrunk only if the smaller size leaves this share of T spare",
    )
    queue_slack: float = Field(
        0.6,
        ge=0,
        lt=1,
        description="jobs that wait for the same workers are sized to finish this share of "
        "their time left early",
    )
    provisioning_s: Duration = Field(
        0.0,
        ge=0,
        description="seconds before a requested worker runs tasks (provisioning + executor start)",
    )


JobKind = Literal["planned", "no deadline", "new signature"]


@dataclass(frozen=True)
class JobPlan:
    """What the planner made of one running job: the workers it is sized for (its share of the
    target) and the task slots of them it can use."""

    app_id: str
    label: str
    kind: JobKind
    workers: int
    slots: float
    reason: str
    #: Expected whole run time (from the job's start) on ``workers``; planned jobs only.
    predicted_s: float | None = None


@dataclass(frozen=True)
class Plan:
    """A planner's answer: the target and, job by job, how it came about."""

    target: int
    reason: str
    jobs: tuple[JobPlan, ...] = ()
    cores_per_worker: float = 1.0

    @property
    def predicted_s(self) -> dict[str, float]:
        return {j.app_id: j.predicted_s for j in self.jobs if j.predicted_s is not None}


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
        """Plans with the loop's runtime model (as the prior) and provisioning delay, unless
        ``params`` names a model file or a delay of its own."""
        return cls(model=runtime_model, **{"provisioning_s": provisioning_s, **params})

    def __init__(self, *, model: RuntimeModel | None = None, **params: Any) -> None:
        super().__init__(**params)
        if model is None and self.params.model_path is not None:
            model = RuntimeModel.load(self.params.model_path)
        self.prior_: RuntimeModel | None = model
        self.history_: list[JobRecord] = []
        self.knowledge_ = self._knowledge(1.0)
        self._version = ""

    # ------------------------------------------------------------------ fitting

    def _knowledge(self, cores_per_worker: float) -> JobKnowledge:
        p = self.params
        return JobKnowledge(
            prior=self.prior_, q=p.q, min_runs=p.min_runs, cores_per_worker=cores_per_worker
        ).fit(self.history_)

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Learn every recurring job from its finished runs (each signature on its own)."""
        self.history_ = list(history)
        self.knowledge_ = self._knowledge(self.knowledge_.cores_per_worker)
        self.history_ = self.knowledge_.records_  # only what it learned from is kept
        self._version = ""
        return self

    @property
    def model_version(self) -> str:
        """``<version>:<prior|noprior>-<signatures>sig-<runs>runs-<digest>``, the digest over
        the prior and the runs learned from, so that a decision names the knowledge it used."""
        if not self._version:
            k = self.knowledge_
            prior = self.prior_.to_dict() if self.prior_ is not None else None
            state = json.dumps([prior, sorted((r.app_id, r.end_time) for r in self.history_)])
            digest = hashlib.sha256(state.encode()).hexdigest()[:8]
            origin = "prior" if prior is not None else "noprior"
            self._version = (
                f"{self.version}:{origin}-{len(k.signatures_)}sig-{k.runs_}runs-{digest}"
            )
        return self._version

    # ------------------------------------------------------------------ deciding

    def decide(self, observation: Observation) -> Decision:
        plan = self.plan(observation)
        return Decision(
            target=plan.target,
            policy=self.name,
            reason=plan.reason,
            model_version=self.model_version,
            predicted_s=plan.predicted_s,
        )

    def plan(self, observation: Observation) -> Plan:
        """The target and, per running job, what it needs (module docstring)."""
        obs, p = observation, self.params
        floor = max(0, obs.min_workers)
        if not obs.jobs and not obs.job_running:
            return Plan(floor, f"no job running: {floor} (min workers)")
        top = obs.max_workers if obs.max_workers is not None else p.max_workers
        if top < 1:
            return Plan(top, f"a job is running but at most {top} workers are allowed")
        lo = min(max(1, floor), top)
        cpw = obs.cluster.cores_per_worker or self.knowledge_.cores_per_worker
        if cpw != self.knowledge_.cores_per_worker:  # slots of past runs are in this worker size
            self.knowledge_ = self._knowledge(cpw)
        if not obs.jobs:
            hold = min(max(obs.workers, lo), top)
            return Plan(hold, f"running applications not yet seen job by job: holding {hold}")
        held = {job.app_id: math.ceil(job.cores / cpw - 1e-9) for job in obs.jobs}
        free = max(0, obs.cluster.alive_workers - sum(held.values()))
        coming = _coming(obs, p.provisioning_s)
        plans: list[JobPlan] = []
        for group, cap in _groups(obs.jobs, cpw, top):
            have = max(held[job.app_id] for job in group)
            done = self._plan_group(group, have, have + free, cap, cpw, coming)
            grew = max(0, max(j.workers for j in done) - have)
            coming = coming[max(0, grew - free) :]  # the free workers first, then those coming
            free = max(0, free - grew)
            plans += done
        want = math.ceil(sum(j.slots for j in plans) / cpw - 1e-9)
        target = min(max(want, lo), top)
        total = f"{want} worker(s)" if len(plans) > 1 else ""
        if want > top:
            total = f"{want} worker(s), capped at N = {top}"
        elif target > want:
            total = f"{target} (min workers)"
        reason = "; ".join(j.reason for j in plans) + (f" -> {total}" if total else "")
        return Plan(target, reason, tuple(plans), cpw)

    def _plan_group(
        self,
        jobs: Sequence[JobContext],
        have: int,
        ready: int,
        cap: int,
        cpw: float,
        coming: Sequence[float] = (),
    ) -> list[JobPlan]:
        """The workers of jobs that run one after another on the same ``cap`` workers at most
        (or of one job with its own core cap): the fewest with which each job with a deadline
        finishes within it, the jobs before it finishing first (their serial parts overlap).
        ``coming``: the seconds until each worker already asked for runs tasks, soonest first;
        the group's workers beyond ``ready`` are those, then new ones a full delay away."""
        p = self.params
        known: list[tuple[JobContext, float | None, list[Projection]]] = []
        for job in jobs:
            deadline = job.deadline_s if job.deadline_s is not None else p.deadline_s
            projections = self.knowledge_.projections(job, range(1, cap + 1), cpw)
            if projections is not None:
                known.append((job, deadline, projections))
        timed = [(job, deadline) for job, deadline, _ in known if deadline is not None]

        def finishes(n: int, safe: bool) -> list[float]:
            """Seconds from now until each known job is done on ``n`` workers, in turn."""
            short = max(0, n - ready)
            waits = sum(coming[:short]) + p.provisioning_s * max(0, short - len(coming))
            late = waits / n
            out, t = [], 0.0
            for _, _, projections in known:
                pr = projections[n - 1]
                f = 1.0 + pr.margin if safe else 1.0
                t = max(pr.serial_left_s * f, t) + (pr.left_s - pr.serial_left_s) * f
                out.append(t + late)
            return out

        # A queue that only just meets its deadlines leaves nothing for the next job to arrive.
        queued = 1.0 - p.queue_slack if len(known) > 1 else 1.0

        def meets(n: int, share: float = 1.0) -> bool:
            share *= queued
            ends = finishes(n, True)
            return all(
                end <= share * (deadline - job.elapsed_s)
                for (job, deadline, _), end in zip(known, ends, strict=True)
                if deadline is not None
            )

        n = min(have, cap)
        verdict = f"no deadline T, holds {n}"
        if timed:
            fits = next((m for m in range(1, cap + 1) if meets(m)), None)
            if fits is not None:
                n = fits
                if n < have and any(job.elapsed_s > 0 for job, _ in timed):
                    # Shrinking running jobs stakes their deadlines on the projection.
                    spare = (m for m in range(n, have) if meets(m, 1.0 - p.scale_in_slack))
                    n = next(spare, have)
                verdict = f"{n} worker(s) meet T"
            else:
                first = next(pr for _, deadline, pr in known if deadline is not None)
                speedup = first[0].left_s / first[-1].left_s if first[-1].left_s > 0 else 1.0
                n = cap if speedup >= p.scale_threshold else 1
                verdict = f"deadline cannot be met: {n}"
                if n == 1:
                    verdict = f"deadline cannot be met and more workers do not help: {n}"
        safe = finishes(n, True) if timed else []
        expected = finishes(n, False) if timed else []
        # The group's workers count once, with its first job with a deadline (else its first).
        owner = next((job for job, _ in timed), jobs[0])
        out = []
        entries = {id(job): (i, deadline, pr) for i, (job, deadline, pr) in enumerate(known)}
        for position, job in enumerate(jobs):
            label = job.signature or job.app_id
            behind = f", behind {position} job(s) on the same workers" if position else ""
            slots = job_slots(n, cpw, job.max_cores) if job is owner and n > 0 else 0.0
            if id(job) not in entries:
                if job.deadline_s is None and p.deadline_s is None:
                    text = f"{label}: new signature{behind}, no deadline T"
                    out.append(JobPlan(job.app_id, label, "no deadline", n, slots, text))
                    continue
                full = job_slots(cap, cpw, job.max_cores)
                text = f"{label}: new signature, no history: {cap} (all it can use){behind}"
                out.append(JobPlan(job.app_id, label, "new signature", cap, full, text))
                continue
            i, deadline, projections = entries[id(job)]
            if not timed or deadline is None:
                text = f"{projections[0].source}{behind}, no deadline T"
                predicted = job.elapsed_s + expected[i] if timed else None
                out.append(JobPlan(job.app_id, label, "no deadline", n, slots, text, predicted))
                continue
            pr = projections[n - 1]
            done = f", ~{pr.progress:.0%} done" if pr.progress > 0 else ""
            text = (
                f"{pr.source}{done}{behind}; predicted {safe[i]:.0f} s left with "
                f"margin, {deadline - job.elapsed_s:.0f} s of T = {deadline:g} s left"
            )
            out.append(
                JobPlan(job.app_id, label, "planned", n, slots, text, job.elapsed_s + expected[i])
            )
        out[-1] = replace(out[-1], reason=f"{out[-1].reason} -> {verdict}")
        return out

    # -------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        data = {
            "name": self.name,
            "params": self.get_params(),
            "learned": {
                "prior": None if self.prior_ is None else self.prior_.to_dict(),
                "history": [asdict(r) for r in self.history_],
                "cores_per_worker": self.knowledge_.cores_per_worker,
            },
        }
        Path(path).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        data = json.loads(Path(path).read_text())
        if data.get("name") != cls.name:
            raise ValueError(f"{path} holds a {data.get('name')!r} policy, not {cls.name!r}")
        learned = data.get("learned") or {}
        prior = learned.get("prior")
        params = dict(data.get("params", {}))
        # The saved prior is the state to restore; do not re-read model_path.
        policy = cls(
            model=None if prior is None else RuntimeModel.from_dict(prior),
            **{**params, "model_path": None},
        )
        policy.params = cls.Params(**params)
        policy.history_ = [JobRecord.from_dict(r) for r in learned.get("history", [])]
        policy.knowledge_ = policy._knowledge(float(learned.get("cores_per_worker", 1.0)))
        return policy


def _coming(obs: Observation, provisioning_s: float) -> list[float]:
    """Seconds until each PROVISIONING worker runs tasks, soonest first: the delay less the
    time since it was asked for (``WorkerInfo.pending_s``), at worst the whole delay."""
    return sorted(
        max(0.0, provisioning_s - w.pending_s)
        for w in obs.cluster.workers
        if w.state == "PROVISIONING"
    )


def _groups(jobs: Sequence[JobContext], cpw: float, top: int) -> list[tuple[list[JobContext], int]]:
    """The running jobs as groups that share workers, oldest first, with the workers each group
    can use: the jobs that could use every worker (no ``spark.cores.max``, or one as large as
    the cluster) run one after another on the same workers, as a standalone master hands free
    cores to the oldest application that wants them; a job capped below that runs beside them."""
    shared = [job for job in jobs if useful_workers(job.max_cores, cpw, top) >= top]
    groups: list[tuple[list[JobContext], int]] = []
    for job in jobs:
        if job in shared:
            if job is shared[0]:
                groups.append((shared, top))
        else:
            groups.append(([job], useful_workers(job.max_cores, cpw, top)))
    return groups
