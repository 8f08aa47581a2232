"""The demo's replay plan (a compressed day of the seeds' jobs) and its report, without Spark."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sparkscaler.config import Config
from sparkscaler.demo_report import JobRun, PhaseResult, write_demo_report
from sparkscaler.workloads.replay import KINDS, SCALE_RANGE, daily_plan


def test_the_plan_has_exactly_the_jobs_in_one_compressed_day() -> None:
    plan = daily_plan(12, 240.0, deadline_s=200.0, seed=3)
    offsets = [j.offset_s for j in plan]
    assert len(plan) == 12
    assert offsets == sorted(offsets)
    assert offsets[0] >= 0.0 and offsets[-1] < 240.0
    assert {j.deadline_s for j in plan} == {200.0}
    assert {j.kind for j in plan} == set(KINDS)
    assert len({j.name for j in plan}) == 12


def test_the_afternoon_is_busier_than_the_night() -> None:
    """The office-hours shape peaks at 14:00; its trough is at 02:00."""
    plan = daily_plan(40, 2400.0, deadline_s=60.0, seed=0)
    hour = [j.offset_s / 100.0 for j in plan]  # 2400 s for 24 h: 100 s an hour
    afternoon = sum(10 <= h < 18 for h in hour)
    night = sum(h < 4 or h >= 22 for h in hour)
    assert afternoon >= 3 * night


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    assert daily_plan(8, 100.0, deadline_s=60.0, seed=5) == daily_plan(
        8, 100.0, deadline_s=60.0, seed=5
    )
    assert daily_plan(8, 100.0, deadline_s=60.0, seed=5) != daily_plan(
        8, 100.0, deadline_s=60.0, seed=6
    )


def test_size_multiplies_every_jobs_scale() -> None:
    full = daily_plan(6, 100.0, deadline_s=60.0, seed=1)
    small = daily_plan(6, 100.0, deadline_s=60.0, seed=1, size=0.1)
    for big, little in zip(full, small, strict=True):
        scale = float(big.args[big.args.index("--scale") + 1])
        assert SCALE_RANGE[0] - 0.01 <= scale <= SCALE_RANGE[1] + 0.01
        assert float(little.args[little.args.index("--scale") + 1]) == pytest.approx(
            scale * 0.1, abs=0.006
        )
        assert (big.offset_s, big.kind) == (little.offset_s, little.kind)


@pytest.mark.parametrize(
    ("jobs", "day_s", "deadline_s", "size"),
    [(0, 100.0, 60.0, 1.0), (3, 0.0, 60.0, 1.0), (3, 100.0, -1.0, 1.0), (3, 100.0, 60.0, 0.0)],
)
def test_bad_plans_are_refused(jobs: int, day_s: float, deadline_s: float, size: float) -> None:
    with pytest.raises(ValueError):
        daily_plan(jobs, day_s, deadline_s=deadline_s, size=size)


def _phase(label: str, workers: list[int], durations: list[float]) -> PhaseResult:
    times = [2.0 * i for i in range(len(workers))]
    jobs = [
        JobRun(f"{i + 1:02d}-kmeans", "kmeans", 5.0 * i, d, 60.0, succeeded=d < 1000)
        for i, d in enumerate(durations)
    ]
    return PhaseResult(label, label, 0.0, times[-1], times, workers, [3] * len(workers), 1, 1, jobs)


def test_phase_figures_and_the_self_contained_report(tmp_path: Path) -> None:
    auto = _phase("autoscaled", [1, 1, 2, 3, 1], [30.0, 90.0])
    static = _phase("static", [4, 4, 4, 4, 4], [20.0, 2000.0])
    assert auto.worker_seconds(8.0) == pytest.approx(2.0 * (1 + 1 + 2 + 3))
    assert auto.worker_seconds(12.0) == pytest.approx(14.0 + 4.0 * 1)  # its last size held
    assert auto.worker_seconds(3.0) == pytest.approx(2.0 + 1.0)
    assert static.worker_seconds(8.0) == pytest.approx(32.0)
    assert (auto.deadlines_met, static.deadlines_met, static.succeeded) == (1, 1, 1)
    assert auto.peak_workers == 3

    path = tmp_path / "report.html"
    write_demo_report([auto, static], Config(), path)
    html = path.read_text()
    assert "<b>56%</b> fewer worker-seconds" in html  # 1 - 14 / 32
    assert html.count('<img src="data:image/png;base64,') == 1
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", html)  # nothing to fetch
    assert html.count("<tr>") == 1 + 2 + 1 + 2  # summary and jobs tables, headers included
    assert "failed" in html  # the static run's second job
