"""The linear-regression baseline of Thonglek et al., "Auto-scaling Apache Spark cluster using
Deep Reinforcement Learning" (OLA 2019), refittable.

Source: the published formulas (the authors' web UI, quoted in ``../shared/data/README.md``) and
the authors' R script ``modelZ.R`` beside their data. The rule, two chained regressions:

- job size (GB) from the driver's memory features (MB, see :mod:`sparkscaler.observe.driverlog`):
  ``size = -0.03031 - 0.38603*avg_mem_action + 0.56362*avg_mem_transformation``;
- workers from size and deadline T (s):
  ``instances = ceil(2.01103 + 5.17337*size - 0.02862*T)``, capped at N.

Reading ``modelZ.R`` (both published fits are reproduced to all printed digits by
:meth:`RegressionPolicy.fit_runs` on the authors' CSVs): the size model is
``lm(SIZE ~ USED_B + USED_M)`` with the memory columns divided by 1000 (KB -> MB), so its inputs
are MB and its output GB directly; the web UI's "then /1000" is the same model fed KB, which only
scales the intercept (0.03 GB). The instance model is the *reverse* regression
``INSTANCE ~ SIZE + TIME`` ("how many workers did runs of this size that took this long have"),
evaluated with the deadline T in place of the observed TIME. Before fitting, the script appends
to each worker count's runs 25 rows of a run with zero size, time and memory
(``zero_anchor_runs``); the published coefficients include them.

Mapping a live :class:`Observation` to the model's inputs. The paper's memory features are mean
block sizes over a *finished* run's driver log; the observation's ``ma``/``mt`` are percentages
of executor unified memory in use now. No conversion makes one the other, so:

- ``size_source="auto"`` (default): the job's input size ``input_bytes / 1e9`` when the
  observation knows it. The size regression exists only to estimate that size from the log; when
  the size is known, the estimate adds nothing but its error.
- otherwise (or ``size_source="memory"``): ``avg_mem_* ~ pct / 100 * executor_memory_mb``, a
  proxy that assumes memory in use grows with the job like the mean block size does; set
  ``executor_memory_mb`` to calibrate it. Without it the size is unknown and the policy holds.

T is the observation's deadline, else ``deadline_s``; like the paper's baseline, the policy
sizes for the whole T and ignores the job's elapsed time (the ``planner`` policy uses it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, Self

import numpy as np
from pydantic import Field

from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.models.runtime_model import runs_from_jobs
from sparkscaler.policies.base import Policy, PolicyParams
from sparkscaler.units import Duration, MemoryMB

#: The published coefficients: size model (intercept, avg_mem_action, avg_mem_transformation)
#: and instance model (intercept, size, T).
PUBLISHED_SIZE_COEF: tuple[float, float, float] = (-0.03031, -0.38603, 0.56362)
PUBLISHED_INSTANCES_COEF: tuple[float, float, float] = (2.01103, 5.17337, -0.02862)


class PaperRun(Protocol):
    """What :meth:`RegressionPolicy.fit_runs` needs of a run, e.g. a ``driverlog.LoggedRun``."""

    @property
    def size_gb(self) -> float: ...
    @property
    def workers(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def avg_mem_action(self) -> float: ...
    @property
    def avg_mem_transformation(self) -> float: ...


class RegressionParams(PolicyParams):
    size_intercept: float = PUBLISHED_SIZE_COEF[0]
    size_coef_action: float = Field(PUBLISHED_SIZE_COEF[1], description="per MB of avg_mem_action")
    size_coef_transformation: float = Field(
        PUBLISHED_SIZE_COEF[2], description="per MB of avg_mem_transformation"
    )
    instances_intercept: float = PUBLISHED_INSTANCES_COEF[0]
    instances_coef_size: float = Field(PUBLISHED_INSTANCES_COEF[1], description="per GB")
    instances_coef_deadline: float = Field(PUBLISHED_INSTANCES_COEF[2], description="per second")
    deadline_s: Duration | None = Field(
        None, gt=0, description="T when the observation carries no deadline"
    )
    size_source: Literal["auto", "input", "memory"] = "auto"
    executor_memory_mb: MemoryMB | None = Field(
        None,
        gt=0,
        description="MiB that 100 % of the mt/ma features stand for (memory proxy); 4g or 4096",
    )
    zero_anchor_runs: int = Field(
        25, ge=0, description="zero runs per worker count appended before fitting (modelZ.R: 25)"
    )
    min_runs: int = Field(5, ge=3, description="usable finished jobs needed before fit() refits")


def _fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    from sklearn.linear_model import LinearRegression  # the 'ml' extra, needed only here

    model = LinearRegression().fit(x, y)
    return (float(model.intercept_), *(float(c) for c in model.coef_))


def _anchored(
    x: np.ndarray,
    y: np.ndarray,
    workers: np.ndarray,
    anchors: int,
    anchor_y: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Append ``anchors`` all-zero rows per distinct worker count, as modelZ.R does."""
    if anchors == 0:
        return x, y
    counts = np.unique(workers)
    zeros = np.zeros((anchors * len(counts), x.shape[1]))
    extra_y = anchor_y(np.repeat(counts, anchors))
    return np.vstack([x, zeros]), np.concatenate([y, extra_y])


