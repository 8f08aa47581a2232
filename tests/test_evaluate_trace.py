"""``sparkscaler evaluate trace --trace FILE`` end to end, on a small generated trace of each
layout the reader accepts, and its one-line errors; and that results reach the disk as each task
finishes, so that a failure loses nothing already computed.

Each evaluation is kept tiny: the quick one-day span, N = 2, the peers ``static`` and ``hpa``
(no DQN to train; the oracle always runs), one process.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sparkscaler.cli import app
from sparkscaler.evaluation import continuous
from sparkscaler.evaluation.harness import DEFAULT_TRACES, Options, trace_cases, write_results

runner = CliRunner()
DAY_MIN = 24 * 60
TINY = ["--quick", "-j", "1", "--max-workers", "2", "--policy", "static", "--policy", "hpa"]


def daily_shape(minutes: np.ndarray, seed: int) -> np.ndarray:
    """Requests per minute with a daily cycle, like the NASA trace's."""
    rng = np.random.default_rng(seed)
    mean = 40.0 * (1.0 + 0.8 * np.cos(2 * np.pi * (minutes / DAY_MIN - 14 / 24)))
    return rng.poisson(mean)


def evaluate(tmp_path: Path, trace: Path, *extra: str) -> tuple[Any, dict[str, Any] | None]:
    out = tmp_path / "out"
    args = ["evaluate", "trace", "--trace", str(trace), "--out", str(out), *TINY, *extra]
    result = runner.invoke(app, args)
    path = out / "results.json"
    return result, json.loads(path.read_text()) if path.is_file() else None


def trace_case(report: dict[str, Any], name: str) -> dict[str, Any]:
    cases = {c["name"]: c for c in report["suites"]["trace"]["cases"]}
    assert list(cases) == ["daily", name]
    return cases[name]


def assert_evaluated(report: dict[str, Any], name: str, out: Path) -> dict[str, Any]:
    """Every policy ran over the case's jobs, and all three files are written and complete."""
    case = trace_case(report, name)
    assert report["complete"] is True
    assert case["settings"]["n_jobs"] > 10
    assert [r["policy"] for r in case["results"]] == ["oracle", "static", "hpa"]
    assert all(r["jobs"] > 0 and r["worker_hours"] > 0 for r in case["results"])
    with (out / "results.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["case"] == name]
    assert [r["policy"] for r in rows] == ["oracle", "static", "hpa"]
    assert (out / "report.html").stat().st_size > 0
    assert not list(out.glob(".*.tmp"))
    return case


def test_iso_timestamps_as_in_the_nasa_trace(tmp_path: Path) -> None:
    minutes = np.arange(2 * DAY_MIN)
    stamps = pd.Timestamp("1995-07-01") + pd.to_timedelta(minutes, unit="min")
    path = tmp_path / "requests_per_minute.csv"
    pd.DataFrame(
        {"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S"), "requests": daily_shape(minutes, 1)}
    ).to_csv(path, index=False)
    result, report = evaluate(tmp_path, path)
    assert result.exit_code == 0, result.output
    assert report is not None
    case = assert_evaluated(report, "requests_per_minute", tmp_path / "out")
    settings = case["settings"]
    assert (settings["kind"], settings["column"], settings["step_s"]) == ("csv", "requests", 60.0)
    assert settings["warm_up"] is True  # two days: the first warms the forecaster up
    assert report["options"]["traces"] == [str(path)]  # a Path in the options: the old crash


def test_minute_requests(tmp_path: Path) -> None:
    minutes = np.arange(int(1.5 * DAY_MIN))
    path = tmp_path / "minutes.csv"
    pd.DataFrame({"minute": minutes, "requests": daily_shape(minutes, 2)}).to_csv(path, index=False)
    result, report = evaluate(tmp_path, path)
    assert result.exit_code == 0, result.output
    assert report is not None
    case = assert_evaluated(report, "minutes", tmp_path / "out")
    assert case["settings"]["step_s"] == 60.0
    assert case["settings"]["warm_up"] is False  # 36 h: one day to evaluate, none before it
    assert "less than two periods" in result.output


def test_epoch_seconds_with_a_chosen_column(tmp_path: Path) -> None:
    steps = np.arange(24 * 12)
    path = tmp_path / "epoch.csv"
    pd.DataFrame(
        {
            "timestamp": 1_704_067_200 + 300 * steps,
            "cpu": np.full(len(steps), 50.0),
            "jobs": daily_shape(steps * 5, 3),
        }
    ).to_csv(path, index=False)
    result, report = evaluate(tmp_path, path, "--trace-column", "jobs")
    assert result.exit_code == 0, result.output
    assert report is not None
    case = assert_evaluated(report, "epoch", tmp_path / "out")
    assert (case["settings"]["column"], case["settings"]["step_s"]) == ("jobs", 300.0)


