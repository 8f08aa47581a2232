"""Reading a demand trace: load over time, from a CSV in whatever layout it came in.

People evaluate autoscalers on the traces they have, and those come as they were exported: the
NASA series (``timestamp,requests``, ISO 8601), a monitoring export with epoch seconds, a
``minute,requests`` table, a bare column of numbers every five minutes. Rather than ask for one
layout, this reader recognises the common ones, and when it cannot it says in one line which
columns it found and which setting picks the right one. ``sparkscaler evaluate --trace`` and
``sparkscaler simulate --workload csv:`` both read through it, so they accept the same files.

A trace becomes a regular series: demand per step, indexed by the step's start time, with the
steps the file skips as zero demand. Only the shape matters downstream (arrivals are scaled to a
rate), so the demand may be requests, CPU percent or anything else that grows with load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sparkscaler.errors import SparkscalerError
from sparkscaler.units import parse_duration

#: Column names (case-insensitive) taken as the time column.
TIME_NAMES = (
    "timestamp",
    "time",
    "datetime",
    "date",
    "ts",
    "t",
    "epoch",
    "time_s",
    "seconds",
    "minute",
    "minutes",
)
#: Time columns whose numbers count minutes; numbers in any other count seconds.
MINUTE_NAMES = ("minute", "minutes")
#: The Alibaba 2017 task table has 8 columns and this first one when it has a header.
ALIBABA_FIRST = "task_create_time"
ALIBABA_WIDTH = 8
_EPOCH = pd.Timestamp(0)


class TraceError(SparkscalerError, ValueError):
    """A trace file that cannot be read as given; the message names the setting that fixes it."""

    exit_code = 2


@dataclass(frozen=True)
class Knobs:
    """How the user sets the demand column and the step where the trace was given.

    The same file is read for ``evaluate --trace`` and for a ``csv:`` workload spec, and the
    message should name the option the user can actually type.
    """

    column: str
    step: str  # an example, like ``--trace-step 5m``


SPEC_KNOBS = Knobs("column=NAME", "step=5m")
CLI_KNOBS = Knobs("--trace-column NAME", "--trace-step 5m")


@dataclass(frozen=True)
class DemandTrace:
    """Demand per step (steps missing from the file are zero), indexed by each step's start."""

    demand: pd.Series
    step_s: float
    column: str
    time_column: str | None

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.demand.index[0])

    @property
    def span_s(self) -> float:
        return len(self.demand) * self.step_s


