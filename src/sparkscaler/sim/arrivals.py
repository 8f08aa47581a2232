"""Job-arrival processes for the cluster simulator.

An autoscaler is only as good as the load it was tested against, so the simulator can be driven
by synthetic processes (homogeneous Poisson, a daily/weekly cycle) and by real traces (the NASA
HTTP demand series, the Alibaba 2017 batch jobs). Every process is seeded through an explicit
``numpy.random.Generator`` so that a benchmark run can be repeated exactly and two policies can
be compared on the very same arrivals.

All times are seconds from the start of the simulation (t = 0), sorted ascending.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sparkscaler.sim.traces import DemandTrace, parse_step, read_demand

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86_400.0

ALIBABA_COLUMNS = (
    "task_create_time",
    "task_end_time",
    "job_id",
    "task_id",
    "number_of_instances",
    "status",
    "cpus_per_instance",
    "normalized_memory",
)


@dataclass(frozen=True, eq=False)
class Arrivals:
    """Arrival times (s, ascending) and a relative job size per arrival.

    ``eq=False`` because element-wise array comparison cannot back ``==``/``hash``; the arrays
    are copied and made read-only so that a frozen instance really cannot change under a
    simulator that holds on to it.
    """

    times: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        times = np.array(self.times, dtype=float)
        weights = np.array(self.weights, dtype=float)
        if times.ndim != 1 or times.shape != weights.shape:
            raise ValueError(
                f"times and weights must be 1-D arrays of equal length, "
                f"got shapes {times.shape} and {weights.shape}"
            )
        if np.any(np.diff(times) < 0):
            raise ValueError("arrival times must be sorted ascending")
        times.setflags(write=False)
        weights.setflags(write=False)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "weights", weights)

    def __len__(self) -> int:
        return len(self.times)

    def window(self, start: float, end: float) -> Arrivals:
        """Arrivals in ``[start, end)``, shifted so that ``start`` becomes t = 0.

        Lets one long trace be cut into several independent simulation runs.
        """
        if end < start:
            raise ValueError(f"window end {end} is before its start {start}")
        keep = (self.times >= start) & (self.times < end)
        return Arrivals(self.times[keep] - start, self.weights[keep])


def _check_finite(name: str, value: float, *, positive: bool = False) -> None:
    """Reject negative, NaN and infinite parameters before they turn into silent NaN times."""
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value}")


def _unit(times: np.ndarray) -> Arrivals:
    """Arrivals without size information: every job weighs 1.0."""
    return Arrivals(times, np.ones_like(times))


def thinning(
    rate_fn: Callable[[np.ndarray], np.ndarray],
    rate_max: float,
    duration_s: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sample a non-homogeneous Poisson process on ``[0, duration_s)`` by Lewis-Shedler thinning.

    Candidates come from a homogeneous process at ``rate_max`` (per second) and each one is kept
    with probability ``rate_fn(t) / rate_max``. The candidates are drawn as sorted uniforms given
    a Poisson count, which has the same law as summing exponential gaps but is vectorised.
    Thinning is only correct while ``rate_fn <= rate_max``; a bound that is too low would
    silently flatten the peaks, so it is checked at every candidate and raises instead.
    """
    _check_finite("rate_max", rate_max)
    _check_finite("duration_s", duration_s)
    n = rng.poisson(rate_max * duration_s)
    candidates = np.sort(rng.uniform(0.0, duration_s, n))
    rates = np.asarray(rate_fn(candidates), dtype=float)
    if np.any(rates > rate_max * (1 + 1e-9)):
        raise ValueError(
            f"rate function reaches {rates.max():.6g}/s, above the thinning bound {rate_max:.6g}/s"
        )
    if np.any(rates < 0):
        raise ValueError("rate function must not be negative")
    return candidates[rng.uniform(0.0, rate_max, n) < rates]


def poisson(rate_per_hour: float, duration_s: float, rng: np.random.Generator) -> Arrivals:
    """A homogeneous Poisson process: the memoryless baseline every policy should handle."""
    _check_finite("rate_per_hour", rate_per_hour)
    _check_finite("duration_s", duration_s)
    n = rng.poisson(rate_per_hour / SECONDS_PER_HOUR * duration_s)
    return _unit(np.sort(rng.uniform(0.0, duration_s, n)))


