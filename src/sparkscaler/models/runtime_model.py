"""An Ernest-style runtime model: how long a Spark job takes for an input size and worker count.

Ernest (Venkataraman et al., NSDI 2016) models a job's run time as a non-negative combination of
a few terms whose shapes come from how parallel jobs behave:

    t(s, n) = θ0 + θ1·s/n + θ2·s + θ3·n + θ4·log n

``θ0`` is fixed start-up cost, ``s/n`` the perfectly parallel part, ``s`` serial work that more
workers do not speed up (driver-side or a single-partition stage), and ``n`` / ``log n`` the
coordination cost that *grows* with workers (scheduling, broadcasts, tree aggregation).  Keeping
the coefficients non-negative (``scipy.optimize.nnls``) is what makes the model extrapolate
sensibly from a handful of runs: no term can cancel another to fit noise.

The simulator uses :meth:`RuntimeModel.sample` for run times, and the deadline-aware policy asks
:meth:`RuntimeModel.smallest_workers` how few workers still meet a deadline, with a safety
margin learned from how far real runs strayed from the fit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import nnls

from sparkscaler.core import JobRecord

#: Names of the model's terms, in the order of ``RuntimeModel.coef_``; saved with the model so a
#: file written by a different feature set is rejected rather than silently misread.
FEATURE_NAMES: tuple[str, ...] = ("1", "s/n", "s", "n", "log n")

#: A sampled run time never falls below this share of the prediction: the residuals of a poor
#: fit can exceed -100 %, and a simulator job that finishes in zero or negative time is nonsense.
MIN_SAMPLE_FRACTION = 0.05

_THONGLEK_FILE = re.compile(r"^worker(\d+)\.csv$")

#: The project's own recorded runs of its PySpark job on this machine's local cluster
#: (``benchmarks/record_local_runs.py``): the default calibration of simulations and evaluations.
LOCAL_RUNS = Path(__file__).resolve().parents[1] / "data" / "local_runs.csv"


class NotFittedError(RuntimeError):
    """Raised when a model is used before :meth:`RuntimeModel.fit` (or loading) gave it state."""


@dataclass(frozen=True)
class RunRecord:
    """One observed run: the three numbers the model learns from, whatever their source."""

    size_gb: float
    workers: int
    seconds: float


def features(size: ArrayLike, workers: ArrayLike) -> NDArray[np.float64]:
    """The design matrix ``[1, s/n, s, n, log n]``, one row per (size, workers) pair."""
    s, n = np.broadcast_arrays(
        np.asarray(size, dtype=float).ravel(), np.asarray(workers, dtype=float).ravel()
    )
    return np.column_stack([np.ones_like(s), s / n, s, n, np.log(n)])


def _check_inputs(size: ArrayLike, workers: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Validate sizes and worker counts so bad data fails loudly instead of as NaN predictions."""
    s = np.asarray(size, dtype=float)
    n = np.asarray(workers, dtype=float)
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError("sizes must be finite and positive (GB)")
    # log n must be >= 0 for the coordination term to mean "overhead"; a fraction of a worker
    # is meaningless anyway.
    if not (np.all(np.isfinite(n)) and np.all(n >= 1)):
        raise ValueError("worker counts must be finite and at least 1")
    return s, n


