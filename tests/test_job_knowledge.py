"""Per-signature job knowledge: what 1, 3 and 5 runs teach, hand-checked where possible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparkscaler.core import JobContext, JobRecord, StageProgress, StageSummary
from sparkscaler.models.job_knowledge import JobKnowledge, run_slots, useful_workers
from sparkscaler.models.runtime_model import RuntimeModel


def _record(
    i: int,
    size_gb: float,
    workers: int,
    seconds: float,
    *,
    signature: str = "wordcount",
    serial_s: float = 0.0,
    stages: tuple[tuple[int, float], ...] = (),
    max_cores: int | None = None,
    success: bool = True,
) -> JobRecord:
    """A finished run; ``stages`` as (tasks, task-seconds) pairs."""
    summaries = tuple(StageSummary(j, t, w) for j, (t, w) in enumerate(stages))
    return JobRecord(
        app_id=f"app-{signature}-{i}", name=signature, submit_time=1000.0 * i,
        end_time=1000.0 * i + seconds, tasks=sum(t for t, _ in stages) or 10, failed_tasks=0,
        task_seconds=sum(w for _, w in stages), executors=workers, workers=workers,
        input_bytes=int(size_gb * 1e9), spark_jobs=1, success=success, signature=signature,
        stages=summaries, serial_s=serial_s, max_cores=max_cores,
    )  # fmt: skip


def _job(
    signature: str = "wordcount",
    size_gb: float | None = 2.0,
    elapsed_s: float = 0.0,
    stages: tuple[StageProgress, ...] = (),
    cores: int = 0,
    max_cores: int | None = None,
) -> JobContext:
    return JobContext(
        app_id="app-now", name=signature, signature=signature, elapsed_s=elapsed_s,
        deadline_s=300.0, input_bytes=None if size_gb is None else size_gb * 1e9,
        input_source="declared" if size_gb else "unknown", stages=stages, cores=cores,
        max_cores=max_cores,
    )  # fmt: skip


#: True run time of the synthetic job: 10 s serial, then 100 task-s per GB in one 16-task stage
#: and 20 task-s per GB in a 4-task stage, each spread over min(slots, tasks) slots.
def _work_time(size_gb: float, slots: int) -> float:
    return 10.0 + 100.0 * size_gb / min(slots, 16) + 20.0 * size_gb / min(slots, 4)


def _work_run(i: int, size_gb: float, workers: int, noise: float = 0.0) -> JobRecord:
    seconds = _work_time(size_gb, workers) * (1.0 + noise)
    return _record(
        i, size_gb, workers, seconds, serial_s=10.0,
        stages=((16, 100.0 * size_gb), (4, 20.0 * size_gb)),
    )  # fmt: skip


def test_a_signature_never_seen_has_no_knowledge_without_a_prior() -> None:
    knowledge = JobKnowledge().fit([_work_run(0, 1.0, 1)])
    assert knowledge.project(_job("kmeans"), 2, 1.0) is None
    assert knowledge.project(_job("wordcount"), 2, 1.0) is not None


def test_the_prior_stands_for_a_signature_never_seen() -> None:
    # t(s, n) = 10 + 100 s/n: 2 GB on 4 workers = 60 s; margin = the prior's q0.9 residual.
    prior = RuntimeModel().fit([1, 2, 1, 2, 4], [1, 1, 2, 2, 4], [110, 210, 60, 110, 110])
    knowledge = JobKnowledge(prior=prior).fit([])
    projection = knowledge.project(_job("kmeans"), 4, 1.0)
    assert projection is not None and projection.source == "kmeans: prior model"
    assert projection.whole_s == pytest.approx(60.0, rel=1e-6)
    assert projection.margin == pytest.approx(prior.margin(0.9))


def test_one_run_is_scaled_by_size_with_its_serial_part_fixed() -> None:
    # 1 GB on 1 worker: 10 s serial + 100 task-s on one slot = 110 s, efficiency 1.
    run = _record(0, 1.0, 1, 110.0, serial_s=10.0, stages=((10, 100.0),))
    knowledge = JobKnowledge().fit([run])
    # 2 GB: 200 task-s over min(n, 10) slots, plus 10 s.
    for workers, expected in ((1, 210.0), (2, 110.0), (4, 60.0), (20, 30.0)):
        projection = knowledge.project(_job(size_gb=2.0), workers, 1.0)
        assert projection is not None
        assert projection.whole_s == pytest.approx(expected)
    assert projection.source == "wordcount: 1 run, scaled by size"
    assert projection.margin == pytest.approx(0.2)  # the default: no residuals yet
    sig = knowledge.signatures_["wordcount"]
    assert sig.runs == 1 and sig.mape is None and sig.serial_s == 10.0


def test_three_runs_of_varying_sizes_predict_a_new_size_and_carry_their_own_margin() -> None:
    runs = [_work_run(0, 1.0, 1, 0.04), _work_run(1, 2.0, 2, -0.03), _work_run(2, 1.5, 4, 0.02)]
    sig = JobKnowledge().fit(runs).signatures_["wordcount"]
    assert sig.runs == 3 and len(sig.errors) == 3
    assert sig.mape is not None and sig.mape < 8.0
    # the margin is the q0.9 of the leave-one-out errors, not the default 0.2
    assert sig.margin == pytest.approx(max(0.0, float(np.quantile(sig.errors, 0.9))))
    for size, workers in ((3.0, 2), (0.5, 8), (2.5, 3)):
        predicted = sig.whole_s(size, workers, 1.0)
        assert predicted == pytest.approx(_work_time(size, workers), rel=0.06)


def test_five_runs_on_several_worker_counts_get_their_own_ernest_model() -> None:
    # A job whose coordination cost grows with the workers (+8 s per worker), which no
    # run's work can show: Ernest captures it, and wins the leave-one-out comparison.
    def seconds(s: float, n: int) -> float:
        return 20.0 + 100.0 * s / n + 8.0 * n

    grid = [(1.0, 1), (2.0, 2), (1.0, 4), (3.0, 3), (2.0, 6), (1.5, 8)]
    runs = [
        _record(i, s, n, seconds(s, n), serial_s=20.0 + 8.0 * n, stages=((64, 100.0 * s),))
        for i, (s, n) in enumerate(grid)
    ]
    three = JobKnowledge().fit(runs[:3]).signatures_["wordcount"]
    assert three.estimator != "ernest"  # fewer than min_runs = 4 for each fold
    sig = JobKnowledge().fit(runs).signatures_["wordcount"]
    assert sig.estimator == "ernest" and sig.source == "Ernest on 6 runs"
    assert sig.whole_s(2.0, 10, 1.0) == pytest.approx(seconds(2.0, 10), rel=0.02)
    assert sig.mape is not None and sig.mape < 2.0


def test_failed_runs_are_not_learned_and_each_signature_learns_alone() -> None:
    runs = [
        _work_run(0, 1.0, 1),
        _record(1, 1.0, 1, 5.0, success=False),
        _record(2, 1.0, 1, 500.0, signature="kmeans", serial_s=100.0, stages=((4, 400.0),)),
    ]
    knowledge = JobKnowledge().fit(runs)
    assert knowledge.signatures_["wordcount"].runs == 1
    wordcount = knowledge.project(_job("wordcount", 1.0), 1, 1.0)
    kmeans = knowledge.project(_job("kmeans", 1.0), 1, 1.0)
    assert wordcount is not None and kmeans is not None
    assert wordcount.whole_s == pytest.approx(_work_time(1.0, 1))
    assert kmeans.whole_s == pytest.approx(500.0)


def test_a_job_capped_by_spark_cores_max_gains_nothing_from_more_workers() -> None:
    knowledge = JobKnowledge().fit([_work_run(0, 1.0, 1)])
    capped = [knowledge.project(_job(max_cores=2), n, 1.0) for n in (1, 2, 4, 8)]
    times = [p.whole_s for p in capped if p is not None]
    assert times[0] > times[1] == times[2] == times[3]
    # ceil(spark.cores.max / cores per worker): 2 one-core workers, or half of a 4-core one
    assert useful_workers(2, 1.0, 10) == 2 and useful_workers(2, 4.0, 10) == 1
    assert useful_workers(None, 1.0, 10) == 10 and useful_workers(64, 1.0, 10) == 10
    # a run capped at 2 cores had 2 slots, however many executors it listed
    assert run_slots(_record(0, 1.0, 4, 100.0, max_cores=2), 1.0) == 2
    assert run_slots(_record(0, 1.0, 3, 100.0), 2.0) == 6


def test_a_job_that_does_not_say_its_size_is_taken_as_its_runs_typical_size() -> None:
    knowledge = JobKnowledge().fit([_work_run(0, 1.0, 1), _work_run(1, 3.0, 1)])
    unknown = knowledge.project(_job(size_gb=None), 2, 1.0)
    typical = knowledge.project(_job(size_gb=2.0), 2, 1.0)
    assert unknown is not None and typical is not None
    assert unknown.whole_s == pytest.approx(typical.whole_s)


# ------------------------------------------------------------------------ progress
def _stage(stage_id: int, tasks: int, done: int, task_s: float, running: int = 0) -> StageProgress:
    status = "COMPLETE" if done >= tasks else "ACTIVE"
    return StageProgress(stage_id, tasks, done, running, done * task_s, status=status)


def test_the_time_left_follows_the_live_stages_and_the_stages_still_to_come() -> None:
    knowledge = JobKnowledge().fit([_work_run(i, 2.0, 2) for i in range(3)])
    # 2 GB on 2 workers: stage 0 has 16 tasks of 12.5 s, stage 1 4 tasks of 10 s.
    fresh = knowledge.project(_job(), 2, 1.0)
    assert fresh is not None and fresh.progress == 0.0
    assert fresh.left_s == pytest.approx(_work_time(2.0, 2))
    # Half of stage 0 done at the history's pace, after its serial 10 s: what is left is
    # 8 tasks of stage 0 and stage 1 (not listed yet: from the history) = 100 + 20 s.
    half = _job(elapsed_s=60.0, stages=(_stage(0, 16, 8, 12.5),), cores=2)
    projection = knowledge.project(half, 2, 1.0)
    assert projection is not None
    assert projection.progress == pytest.approx(100.0 / 240.0)
    assert projection.left_s == pytest.approx(0.5 * 200.0 / 2 + 40.0 / 2)
    assert projection.serial_left_s == 0.0
    # The same point in a run whose tasks take 1.5 times as long: more time left, and the
    # more of its tasks are done, the closer to its own pace (prior_tasks = 4).
    slow = [
        knowledge.project(
            _job(elapsed_s=10.0 + done * 18.75 / 2, stages=(_stage(0, 16, done, 18.75),), cores=2),
            2,
            1.0,
        )
        for done in (2, 8)
    ]
    assert all(p is not None for p in slow)
    own = [(16 - d) * 18.75 / 2 + 20.0 for d in (2, 8)]
    hist = [(16 - d) * 12.5 / 2 + 20.0 for d in (2, 8)]
    gaps = [(p.left_s - h) / (o - h) for p, o, h in zip(slow, own, hist, strict=True)]  # type: ignore[union-attr]
    assert 0 < gaps[0] < gaps[1] < 1
    assert gaps[1] == pytest.approx(8 / 12)


def test_the_margin_narrows_as_the_run_shows_its_own_pace() -> None:
    # One stage of 16 tasks of 12.5 s on 2 GB; runs 20 % slow, 10 % fast, 10 % slow.
    knowledge = JobKnowledge().fit(
        [
            _record(i, 2.0, 2, (10.0 + 100.0) * f, serial_s=10.0, stages=((16, 200.0),))
            for i, f in enumerate((1.2, 0.9, 1.1))
        ]
    )
    margin = knowledge.signatures_["wordcount"].margin
    assert margin > 0
    margins = []
    for done in (0, 4, 12, 15):
        job = _job(elapsed_s=10.0 + done * 6, stages=(_stage(0, 16, done, 12.5),), cores=2)
        projection = knowledge.project(job, 2, 1.0)
        assert projection is not None
        margins.append(projection.margin)
    assert margins[0] == pytest.approx(margin)
    assert margins == sorted(margins, reverse=True) and margins[-1] < margin / 2


def test_a_waiting_job_spends_its_serial_part_first() -> None:
    knowledge = JobKnowledge().fit([_work_run(0, 2.0, 2)])
    waited = knowledge.project(_job(elapsed_s=4.0), 2, 1.0)
    assert waited is not None
    assert waited.serial_left_s == pytest.approx(6.0)
    assert waited.left_s == pytest.approx(_work_time(2.0, 2) - 4.0)
    assert math.isclose(waited.whole_s, _work_time(2.0, 2))


def test_the_last_stages_use_no_more_slots_than_they_have_tasks() -> None:
    knowledge = JobKnowledge().fit([_work_run(i, 2.0, 4) for i in range(3)])
    # Stage 0 (16 tasks) done, stage 1 (4 tasks of 10 s) not begun: 40 task-s on at most 4.
    job = _job(
        elapsed_s=60.0,
        stages=(_stage(0, 16, 16, 12.5), StageProgress(1, 4, 0, 0, status="ACTIVE")),
        cores=4,
    )
    projections = knowledge.projections(job, [1, 2, 4, 8], 1.0)
    assert projections is not None
    assert [round(p.left_s, 6) for p in projections] == [40.0, 20.0, 10.0, 10.0]
    assert projections[0].progress == pytest.approx(200.0 / 240.0)


def test_work_that_does_not_grow_with_size_is_told_apart_from_work_that_does() -> None:
    """A small job's tasks spend much of their time on what its data does not change (the
    recorded PySpark jobs at scale 0.05 and 0.2 take the same time): runs at two sizes give the
    work's fixed part, so a run of another size is not predicted by scaling all of it."""

    def run(i: int, size_gb: float) -> JobRecord:
        work = 40.0 + 10.0 * size_gb  # task-seconds, in one 8-task stage, on 1 worker
        return _record(i, size_gb, 1, 5.0 + work, serial_s=5.0, stages=((8, work),))

    knowledge = JobKnowledge(min_runs=99).fit([run(0, 0.1), run(1, 1.0), run(2, 0.1)])
    k = knowledge.signatures_["wordcount"]
    assert k.estimator == "work"
    assert k.work_fixed_s == pytest.approx(40.0, rel=1e-6)
    assert k.work_per_gb == pytest.approx(10.0, rel=1e-6)
    projection = knowledge.project(_job(size_gb=4.0), 1, 1.0)
    assert projection is not None
    assert projection.whole_s == pytest.approx(5.0 + 40.0 + 40.0, rel=0.02)
    # One size only: nothing tells the parts apart, all of it scales with size.
    alone = JobKnowledge().fit([run(0, 0.1), run(1, 0.1)]).signatures_["wordcount"]
    assert alone.work_fixed_s == 0.0
    assert alone.work_per_gb == pytest.approx(410.0)