def daily_weekly_rate(
    t_s: np.ndarray,
    mean_rate_per_hour: float,
    *,
    peak_hour: float = 14.0,
    daily_amplitude: float = 0.8,
    weekend_factor: float = 0.4,
    start_weekday: int = 0,
) -> np.ndarray:
    """Arrival rate (per hour) at times ``t_s`` for :func:`daily_weekly`.

    ``mean * (1 + amplitude * cos(2π (hour - peak) / 24))``, times ``weekend_factor`` on
    Saturdays and Sundays. The cosine integrates to zero over a day, so a weekday's mean rate is
    exactly ``mean_rate_per_hour``. Public so that plots and tests can show the intended shape.
    """
    t = np.asarray(t_s, dtype=float)
    hour = (t % SECONDS_PER_DAY) / SECONDS_PER_HOUR
    weekday = (start_weekday + np.floor(t / SECONDS_PER_DAY).astype(int)) % 7
    daily = 1.0 + daily_amplitude * np.cos(2.0 * np.pi * (hour - peak_hour) / 24.0)
    weekly = np.where(weekday >= 5, weekend_factor, 1.0)
    return mean_rate_per_hour * daily * weekly


def daily_weekly(
    mean_rate_per_hour: float,
    duration_s: float,
    rng: np.random.Generator,
    *,
    peak_hour: float = 14.0,
    daily_amplitude: float = 0.8,
    weekend_factor: float = 0.4,
    start_weekday: int = 0,
) -> Arrivals:
    """An office-hours workload: a sinusoidal daily cycle with quieter weekends.

    t = 0 is midnight of weekday ``start_weekday`` (0 = Monday). Sampled by :func:`thinning`
    against the rate's maximum, ``mean * (1 + amplitude) * max(1, weekend_factor)``.
    """
    _check_finite("mean_rate_per_hour", mean_rate_per_hour)
    _check_finite("duration_s", duration_s)
    _check_finite("weekend_factor", weekend_factor)
    if not 0.0 <= daily_amplitude <= 1.0:
        raise ValueError(
            f"daily_amplitude must be in [0, 1] (above 1 the rate would go negative), "
            f"got {daily_amplitude}"
        )
    if not 0.0 <= peak_hour < 24.0:
        raise ValueError(f"peak_hour must be in [0, 24), got {peak_hour}")
    if start_weekday not in range(7):
        raise ValueError(f"start_weekday must be 0 (Monday) … 6 (Sunday), got {start_weekday}")

    def rate_per_s(t: np.ndarray) -> np.ndarray:
        return (
            daily_weekly_rate(
                t,
                mean_rate_per_hour,
                peak_hour=peak_hour,
                daily_amplitude=daily_amplitude,
                weekend_factor=weekend_factor,
                start_weekday=start_weekday,
            )
            / SECONDS_PER_HOUR
        )

    rate_max = (
        mean_rate_per_hour * (1.0 + daily_amplitude) * max(1.0, weekend_factor) / SECONDS_PER_HOUR
    )
    return _unit(thinning(rate_per_s, rate_max, duration_s, rng))


