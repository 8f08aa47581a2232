"""Jobs for the simulator: seeded draws, TPC-H profiles in Decima's format, generators."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sparkscaler.backends.simulated import run_alone as sim_run_alone
from sparkscaler.core import JobRecord
from sparkscaler.models.runtime_model import RuntimeModel
from sparkscaler.sim.arrivals import Arrivals
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.sim.workload import (
    ContendedDurations,
    Draws,
    FixedDurations,
    JobSpec,
    ModelJobs,
    ProfileDurations,
    SignatureJobs,
    SignatureProfile,
    Stage,
    StageShape,
    SyntheticJobs,
    TpchJobs,
    fit_signature,
    job_from_record,
    load_tpch_job,
    make_workload,
    tpch_queries,
    wave_estimate,
)

TPCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tpch"


def run_alone(job: JobSpec, workers: int, seed: int = 0) -> float:
    """The job's duration alone on ``workers`` one-core workers, no executor start-up."""
    sim = SimCluster(
        [job.with_arrival(0, 0.0, None)],
        initial_workers=workers,
        executor_startup_s=(0.0, 0.0),
        seed=seed,
    )
    sim.run_until(1e9)
    [result] = sim.results
    return result.duration_s


# ---------------------------------------------------------------------------------- Draws
def test_draws_are_reproducible_across_refills() -> None:
    def take(seed: int) -> list[float]:
        d = Draws(np.random.default_rng(seed), batch=8)
        return [d.uniform(2.0, 5.0) for _ in range(20)] + [d.normal() for _ in range(20)]

    a = take(11)
    assert a == take(11)
    assert a != take(12)
    # the buffer is refilled with new numbers, not the first batch again
    assert a[:8] != a[8:16]
    assert a[20:28] != a[28:36]


def test_draws_ranges_and_index_coverage() -> None:
    d = Draws(np.random.default_rng(0), batch=64)
    uniforms = [d.uniform(2.0, 5.0) for _ in range(1000)]
    assert min(uniforms) >= 2.0 and max(uniforms) < 5.0
    assert np.mean(uniforms) == pytest.approx(3.5, abs=0.1)
    assert d.uniform(3.0, 3.0) == 3.0
    indices = [d.index(7) for _ in range(7000)]
    assert set(indices) == set(range(7))
    assert all(abs(indices.count(i) - 1000) < 150 for i in range(7))
    normals = [d.normal() for _ in range(4000)]
    assert np.mean(normals) == pytest.approx(0.0, abs=0.06)
    assert np.std(normals) == pytest.approx(1.0, abs=0.05)


def test_fixed_durations_by_wave_kind_and_noise_floor() -> None:
    f = FixedDurations(10.0, first_wave_factor=2.0, fresh_extra_s=1.0)
    d = Draws(np.random.default_rng(0))
    assert [f.mean(k, 5) for k in ("fresh", "first", "rest")] == [21.0, 20.0, 10.0]
    assert [f.sample(k, 5, d) for k in ("fresh", "first", "rest")] == [21.0, 20.0, 10.0]
    noisy = FixedDurations(10.0, noise=0.1)
    samples = [noisy.sample("rest", 1, d) for _ in range(4000)]
    assert np.mean(samples) == pytest.approx(10.0, abs=0.1)
    assert np.std(samples) == pytest.approx(1.0, abs=0.1)
    wild = FixedDurations(10.0, noise=10.0)
    assert min(wild.sample("rest", 1, d) for _ in range(500)) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------- profiles
def _keyed_profile() -> ProfileDurations:
    """Each executor count's pool holds one value: the count itself."""
    pools = {k: np.array([float(k)]) for k in (2, 10, 20)}
    return ProfileDurations({"fresh": pools, "first": pools, "rest": pools})


@pytest.mark.parametrize(("executors", "key"), [(1, 2), (2, 2), (10, 10), (20, 20), (50, 20)])
def test_profile_key_outside_or_on_a_measured_count(executors: int, key: int) -> None:
    profile = _keyed_profile()
    d = Draws(np.random.default_rng(0))
    assert {profile.sample("first", executors, d) for _ in range(200)} == {float(key)}
    assert profile.mean("first", executors) == float(key)