def fit_instances(
    size_gb: Sequence[float], seconds: Sequence[float], workers: Sequence[int], anchors: int = 25
) -> tuple[float, float, float]:
    """``INSTANCE ~ SIZE + TIME`` (intercept, per GB, per second), with modelZ.R's zero rows."""
    s, t, n = (np.asarray(v, dtype=float) for v in (size_gb, seconds, workers))
    x, y = _anchored(np.column_stack([s, t]), n, n, anchors, lambda c: c.astype(float))
    b0, b1, b2 = _fit_linear(x, y)
    return b0, b1, b2


def fit_size(
    avg_mem_action: Sequence[float],
    avg_mem_transformation: Sequence[float],
    size_gb: Sequence[float],
    workers: Sequence[int],
    anchors: int = 25,
) -> tuple[float, float, float]:
    """``SIZE ~ USED_B + USED_M`` in MB (intercept, per MB action, per MB transformation)."""
    a, m, s, n = (
        np.asarray(v, dtype=float)
        for v in (avg_mem_action, avg_mem_transformation, size_gb, workers)
    )
    x, y = _anchored(np.column_stack([a, m]), s, n, anchors, lambda c: np.zeros(len(c)))
    c0, c1, c2 = _fit_linear(x, y)
    return c0, c1, c2


def _version_tag(source: str, n_runs: int, coef: Sequence[float]) -> str:
    digest = hashlib.sha256(json.dumps([round(c, 10) for c in coef]).encode()).hexdigest()[:8]
    return f"{source}-{n_runs}runs-{digest}"