def bursty_growth(
    mean_rate_per_hour: float,
    duration_s: float,
    rng: np.random.Generator,
    *,
    bursts_per_day: float = 2.0,
    burst_factor: float = 4.0,
    burst_minutes: tuple[float, float] = (20.0, 90.0),
    growth: float = 0.5,
    start_weekday: int = 0,
) -> Arrivals:
    """A demand shape unlike the office day: late-evening peaks, bursts, and growth.

    Made to test policies on a pattern none of them was tuned on: the daily cycle peaks at
    21:00 (batch after the business day) with a smaller 09:00 shoulder, weekends at 0.6; on
    top, ``bursts_per_day`` bursts (Poisson, at random times) multiply the rate by
    ``burst_factor`` for ``burst_minutes`` (uniform); and the rate grows linearly by ``growth``
    over the span, so that yesterday always under-states today. The rate is normalised so that
    its mean over the span is ``mean_rate_per_hour``.
    """
    _check_finite("mean_rate_per_hour", mean_rate_per_hour)
    _check_finite("duration_s", duration_s, positive=True)
    _check_finite("bursts_per_day", bursts_per_day)
    _check_finite("growth", growth)
    if burst_factor < 1.0 or not math.isfinite(burst_factor):
        raise ValueError(f"burst_factor must be a finite number >= 1, got {burst_factor}")
    low, high = burst_minutes
    if not 0.0 < low <= high:
        raise ValueError(f"burst_minutes must be 0 < low <= high, got {burst_minutes}")
    n_bursts = rng.poisson(bursts_per_day * duration_s / SECONDS_PER_DAY)
    starts = rng.uniform(0.0, duration_s, n_bursts)
    ends = starts + 60.0 * rng.uniform(low, high, n_bursts)

    def shape(t: np.ndarray) -> np.ndarray:
        hour = (t % SECONDS_PER_DAY) / SECONDS_PER_HOUR
        weekday = (start_weekday + np.floor(t / SECONDS_PER_DAY).astype(int)) % 7
        evening = np.exp(-0.5 * ((hour - 21.0 + 12.0) % 24.0 - 12.0) ** 2 / 2.0**2)
        morning = 0.4 * np.exp(-0.5 * ((hour - 9.0 + 12.0) % 24.0 - 12.0) ** 2 / 1.5**2)
        daily = 0.25 + evening + morning
        weekly = np.where(weekday >= 5, 0.6, 1.0)
        trend = 1.0 + growth * t / duration_s
        burst = np.ones_like(t)
        for a, b in zip(starts, ends, strict=True):
            burst = np.where((t >= a) & (t < b), burst_factor, burst)
        return daily * weekly * trend * burst

    grid = np.arange(0.0, duration_s, 60.0)
    scale = mean_rate_per_hour / SECONDS_PER_HOUR / max(float(np.mean(shape(grid))), 1e-12)

    def rate_per_s(t: np.ndarray) -> np.ndarray:
        return scale * shape(t)

    # The shape's peak is bounded by its parts (daily at most 0.25 + 1 + 0.4): the thinning bound.
    bound = scale * 1.65 * (1.0 + growth) * burst_factor
    return _unit(thinning(rate_per_s, bound, duration_s, rng))


def from_demand_csv(
    path: str | Path,
    duration_s: float | None,
    rng: np.random.Generator,
    *,
    jobs_per_hour: float,
    time_scale: float = 1.0,
    start: str | None = None,
    column: str | None = None,
    step_s: float | None = None,
) -> Arrivals:
    """Jobs arriving in proportion to a real demand series, in any layout ``traces`` reads.

    A real trace carries the burstiness and daily/weekly shape that synthetic processes only
    imitate, but its absolute volume (HTTP requests) means nothing for a Spark cluster. So the
    rate in each trace step is proportional to its demand, scaled so that the mean over the
    simulated window is ``jobs_per_hour`` (per simulated hour). ``time_scale`` compresses time:
    one trace step lasts ``step / time_scale`` simulated seconds. The rate is piecewise
    constant, so each step is sampled exactly (Poisson count, uniform times) with no thinning.
    ``column`` and ``step_s`` are passed to :func:`~sparkscaler.sim.traces.read_demand`.
    """
    return from_demand(
        read_demand(path, column, step_s),
        duration_s,
        rng,
        jobs_per_hour=jobs_per_hour,
        time_scale=time_scale,
        start=start,
        source=str(path),
    )


def from_demand(
    trace: DemandTrace,
    duration_s: float | None,
    rng: np.random.Generator,
    *,
    jobs_per_hour: float,
    time_scale: float = 1.0,
    start: str | None = None,
    source: str = "trace",
) -> Arrivals:
    """:func:`from_demand_csv` of a trace read already (the evaluation reads each file once);
    ``source`` names it in errors."""
    _check_finite("jobs_per_hour", jobs_per_hour)
    _check_finite("time_scale", time_scale, positive=True)
    demand = trace.demand
    if start is not None:
        try:
            first = pd.Timestamp(start)
        except ValueError as exc:
            raise ValueError(f"start {start!r} is not a timestamp ({exc})") from exc
        if first not in demand.index:
            raise ValueError(
                f"start {start!r} must be the start of a trace step ({trace.step_s:g} s) "
                f"between {demand.index[0]} and {demand.index[-1]}"
            )
        demand = demand.loc[first:]
    sim_step_s = trace.step_s / time_scale
    available_s = len(demand) * sim_step_s
    if duration_s is None:
        duration_s = available_s
    _check_finite("duration_s", duration_s)
    if duration_s > available_s * (1 + 1e-12):
        raise ValueError(
            f"{source}: duration {duration_s:g} s exceeds the trace from {demand.index[0]} "
            f"({available_s:g} s at time_scale {time_scale:g})"
        )
    edges = np.minimum(np.arange(len(demand) + 1) * sim_step_s, duration_s)
    lengths = np.diff(edges)
    values = demand.to_numpy(dtype=float)
    volume = float(np.sum(values * lengths))
    if volume <= 0:
        raise ValueError(f"{source}: the selected window has no demand, so no rate to scale")
    rate_per_s = values * (jobs_per_hour / SECONDS_PER_HOUR * duration_s / volume)
    counts = rng.poisson(rate_per_s * lengths)
    times = np.repeat(edges[:-1], counts) + rng.uniform(0.0, 1.0, counts.sum()) * np.repeat(
        lengths, counts
    )
    return _unit(np.sort(times))


