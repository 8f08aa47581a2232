"""The main job, `sparkscaler demo`: its plan (warm-up, recurring jobs, deadlines), its per-job
report rows read back from a real store, its summary and goal, without Spark; and the demo end
to end on a real local cluster (no mocks), marked spark."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from sparkscaler.core import (
    Decision,
    GuardedDecision,
    JobContext,
    JobRecord,
    Observation,
    StageSummary,
)
from sparkscaler.demo import DemoOptions, jobs_table, learned_line, print_full, result_lines
from sparkscaler.demo_report import (
    GOAL_RATIO,
    JobRun,
    PhaseResult,
    goal_met,
    job_rows,
    job_timelines,
    missed_but_met_by_static,
    worker_ratio,
)
from sparkscaler.models.job_knowledge import JobKnowledge
from sparkscaler.store import Store
from sparkscaler.workloads.jobs import input_bytes
from sparkscaler.workloads.replay import (
    KINDS,
    Replayer,
    daily_plan,
    deadlines_from,
    warmup_plan,
)
from sparkscaler.workloads.submit import SubmittedJob
from tests.conftest import assert_all_stopped, free_port, spark_test_config, state_pids, wait_for

# ------------------------------------------------------------------ the plan


def test_the_warm_up_runs_each_recurring_job_once_signed_and_sized() -> None:
    plan = warmup_plan(size=0.1, cores_per_job=2)
    assert [j.kind for j in plan] == list(KINDS)
    for job in plan:
        assert (job.offset_s, job.deadline_s, job.cores, job.scale) == (0.0, None, 2, 0.1)
        assert job.signature == job.kind and job.name == f"warm-up-{job.kind}"
        assert job.input_bytes == input_bytes(job.kind, 0.1)
    assert [j.kind for j in warmup_plan(kinds=("kmeans",))] == ["kmeans"]
    with pytest.raises(ValueError):
        warmup_plan(size=0.0)


def test_deadlines_are_a_factor_of_the_warm_up_run_rounded_up_to_5_s() -> None:
    took = {"wordcount": 40.0, "forecast": 61.2, "pagerank": 50.0}
    assert deadlines_from(took) == {"wordcount": 60.0, "forecast": 95.0, "pagerank": 75.0}
    assert deadlines_from(took, factor=2.0, step_s=10.0)["forecast"] == 130.0
    with pytest.raises(ValueError):
        deadlines_from(took, factor=0.0)


def test_the_day_is_recurring_jobs_each_due_by_its_kinds_deadline() -> None:
    deadlines = {"wordcount": 60.0, "forecast": 95.0, "pagerank": 75.0, "kmeans": 80.0}
    plan = daily_plan(
        8, 240.0, deadline_s=deadlines, size=0.4, scale_range=(0.8, 1.2), cores_per_job=2, seed=3
    )
    assert sorted(j.kind for j in plan) == sorted(KINDS * 2)  # each kind in every four
    for job in plan:
        assert job.deadline_s == deadlines[job.kind]
        assert job.signature == job.kind
        assert job.input_bytes == input_bytes(job.kind, job.scale)
        assert 0.8 * 0.4 - 0.006 <= job.scale <= 1.2 * 0.4 + 0.006
        assert job.cores == 2
    with pytest.raises(ValueError, match="no deadline for kmeans"):
        daily_plan(4, 100.0, deadline_s={k: 60.0 for k in KINDS if k != "kmeans"})
    only = daily_plan(3, 100.0, deadline_s={"pagerank": 70.0}, kinds=("pagerank",))
    assert {j.kind for j in only} == {"pagerank"}


class _FakeSubmitter:
    """Starts a real, harmless process per job (``sleep``), recording what it was given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []
        self.jobs: list[SubmittedJob] = []

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
        self.calls.append(
            {"name": name, "signature": signature, "input_bytes": input_bytes, "cores": cores_max}
        )
        job = SubmittedJob(name, subprocess.Popen(["sleep", "60"]), Path(os.devnull), time.time())
        self.jobs.append(job)
        return job


def test_the_warm_up_replay_runs_as_many_side_by_side_as_allowed() -> None:
    plan = warmup_plan(size=0.1, cores_per_job=2)
    fake = _FakeSubmitter()
    replay = Replayer(plan, fake, max_running=2)  # type: ignore[arg-type]
    replay.start()
    try:
        assert len(replay.poll()) == 2 and replay.poll() == []  # two running: no room
        fake.jobs[0].process.kill()
        fake.jobs[0].process.wait()
        assert [j.name for j in replay.poll()] == ["warm-up-pagerank"]
        assert fake.calls[0] == {
            "name": "warm-up-wordcount",
            "signature": "wordcount",
            "input_bytes": input_bytes("wordcount", 0.1),
            "cores": 2,
        }
        assert not replay.done
    finally:
        for job in fake.jobs:
            job.process.kill()
            job.process.wait()
    with pytest.raises(ValueError):
        Replayer(plan, fake, max_running=0)  # type: ignore[arg-type]


