"""The demo's replay plan (a compressed day of the seeds' jobs), its summary, exit code and report,
without Spark."""

from __future__ import annotations

import io
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from sparkscaler.config import Config
from sparkscaler.demo import demo_exit_code, print_full, result_lines, summary_table
from sparkscaler.demo_report import JobRun, PhaseResult, failures, write_demo_report
from sparkscaler.workloads.replay import KINDS, SCALE_RANGE, Replayer, daily_plan
from sparkscaler.workloads.submit import SubmittedJob


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
    assert "used <b>44%</b> of the worker-seconds" in html  # 14 / 32
    assert html.count('<img src="data:image/png;base64,') == 2  # timelines and job lanes
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", html)  # nothing to fetch
    assert html.count("<tr>") == 1 + 2 + 1 + 2  # summary and jobs tables, headers included
    assert "failed" in html  # the static run's second job


def test_the_plan_caps_every_jobs_cores() -> None:
    """Each job holds at most ``cores_per_job`` cores, so that overlapping jobs share."""
    assert {j.cores for j in daily_plan(4, 100.0, deadline_s=60.0, cores_per_job=2)} == {2}
    assert {j.cores for j in daily_plan(4, 100.0, deadline_s=60.0)} == {None}
    with pytest.raises(ValueError):
        daily_plan(4, 100.0, deadline_s=60.0, cores_per_job=0)


class _FakeSubmitter:
    """Records what the replay submits, without Spark (the end-to-end test runs the real one)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None, int | None]] = []

    def submit(
        self,
        name: str,
        job_args: list[str],
        deadline_s: float | None = None,
        *,
        cores_max: int | None = None,
        signature: str | None = None,
        input_bytes: int | None = None,
    ) -> SubmittedJob:
        self.calls.append((name, deadline_s, cores_max))
        return SubmittedJob(name, subprocess.Popen(["true"]), Path(os.devnull), time.time())


def test_the_replay_submits_due_jobs_with_their_deadline_and_cores() -> None:
    plan = daily_plan(3, 100.0, deadline_s=60.0, cores_per_job=2)
    fake = _FakeSubmitter()
    replay = Replayer(plan, fake)  # type: ignore[arg-type]
    replay.start()
    assert replay.poll() == []  # the first arrival is a third into the day
    assert replay.started_at is not None
    replay.started_at -= 100.0  # the day is over: every job is due
    assert len(replay.poll()) == 3
    assert fake.calls == [(j.name, 60.0, 2) for j in plan]
    for _, job in replay.submitted:
        job.process.wait()
    assert replay.done


def _run(label: str, states: list[str], deadline_s: float = 60.0) -> PhaseResult:
    """A run whose jobs took 30 s each and ended as ``states`` say."""
    jobs = [
        JobRun(
            f"{i + 1:02d}-wordcount",
            "wordcount",
            5.0 * i,
            30.0,
            deadline_s,
            succeeded=state == "succeeded",
            stopped=state == "stopped",
        )
        for i, state in enumerate(states)
    ]
    return PhaseResult(
        label,
        label,
        0.0,
        300.0,
        [0.0, 150.0],
        [1, 2],
        [0, 8],
        1,
        1,
        jobs,
        finished="stopped" not in states,
    )


def test_missed_deadlines_are_not_failures_but_failed_jobs_and_unfinished_runs_are() -> None:
    late = [_run("autoscaled", ["succeeded"] * 2, 10.0), _run("static 4", ["succeeded"] * 2, 10.0)]
    assert sum(p.deadlines_met for p in late) == 0
    assert failures(late) == [] and demo_exit_code(late) == 0
    failed = [_run("autoscaled", ["succeeded", "failed"]), _run("static 4", ["succeeded"] * 2)]
    assert failures(failed) == ["autoscaled: 1 job(s) failed: 02-wordcount"]
    assert demo_exit_code(failed) == 1
    unfinished = [_run("autoscaled", ["succeeded"] * 2), _run("static 4", ["succeeded", "stopped"])]
    assert failures(unfinished) == [
        "static 4: did not finish within its time limit, stopping 02-wordcount"
    ]
    assert demo_exit_code(unfinished) == 1
    assert demo_exit_code([]) == 1  # no run at all is no success


def test_the_result_says_what_happened() -> None:
    late = [_run("autoscaled", ["succeeded"] * 2, 10.0), _run("static 4", ["succeeded"] * 2)]
    lines = result_lines(late, 0)
    assert lines[0] == "result: both runs finished and every job succeeded (exit code 0)"
    assert lines[1].startswith("deadlines met: autoscaled 0/2, static 4 2/2 (a missed deadline")
    failed = [_run("autoscaled", ["failed", "succeeded"]), _run("static 4", ["succeeded"] * 2)]
    assert result_lines(failed, 1)[:2] == [
        "result: [red]failed[/red] (exit code 1)",
        "  autoscaled: 1 job(s) failed: 01-wordcount",
    ]


def test_the_summary_is_printed_whole_to_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a terminal and no COLUMNS: rich would cut the table to 80 columns ("autoscal…")."""
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    console = Console(file=out, soft_wrap=True)
    assert not console.is_terminal and console.width == 80
    phases = [_run("autoscaled", ["succeeded"] * 2), _run("static 4", ["succeeded"] * 2)]
    print_full(console, summary_table(phases))
    text = out.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) > 80
    header = next(line for line in text.splitlines() if "jobs succeeded" in line)
    for column in (
        "run",
        "finished",
        "deadlines met",
        "worker-s over 300 s",
        "peak workers",
        "scale out / in",
        "p95 job (s)",
        "run (s)",
    ):
        assert column in header
    assert re.search(r"autoscaled\s.*yes\s.*2/2\s.*2/2\s.*450\s", text)
    assert re.search(r"static 4\s.*yes\s.*2/2\s.*2/2\s", text)


def test_the_summary_fits_a_terminal() -> None:
    """In a terminal the table fits the window; the runs' names are never cut."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, soft_wrap=True)
    phases = [_run("autoscaled", ["succeeded"] * 2), _run("static 4", ["succeeded"] * 2)]
    print_full(console, summary_table(phases))
    text = Text.from_ansi(out.getvalue()).plain
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "autoscaled" in text and "static 4" in text
