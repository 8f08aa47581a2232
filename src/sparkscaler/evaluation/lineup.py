"""The policies an evaluation compares, built the same way in every worker process.

A suite names its policies by key; :func:`policy_settings` turns a key into the policy's name
and parameters, as a user would write them in ``policy:``, from a :class:`Calibration` (the
runtime model and the real runs it was fitted to) and the paths of pretrained DQN models. The
policy itself is then built by :func:`sparkscaler.wiring.build_policy`, the function that builds
the policy of ``sparkscaler run``, given the calibration's runtime model and the simulation's
provisioning delay: the evaluated policy is the one a user runs. Keys that are not plain policy
names:

- ``regression``: the paper's two-step linear regression; its instance model
  ``workers ~ size + time`` refitted, as the paper's ``modelZ.R`` does, on the calibration runs;
- ``planner`` and ``hybrid``: the calibration's runtime model from the start;
- ``dqn-paper`` / ``dqn-paper-cost`` / ``dqn-improved`` / ``dqn-residual``: a DQN of that variant
  (:mod:`sparkscaler.rl.training`) trained beforehand in the simulator;
- ``dqn-paper-online`` / ``dqn-paper-cost-online`` / ``dqn-improved-online``: a DQN that starts
  untrained and learns during the rounds, as the paper's agent did (paper-grid only; it acts in
  the Gymnasium env);
- ``oracle``: not a policy, see :mod:`sparkscaler.evaluation.oracle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparkscaler.config import PolicySettings
from sparkscaler.models.runtime_model import (
    LOCAL_RUNS,
    RunRecord,
    RuntimeModel,
    is_thonglek,
    load_runs_csv,
    load_thonglek,
    runs_from_jobs,
)
from sparkscaler.policies.regression import fit_instances
from sparkscaler.store import Store

ORACLE = "oracle"
ONLINE_SUFFIX = "-online"
DQN_VARIANTS = ("paper", "paper-cost", "improved", "residual")


def load_runs(path: str | Path) -> list[RunRecord]:
    """Runs from whatever ``path`` is: Thonglek data, a sparkscaler SQLite store, or a CSV.

    Here rather than beside the runtime model because it opens a store: the model itself reads
    only plain records and files.
    """
    path = Path(path)
    if is_thonglek(path):
        return load_thonglek(path)
    if path.suffix == ".db":
        if not path.is_file():
            # Store() would create an empty database here; a typo should not leave files behind.
            raise FileNotFoundError(f"{path}: no such store")
        with Store(path) as store:
            return runs_from_jobs(store.jobs())
    return load_runs_csv(path)


@dataclass(frozen=True)
class Calibration:
    """A runtime model and the real runs behind it (plain data, so it crosses processes)."""

    source: str
    model: dict[str, Any]
    runs: tuple[tuple[float, int, float], ...]

    @property
    def runtime_model(self) -> RuntimeModel:
        return RuntimeModel.from_dict(self.model)

    @classmethod
    def load(cls, path: Path | None = None, max_workers: int = 10) -> Calibration:
        """From real runs (anything ``sparkscaler calibrate`` reads), or from a saved model.

        A saved model carries no runs; the regression is then refitted on runs the model
        predicts (sizes across the runs' range, 1 to 3 workers, as the paper measured).
        """
        path = LOCAL_RUNS if path is None else Path(path)
        if path.suffix == ".json":
            model = RuntimeModel.load(path)
            sizes = np.linspace(1.0, 3.0, 5)
            runs = tuple(
                (float(s), n, float(model.predict(s, n))) for s in sizes for n in range(1, 4)
            )
            return cls(str(path), model.to_dict(), runs)
        records: list[RunRecord] = load_runs(path)
        sizes_ = [r.size_gb for r in records]
        model = RuntimeModel(source=str(path)).fit(
            sizes_, [r.workers for r in records], [r.seconds for r in records]
        )
        runs = tuple((r.size_gb, r.workers, r.seconds) for r in records)
        return cls(str(path), model.to_dict(), runs)

    def default_sizes(self, shortest_deadline_s: float, fewest_workers: int) -> tuple[float, float]:
        """Input sizes for the paper-grid, in the proportions of the paper's experiment.

        The paper ran 0.5-3.0 GB (a 6x range) against T of 5-10 minutes, so that the largest
        jobs could not meet the shortest T on the smallest cluster. Here the largest size is the
        one the model says takes 1.1 times the shortest T on the fewest workers of the grid,
        and the smallest a sixth of it.
        """
        model = self.runtime_model
        target = 1.1 * shortest_deadline_s
        low, high = 1e-3, 1.0
        while float(model.predict(high, fewest_workers)) < target:
            high *= 2
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (
                (mid, high) if float(model.predict(mid, fewest_workers)) < target else (low, mid)
            )
        return high / 6, high


def policy_settings(
    key: str, calibration: Calibration, dqn_models: dict[str, str]
) -> PolicySettings:
    """The policy a key stands for (see the module's docstring), as a config names it."""
    if key == "regression":
        sizes, workers, seconds = zip(*calibration.runs, strict=True)
        b0, b1, b2 = fit_instances(sizes, seconds, workers)
        params = {
            "instances_intercept": b0,
            "instances_coef_size": b1,
            "instances_coef_deadline": b2,
        }
        return PolicySettings(name="regression", params=params)
    if key.startswith("dqn-"):
        if key not in dqn_models:
            raise ValueError(f"no pretrained model for {key}")
        return PolicySettings(name="dqn", params={"model_path": dqn_models[key]})
    return PolicySettings(name=key)
