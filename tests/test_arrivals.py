"""Job-arrival processes: reproducibility, statistics against hand-computed expectations, trace
parsing, the CLI spec language, and the real traces in ../shared/data when they are present.

Statistical checks allow 5 Poisson standard deviations (sd = sqrt(expected count)): the seeds are
fixed so the tests are deterministic, and at 5 sd a different seed would fail with probability
below 1e-6, so a pass is not luck of one seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkscaler.sim.arrivals import (
    Arrivals,
    bursty_growth,
    daily_weekly,
    daily_weekly_rate,
    from_alibaba_batch,
    from_demand_csv,
    load_arrivals,
    poisson,
    thinning,
)

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "traces"
NASA = TRACES / "nasa-http-1995" / "requests_per_minute.csv"
ALIBABA = TRACES / "alibaba2017-batch" / "batch_task.csv"

HOUR = 3600.0
DAY = 86_400.0


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_poisson_count(observed: int, expected: float) -> None:
    assert abs(observed - expected) <= 5 * math.sqrt(expected), (observed, expected)


def require(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"reference trace {path} is absent (../shared/data is not in the repository)")


def write_demand(
    path: Path, values: list[float], *, skip: range = range(0), start: str = "2024-01-01"
) -> Path:
    """A per-minute series in the NASA layout (``1995-07-01T00:00:00,42``); ``skip`` drops rows."""
    stamps = pd.date_range(start, periods=len(values), freq="min")
    rows = [
        f"{stamp:%Y-%m-%dT%H:%M:%S},{value:g}"
        for i, (stamp, value) in enumerate(zip(stamps, values, strict=True))
        if i not in skip
    ]
    path.write_text("timestamp,requests\n" + "\n".join(rows) + "\n")
    return path


def half_and_half(tmp_path: Path) -> Path:
    """Two trace hours: no demand in the first, 50 requests/min in the second."""
    return write_demand(tmp_path / "demand.csv", [0.0] * 60 + [50.0] * 60)


# Real layout (header as in the shared copy, spaces after commas). By hand, with the median CPU
# request of the valid rows (50, 100, 40 -> 50) standing in for the missing one:
#   job 7: tasks at 1000 (2 x 50) and 990 (1 x 100); the row without a create time is skipped
#          -> arrives at 990, size 200
#   job 8: task at 1100, 3 instances, CPU missing (Waiting) -> 3 x 50 = 150
#   job 9: only a task created at 0 -> skipped
#   job 10: a task at -20 (skipped) and one at 1500 (1 x 40) -> 1500, size 40
#   job 11: only a task without a create time -> skipped
# Mean size (200 + 150 + 40) / 3 = 130.
ALIBABA_HEADER = (
    "task_create_time, task_end_time, job_id, task_id,number_of_instances, status, "
    "number_of_cpus_requested_per_instance_in_the_task,"
    "normalized_memory_requested_per_instance_in_the_task\n"
)
ALIBABA_ROWS = """\
1000,1060,7,1,2,Terminated,50,0.01
990,1050,7,2,1,Terminated,100,0.02
,1070,7,3,100,Terminated,50,0.01
1100,1200,8,4,3,Waiting,,
0,10,9,5,5,Terminated,50,0.01
-20,30,10,6,7,Terminated,50,0.01
1500,1600,10,7,1,Failed,40,0.03
,100,11,8,1,Terminated,50,0.01
"""


def write_alibaba(tmp_path: Path, *, header: bool = True) -> Path:
    path = tmp_path / "batch_task.csv"
    path.write_text((ALIBABA_HEADER if header else "") + ALIBABA_ROWS)
    return path


# --- Arrivals -----------------------------------------------------------------------------


def test_arrivals_copies_validates_and_is_read_only() -> None:
    times = np.array([1.0, 2.0])
    arrivals = Arrivals(times, np.array([1.0, 3.0]))
    times[0] = 99.0
    assert arrivals.times.tolist() == [1.0, 2.0]
    assert len(arrivals) == 2
    with pytest.raises(ValueError, match="read-only"):
        arrivals.times[0] = 5.0
    with pytest.raises(ValueError, match="sorted"):
        Arrivals(np.array([2.0, 1.0]), np.ones(2))
    with pytest.raises(ValueError, match="equal length"):
        Arrivals(np.array([1.0, 2.0]), np.ones(3))


def test_window_selects_half_open_interval_and_shifts() -> None:
    arrivals = Arrivals(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    cut = arrivals.window(2.0, 4.0)
    assert cut.times.tolist() == [0.0, 1.0]
    assert cut.weights.tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="before its start"):
        arrivals.window(3.0, 1.0)


# --- reproducibility ----------------------------------------------------------------------

GENERATORS: dict[str, Callable[[np.random.Generator, Path], Arrivals]] = {
    "poisson": lambda g, _: poisson(60.0, 10 * HOUR, g),
    "daily_weekly": lambda g, _: daily_weekly(60.0, 2 * DAY, g),
    "bursty_growth": lambda g, _: bursty_growth(60.0, 2 * DAY, g),
    "demand_csv": lambda g, tmp: from_demand_csv(half_and_half(tmp), None, g, jobs_per_hour=600),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_arrivals_other_seed_other(name: str, tmp_path: Path) -> None:
    make = GENERATORS[name]
    first, again, other = make(rng(7), tmp_path), make(rng(7), tmp_path), make(rng(8), tmp_path)
    assert len(first) > 100
    np.testing.assert_array_equal(first.times, again.times)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.array_equal(first.times, other.times)


# --- Poisson and thinning -----------------------------------------------------------------


def test_poisson_count_matches_rate_times_duration() -> None:
    arrivals = poisson(120.0, 10 * HOUR, rng(1))
    assert_poisson_count(len(arrivals), 120.0 * 10)
    assert np.all((arrivals.times >= 0) & (arrivals.times < 10 * HOUR))
    assert np.all(np.diff(arrivals.times) >= 0)
    assert np.all(arrivals.weights == 1.0)


def test_thinning_refuses_a_rate_above_its_bound() -> None:
    with pytest.raises(ValueError, match="above the thinning bound"):
        thinning(lambda t: np.full_like(t, 2.0), 1.0, 100.0, rng())


def test_thinning_keeps_candidates_in_proportion_to_the_rate() -> None:
    # Rate 0 in the first half, the full bound in the second: nothing may be accepted in the
    # first half, everything offered in the second is kept.
    times = thinning(lambda t: np.where(t < 500.0, 0.0, 2.0), 2.0, 1000.0, rng(2))
    assert times.min() >= 500.0
    assert_poisson_count(len(times), 2.0 * 500.0)


@pytest.mark.parametrize(
    ("amplitude", "weekend", "peak", "weekday"),
    [(1.0, 0.4, 14.0, 0), (1.0, 2.5, 23.9, 4), (0.0, 0.0, 0.0, 6)],
)
def test_daily_rate_never_exceeds_the_thinning_bound(
    amplitude: float, weekend: float, peak: float, weekday: int
) -> None:
    grid = np.arange(0.0, 14 * DAY, 30.0)
    kwargs = dict(
        peak_hour=peak, daily_amplitude=amplitude, weekend_factor=weekend, start_weekday=weekday
    )
    rates = daily_weekly_rate(grid, 100.0, **kwargs)
    assert rates.max() <= 100.0 * (1 + amplitude) * max(1.0, weekend) + 1e-9
    assert rates.min() >= 0.0
    # thinning() checks every candidate against the bound daily_weekly() gives it and raises if
    # one is exceeded, so a full two weeks at the extreme settings must run through.
    daily_weekly(100.0, 14 * DAY, rng(3), **kwargs)


# --- daily/weekly cycle ---------------------------------------------------------------------


def expected_per_weekday(
    mean: float, a: float, b: float, *, amplitude: float, peak: float
) -> float:
    """Closed-form integral of mean * (1 + amplitude * cos(2π (h - peak) / 24)) over [a, b) h."""
    w = 2 * math.pi / 24
    return mean * ((b - a) + amplitude / w * (math.sin(w * (b - peak)) - math.sin(w * (a - peak))))


def test_daily_weekly_peaks_in_the_afternoon_and_quiets_down_at_weekends() -> None:
    mean = 200.0
    arrivals = daily_weekly(mean, 7 * DAY, rng(4), peak_hour=14.0, daily_amplitude=0.8)
    day = (arrivals.times // DAY).astype(int)
    hour = (arrivals.times % DAY) / HOUR
    weekdays = day < 5  # start_weekday=0: days 0-4 are Monday-Friday

    afternoon = int(np.sum(weekdays & (hour >= 12) & (hour < 16)))
    night = int(np.sum(weekdays & (hour >= 0) & (hour < 4)))
    expected_afternoon = 5 * expected_per_weekday(mean, 12, 16, amplitude=0.8, peak=14)
    expected_night = 5 * expected_per_weekday(mean, 0, 4, amplitude=0.8, peak=14)
    assert_poisson_count(afternoon, expected_afternoon)  # ≈ 7060
    assert_poisson_count(night, expected_night)  # ≈ 940
    assert afternoon > 5 * night  # expected ratio ≈ 7.5; even at the 5 sd bounds it is > 6

    per_day = np.bincount(day, minlength=7)
    for weekday_count in per_day[:5]:
        assert_poisson_count(int(weekday_count), 24 * mean)  # the weekday mean is the mean rate
    for weekend_count in per_day[5:]:
        assert_poisson_count(int(weekend_count), 0.4 * 24 * mean)


def test_daily_weekly_start_weekday_moves_the_weekend() -> None:
    arrivals = daily_weekly(200.0, 3 * DAY, rng(5), start_weekday=5)  # Saturday, Sunday, Monday
    per_day = np.bincount((arrivals.times // DAY).astype(int), minlength=3)
    assert_poisson_count(int(per_day[0]), 0.4 * 24 * 200)
    assert_poisson_count(int(per_day[1]), 0.4 * 24 * 200)
    assert_poisson_count(int(per_day[2]), 24 * 200)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"daily_amplitude": 1.5}, "daily_amplitude"),
        ({"peak_hour": 24.0}, "peak_hour"),
        ({"start_weekday": 7}, "start_weekday"),
        ({"weekend_factor": -0.1}, "weekend_factor"),
    ],
)
def test_daily_weekly_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        daily_weekly(10.0, DAY, rng(), **kwargs)  # type: ignore[arg-type]


# --- demand CSV -----------------------------------------------------------------------------


def test_demand_arrivals_follow_the_demand_and_hit_the_mean_rate(tmp_path: Path) -> None:
    arrivals = from_demand_csv(half_and_half(tmp_path), None, rng(6), jobs_per_hour=3600)
    assert arrivals.times.min() >= HOUR  # no demand in the first trace hour, no jobs either
    assert arrivals.times.max() < 2 * HOUR
    assert_poisson_count(len(arrivals), 3600 * 2)  # mean rate over the whole 2 h window
    assert np.all(arrivals.weights == 1.0)


def test_demand_time_scale_compresses_time(tmp_path: Path) -> None:
    path = half_and_half(tmp_path)
    trace_time = from_demand_csv(path, None, rng(9), jobs_per_hour=3600)
    # 60x faster: one trace hour per simulated minute. The same number of jobs in a 60x shorter
    # simulation is a 60x higher rate per simulated hour; with the same seed the draws are then
    # identical and every arrival is exactly 60x earlier.
    fast = from_demand_csv(path, None, rng(9), jobs_per_hour=3600 * 60, time_scale=60)
    np.testing.assert_allclose(fast.times, trace_time.times / 60)
    assert fast.times.min() >= 60.0
    assert fast.times.max() < 120.0


def test_demand_start_and_duration_pick_the_window(tmp_path: Path) -> None:
    path = half_and_half(tmp_path)
    arrivals = from_demand_csv(
        path, 1800.0, rng(10), jobs_per_hour=3600, start="2024-01-01T01:00:00"
    )
    assert arrivals.times.min() < 60.0  # the busy hour now starts at t = 0
    assert arrivals.times.max() < 1800.0
    assert_poisson_count(len(arrivals), 3600 * 0.5)
    with pytest.raises(ValueError, match="exceeds the trace"):
        from_demand_csv(path, 1.5 * HOUR, rng(), jobs_per_hour=10, start="2024-01-01T01:00:00")
    with pytest.raises(ValueError, match="start of a trace step"):
        from_demand_csv(path, None, rng(), jobs_per_hour=10, start="2024-02-01T00:00:00")


def test_demand_missing_minutes_count_as_zero(tmp_path: Path) -> None:
    path = write_demand(tmp_path / "gap.csv", [10.0] * 30, skip=range(10, 20))
    arrivals = from_demand_csv(path, None, rng(11), jobs_per_hour=7200)
    assert not np.any((arrivals.times >= 600.0) & (arrivals.times < 1200.0))
    assert arrivals.times.max() < 1800.0
    assert_poisson_count(len(arrivals), 7200 * 0.5)


def test_demand_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="demand trace not found"):
        from_demand_csv(tmp_path / "nope.csv", None, rng(), jobs_per_hour=10)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("time,host\n2024-01-01T00:00:00,a\n")
    with pytest.raises(ValueError, match=r"no numeric demand column; found columns: time, host"):
        from_demand_csv(wrong, None, rng(), jobs_per_hour=10)
    garbled = tmp_path / "garbled.csv"
    garbled.write_text("timestamp,requests\nyesterday,3\n")
    with pytest.raises(ValueError, match="ISO 8601"):
        from_demand_csv(garbled, None, rng(), jobs_per_hour=10)
    silent = write_demand(tmp_path / "silent.csv", [0.0] * 5)
    with pytest.raises(ValueError, match="no demand"):
        from_demand_csv(silent, None, rng(), jobs_per_hour=10)


# --- Alibaba batch trace ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_alibaba_arrivals_and_weights_by_hand(tmp_path: Path, header: bool) -> None:
    arrivals = from_alibaba_batch(write_alibaba(tmp_path, header=header), None)
    np.testing.assert_array_equal(arrivals.times, [0.0, 110.0, 510.0])
    np.testing.assert_allclose(arrivals.weights, [200 / 130, 150 / 130, 40 / 130])


def test_alibaba_start_time_scale_duration_and_max_jobs(tmp_path: Path) -> None:
    path = write_alibaba(tmp_path)
    late = from_alibaba_batch(path, None, start_s=1000.0, time_scale=10.0)
    np.testing.assert_array_equal(late.times, [10.0, 50.0])  # job 7 (990) is before start
    np.testing.assert_allclose(late.weights, [150 / 95, 40 / 95])  # renormalised to mean 1
    short = from_alibaba_batch(path, 20.0, start_s=1000.0, time_scale=10.0)
    np.testing.assert_array_equal(short.times, [10.0])
    np.testing.assert_array_equal(short.weights, [1.0])
    first_two = from_alibaba_batch(path, None, max_jobs=2)
    np.testing.assert_array_equal(first_two.times, [0.0, 110.0])
    np.testing.assert_allclose(first_two.weights, [200 / 175, 150 / 175])


def test_alibaba_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="batch_task trace not found"):
        from_alibaba_batch(tmp_path / "nope.csv", None)
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("1000,1060,7\n")
    with pytest.raises(ValueError, match="expected 8 columns"):
        from_alibaba_batch(narrow, None)
    invalid = tmp_path / "invalid.csv"
    invalid.write_text("0,10,1,1,1,Terminated,50,0.01\n-5,10,2,2,1,Terminated,50,0.01\n")
    with pytest.raises(ValueError, match="positive task_create_time"):
        from_alibaba_batch(invalid, None)


# --- spec language ----------------------------------------------------------------------------


def test_load_arrivals_matches_the_generators(tmp_path: Path) -> None:
    demand = half_and_half(tmp_path)
    batch = write_alibaba(tmp_path)
    pairs = [
        (load_arrivals("poisson:rate=30", DAY, rng(1)), poisson(30.0, DAY, rng(1))),
        (
            load_arrivals("daily:rate=30,peak=9,weekend=0.2,amplitude=0.5", 2 * DAY, rng(1)),
            daily_weekly(
                30.0, 2 * DAY, rng(1), peak_hour=9, weekend_factor=0.2, daily_amplitude=0.5
            ),
        ),
        (
            load_arrivals(
                f"csv:{demand},jobs_per_hour=600,time_scale=2,start=2024-01-01T00:30:00",
                1800.0,
                rng(1),
            ),
            from_demand_csv(
                demand, 1800.0, rng(1), jobs_per_hour=600, time_scale=2, start="2024-01-01T00:30"
            ),
        ),
        (
            load_arrivals(f"alibaba:{batch},time_scale=2,max_jobs=2", 1000.0, rng(1)),
            from_alibaba_batch(batch, 1000.0, time_scale=2, max_jobs=2),
        ),
    ]
    for from_spec, direct in pairs:
        assert len(from_spec) > 0
        np.testing.assert_array_equal(from_spec.times, direct.times)
        np.testing.assert_array_equal(from_spec.weights, direct.weights)


@pytest.mark.parametrize(
    "spec",
    [
        "burst:rate=30",
        "poisson",
        "poisson:rate=abc",
        "poisson:rate=30,burst=2",
        "poisson:rate=30,rate=40",
        "poisson:rate=-5",
        "daily:peak=14",
        "daily:rate=30,weekend=-1",
        "daily:rate=30,start_weekday=1.5",
        "csv:",
        "csv:jobs_per_hour=30",
        "alibaba:batch.csv,max_jobs=2.5",
    ],
)
def test_load_arrivals_rejects_bad_specs_and_lists_the_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="valid arrival specs") as caught:
        load_arrivals(spec, HOUR, rng())
    for form in ("poisson:rate=", "daily:rate=", "csv:PATH", "alibaba:PATH"):
        assert form in str(caught.value)


def test_load_arrivals_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_arrivals(f"csv:{tmp_path / 'nope.csv'},jobs_per_hour=30", HOUR, rng())
    with pytest.raises(FileNotFoundError):
        load_arrivals(f"alibaba:{tmp_path / 'nope.csv'}", HOUR, rng())


# --- real traces (../shared/data, skipped when absent) -------------------------------------------


def test_nasa_week_shows_a_daily_cycle() -> None:
    require(NASA)
    arrivals = from_demand_csv(NASA, 7 * DAY, rng(12), jobs_per_hour=200)
    assert_poisson_count(len(arrivals), 200 * 24 * 7)
    hour = (arrivals.times % DAY) / HOUR  # the trace starts at midnight, 1995-07-01
    daytime = np.sum((hour >= 10) & (hour < 18)) / 8
    night = np.sum((hour >= 1) & (hour < 7)) / 6
    # In the first week the demand averages ≈ 80 requests/min from 10:00 to 18:00 and ≈ 30 from
    # 01:00 to 07:00; requiring only 1.5x leaves room for sampling noise (~3% here).
    assert daytime > 1.5 * night


def test_alibaba_real_trace_has_one_arrival_per_valid_job() -> None:
    require(ALIBABA)
    table = pd.read_csv(ALIBABA, skipinitialspace=True)
    create = pd.to_numeric(table["task_create_time"], errors="coerce")
    expected_jobs = table.loc[create > 0, "job_id"].nunique()
    arrivals = from_alibaba_batch(ALIBABA, None)
    assert len(arrivals) == expected_jobs
    assert arrivals.times[0] == 0.0
    assert 16.0 < arrivals.times[-1] / HOUR < 18.0  # the README: ~17 h
    assert arrivals.weights.mean() == pytest.approx(1.0)
    assert np.all(arrivals.weights > 0)


# --- the generated bursty shape -----------------------------------------------------------


def test_bursty_growth_keeps_its_mean_peaks_in_the_evening_and_grows() -> None:
    week = 7 * DAY
    arrivals = bursty_growth(60.0, week, rng(3), bursts_per_day=0.0)
    expected = 60.0 * week / HOUR
    assert abs(len(arrivals) - expected) < 5 * math.sqrt(expected)
    hours = (arrivals.times % DAY) // HOUR
    evening = np.count_nonzero((hours >= 19) & (hours < 23))
    afternoon = np.count_nonzero((hours >= 13) & (hours < 17))
    assert evening > 3 * afternoon
    days = np.bincount((arrivals.times // DAY).astype(int), minlength=7)
    assert days[4] > 1.15 * days[0]  # Friday against Monday: 50 % growth over the week
    assert days[5] < 0.8 * days[4]  # and a quieter weekend


def test_bursty_growth_bursts_multiply_the_rate_for_a_while() -> None:
    calm = bursty_growth(60.0, 7 * DAY, rng(5), bursts_per_day=0.0)
    bursty = bursty_growth(60.0, 7 * DAY, rng(5), bursts_per_day=3.0, burst_factor=6.0)
    per_10min = lambda a: np.bincount((a.times // 600).astype(int), minlength=7 * 144)  # noqa: E731
    # The mean stays (normalised), but the busiest 10 minutes are far busier with bursts.
    assert abs(len(bursty) - len(calm)) < 5 * math.sqrt(len(calm))
    assert per_10min(bursty).max() > 2 * per_10min(calm).max()


def test_bursty_growth_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="burst_factor"):
        bursty_growth(60.0, DAY, rng(), burst_factor=0.5)
    with pytest.raises(ValueError, match="burst_minutes"):
        bursty_growth(60.0, DAY, rng(), burst_minutes=(30.0, 10.0))