def _has_header(path: Path) -> bool:
    """The Alibaba release has no header but derived copies do; a numeric first cell means data."""
    with path.open(encoding="utf-8") as handle:
        first_cell = handle.readline().split(",", 1)[0].strip()
    try:
        float(first_cell)
    except ValueError:
        return True
    return False


def from_alibaba_batch(
    path: str | Path,
    duration_s: float | None,
    *,
    time_scale: float = 1.0,
    start_s: float | None = None,
    max_jobs: int | None = None,
) -> Arrivals:
    """Real batch-job arrivals and sizes from the Alibaba 2017 ``batch_task.csv`` task table.

    A job arrives when its first task is created; its weight is the CPU it asks for, the sum of
    ``number_of_instances * cpus_per_instance`` over its tasks, normalised to mean 1.0 over the
    returned jobs so the simulator can scale it to its own job size. Tasks that never got a CPU
    request (mostly ``Waiting``) take the trace's median request rather than zero, so that a job
    is not treated as free. Rows with a missing or non-positive create time are skipped: the
    real trace has a few jobs created before its own origin. Times are relative to the first
    arrival, or to ``start_s`` (trace seconds), and divided by ``time_scale``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Alibaba batch_task trace not found: {path}")
    _check_finite("time_scale", time_scale, positive=True)
    if max_jobs is not None and max_jobs < 0:
        raise ValueError(f"max_jobs must be >= 0, got {max_jobs}")
    frame = pd.read_csv(path, header=0 if _has_header(path) else None, skipinitialspace=True)
    if frame.shape[1] != len(ALIBABA_COLUMNS):
        raise ValueError(
            f"{path}: expected {len(ALIBABA_COLUMNS)} columns ({', '.join(ALIBABA_COLUMNS)}), "
            f"found {frame.shape[1]}"
        )
    frame.columns = list(ALIBABA_COLUMNS)
    create = pd.to_numeric(frame["task_create_time"], errors="coerce")
    frame = frame.assign(task_create_time=create)[(create > 0) & frame["job_id"].notna()]
    if frame.empty:
        raise ValueError(f"{path}: no task has a positive task_create_time")
    try:
        instances = pd.to_numeric(frame["number_of_instances"]).astype(float)
        cpus = pd.to_numeric(frame["cpus_per_instance"]).astype(float)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: instance and CPU columns must be numeric ({exc})") from exc
    if instances.isna().any():
        raise ValueError(f"{path}: number_of_instances is missing in some tasks")
    cpus = cpus.fillna(cpus.median() if cpus.notna().any() else 1.0)
    jobs = (
        frame.assign(cpu=instances * cpus)
        .groupby("job_id")
        .agg(arrival=("task_create_time", "min"), cpu=("cpu", "sum"))
        .reset_index()
        .sort_values(["arrival", "job_id"], kind="stable")
    )
    origin = float(jobs["arrival"].iloc[0]) if start_s is None else start_s
    times = (jobs["arrival"].to_numpy(dtype=float) - origin) / time_scale
    keep = times >= 0
    if duration_s is not None:
        _check_finite("duration_s", duration_s)
        keep &= times < duration_s
    times = times[keep][:max_jobs]
    sizes = jobs["cpu"].to_numpy(dtype=float)[keep][:max_jobs]
    mean = sizes.mean() if len(sizes) else 0.0
    weights = sizes / mean if mean > 0 else np.ones_like(sizes)
    return Arrivals(times, weights)


@dataclass(frozen=True)
class _SpecForm:
    """One kind of arrival spec: whether it starts with a path, and its ``key=value`` params."""

    takes_path: bool
    params: dict[str, tuple[str, Callable[[str], float | int | str]]]
    required: frozenset[str]


_SPEC_FORMS = {
    "poisson": _SpecForm(False, {"rate": ("rate_per_hour", float)}, frozenset({"rate"})),
    "daily": _SpecForm(
        False,
        {
            "rate": ("mean_rate_per_hour", float),
            "peak": ("peak_hour", float),
            "weekend": ("weekend_factor", float),
            "amplitude": ("daily_amplitude", float),
            "start_weekday": ("start_weekday", int),
        },
        frozenset({"rate"}),
    ),
    "csv": _SpecForm(
        True,
        {
            "jobs_per_hour": ("jobs_per_hour", float),
            "time_scale": ("time_scale", float),
            "start": ("start", str),
            "column": ("column", str),
            "step": ("step_s", parse_step),
        },
        frozenset({"jobs_per_hour"}),
    ),
    "alibaba": _SpecForm(
        True,
        {
            "time_scale": ("time_scale", float),
            "start_s": ("start_s", float),
            "max_jobs": ("max_jobs", int),
        },
        frozenset(),
    ),
}

SPEC_USAGE = """valid arrival specs:
  poisson:rate=JOBS_PER_HOUR
  daily:rate=JOBS_PER_HOUR[,peak=HOUR][,weekend=FACTOR][,amplitude=0..1][,start_weekday=0..6]
  csv:PATH,jobs_per_hour=JOBS_PER_HOUR[,time_scale=S][,start=YYYY-MM-DDTHH:MM:SS]
      [,column=NAME][,step=SECONDS|5m]  (step: for a CSV with no time column)
  alibaba:PATH[,time_scale=S][,start_s=TRACE_SECONDS][,max_jobs=N]"""


def _parse_spec(spec: str) -> tuple[str, str, dict[str, float | int | str]]:
    """Split ``kind:[PATH,]key=value,...`` into kind, path ('' if none) and typed kwargs."""
    kind, colon, rest = spec.partition(":")
    form = _SPEC_FORMS.get(kind.strip())
    if not colon or form is None:
        raise ValueError(f"unknown arrival spec {spec!r}\n{SPEC_USAGE}")
    items = [item.strip() for item in rest.split(",")] if rest.strip() else []
    path = ""
    if form.takes_path:
        if not items or not items[0] or "=" in items[0]:
            raise ValueError(f"arrival spec {spec!r} must start with a path\n{SPEC_USAGE}")
        path = items.pop(0)
    kwargs: dict[str, float | int | str] = {}
    seen: set[str] = set()
    for item in items:
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or key not in form.params or key in seen:
            problem = "repeated" if key in seen else "unknown"
            raise ValueError(f"{problem} parameter {item!r} in {spec!r}\n{SPEC_USAGE}")
        seen.add(key)
        name, convert = form.params[key]
        try:
            kwargs[name] = convert(value)
        except ValueError as exc:
            raise ValueError(f"bad value in {item!r} of {spec!r} ({exc})\n{SPEC_USAGE}") from exc
    if missing := form.required - seen:
        raise ValueError(f"{spec!r} needs {', '.join(sorted(missing))}\n{SPEC_USAGE}")
    return kind.strip(), path, kwargs


def load_arrivals(spec: str, duration_s: float, rng: np.random.Generator) -> Arrivals:
    """Build arrivals from a one-line CLI spec such as ``daily:rate=30,peak=14``.

    One string keeps the CLI to a single ``--arrivals`` option while reaching every generator;
    the defaults stay in the generator functions. Out-of-range values are reported with the
    list of valid forms, like syntax errors; a missing trace file raises FileNotFoundError.
    """
    kind, path, kwargs = _parse_spec(spec)
    try:
        if kind == "poisson":
            return poisson(duration_s=duration_s, rng=rng, **kwargs)  # type: ignore[arg-type]
        if kind == "daily":
            return daily_weekly(duration_s=duration_s, rng=rng, **kwargs)  # type: ignore[arg-type]
        if kind == "csv":
            return from_demand_csv(path, duration_s, rng, **kwargs)  # type: ignore[arg-type]
        return from_alibaba_batch(path, duration_s, **kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"arrival spec {spec!r}: {exc}\n{SPEC_USAGE}") from exc