def parse_step(text: str) -> float:
    """A step such as ``300``, ``300s``, ``5m`` or ``5min``, in seconds (positive)."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"not a step: {text!r} (use seconds, or e.g. 300s, 5m, 5min, 1h)")
    return seconds


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _first_row(path: Path) -> list[str]:
    """The cells of the first row as text (none for an empty file)."""
    try:
        row = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return []
    return [cell.strip() for cell in row.iloc[0]]


def is_alibaba_batch(path: Path) -> bool:
    """Whether ``path`` is Alibaba 2017's ``batch_task.csv``: 8 columns, with its header or
    headerless with a create time (or nothing) first and a status word sixth."""
    row = _first_row(Path(path))
    if len(row) != ALIBABA_WIDTH:
        return False
    if row[0] == ALIBABA_FIRST:
        return True
    return (row[0] == "" or _numeric(row[0])) and row[5].isalpha()


def _read_table(path: Path) -> tuple[pd.DataFrame, bool]:
    """The CSV as a frame, and whether it had a header (a first row that is not all numbers)."""
    try:
        has_header = not all(_numeric(cell) for cell in _first_row(path))
        frame = pd.read_csv(path, header=0 if has_header else None, skipinitialspace=True)
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise TraceError(f"trace {path}: not a CSV with data ({_one_line(error)})") from error
    except pd.errors.ParserError as error:
        raise TraceError(f"trace {path}: not a readable CSV ({_one_line(error)})") from error
    if has_header:
        frame.columns = [str(c).strip() for c in frame.columns]
    else:  # headerless columns are named by position, as --trace-column takes them
        frame.columns = [str(i + 1) for i in range(frame.shape[1])]
    return frame, has_header


def _iso_times(values: pd.Series) -> pd.Series | None:
    """The column as naive UTC timestamps if every cell is ISO 8601, else None."""
    try:
        stamps = pd.to_datetime(values.astype(str), format="ISO8601", utc=True)
    except (ValueError, TypeError):
        return None
    return stamps.dt.tz_localize(None)


def _time_column(frame: pd.DataFrame) -> str | None:
    """A column named like time, else the first text column that is all ISO 8601 times."""
    by_name = {name.lower(): name for name in frame.columns}
    for name in TIME_NAMES:
        if name in by_name:
            return by_name[name]
    for name in frame.columns:
        column = frame[name].dropna()
        text = not column.empty and not pd.api.types.is_numeric_dtype(column)
        if text and _iso_times(column) is not None:
            return name
    return None


def _times(path: Path, frame: pd.DataFrame, name: str) -> pd.Series:
    """The time column as timestamps: ISO 8601, or numbers of seconds (minutes if so named)."""
    values = frame[name]
    if values.isna().any():
        raise TraceError(f"trace {path}: time column {name!r} has empty cells")
    if pd.api.types.is_numeric_dtype(values):
        unit = "min" if name.lower() in MINUTE_NAMES else "s"
        return _EPOCH + pd.to_timedelta(values.astype(float), unit=unit)
    stamps = _iso_times(values)
    if stamps is None:
        raise TraceError(
            f"trace {path}: time column {name!r} is neither ISO 8601 "
            f"(like 1995-07-01T00:00:00) nor numbers of seconds (first value {values.iloc[0]!r})"
        )
    return stamps


def _demand_column(
    path: Path, frame: pd.DataFrame, column: str | None, skip: str | None, knobs: Knobs
) -> str:
    found = ", ".join(frame.columns)
    if column is not None:
        by_name = {name.lower(): name for name in frame.columns}
        if column.strip().lower() not in by_name:
            raise TraceError(f"trace {path}: no column {column!r}; found columns: {found}")
        name = by_name[column.strip().lower()]
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise TraceError(
                f"trace {path}: column {name!r} is not numeric; found columns: {found}"
            )
        return name
    for name in frame.columns:
        if name != skip and pd.api.types.is_numeric_dtype(frame[name]):
            return name
    raise TraceError(
        f"trace {path}: no numeric demand column; found columns: {found} (use {knobs.column})"
    )


def _step_of(path: Path, stamps: pd.Series, knobs: Knobs) -> float:
    """The most common gap between consecutive times (ties: the shortest)."""
    gaps = stamps.drop_duplicates().sort_values().diff().dropna()
    if gaps.empty:
        raise TraceError(
            f"trace {path}: one point in time is no series; give its step, e.g. {knobs.step}"
        )
    return float(gaps.mode().min().total_seconds())


def read_demand(
    path: str | Path,
    column: str | None = None,
    step_s: float | None = None,
    knobs: Knobs = SPEC_KNOBS,
) -> DemandTrace:
    """Read a demand series from a CSV (see the module's docstring for the layouts).

    ``column`` names the demand column (default: the first numeric column that is not time).
    ``step_s`` is the step of a file without a time column; with one, it overrides the step
    inferred from the times (the most common gap between them), and the demand is summed per
    step. Negative demand is an error, empty cells are zero.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"demand trace not found: {path}")
    frame, has_header = _read_table(path)
    if frame.empty:
        raise TraceError(f"trace {path}: no data rows")
    time_column = _time_column(frame) if has_header else None
    name = _demand_column(path, frame, column, time_column, knobs)
    demand = frame[name].fillna(0.0).astype(float)
    if (demand < 0).any():
        raise TraceError(f"trace {path}: column {name!r} has negative demand")
    if time_column is None:
        if step_s is None:
            raise TraceError(
                f"trace {path}: no time column (one named {', '.join(TIME_NAMES[:4])}, …); "
                f"give its step, e.g. {knobs.step}"
            )
        index = pd.date_range(_EPOCH, periods=len(demand), freq=pd.Timedelta(seconds=step_s))
        return DemandTrace(pd.Series(demand.to_numpy(), index=index), step_s, name, None)
    stamps = _times(path, frame, time_column)
    step_s = step_s or _step_of(path, stamps, knobs)
    start = stamps.min()
    steps = ((stamps - start) / pd.Timedelta(seconds=step_s)).astype(int).to_numpy()
    per_step = demand.groupby(steps).sum()
    per_step = per_step.reindex(range(int(steps.max()) + 1), fill_value=0.0)
    index = pd.date_range(start, periods=len(per_step), freq=pd.Timedelta(seconds=step_s))
    return DemandTrace(pd.Series(per_step.to_numpy(), index=index), step_s, name, time_column)