def test_options_refuse_a_day_without_deadlines_or_with_unknown_jobs() -> None:
    with pytest.raises(ValueError, match="deadline"):
        DemoOptions(warmup=False)
    with pytest.raises(ValueError, match="kinds"):
        DemoOptions(kinds=("grep",))
    assert "1.5× its warm-up run time" in DemoOptions().describe()
    assert "each due within 30 s" in DemoOptions(warmup=False, deadline_s=30.0).describe()


# ------------------------------------------------------------------ per-job rows from a store


def _context(app_id: str, name: str, elapsed: float, cores: int) -> JobContext:
    return JobContext(
        app_id, name, name.split("-")[1], elapsed, 60.0, 1e6, "declared", (), cores, 2
    )


def _decision(predicted: dict[str, float]) -> GuardedDecision:
    decision = Decision(2, "hybrid", "deadline planner decided", predicted_s=predicted)
    return GuardedDecision(decision, 1, 2, "scale_out", decision.reason)


def test_predicted_run_times_and_cores_are_read_back_from_the_store(tmp_path: Path) -> None:
    """A real SQLite store filled as the loop fills it: observations with the running jobs,
    decisions with the planner's projections by application id."""
    with Store(tmp_path / "sparkscaler.db") as store:
        steps = [
            (100.0, [_context("app-1", "01-pagerank", 3.0, 0)], {}),
            (102.0, [_context("app-1", "01-pagerank", 5.0, 1)], {"app-1": 70.0}),
            (
                104.0,
                [_context("app-1", "01-pagerank", 7.0, 2), _context("app-2", "02-kmeans", 1.0, 0)],
                {"app-1": 64.0, "app-2": 50.0},
            ),
            (106.0, [_context("app-2", "02-kmeans", 3.0, 2)], {"app-2": 55.5}),
            (108.0, [], {}),
        ]
        for t, running, predicted in steps:
            oid = store.add_observation(Observation(time=t, jobs=tuple(running)))
            store.add_decision(
                t, _decision(predicted), observation_id=oid, dry_run=False, acted=False
            )
        timelines = job_timelines(store.decisions(100), store.observations(0.0))
    assert set(timelines) == {"01-pagerank", "02-kmeans"}
    page = timelines["01-pagerank"]
    assert (page.app_id, page.first_predicted_s, page.last_predicted_s) == ("app-1", 70.0, 64.0)
    assert page.cores == ((100.0, 0), (102.0, 1), (104.0, 2))
    kmeans = timelines["02-kmeans"]
    assert (kmeans.first_predicted_s, kmeans.last_predicted_s) == (50.0, 55.5)
    assert kmeans.cores == ((104.0, 0), (106.0, 2))


def _job(name: str, took: float, deadline: float, first: float | None = None) -> JobRun:
    kind = name.split("-")[1]
    last = None if first is None else first + 5
    return JobRun(
        name,
        kind,
        10.0,
        took,
        deadline,
        True,
        signature=kind,
        scale=0.1,
        first_predicted_s=first,
        last_predicted_s=last,
    )


def _run(label: str, workers: int | list[int], jobs: list[JobRun]) -> PhaseResult:
    sizes = workers if isinstance(workers, list) else [workers] * 5
    times = [10.0 * i for i in range(len(sizes))]
    return PhaseResult(label, label, 0.0, 40.0, times, sizes, [0] * len(sizes), 1, 1, jobs)


def test_the_jobs_table_shows_deadline_predicted_and_actual_per_run() -> None:
    auto = _run(
        "autoscaled", [1, 2, 2, 1, 1], [_job("01-pagerank", 50, 60, 58), _job("02-kmeans", 70, 60)]
    )
    static = _run("static 4", 4, [_job("01-pagerank", 40, 60), _job("02-kmeans", 55, 60)])
    static = dataclasses.replace(static, policy="static")  # predicts nothing
    headers, rows = job_rows([auto, static])
    assert headers[:5] == ["job", "signature", "scale", "submitted (s)", "deadline (s)"]
    assert headers[5:] == [
        "autoscaled: predicted (s)",
        "autoscaled: actual (s)",
        "static 4: actual (s)",
    ]
    assert [str(c) for c in rows[0][:6]] == [
        "01-pagerank",
        "pagerank",
        "0.1",
        "10",
        "60",
        "58 → 63",
    ]
    assert rows[0][6].text == "50" and rows[1][6].text == "70"  # type: ignore[union-attr]
    assert rows[0][6].style != rows[1][6].style  # type: ignore[union-attr]  # met, missed
    assert rows[1][5] == "-"  # never planned for
    assert missed_but_met_by_static([auto, static]) == ["02-kmeans"]
    text = _printed(jobs_table([auto, static]))
    assert "58 → 63" in text and "autoscaled: predicted (s)" in text


