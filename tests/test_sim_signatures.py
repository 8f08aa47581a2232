"""Jobs of several recurring jobs in the simulator: profiles fitted from recorded runs, drawn
by the trace and replay suites, and a policy that starts from those runs and learns from the
simulated ones as on a real cluster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sparkscaler.backends.simulated import run_alone
from sparkscaler.config import Config
from sparkscaler.core import Decision, JobRecord, Observation
from sparkscaler.evaluation import continuous
from sparkscaler.evaluation.lineup import Calibration
from sparkscaler.evaluation.simulation import (
    load_recorded,
    parse_jobs,
    signature_jobs,
    simulate,
)
from sparkscaler.policies.base import Policy
from sparkscaler.sim.arrivals import Arrivals
from sparkscaler.sim.workload import SignatureJobs, SignatureProfile, StageShape
from sparkscaler.store import Store

STARTUP = (4.0, 4.0)

#: Two recurring jobs unlike each other: a wide scan and a narrow iterative one.
SCAN = SignatureProfile(
    "scan",
    (StageShape(8, 0.8), StageShape(2, 0.2, (0,))),
    (10.0, 2.0),
    (2.0, 30.0, 0.0, 0.0),
    (1.0, 3.0),
)
LOOP = SignatureProfile(
    "loop",
    tuple(StageShape(2, 0.25, (i - 1,) if i else ()) for i in range(4)),
    (20.0, 8.0),
    (1.0, 6.0, 0.0, 0.0),
    (0.5, 1.5),
)


def recordings() -> list[JobRecord]:
    """Each job at three sizes on 1 and 2 workers, recorded as runs of real jobs are."""
    out = []
    for profile in (SCAN, LOOP):
        low, high = profile.sizes_gb
        for size in np.linspace(low, high, 3):
            for n in (1, 2):
                spec = profile.make(float(size), executor_startup_s=STARTUP[0])
                record = run_alone(spec, n, executor_startup_s=STARTUP)
                out.append(replace(record, app_id=f"{profile.signature}-{size:g}-{n}"))
    return out


def test_signature_jobs_fit_each_recorded_job_with_its_own_models() -> None:
    records = recordings()
    source = signature_jobs([*records, replace(records[0], success=False)], executor_startup_s=4.0)
    assert source.signatures == ["loop", "scan"]
    assert len(source.history) == len(records)  # the failed run is no history to start from
    for truth in (SCAN, LOOP):
        fitted = source.profile(truth.signature)
        assert fitted.runs == 6 and fitted.sizes_gb == pytest.approx(truth.sizes_gb)
        assert [s.tasks for s in fitted.stages] == [s.tasks for s in truth.stages]
        assert fitted.serial == pytest.approx(truth.serial, abs=1e-6)
        # Its own Ernest model of whole run times predicts its own runs.
        own = [r for r in records if r.key == truth.signature]
        for r in own:
            assert fitted.model.predict(r.input_bytes / 1e9, r.workers) == pytest.approx(  # type: ignore[union-attr]
                r.duration_s, rel=0.1
            )
    # The scan's work is mostly parallel; the loop's time mostly its driver's.
    gain = {
        key: source.profile(key).model.predict(1.0, 2) / source.profile(key).model.predict(1.0, 1)  # type: ignore[union-attr]
        for key in ("scan", "loop")
    }
    assert gain["scan"] < 0.75 < 0.85 < gain["loop"], gain
    with pytest.raises(ValueError, match="no successful recorded run"):
        signature_jobs([replace(r, stages=()) for r in records])


def test_recorded_jobs_from_a_store_on_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    with Store(db) as store:
        store.add_jobs(recordings())
    assert len(load_recorded(db)) == 12
    source = parse_jobs(f"recorded:{db},sizes=0.5-0.6")
    assert isinstance(source, SignatureJobs)
    job = source.sample(np.random.default_rng(0))
    assert job.signature in ("scan", "loop") and 0.5 <= job.size_gb <= 0.6
    with pytest.raises(FileNotFoundError, match="not found"):
        load_recorded(tmp_path / "nothing.db")


class Learner(Policy):
    """Two workers, and every history it was fitted on."""

    name = "learner"

    def __init__(self) -> None:
        super().__init__()
        self.fits: list[list[str]] = []

    def fit(self, history: Sequence[JobRecord]) -> Learner:
        self.fits.append([r.key for r in history])
        return self

    def decide(self, observation: Observation) -> Decision:
        return self._decision(2, "fixed")


def test_a_simulation_of_recorded_jobs_starts_from_their_runs_and_learns(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "state_dir": str(tmp_path),
            "cluster": {"worker_cores": 1},
            "scaling": {"min_workers": 1, "max_workers": 4, "interval_s": 10},
            "simulation": {"provisioning": "local", "seed": 1},
        }
    )
    source = signature_jobs(recordings())
    arrivals = Arrivals(np.array([0.0, 700.0, 1400.0]), np.ones(3))  # farther apart than a refit
    policy = Learner()
    result = simulate(config, arrivals, source, policy, 2100.0, deadline_s=300.0)
    assert result.jobs_done == 3
    first, *later = policy.fits
    assert sorted(first) == sorted(r.key for r in source.history)  # the recorded runs
    assert [len(f) for f in later] == [13, 14, 15]  # then each finished job, once
    assert {k for f in later for k in f[12:]} <= {"scan", "loop"}

    plain = Learner()
    simulate(config, arrivals, source, plain, 2100.0, deadline_s=300.0, learn=False)
    assert [len(f) for f in plain.fits] == [12]  # the recorded runs only


def test_a_trace_case_of_recorded_jobs_learns_from_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of arrivals of both recorded jobs: its jobs carry their signatures, the store
    starts with the recorded runs, and the planner learns as the jobs finish."""
    source = signature_jobs(recordings())
    monkeypatch.setattr(continuous, "recorded_jobs", lambda: source)
    case = continuous.Case("daily-recorded", "daily", 6 * 3600.0, 4, jobs="recorded")
    calibration = Calibration.load()
    config = Config()
    data = continuous.build_case(case, config, calibration, (1.0, 3.0), seed=0)
    assert {j.signature for j in data.workload} == {"scan", "loop"}
    assert data.history == tuple(source.history)
    assert continuous.learns(case) and not continuous.learns(replace(case, jobs="model"))

    seen: dict[str, object] = {}
    real = continuous.simulate_workload

    def spy(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(continuous, "simulate_workload", spy)
    row = continuous.run_case(config, "planner", data, calibration, {}, seed=0)
    assert seen["learn"] is True and seen["history"] == data.history
    assert row["jobs"] == len(data.workload) > 10
    assert row["misses"] <= row["jobs"] // 4