@pytest.mark.parametrize(
    ("executors", "left", "right"),
    [(4, 2, 10), (9, 2, 10), (3, 2, 10), (15, 10, 20), (12, 10, 20)],
)
def test_profile_key_between_counts_in_proportion_to_closeness(
    executors: int, left: int, right: int
) -> None:
    profile = _keyed_profile()
    d = Draws(np.random.default_rng(executors))
    n = 20_000
    picks = [profile.sample("rest", executors, d) for _ in range(n)]
    assert set(picks) == {float(left), float(right)}  # both neighbours possible
    p_left = (right - executors) / (right - left)  # the closer, the likelier
    share = picks.count(float(left)) / n
    # 5 standard deviations of a binomial share
    assert abs(share - p_left) < 5 * math.sqrt(p_left * (1 - p_left) / n), (share, p_left)


def test_profile_mean_uses_the_nearest_count() -> None:
    profile = _keyed_profile()
    assert profile.mean("first", 5) == 2.0
    assert profile.mean("first", 7) == 10.0
    assert profile.mean("first", 6) == 2.0  # a tie goes to the smaller count
    assert profile.mean("first", 16) == 20.0


# ---------------------------------------------------------------------------------- TPC-H files
#: Three stages, 0 and 1 roots, 2 their child; durations in ms as Decima stores them.
PROFILE = {
    0: {
        "first_wave": {2: [3000, 1000], 5: [2000, 2000, 2000]},
        "fresh_durations": {2: [3000], 5: [2000, 2000, 2000]},
        "rest_wave": {2: [500], 5: []},
    },
    1: {
        "first_wave": {2: [4000, 4000], 5: [3000, 3000]},
        "fresh_durations": {2: [4000], 5: [3000]},
        "rest_wave": {2: [], 5: []},
    },
    2: {
        "first_wave": {2: [600, 800], 5: [500] * 5},
        "fresh_durations": {2: [], 5: []},
        "rest_wave": {2: [200] * 4, 5: [100]},
    },
}


def write_profile(directory: Path, query: int, size: str, profile: dict | None = None) -> None:
    folder = directory / size
    folder.mkdir(parents=True, exist_ok=True)
    adj = np.zeros((3, 3))
    adj[0, 2] = adj[1, 2] = 1.0
    np.save(folder / f"adj_mat_{query}.npy", adj)
    np.save(folder / f"task_duration_{query}.npy", np.array(profile or PROFILE, dtype=object))


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    write_profile(tmp_path, 1, "2g")
    write_profile(tmp_path, 3, "2g")
    write_profile(tmp_path, 1, "10g")
    return tmp_path


def _pools(stage: Stage) -> dict[str, dict[int, list[float]]]:
    waves = stage.durations.waves  # type: ignore[attr-defined]
    return {kind: {e: list(v) for e, v in waves[kind].items()} for kind in waves}


def test_load_tpch_job_follows_decimas_preprocessing(profiles: Path) -> None:
    job = load_tpch_job(profiles, 1, "2g")
    assert (job.name, job.size_gb, job.arrival, job.deadline_s) == ("tpch-q1-2g", 2.0, 0.0, None)
    assert [s.id for s in job.stages] == [0, 1, 2]
    # tasks = first wave + rest wave of one executor count
    assert [s.num_tasks for s in job.stages] == [3, 2, 6]
    assert [s.parents for s in job.stages] == [(), (), (0, 1)]
    s0, s1, s2 = (_pools(s) for s in job.stages)
    # ms -> s; fresh durations taken out of the first wave
    assert s0["fresh"] == {2: [3.0], 5: [2.0, 2.0, 2.0]}
    assert s0["first"][2] == [1.0]
    # a count whose first wave was all fresh takes the nearest smaller count's
    assert s0["first"][5] == [1.0]
    assert s0["rest"] == {2: [0.5], 5: []}
    # a duplicated duration is removed only as often as it is fresh
    assert s1["first"] == {2: [4.0], 5: [3.0]}
    assert s2["first"] == {2: [0.6, 0.8], 5: [0.5] * 5}
    assert s2["rest"] == {2: [0.2] * 4, 5: [0.1]}


def test_profile_pools_fall_back_when_a_kind_has_no_durations(profiles: Path) -> None:
    s0, _, s2 = load_tpch_job(profiles, 1, "2g").stages
    assert s0.durations.mean("rest", 5) == 1.0  # no rest wave at 5: the first wave's
    assert s2.durations.mean("fresh", 2) == pytest.approx(0.7)  # no fresh: the first wave's