class RuntimeModel:
    """Run time of one kind of Spark job as a function of input size (GB) and worker count.

    scikit-learn style: construct, :meth:`fit`, then query; learned state ends in ``_``.
    ``source`` says where the training runs came from, so a saved model can be traced back.
    """

    def __init__(self, source: str = "") -> None:
        self.source = source

    # ---------------------------------------------------------------- fitting

    def fit(self, size: ArrayLike, workers: ArrayLike, seconds: ArrayLike) -> Self:
        """Fit non-negative coefficients to observed runs; keeps relative residuals for margins."""
        s = np.asarray(size, dtype=float).ravel()
        n = np.asarray(workers, dtype=float).ravel()
        t = np.asarray(seconds, dtype=float).ravel()
        if not len(s) == len(n) == len(t):
            raise ValueError(
                f"size, workers and seconds differ in length: {len(s)}, {len(n)}, {len(t)}"
            )
        if len(t) < 2:
            raise ValueError(f"need at least 2 runs to fit a runtime model, got {len(t)}")
        _check_inputs(s, n)
        if not (np.all(np.isfinite(t)) and np.all(t > 0)):
            raise ValueError("run times must be finite and positive (seconds)")
        design = features(s, n)
        coef, _ = nnls(design, t)
        predicted = design @ coef
        if np.any(predicted <= 0):
            # Only possible when every coefficient came out zero; relative residuals and margins
            # would then divide by zero.
            raise ValueError("the fit predicts no run time at all; the runs carry no signal")
        self.coef_ = coef
        self.residuals_ = (t - predicted) / predicted
        self.n_runs_ = len(t)
        return self

    def _fitted_coef(self) -> NDArray[np.float64]:
        if not hasattr(self, "coef_"):
            raise NotFittedError(
                "this RuntimeModel is not fitted yet; call fit() or load() before using it"
            )
        return self.coef_

    # ------------------------------------------------------------- prediction

    def predict(self, size: ArrayLike, workers: ArrayLike) -> float | NDArray[np.float64]:
        """Expected run time in seconds; a float for scalar inputs, else an array of their shape."""
        coef = self._fitted_coef()
        s, n = _check_inputs(size, workers)
        shape = np.broadcast_shapes(s.shape, n.shape)
        out = (features(s, n) @ coef).reshape(shape)
        return float(out) if out.ndim == 0 else out

    def margin(self, q: float) -> float:
        """Relative safety margin: the q-quantile of the training residuals, never negative.

        A negative quantile would promise that jobs run *faster* than predicted, which is the
        one mistake a deadline guarantee cannot afford.
        """
        self._fitted_coef()
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be a quantile in [0, 1], got {q}")
        return max(0.0, float(np.quantile(self.residuals_, q)))

    def predict_with_margin(
        self, size: ArrayLike, workers: ArrayLike, q: float = 0.95
    ) -> float | NDArray[np.float64]:
        """Run time that a q share of the training runs stayed under, relative to the fit."""
        return self.predict(size, workers) * (1.0 + self.margin(q))

    def sample(
        self, size: ArrayLike, workers: ArrayLike, rng: np.random.Generator
    ) -> float | NDArray[np.float64]:
        """A plausible run time for the simulator: the fit times a residual actually observed.

        Resampling real residuals (instead of assuming Gaussian noise) keeps the skew of real
        run times, e.g. occasional stragglers.
        """
        mean = self.predict(size, workers)
        draw = rng.choice(self.residuals_, size=np.shape(mean))
        out = np.asarray(mean) * np.maximum(1.0 + draw, MIN_SAMPLE_FRACTION)
        return float(out) if out.ndim == 0 else out

    # -------------------------------------------------------------- decisions

    def smallest_workers(
        self, size: float, deadline_s: float, max_workers: int, q: float = 0.95
    ) -> int | None:
        """Fewest workers (1..max_workers) whose run time with margin meets the deadline.

        None means no allowed cluster size is predicted to make it, so the caller can decide
        between running at full size anyway and rejecting the deadline.
        """
        if max_workers < 1:
            return None
        counts = np.arange(1, max_workers + 1)
        times = np.asarray(self.predict_with_margin(size, counts, q))
        fits = np.flatnonzero(times <= deadline_s)
        return int(counts[fits[0]]) if fits.size else None

    def speedup(self, size: ArrayLike, workers: ArrayLike) -> float | NDArray[np.float64]:
        """How many times faster than one worker the job is predicted to run on ``workers``."""
        return self.predict(size, 1) / self.predict(size, workers)

    def scales(self, size: float, max_workers: int, threshold: float = 1.1) -> bool:
        """Whether going from 1 to ``max_workers`` buys at least ``threshold`` times the speed.

        Lets an autoscaler refuse to add workers to jobs that would only waste them.
        """
        return bool(self.speedup(size, max_workers) >= threshold)

    def mape(self, size: ArrayLike, workers: ArrayLike, seconds: ArrayLike) -> float:
        """Mean absolute percentage error (%) of the predictions against observed run times."""
        t = np.asarray(seconds, dtype=float).ravel()
        predicted = np.asarray(self.predict(size, workers), dtype=float).ravel()
        if predicted.shape != t.shape:
            raise ValueError(f"{predicted.size} predictions but {t.size} observed run times")
        if not np.all(t > 0):
            raise ValueError("run times must be positive (seconds)")
        return float(np.mean(np.abs(t - predicted) / t) * 100.0)

    # ---------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state; feature names travel along so a mismatch is detectable."""
        coef = self._fitted_coef()
        return {
            "features": list(FEATURE_NAMES),
            "coef": [float(c) for c in coef],
            "residuals": [float(r) for r in self.residuals_],
            "n_runs": int(self.n_runs_),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeModel:
        """Rebuild a fitted model from :meth:`to_dict` output, rejecting other feature sets."""
        names = tuple(data.get("features", ()))
        if names != FEATURE_NAMES:
            raise ValueError(f"model features {names} are not {FEATURE_NAMES}")
        coef = np.asarray(data["coef"], dtype=float)
        if coef.shape != (len(FEATURE_NAMES),) or np.any(coef < 0):
            raise ValueError(f"expected {len(FEATURE_NAMES)} non-negative coefficients")
        model = cls(source=str(data.get("source", "")))
        model.coef_ = coef
        model.residuals_ = np.asarray(data["residuals"], dtype=float)
        model.n_runs_ = int(data["n_runs"])
        return model

    def save(self, path: str | Path) -> None:
        """Write the model as JSON, readable by :meth:`load` and by people."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RuntimeModel:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def fit_runs(runs: Sequence[RunRecord], source: str = "") -> RuntimeModel:
    """Fit a model to run records from any loader."""
    return RuntimeModel(source=source).fit(
        [r.size_gb for r in runs], [r.workers for r in runs], [r.seconds for r in runs]
    )


# ----------------------------------------------------------------- loaders


def _records(
    sizes: Iterable[Any], workers: Iterable[Any], seconds: Iterable[Any]
) -> list[RunRecord]:
    runs = []
    for s, n, t in zip(sizes, workers, seconds, strict=True):
        if float(n) != int(n):
            # Truncating 2.5 workers to 2 would silently train on a run that never happened.
            raise ValueError(f"worker count {n} is not a whole number")
        runs.append(RunRecord(size_gb=float(s), workers=int(n), seconds=float(t)))
    return runs


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV with normalised (stripped, lower-case) column names and no empty rows."""
    frame = pd.read_csv(path, skipinitialspace=True)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame.dropna(how="all")


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        row = int(values.isna().to_numpy().argmax()) + 1
        raise ValueError(f"{path}: column {column!r} is missing or not a number in data row {row}")
    return values


def load_runs_csv(path: str | Path) -> list[RunRecord]:
    """Runs from a CSV with columns ``size`` (or ``size_gb``), ``workers`` and ``seconds``."""
    path = Path(path)
    frame = _read_csv(path)
    size_col = "size_gb" if "size_gb" in frame.columns else "size"
    missing = [c for c in (size_col, "workers", "seconds") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} "
            f"(need size or size_gb, workers, seconds; found {', '.join(frame.columns)})"
        )
    return _records(
        _numeric(frame, size_col, path),
        _numeric(frame, "workers", path),
        _numeric(frame, "seconds", path),
    )