def _printed(table: object) -> str:
    import io

    from rich.console import Console

    out = io.StringIO()
    print_full(Console(file=out, soft_wrap=True), table)  # type: ignore[arg-type]
    return out.getvalue()


def test_the_goal_needs_every_deadline_static_met_and_at_most_three_quarters() -> None:
    jobs = [_job("01-pagerank", 50, 60), _job("02-kmeans", 50, 60)]
    static = _run("static 4", 4, jobs)
    cheap = _run("autoscaled", [1, 2, 3, 2, 1], jobs)  # 80 of 160 worker-s over 40 s
    assert worker_ratio([cheap, static]) == pytest.approx(80 / 160)
    assert goal_met([cheap, static]) is True
    dear = _run("autoscaled", [4, 4, 4, 2, 1], jobs)  # 140 of 160
    assert worker_ratio([dear, static]) > GOAL_RATIO and goal_met([dear, static]) is False
    late = _run("autoscaled", [1, 2, 3, 2, 1], [jobs[0], _job("02-kmeans", 65, 60)])
    assert goal_met([late, static]) is False
    assert goal_met([cheap]) is None
    lines = result_lines([late, static], 0)
    assert lines[2].startswith("the autoscaled run used 50% of the static run's worker-seconds")
    assert lines[3] == (
        "goal (every deadline the static run met, at most 75% of its worker-seconds): "
        "[red]not met[/red] (missed where static met: 02-kmeans)"
    )
    assert result_lines([cheap, static], 0)[3].endswith("[green]met[/green]")


def test_what_the_warm_up_taught_names_the_knowledge_and_its_predictions() -> None:
    """A finished warm-up run as the event log gives it: the line says what it measured and
    what its signature's knowledge predicts on one and two workers (it may hold 2 cores)."""
    record = JobRecord(
        "app-1",
        "warm-up-wordcount",
        0.0,
        40.0,
        16,
        0,
        60.0,
        2,
        2,
        84_000_000,
        2,
        True,
        signature="wordcount",
        serial_s=20.0,
        max_cores=2,
        stages=(StageSummary(0, 8, 40.0, 84_000_000, 12.0), StageSummary(1, 8, 20.0, 0, 8.0, (0,))),
    )
    knowledge = JobKnowledge(cores_per_worker=1.0).fit([record])
    line = learned_line(record, knowledge, 1.0, 4)
    assert line.startswith("application 40 s on 2 executor(s): 2 stage(s), 16 task(s), 60 task-s")
    times = dict(re.findall(r"(\d+) worker\(s\) (\d+) s", line))
    assert set(times) == {"1", "2"}  # capped at 2 cores of 1-core workers
    one, two = float(times["1"]), float(times["2"])
    assert "1 run, scaled by size" in line
    assert two == pytest.approx(40.0, abs=1.0) and one > two  # its own run, and one slot fewer
    assert "starts unknown" in learned_line(None, knowledge, 1.0, 4)


# ------------------------------------------------------------------ end to end, on Spark

#: A small day for the tests: one recurring job (a word count, the quickest) warmed up once,
#: then a 10 s day of it. Its 1 s deadline cannot be met, which must not make the demo fail.
QUICK_DEMO = (
    "--kinds", "wordcount", "--jobs", "1", "--day-seconds", "10", "--size", "0.05",
    "--deadline", "1",
)  # fmt: skip


def _quick_config(path: Path, state_dir: Path) -> Path:
    """The demo's settings made quicker for a test: at most two workers (fewer JVMs to start on
    a busy 2-core machine) and a cluster that shrinks back a few seconds after its job."""
    config = spark_test_config(state_dir, max_workers=2, decommission_timeout_s=30)
    settings = config.model_dump(mode="json", exclude_none=True)
    settings["policy"] = {"name": "hybrid", "params": {"reactive": {"idle_timeout_s": 3}}}
    settings["service"] = {"port": free_port()}
    path.write_text(yaml.safe_dump(settings))
    return path


def _drivers(state: Path) -> list[int]:
    """The pids of the demo's job drivers (spark-submit JVMs) running now."""
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "org.apache.spark.deploy.SparkSubmit" in " ".join(p.info["cmdline"] or [])
        and str(state) in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.spark