def test_load_tpch_job_errors(profiles: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"adj_mat_9\.npy"):
        load_tpch_job(profiles, 9, "2g")
    (profiles / "5g").mkdir()
    np.save(profiles / "5g" / "adj_mat_1.npy", np.zeros((2, 2)))
    np.save(profiles / "5g" / "task_duration_1.npy", np.array(PROFILE, dtype=object))
    with pytest.raises(ValueError, match="2 stages but 3"):
        load_tpch_job(profiles, 1, "5g")


def test_tpch_queries_lists_every_profile_by_size(profiles: Path, tmp_path: Path) -> None:
    assert tpch_queries(profiles) == [(1, "2g"), (3, "2g"), (1, "10g")]
    (tmp_path / "empty" / "2g").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no TPC-H profiles"):
        tpch_queries(tmp_path / "empty")


@pytest.mark.parametrize(
    ("executors", "expected"),
    [
        # stage 0: 3.0 fresh + 0.5 rest; stage 1: 4.0 fresh; stage 2: 0.7 first + 2 x 0.2
        (2, 4.0 + 1.1),
        # key 2 (nearest): stage 0: one wave 3.0; stage 1: 4.0; stage 2: 0.7 + 0.2
        (3, 4.0 + 0.9),
        # one wave each: 2.0 and 3.0 fresh; stage 2: 0.5 first + 0.1 rest (6 tasks on 5)
        (5, 3.0 + 0.6),
        # above the largest count: key 5, one wave everywhere
        (100, 3.0 + 0.5),
    ],
)
def test_wave_estimate_by_hand(profiles: Path, executors: int, expected: float) -> None:
    job = load_tpch_job(profiles, 1, "2g")
    assert wave_estimate(job, executors) == pytest.approx(expected)


def test_wave_estimate_adds_the_driver_phase(profiles: Path) -> None:
    job = load_tpch_job(profiles, 1, "2g")
    slow = JobSpec(0, "x", 0.0, job.stages, driver_s=4.0)
    assert wave_estimate(slow, 5) == pytest.approx(3.6 + 4.0)


def test_simulated_profile_job_uses_the_profile_of_its_executor_count(profiles: Path) -> None:
    """Alone on 5 workers the job holds 5 executors, so every stage uses the durations
    measured at 5: the roots' 5 tasks run side by side (2.0 and 3.0 fresh), then the child's
    6 tasks, 5 first-wave (0.5) and one rest (0.1): 3.6 s, the wave estimate."""
    job = load_tpch_job(profiles, 1, "2g")
    assert wave_estimate(job, 5) == pytest.approx(3.6)
    assert [run_alone(job, 5, seed) for seed in range(5)] == [pytest.approx(3.6)] * 5


def test_tpch_jobs_are_seeded_and_filter_sizes(profiles: Path) -> None:
    def names(seed: int, sizes: list[str] | None = None) -> list[str]:
        source = TpchJobs(profiles, sizes)
        rng = np.random.default_rng(seed)
        return [source.sample(rng).name for _ in range(60)]

    assert names(1) == names(1)
    assert names(1) != names(2)
    assert set(names(1)) == {"tpch-q1-2g", "tpch-q3-2g", "tpch-q1-10g"}
    assert set(names(1, ["2g"])) == {"tpch-q1-2g", "tpch-q3-2g"}


# ---------------------------------------------------------------------------------- generators
def test_synthetic_jobs_are_seeded_and_map_reduce_shaped() -> None:
    source = SyntheticJobs()
    a = [source.sample(np.random.default_rng(5)) for _ in range(3)]
    b = [source.sample(np.random.default_rng(5)) for _ in range(3)]
    assert a == b
    rng = np.random.default_rng(6)
    jobs = [source.sample(rng) for _ in range(300)]
    assert len({j.stages[0].num_tasks for j in jobs}) > 50
    for j in jobs:
        m, r = j.stages
        assert 8 <= m.num_tasks <= 200
        assert r.num_tasks == max(1, int(m.num_tasks * 0.25)) and r.parents == (0,)
        d = m.durations
        assert isinstance(d, FixedDurations) and 2.0 <= d.seconds <= 20.0
        assert j.size_gb == pytest.approx(m.num_tasks * d.seconds / 100.0)