def _thonglek_file(path: Path) -> list[RunRecord]:
    match = _THONGLEK_FILE.match(path.name)
    if match is None:
        raise ValueError(f"{path}: not a worker<N>.csv file, so the worker count is unknown")
    # The worker count is only in the file name; the CSV itself has a quoted upper-case header
    # ("SIZE","TIME",...) and no worker column.
    frame = _read_csv(path)
    missing = [c for c in ("size", "time") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(c.upper() for c in missing)}")
    sizes = _numeric(frame, "size", path)
    return _records(sizes, [int(match.group(1))] * len(sizes), _numeric(frame, "time", path))


def is_thonglek(path: str | Path) -> bool:
    """Whether ``path`` is the Thonglek et al. data: its directory or one of its files."""
    path = Path(path)
    return (path.is_dir() and (path / "worker1.csv").is_file()) or bool(
        _THONGLEK_FILE.match(path.name)
    )


def load_thonglek(path: str | Path) -> list[RunRecord]:
    """Runs from the Thonglek et al. (OLA 2019) data: its directory or one ``workerN.csv``."""
    path = Path(path)
    if not path.is_dir():
        return _thonglek_file(path)
    files = sorted(p for p in path.iterdir() if _THONGLEK_FILE.match(p.name))
    if not files:
        raise ValueError(f"{path}: no worker<N>.csv files in this directory")
    return [run for f in files for run in _thonglek_file(f)]


def runs_from_jobs(records: Iterable[JobRecord]) -> list[RunRecord]:
    """Runs from the store's finished jobs.

    Failed jobs, jobs without a known input size and records with no workers or no duration are
    left out: their times say nothing about how a successful run of that size scales.
    """
    return [
        RunRecord(size_gb=r.input_bytes / 1e9, workers=r.workers, seconds=r.duration_s)
        for r in records
        if r.success and r.input_bytes > 0 and r.workers >= 1 and r.duration_s > 0
    ]