class RegressionPolicy(Policy):
    """The paper's LR baseline; ``fit``/``fit_runs`` replace the published coefficients."""

    name = "regression"
    Params = RegressionParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        self.size_coef_: tuple[float, float, float] = (
            p.size_intercept,
            p.size_coef_action,
            p.size_coef_transformation,
        )
        self.instances_coef_: tuple[float, float, float] = (
            p.instances_intercept,
            p.instances_coef_size,
            p.instances_coef_deadline,
        )
        published = (
            self.size_coef_ == PUBLISHED_SIZE_COEF
            and self.instances_coef_ == PUBLISHED_INSTANCES_COEF
        )
        self.fitted_on_: str = "published" if published else "params"
        self.n_runs_: int = 0

    # ------------------------------------------------------------------ fitting

    @property
    def model_version(self) -> str:
        coef = (*self.size_coef_, *self.instances_coef_)
        return f"{self.version}:{_version_tag(self.fitted_on_, self.n_runs_, coef)}"

    def fit(self, history: Sequence[JobRecord]) -> Self:
        """Refit the instance model from finished jobs (size, duration, workers).

        Job records carry no driver-log memory features, so the size model keeps its
        coefficients. Fewer than ``min_runs`` usable jobs, or a single worker count (workers
        would then not depend on anything), leave the model as it is.
        """
        runs = runs_from_jobs(history)
        if len(runs) < self.params.min_runs or len({r.workers for r in runs}) < 2:
            return self
        self.instances_coef_ = fit_instances(
            [r.size_gb for r in runs],
            [r.seconds for r in runs],
            [r.workers for r in runs],
            self.params.zero_anchor_runs,
        )
        self.fitted_on_, self.n_runs_ = "jobs", len(runs)
        return self

    def fit_runs(self, runs: Sequence[PaperRun]) -> Self:
        """Refit both regressions from the paper's kind of runs (with driver-log memory, MB)."""
        usable = [
            r
            for r in runs
            if all(
                math.isfinite(v)
                for v in (r.size_gb, r.seconds, r.avg_mem_action, r.avg_mem_transformation)
            )
            and r.workers >= 1
        ]
        if len(usable) < 3 or len({r.workers for r in usable}) < 2:
            raise ValueError(
                f"need at least 3 runs on at least 2 worker counts, got {len(usable)} usable runs"
            )
        sizes = [r.size_gb for r in usable]
        workers = [r.workers for r in usable]
        anchors = self.params.zero_anchor_runs
        self.size_coef_ = fit_size(
            [r.avg_mem_action for r in usable],
            [r.avg_mem_transformation for r in usable],
            sizes,
            workers,
            anchors,
        )
        self.instances_coef_ = fit_instances(sizes, [r.seconds for r in usable], workers, anchors)
        self.fitted_on_, self.n_runs_ = "runs", len(usable)
        return self

    # ------------------------------------------------------------------ deciding

    def predict_size(self, avg_mem_action: float, avg_mem_transformation: float) -> float:
        """Job size in GB from the driver's mean block sizes in MB (never negative)."""
        c0, c1, c2 = self.size_coef_
        return max(0.0, c0 + c1 * avg_mem_action + c2 * avg_mem_transformation)

    def predict_instances(self, size_gb: float, deadline_s: float) -> int:
        """``ceil(b0 + b1*size + b2*T)``, before any bound.

        Rounded to 1e-9 first, so that float noise in a fitted model (2.0000000001) does not
        buy a whole extra worker.
        """
        b0, b1, b2 = self.instances_coef_
        return math.ceil(round(b0 + b1 * size_gb + b2 * deadline_s, 9))

    def _size(self, obs: Observation) -> tuple[float | None, str]:
        source = self.params.size_source
        if source != "memory" and obs.input_bytes is not None:
            return obs.input_bytes / 1e9, "input size"
        if source == "input":
            return None, "input size unknown"
        mem = self.params.executor_memory_mb
        if mem is None:
            return None, "input size unknown and executor_memory_mb not set for the memory model"
        action = obs.features.ma / 100.0 * mem
        transformation = obs.features.mt / 100.0 * mem
        size = self.predict_size(action, transformation)
        return size, f"size from memory (ma {action:.1f} MB, mt {transformation:.1f} MB)"

    def _make(self, target: int, reason: str) -> Decision:
        return Decision(
            target=target, policy=self.name, reason=reason, model_version=self.model_version
        )

    def decide(self, observation: Observation) -> Decision:
        obs = observation
        lower = max(0, obs.min_workers)
        if not obs.job_running:
            return self._make(lower, f"no job running: {lower} (min workers)")
        current = obs.workers
        hold = max(lower, current if obs.max_workers is None else min(current, obs.max_workers))
        deadline = obs.deadline_s if obs.deadline_s is not None else self.params.deadline_s
        if deadline is None:
            return self._make(hold, f"no deadline T known: holding {hold}")
        size, how = self._size(obs)
        if size is None:
            return self._make(hold, f"{how}: holding {hold}")
        raw = self.predict_instances(size, deadline)
        target = max(raw, 1, lower)
        capped = obs.max_workers is not None and target > obs.max_workers
        if obs.max_workers is not None and target > obs.max_workers:
            target = obs.max_workers
        return self._make(
            target,
            f"{size:.2f} GB ({how}), T {deadline:g} s: regression says {raw}"
            + (f", capped at N = {target}" if capped else "")
            + f" -> {target}",
        )

    # -------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        data = {
            "name": self.name,
            "params": self.get_params(),
            "learned": {
                "size_coef": list(self.size_coef_),
                "instances_coef": list(self.instances_coef_),
                "fitted_on": self.fitted_on_,
                "n_runs": self.n_runs_,
            },
        }
        Path(path).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        policy = super().load(path)
        learned = json.loads(Path(path).read_text()).get("learned")
        if learned:
            size_coef = tuple(float(c) for c in learned["size_coef"])
            instances_coef = tuple(float(c) for c in learned["instances_coef"])
            if len(size_coef) != 3 or len(instances_coef) != 3:
                raise ValueError(f"{path}: expected 3 + 3 regression coefficients")
            policy.size_coef_ = size_coef  # type: ignore[assignment]
            policy.instances_coef_ = instances_coef  # type: ignore[assignment]
            policy.fitted_on_ = str(learned["fitted_on"])
            policy.n_runs_ = int(learned["n_runs"])
        return policy