def test_make_workload_assigns_ids_arrivals_and_deadlines() -> None:
    arrivals = Arrivals(np.array([0.0, 5.0, 7.5]), np.ones(3))
    workload = make_workload(arrivals, SyntheticJobs(), np.random.default_rng(0), 2.0)
    assert [j.id for j in workload] == [0, 1, 2]
    assert [j.arrival for j in workload] == [0.0, 5.0, 7.5]
    for j in workload:
        # on as many slots as the widest stage, both stages take one wave: fresh map
        # (1.3 s + 1) then first-wave reduce (1.3 s)
        s = j.stages[0].durations.seconds  # type: ignore[attr-defined]
        widest = max(st.num_tasks for st in j.stages)
        assert j.deadline_s == pytest.approx(2.0 * wave_estimate(j, widest))
        assert j.deadline_s == pytest.approx(2.0 * (2.6 * s + 1.0))
    again = make_workload(arrivals, SyntheticJobs(), np.random.default_rng(0), 2.0)
    assert again == workload
    fixed = make_workload(arrivals, SyntheticJobs(), np.random.default_rng(0), 2.0, 99.0)
    assert [j.deadline_s for j in fixed] == [99.0] * 3
    none = make_workload(arrivals, SyntheticJobs(), np.random.default_rng(0))
    assert [j.deadline_s for j in none] == [None] * 3


COEF = (20.0, 60.0, 2.0, 0.5, 3.0)  # 1, s/n, s, n, log n


def _fitted_model(noise: float) -> RuntimeModel:
    rng = np.random.default_rng(42)
    sizes, workers = np.meshgrid([0.5, 1.0, 2.0, 3.0, 4.0], [1, 2, 4, 6, 8])
    s, n = sizes.ravel(), workers.ravel()
    c0, c1, c2, c3, c4 = COEF
    exact = c0 + c1 * s / n + c2 * s + c3 * n + c4 * np.log(n)
    t = exact * (1 + noise * rng.standard_normal(len(s)))
    return RuntimeModel(source="synthetic").fit(s, n, t)


@pytest.mark.parametrize("planned", [1, 2, 4, 5, 8])
def test_model_jobs_run_as_long_as_the_model_predicts(planned: int) -> None:
    """Alone on the ``planned`` one-core workers it was made for, a job takes
    predict(size, n) x (1 + r), r one of the model's residuals: the tolerance is the largest
    residual, plus the last wave's rounding ceil(64 / n) / (64 / n) - 1 (0 when n divides
    the 64 tasks, 1.6 % for n = 5)."""
    model = _fitted_model(noise=0.02)
    source = ModelJobs(model, sizes_gb=(0.5, 4.0), planned_workers=planned)
    rounding = math.ceil(64 / planned) * planned / 64 - 1
    tolerance = float(np.max(np.abs(model.residuals_))) + rounding + 1e-9
    assert tolerance < 0.1
    rng = np.random.default_rng(planned)
    for _ in range(5):
        job = source.sample(rng)
        predicted = model.predict(job.size_gb, planned)
        ratio = run_alone(job, planned) / predicted
        assert abs(ratio - 1) <= tolerance, (job.size_gb, ratio, tolerance)


def test_model_jobs_exact_without_residuals() -> None:
    model = _fitted_model(noise=0.0)
    assert np.allclose(model.coef_, COEF, rtol=1e-6)
    source = ModelJobs(model, planned_workers=4)
    job = source.make(2.0, np.random.default_rng(0))
    assert job.size_gb == 2.0 and job.stages[0].num_tasks == 64
    assert run_alone(job, 4) == pytest.approx(model.predict(2.0, 4), rel=1e-6)
    # the job also speeds up with more workers as the model says for its parallel part
    parallel = COEF[1] * 2.0
    assert run_alone(job, 8) == pytest.approx(model.predict(2.0, 4) - parallel / 8, rel=1e-6)


# ---------------------------------------------------------------------------------- real data
needs_tpch = pytest.mark.skipif(
    not TPCH.is_dir(), reason=f"Decima's TPC-H profiles are not at {TPCH}"
)


@needs_tpch
def test_every_real_tpch_profile_loads() -> None:
    found = tpch_queries(TPCH)
    assert len(found) >= 22
    for query, size in found:
        job = load_tpch_job(TPCH, query, size)
        assert job.stages and all(s.num_tasks > 0 for s in job.stages), (query, size)
        ids = {s.id for s in job.stages}
        assert all(set(s.parents) <= ids - {s.id} for s in job.stages)
        for e in (2, 10, 100):
            assert 0 < wave_estimate(job, e) < 1e5, (query, size, e)


