"""The demand-trace reader (sim/traces.py): each layout it accepts, the step it infers, and the
one-line errors that name the columns it found. Every trace here is generated in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkscaler.sim.arrivals import from_demand_csv, load_arrivals
from sparkscaler.sim.traces import (
    CLI_KNOBS,
    TraceError,
    is_alibaba_batch,
    parse_step,
    read_demand,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
ALIBABA_2018 = SHARED / "alibaba2018" / "machine_usage_days_1_to_8_grouped_300_seconds.csv"
ALIBABA_2017 = SHARED / "alibaba2017-batch" / "batch_task.csv"


def write(tmp_path: Path, text: str, name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_nasa_layout_is_per_minute_with_missing_minutes_as_zero(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,requests\n1995-07-01T00:00:00,42\n1995-07-01T00:01:00,62\n"
        "1995-07-01T00:04:00,7\n",
    )
    trace = read_demand(path)
    assert (trace.step_s, trace.column, trace.time_column) == (60.0, "requests", "timestamp")
    assert trace.start == pd.Timestamp("1995-07-01T00:00:00")
    assert trace.demand.tolist() == [42.0, 62.0, 0.0, 0.0, 7.0]
    assert trace.span_s == 300.0


def test_a_quoted_header_is_a_header_and_quoted_numbers_are_data(tmp_path: Path) -> None:
    named = read_demand(write(tmp_path, '"time","n"\n"0","1"\n"60","2"\n', "a.csv"))
    assert (named.time_column, named.demand.tolist()) == ("time", [1.0, 2.0])
    bare = read_demand(write(tmp_path, '"4"\n"5"\n', "b.csv"), step_s=60.0)
    assert bare.demand.tolist() == [4.0, 5.0]


def test_minute_numbers_count_minutes(tmp_path: Path) -> None:
    trace = read_demand(write(tmp_path, "minute,requests\n0,5\n1,6\n2,7\n"))
    assert trace.step_s == 60.0
    assert trace.demand.tolist() == [5.0, 6.0, 7.0]


def test_epoch_seconds_keep_their_date_and_relative_seconds_start_at_zero(tmp_path: Path) -> None:
    epoch = read_demand(write(tmp_path, "timestamp,cpu\n1704067200,1\n1704067500,2\n", "e.csv"))
    assert epoch.start == pd.Timestamp("2024-01-01") and epoch.step_s == 300.0
    relative = read_demand(write(tmp_path, "time,load\n0.0,1\n30.0,2\n90.0,3\n", "r.csv"))
    assert relative.step_s == 30.0
    assert relative.demand.tolist() == [1.0, 2.0, 0.0, 3.0]


def test_a_text_column_of_iso_times_is_the_time_whatever_its_name(tmp_path: Path) -> None:
    path = write(tmp_path, "when,host,jobs\n2024-01-01 00:00,a,3\n2024-01-01 00:10,b,4\n")
    trace = read_demand(path)
    assert (trace.time_column, trace.column, trace.step_s) == ("when", "jobs", 600.0)


def test_time_zones_become_utc(tmp_path: Path) -> None:
    path = write(tmp_path, "datetime,n\n2024-01-01T02:00:00+02:00,1\n2024-01-01T00:01:00Z,2\n")
    trace = read_demand(path)
    assert trace.start == pd.Timestamp("2024-01-01T00:00:00")
    assert trace.demand.tolist() == [1.0, 2.0]


def test_the_most_common_gap_is_the_step(tmp_path: Path) -> None:
    rows = "".join(f"{t},1\n" for t in (0, 300, 600, 1200, 1500, 1800, 2000))
    trace = read_demand(write(tmp_path, "ts,n\n" + rows))
    assert trace.step_s == 300.0
    # 2000 s falls in the step that starts at 1800, with the row of 1800
    assert trace.demand.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 2.0]


def test_a_given_step_sums_the_demand_per_step(tmp_path: Path) -> None:
    rows = "".join(f"{m},{m}\n" for m in range(10))
    trace = read_demand(write(tmp_path, "minute,requests\n" + rows), step_s=300.0)
    assert trace.step_s == 300.0
    assert trace.demand.tolist() == [0 + 1 + 2 + 3 + 4, 5 + 6 + 7 + 8 + 9]


def test_a_column_is_chosen_by_name_or_else_the_first_numeric_one(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,host,cpu,mem\n0,a,1,10\n60,b,2,20\n")
    assert read_demand(path).column == "cpu"
    assert read_demand(path, column="MEM").demand.tolist() == [10.0, 20.0]


def test_headerless_and_timeless_needs_a_step_and_numbers_its_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "5\n6\n7\n")
    with pytest.raises(TraceError, match="no time column") as caught:
        read_demand(path)
    assert "step=5m" in str(caught.value)  # the spec's knob by default
    with pytest.raises(TraceError, match="--trace-step 5m"):
        read_demand(path, knobs=CLI_KNOBS)
    trace = read_demand(path, step_s=300.0)
    assert (trace.column, trace.time_column, trace.step_s) == ("1", None, 300.0)
    assert trace.start == pd.Timestamp(0) and trace.span_s == 900.0
    two = write(tmp_path, "1,50\n2,60\n", "two.csv")
    assert read_demand(two, column="2", step_s=60.0).demand.tolist() == [50.0, 60.0]


def test_empty_cells_of_demand_are_zero(tmp_path: Path) -> None:
    trace = read_demand(write(tmp_path, "time,n\n0,4\n60,\n120,5\n"))
    assert trace.demand.tolist() == [4.0, 0.0, 5.0]


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("time,host,region\n0,a,b\n", {}, "no numeric demand column; found columns: time, host"),
        ("time,n\n0,1\n", {"column": "cpu"}, "no column 'cpu'; found columns: time, n"),
        ("time,host\n0,a\n", {"column": "host"}, "column 'host' is not numeric"),
        ("time,n\n0,-1\n60,2\n", {}, "negative demand"),
        ("time,n\n", {}, "no data rows"),
        ("", {}, "not a CSV with data"),
        ("timestamp,n\nyesterday,1\n", {}, "neither ISO 8601"),
        ("time,n\n0,1\n,2\n", {}, "empty cells"),
        ("time,n\n0,1\n", {}, "one point in time"),
        ("time,n\n0,1\n60,2,3,4\n", {}, "not a readable CSV"),
    ],
)
def test_errors_are_one_line_naming_the_file(
    tmp_path: Path, text: str, kwargs: dict[str, str], message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TraceError, match=message) as caught:
        read_demand(path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="demand trace not found"):
        read_demand(tmp_path / "nope.csv")


def test_alibaba_batch_is_told_by_its_shape(tmp_path: Path) -> None:
    headerless = write(tmp_path, "6459,6524,3,4,15740,Terminated,50,0.0079\n", "a.csv")
    no_create_time = write(tmp_path, ",1070,7,3,100,Terminated,50,0.01\n", "b.csv")
    header = write(
        tmp_path, "task_create_time, task_end_time, job_id, task_id,n,status,cpu,mem\n", "c.csv"
    )
    quoted = write(tmp_path, '"1","2","3","4","5","Waiting","7","8"\n', "q.csv")
    numbers = write(tmp_path, "1,2,3,4,5,6,7,8\n", "d.csv")
    empty = write(tmp_path, "", "f.csv")
    demand = write(tmp_path, "timestamp,requests\n1995-07-01T00:00:00,42\n", "e.csv")
    assert is_alibaba_batch(headerless) and is_alibaba_batch(no_create_time)
    assert is_alibaba_batch(header) and is_alibaba_batch(quoted)
    assert not any(is_alibaba_batch(p) for p in (numbers, demand, empty))


@pytest.mark.parametrize(
    ("text", "seconds"), [("300", 300.0), ("300s", 300.0), ("5m", 300.0), ("5min", 300.0)]
)
def test_parse_step(text: str, seconds: float) -> None:
    assert parse_step(text) == seconds


@pytest.mark.parametrize("text", ["0", "five", "-5m", "5 parsecs"])
def test_parse_step_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a step"):
        parse_step(text)


def test_a_coarse_step_spreads_its_jobs_over_the_whole_step(tmp_path: Path) -> None:
    """A 5-minute step is one constant rate for 5 minutes, not a burst in its first minute."""
    path = write(tmp_path, "\n".join(["0"] + ["10"] * 2) + "\n")
    arrivals = from_demand_csv(path, None, np.random.default_rng(3), jobs_per_hour=6000, step_s=300)
    assert arrivals.times.min() >= 300.0 and arrivals.times.max() < 900.0
    late_minutes = np.sum((arrivals.times % 300.0) >= 240.0)
    assert late_minutes > 0.1 * len(arrivals)  # about a fifth of them


def test_the_csv_spec_takes_column_and_step(tmp_path: Path) -> None:
    path = write(tmp_path, "host,cpu\na,1\nb,3\nc,2\n")
    spec = load_arrivals(
        f"csv:{path},jobs_per_hour=600,column=cpu,step=5min", 900.0, np.random.default_rng(1)
    )
    direct = from_demand_csv(
        path, 900.0, np.random.default_rng(1), jobs_per_hour=600, column="cpu", step_s=300.0
    )
    np.testing.assert_array_equal(spec.times, direct.times)
    with pytest.raises(ValueError, match=r"give its step, e\.g\. step=5m"):
        load_arrivals(f"csv:{path},jobs_per_hour=600", 900.0, np.random.default_rng(1))


def test_alibaba_2018_machine_usage_reads_with_its_step() -> None:
    if not ALIBABA_2018.is_file():
        pytest.skip(f"reference trace {ALIBABA_2018} is absent (../shared/data is not here)")
    trace = read_demand(ALIBABA_2018, step_s=300.0)
    assert trace.column == "cpu_util_percent"
    assert 7.5 < trace.span_s / 86_400 < 8.5  # "8 days" in ../shared/data/README.md


def test_the_real_alibaba_batch_is_told_apart() -> None:
    if not ALIBABA_2017.is_file():
        pytest.skip(f"reference trace {ALIBABA_2017} is absent (../shared/data is not here)")
    assert is_alibaba_batch(ALIBABA_2017)