def test_headerless_timeless_with_a_step(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_text("\n".join(map(str, daily_shape(np.arange(12 * 12) * 5, 4))) + "\n")
    result, report = evaluate(tmp_path, path, "--trace-step", "300")
    assert result.exit_code == 0, result.output
    assert report is not None
    case = assert_evaluated(report, "series", tmp_path / "out")
    assert (case["settings"]["column"], case["settings"]["step_s"]) == ("1", 300.0)
    assert case["settings"]["duration_s"] == 12 * 3600.0  # shorter than a day: all of it


def test_batch_task_rows_as_in_the_alibaba_2017_trace(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    path = tmp_path / "batch_task.csv"
    rows = []
    for job, start in enumerate(np.sort(rng.uniform(1, 17 * 3600, 400)).astype(int)):
        for task in range(int(rng.integers(1, 4))):
            create = start + int(rng.integers(0, 30))
            instances, cpus = int(rng.integers(1, 50)), int(rng.choice([50, 100]))
            rows.append(f"{create},{create + 60},{job},{task},{instances},Terminated,{cpus},0.01")
    path.write_text("\n".join(rows) + "\n")
    result, report = evaluate(tmp_path, path)
    assert result.exit_code == 0, result.output
    assert report is not None
    case = assert_evaluated(report, "batch_task", tmp_path / "out")
    assert case["settings"]["kind"] == "alibaba"


@pytest.mark.parametrize(
    ("text", "extra", "message"),
    [
        (
            "time,host,region\n0,a,b\n60,c,d\n",
            [],
            "no numeric demand column; found columns: time, host, region (use --trace-column NAME)",
        ),
        (
            "host,cpu\na,1\nb,2\n",
            [],
            "no time column (one named timestamp, time, datetime, date, …); "
            "give its step, e.g. --trace-step 5m",
        ),
        ("time,cpu\n0,1\n60,2\n", ["--trace-column", "mem"], "no column 'mem'; found columns"),
        ("time,cpu\n0,1\n60,2\n", ["--trace-step", "soon"], "not a step: 'soon'"),
        ("time,cpu\n0,1\n60,2\n", ["--policy", "magic"], "unknown policy magic"),
    ],
)
def test_a_trace_it_cannot_read_is_one_line_and_exit_2(
    tmp_path: Path, text: str, extra: list[str], message: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text)
    result, report = evaluate(tmp_path, path, *extra)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert message in line and line.startswith("error:")
    assert report is None and not (tmp_path / "out").exists()  # it stopped before any work


def test_results_are_on_disk_as_each_case_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second case fails: the first case's results are on disk, marked incomplete."""
    path = tmp_path / "series.csv"
    path.write_text("\n".join(map(str, daily_shape(np.arange(24 * 12) * 5, 6))) + "\n")
    run_case = continuous.run_case

    def failing(*args: Any) -> dict[str, Any]:
        if args[2].case.name == "series":
            raise RuntimeError("injected failure")
        return run_case(*args)

    monkeypatch.setattr(continuous, "run_case", failing)
    result, report = evaluate(tmp_path, path, "--trace-step", "5m")
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "task 'oracle series' failed: RuntimeError: injected failure (at harness.py:" in line
    assert report is not None and report["complete"] is False
    cases = {c["name"]: c for c in report["suites"]["trace"]["cases"]}
    assert [r["policy"] for r in cases["daily"]["results"]] == ["oracle", "static", "hpa"]
    assert cases["series"]["results"] == []
    with (tmp_path / "out" / "results.csv").open() as handle:
        assert {r["case"] for r in csv.DictReader(handle)} == {"daily"}
    assert not (tmp_path / "out" / "report.html").exists()


def test_results_json_names_what_it_cannot_hold(tmp_path: Path) -> None:
    report = {"suites": {}, "path": tmp_path, "n": np.int64(3), "a": np.arange(2)}
    write_results(report, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["path"] == str(tmp_path)
    with pytest.raises(TypeError, match="cannot hold a object"):
        write_results({"suites": {}, "thing": object()}, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["n"] == 3  # the old file stays


def test_the_full_suite_adds_the_generated_shapes_and_the_reference_traces() -> None:
    """The full suite: daily and the bursty shape, then each reference trace in
    ../shared/data (the Alibaba 2018 machine-usage series read by its known format)."""
    quick, _ = trace_cases(Options(quick=True))
    assert [c.name for c in quick] == ["daily"]
    cases, notes = trace_cases(Options())
    by = {c.name: c for c in cases}
    assert [c.name for c in cases[:2]] == ["daily", "bursty"]
    assert by["bursty"].kind == "bursty"
    present = [p for p in DEFAULT_TRACES if p.is_file()]
    assert len(cases) == 2 + len(present)
    assert len([n for n in notes if "not found" in n]) == len(DEFAULT_TRACES) - len(present)
    alibaba2018 = next((p for p in present if "alibaba2018" in str(p)), None)
    if alibaba2018 is None:
        pytest.skip("../shared/data/traces/alibaba2018 is absent: its case is not checked")
    case = by["alibaba2018"]
    assert (case.kind, case.column, case.step_s) == ("csv", "cpu_util_percent", 300.0)
    # 8 days of 5-minute steps: one evaluated week with no week before it, and a note says so.
    assert case.duration_s == 7 * 86_400.0
    assert any("alibaba2018" in n and "no preceding period" in n for n in notes)