@needs_tpch
@pytest.mark.parametrize("size", ["2g", "5g", "10g", "20g", "50g", "80g", "100g"])
def test_simulated_tpch_queries_agree_with_their_wave_estimate(size: str) -> None:
    """Alone on e one-core workers, the median query is within 25 % of its wave estimate.
    The estimate ignores that parallel branches share the slots, so the simulator is slower
    on queries with several wide roots (q21: about +160 %); the median stays close."""
    if not (TPCH / size).is_dir():
        pytest.skip(f"no {size} profiles")
    queries = sorted(q for q, s in tpch_queries(TPCH) if s == size and 1 <= q <= 22)
    report = {}
    for e in (5, 10, 20):
        errors = []
        for q in queries:
            job = load_tpch_job(TPCH, q, size)
            estimate = wave_estimate(job, e)
            errors.append(100.0 * (run_alone(job, e, seed=q) - estimate) / estimate)
        report[e] = (float(np.median(np.abs(errors))), np.round(errors, 1).tolist())
    print(
        f"\nTPC-H {size}: median |error| % by e: "
        + ", ".join(f"e={e}: {m:.1f}" for e, (m, _) in report.items())
    )
    for e, (median, errors) in report.items():
        assert median <= 25.0, f"{size} e={e}: median |error| {median:.1f} %, errors {errors}"


# ---------------------------------------------------------------------------------- signatures
def test_contended_durations_grow_with_the_slots_a_job_holds() -> None:
    durations = ContendedDurations(10.0, contention=0.25)
    assert [durations.mean("rest", k) for k in (0, 1, 3)] == [10.0, 10.0, 15.0]
    assert durations.sample("fresh", 5, Draws(np.random.default_rng(0))) == 20.0


#: A recurring job: 8 input tasks, then a shuffle of 4, then a second Spark job of 2 tasks.
TRUTH = SignatureProfile(
    signature="etl",
    stages=(StageShape(8, 0.6), StageShape(4, 0.3, (0,)), StageShape(2, 0.1, (0, 1))),
    serial=(12.0, 3.0),
    work=(5.0, 20.0, 0.5, 2.0),
    sizes_gb=(1.0, 3.0),
)
STARTUP = (4.0, 4.0)


def recorded(profile: SignatureProfile, sizes: tuple[float, ...], workers: tuple[int, ...]):
    """Runs of ``profile`` alone at every size and worker count, as a recording makes them."""
    return [
        sim_run_alone(profile.make(s, executor_startup_s=STARTUP[0]), n, executor_startup_s=STARTUP)
        for s in sizes
        for n in workers
    ]


def _as_recorded(record: JobRecord) -> JobRecord:
    """The record as an event log gives it: a later Spark job's first stage has no parent."""
    stages = tuple(replace(s, parents=()) if s.stage_id == 2 else s for s in record.stages)
    return replace(record, stages=stages, signature="etl")


def test_a_signature_fitted_on_its_runs_reproduces_them() -> None:
    runs = [_as_recorded(r) for r in recorded(TRUTH, (1.0, 2.0, 3.0), (1, 2, 3))]
    assert {r.serial_s for r in runs if r.input_bytes == 2e9} == {18.0}  # 12 + 3 s, exactly
    fitted = fit_signature(runs)
    assert fitted.signature == "etl" and fitted.runs == 9
    assert fitted.sizes_gb == (1.0, 3.0)
    assert [(s.tasks, s.parents) for s in fitted.stages] == [(8, ()), (4, (0,)), (2, (0, 1))]
    assert [s.share for s in fitted.stages] == pytest.approx([0.6, 0.3, 0.1], abs=0.02)
    assert fitted.serial == pytest.approx((12.0, 3.0), abs=1e-6)
    for run in runs:
        size, n = run.input_bytes / 1e9, run.executors
        again = sim_run_alone(
            fitted.make(size, executor_startup_s=STARTUP[0]), n, executor_startup_s=STARTUP
        )
        assert again.duration_s == pytest.approx(run.duration_s, rel=0.05), (size, n)
    # A size it was not fitted on, between the recorded ones: as the truth runs it.
    truth = sim_run_alone(TRUTH.make(2.5, executor_startup_s=4.0), 2, executor_startup_s=STARTUP)
    guess = sim_run_alone(fitted.make(2.5, executor_startup_s=4.0), 2, executor_startup_s=STARTUP)
    assert guess.duration_s == pytest.approx(truth.duration_s, rel=0.05)