def test_demo_warms_up_replays_the_day_twice_and_writes_its_report(tmp_path: Path) -> None:
    """The main job end to end on a small day, its output in a file as in a CI log: the
    warm-up's run stored and learned from, exit 0 with every job succeeded in both runs though
    the deadline was missed, the whole summary and jobs tables (rich would cut them to 80
    columns), the goal's verdict, no spinner or redraw, and nothing left running."""
    state, report, log = tmp_path / "state", tmp_path / "demo.html", tmp_path / "demo.log"
    config = _quick_config(tmp_path / "demo.yaml", state)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    pids: set[int] = set()
    cmd = [sys.executable, "-m", "sparkscaler", "demo", "--config", str(config), *QUICK_DEMO]
    began = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--report", str(report)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                pids.update(state_pids(state))  # every worker it ever launched
            pids.update(_drivers(state))
            time.sleep(1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    took = time.monotonic() - began
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "result: both runs finished and every job succeeded (exit code 0)" in text, text
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", text)
    assert re.search(r"warm-up +\d+ s  warm-up-wordcount succeeded in \d+ s", text), text
    # The loop stored its event log: the line says what it measured and what it predicts.
    assert re.search(
        r"warm-up-wordcount: \d+ s, deadline set to 1 s; learned: application \d+ s on \d "
        r"executor\(s\): \d+ stage\(s\).*; 1 run, scaled by size: 1 worker\(s\) \d+ s",
        text,
    ), text
    assert "policy hybrid refit on the 1 finished job(s) in the store" in text, text
    assert re.search(r"autoscaled +\d+ s  01-wordcount submitted \(signature wordcount", text)
    assert re.search(r"autoscaled +\d+ s  01-wordcount succeeded in \d+ s", text), text
    assert re.search(r"static 2 +\d+ s  01-wordcount succeeded in \d+ s", text), text
    header = next(line for line in text.splitlines() if "jobs succeeded" in line)
    for column in ("run", "deadlines met", "worker-s over", "worker-s ratio", "peak workers"):
        assert column in header, header
    jobs = next(line for line in text.splitlines() if "autoscaled: predicted" in line)
    assert "deadline (s)" in jobs and "static 2: actual (s)" in jobs, jobs
    # Each run finished, its one job succeeded and missed its 1 s deadline.
    assert re.search(r"│ autoscaled │ +yes │ +1/1 │ +0/1 │", text), text
    assert re.search(r"│ static 2 +│ +yes │ +1/1 │ +0/1 │", text), text
    assert "deadlines met: autoscaled 0/1, static 2 0/1" in text
    assert "goal (every deadline the static run met, at most 75% of its worker-seconds)" in text
    tables = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(tables) == 6 + 5 and not any("…" in line for line in tables), text  # no cell cut
    assert "\r" not in text and "\x1b" not in text, text  # no spinner, redraw or colour
    assert all(line.strip() for line in text.splitlines()), text  # no blank or redrawn line
    page = report.read_text()
    assert "static 2" in page and "hybrid" in page and "Every run finished" in page
    assert "Warm-up" in page and "warm-up-wordcount" in page
    assert page.count("01-wordcount") == 1  # the job, once in the jobs table
    assert len(pids) >= 4  # the master, two workers and the drivers
    assert_all_stopped(sorted(pids))
    print(f"demo end to end: {took:.0f} s")


@pytest.mark.spark
def test_demo_interrupted_midway_leaves_no_process(tmp_path: Path) -> None:
    """Ctrl-C while the demo's first job (its warm-up's) runs, with its own settings in
    SPARKSCALER_HOME: drivers, workers and master all stop, and it says so with exit code 130."""
    home = tmp_path / "home"
    env = {**os.environ, "SPARKSCALER_HOME": str(home)}
    # The output goes to a file, not a pipe: a pipe nobody reads while we wait could fill and
    # block the demo, and a file still says what happened when the demo stops early.
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sparkscaler", "demo", *QUICK_DEMO],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    state = home / "demo"
    pids: list[int] = []
    drivers: list[int] = []
    try:
        try:
            wait_for(
                lambda: _drivers(state) or proc.poll() is not None,
                180,
                "the demo to submit its first job",
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; it printed:\n{log.read_text()[-3000:]}") from None
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(3)
        pids, drivers = state_pids(state), _drivers(state)
        assert len(pids) >= 2
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
        output = log.read_text()
        assert proc.returncode == 130, output[-2000:]
        assert "Traceback" not in output
        assert "exit code 130" in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_all_stopped(pids + drivers)