def test_a_signature_keeps_the_runs_noise_and_its_core_cap() -> None:
    runs = [_as_recorded(r) for r in recorded(TRUTH, (1.0, 2.0, 3.0), (1, 2))]
    slow = replace(runs[0], task_seconds=runs[0].task_seconds * 1.5, end_time=runs[0].end_time + 30)
    capped = [replace(r, max_cores=2) for r in [*runs[1:], slow]]
    fitted = fit_signature(capped)
    assert fitted.max_cores == 2
    assert max(w for _, w in fitted.residuals) > 0.2  # the slow run
    rng = np.random.default_rng(1)
    works = {
        round(sum(s.num_tasks * s.durations.seconds for s in fitted.make(2.0, rng).stages), 6)
        for _ in range(40)
    }
    assert len(works) == len(capped)  # one work per recorded run's residual
    assert all(j.max_cores == 2 for j in [fitted.make(2.0)])
    mixed = [*capped, replace(runs[0], max_cores=None)]
    assert fit_signature(mixed).max_cores is None


def test_fit_signature_rejects_what_it_cannot_fit_on() -> None:
    runs = [_as_recorded(r) for r in recorded(TRUTH, (1.0, 2.0), (1,))]
    with pytest.raises(ValueError, match="several signatures: etl, other"):
        fit_signature([*runs, replace(runs[0], signature="other")])
    with pytest.raises(ValueError, match="no successful run"):
        fit_signature([replace(r, success=False) for r in runs])


def test_signature_jobs_draw_each_signature_by_weight_within_its_sizes() -> None:
    other = replace(TRUTH, signature="report", sizes_gb=(10.0, 20.0), max_cores=3)
    source = SignatureJobs([TRUTH, other], weights=[3.0, 1.0], executor_startup_s=4.0)
    jobs = [source.sample(np.random.default_rng([5, i])) for i in range(400)]
    by = {s: [j for j in jobs if j.signature == s] for s in ("etl", "report")}
    assert 0.68 < len(by["etl"]) / len(jobs) < 0.82
    assert all(1.0 <= j.size_gb <= 3.0 and j.max_cores is None for j in by["etl"])
    assert all(10.0 <= j.size_gb <= 20.0 and j.max_cores == 3 for j in by["report"])
    assert all(j.name == j.key == j.signature for j in jobs)
    first = by["etl"][0]
    assert first.driver_s == pytest.approx(TRUTH.serial_s(first.size_gb) - 4.0)
    assert [s.num_tasks for s in first.stages] == [8, 4, 2]
    again = source.sample(np.random.default_rng([5, 0]))
    assert again == jobs[0]  # seeded
    assert (
        SignatureJobs([TRUTH], sizes_gb=(7.0, 7.0)).sample(np.random.default_rng(0)).size_gb == 7.0
    )
    with pytest.raises(ValueError, match="one non-negative weight"):
        SignatureJobs([TRUTH], weights=[1.0, 2.0])
    with pytest.raises(KeyError, match="have etl, report"):
        source.profile("nope")


def test_a_recorded_run_replays_as_long_as_it_ran() -> None:
    (run,) = recorded(TRUTH, (2.0,), (2,))
    run = replace(_as_recorded(run), max_cores=2, deadline_s=120.0)
    job = job_from_record(run, executor_startup_s=4.0)
    assert (job.name, job.signature, job.size_gb, job.max_cores, job.deadline_s) == (
        "etl",
        "etl",
        2.0,
        2,
        120.0,
    )
    assert job.driver_s == pytest.approx(run.serial_s - 4.0)
    assert [(s.num_tasks, s.parents) for s in job.stages] == [(8, ()), (4, (0,)), (2, (0, 1))]
    again = sim_run_alone(job, 2, executor_startup_s=STARTUP)
    assert again.duration_s == pytest.approx(run.duration_s, rel=0.02)
    assert again.task_seconds == pytest.approx(run.task_seconds, rel=1e-9)
