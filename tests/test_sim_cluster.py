"""The discrete-event simulator, on tiny hand-built jobs whose times can be computed by hand.

Every job here uses ``FixedDurations`` without noise, and every cluster a fixed provisioning
delay and no executor start-up unless a test is about them, so that the times are exact.
"""

from __future__ import annotations

import pytest

from sparkscaler.backends.simulated import SimClock, SimJobHistory, SimObserver, SimulatedBackend
from sparkscaler.sim.cluster import PROVISIONING_PRESETS, JobResult, SimCluster
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage

FOREVER = 1e6


def stage(
    sid: int, tasks: int, seconds: float, parents: tuple[int, ...] = (), **durations: float
) -> Stage:
    return Stage(sid, tasks, FixedDurations(seconds, **durations), parents)


def job(jid: int, *stages: Stage, arrival: float = 0.0, **kw: float | None) -> JobSpec:
    return JobSpec(jid, f"job{jid}", arrival, stages, **kw)  # type: ignore[arg-type]


def make_sim(jobs: list[JobSpec], workers: int = 2, **kw: object) -> SimCluster:
    kw.setdefault("provisioning", (60.0, 60.0))
    kw.setdefault("executor_startup_s", (0.0, 0.0))
    return SimCluster(jobs, initial_workers=workers, **kw)  # type: ignore[arg-type]


def finished(sim: SimCluster, until: float = FOREVER) -> dict[int, float]:
    sim.run_until(until)
    return {r.id: r.finished for r in sim.results}


def worker_ids(sim: SimCluster) -> list[str]:
    return sorted(sim.workers)


# ---------------------------------------------------------------------------------- basics
def test_four_tasks_on_two_one_core_workers_take_two_waves() -> None:
    sim = make_sim([job(0, stage(0, 4, 10.0))])
    assert finished(sim) == {0: 20.0}
    assert sim.idle
    assert sim.running_tasks == sim.pending_tasks == 0
    assert sim.lost_task_seconds == 0.0


def test_executor_startup_is_paid_once_per_worker_and_job() -> None:
    sim = make_sim([job(0, stage(0, 4, 10.0))], executor_startup_s=(3.0, 3.0))
    assert finished(sim) == {0: 23.0}


def test_executor_startup_is_paid_again_by_the_next_job() -> None:
    jobs = [job(0, stage(0, 1, 10.0)), job(1, stage(0, 1, 10.0), arrival=20.0)]
    sim = make_sim(jobs, workers=1, executor_startup_s=(3.0, 3.0))
    assert finished(sim) == {0: 13.0, 1: 33.0}


def test_more_cores_per_worker_run_tasks_side_by_side() -> None:
    sim = make_sim([job(0, stage(0, 4, 10.0))], workers=1, cores_per_worker=4)
    assert finished(sim) == {0: 10.0}


def test_child_stage_waits_for_all_its_parents() -> None:
    spec = job(0, stage(0, 1, 10.0), stage(1, 1, 30.0), stage(2, 2, 5.0, parents=(0, 1)))
    sim = make_sim([spec])
    sim.run_until(15.0)
    # stage 0 is done, stage 1 still runs: stage 2 is not runnable, so nothing is pending
    assert (sim.running_tasks, sim.pending_tasks) == (1, 0)
    sim.run_until(29.9)
    assert (sim.running_tasks, sim.pending_tasks) == (1, 0)
    assert finished(sim) == {0: 35.0}


def test_fifo_a_later_job_waits_for_the_pending_tasks_of_an_earlier_one() -> None:
    a = job(0, stage(0, 3, 10.0))
    b = job(1, stage(0, 1, 10.0), arrival=5.0)
    sim = make_sim([a, b], workers=1)
    sim.run_until(6.0)
    assert (sim.running_tasks, sim.pending_tasks) == (1, 3)
    assert finished(sim) == {0: 30.0, 1: 40.0}


def test_fifo_a_later_job_uses_cores_the_earlier_one_cannot_use() -> None:
    """Spark's FIFO: the first job's runnable stages go first, but cores it cannot use now
    (its next stage waits for a parent) go to the next job."""
    a = job(0, stage(0, 1, 10.0), stage(1, 1, 10.0, parents=(0,)))
    b = job(1, stage(0, 1, 5.0), arrival=1.0)
    sim = make_sim([a, b])
    assert finished(sim) == {0: 20.0, 1: 6.0}


def test_fifo_order_follows_arrival_not_the_order_jobs_are_given() -> None:
    late = job(1, stage(0, 1, 10.0), arrival=2.0)
    early = job(0, stage(0, 2, 10.0), arrival=1.0)
    sim = make_sim([late, early], workers=1)
    assert finished(sim) == {0: 21.0, 1: 31.0}


def test_driver_phase_delays_the_first_stage_and_uses_no_worker() -> None:
    spec = job(0, stage(0, 2, 10.0), driver_s=7.0)
    sim = make_sim([spec])
    sim.run_until(6.0)
    assert (sim.running_tasks, sim.pending_tasks) == (0, 0)
    assert finished(sim) == {0: 17.0}


def test_a_driver_only_job_finishes_when_its_driver_does() -> None:
    sim = make_sim([job(0, driver_s=5.0)])
    assert finished(sim, 100.0) == {0: 5.0}
    assert sim.idle


def test_job_result_fields_and_missed_deadline() -> None:
    jobs = [
        job(0, stage(0, 2, 10.0), arrival=5.0, deadline_s=15.0, size_gb=2.0),
        job(1, stage(0, 2, 10.0), arrival=5.0, deadline_s=20.0),
        job(2, stage(0, 2, 10.0), arrival=5.0),
    ]
    sim = make_sim(jobs, workers=6)
    sim.run_until(FOREVER)
    results = {r.id: r for r in sim.results}
    r0 = results[0]
    assert (r0.name, r0.arrival, r0.started, r0.finished) == ("job0", 5.0, 5.0, 15.0)
    assert (r0.deadline_s, r0.size_gb, r0.duration_s) == (15.0, 2.0, 10.0)
    assert not r0.missed  # exactly on the deadline is in time
    assert JobResult(9, "x", 0.0, 0.0, 15.1, 15.0, 0.0).missed
    assert not results[1].missed
    assert not results[2].missed  # no deadline, never missed


# ---------------------------------------------------------------------------------- workers
def test_launch_provisions_for_the_configured_delay_then_takes_tasks() -> None:
    sim = make_sim([job(0, stage(0, 2, 10.0))], workers=0, provisioning=(60.0, 60.0))
    sim.run_until(0.0)
    new = sim.launch(2)
    assert len(new) == 2 and set(new) == set(sim.workers)
    state = sim.cluster_state()
    assert (state.provisioning_workers, state.alive_workers) == (2, 0)
    assert all(w.state == "PROVISIONING" for w in state.workers)
    assert [w.pending_s for w in state.workers] == [0.0, 0.0]
    sim.run_until(59.99)
    state = sim.cluster_state()
    assert state.provisioning_workers == 2
    assert [w.pending_s for w in state.workers] == pytest.approx([59.99, 59.99])  # since asked
    assert (sim.running_tasks, sim.pending_tasks) == (0, 2)
    sim.run_until(60.0)
    state = sim.cluster_state()
    assert (state.provisioning_workers, state.alive_workers) == (0, 2)
    assert [w.pending_s for w in state.workers] == [0.0, 0.0]  # only while PROVISIONING
    assert (sim.running_tasks, sim.pending_tasks) == (2, 0)
    assert finished(sim) == {0: 70.0}


def test_provisioning_presets_and_random_delays_stay_in_their_range() -> None:
    assert PROVISIONING_PRESETS["vm"] == (60.0, 120.0)
    sim = SimCluster([], initial_workers=0, provisioning="vm", seed=1)
    sim.launch(200)
    ready = [w.ready_at for w in sim.workers.values()]
    assert min(ready) >= 60.0 and max(ready) <= 120.0
    assert max(ready) - min(ready) > 50.0  # really spread, not a constant
    local = SimCluster([], initial_workers=0, provisioning="local", seed=1)
    local.launch(50)
    low, high = PROVISIONING_PRESETS["local"]
    assert all(low <= w.ready_at <= high for w in local.workers.values())


def test_the_kth_worker_launched_meets_the_seeds_kth_delay_whatever_ran_before() -> None:
    """Provisioning delays have a stream of their own: two runs on one seed whose tasks drew
    different numbers of durations, and which launched at other times and in other batches,
    meet the same delays in launch order, the ones peek_delays announced beforehand."""
    noisy = stage(0, 40, 5.0, noise=0.3)
    busy = SimCluster([job(1, noisy)], initial_workers=2, provisioning="vm", seed=7)
    idle = SimCluster([], initial_workers=0, provisioning="vm", seed=7)
    announced = idle.peek_delays(5)
    assert idle.peek_delays(2) == announced[:2]  # peeking draws nothing more
    busy.run_until(300.0)  # its tasks drew their durations first
    for count in (2, 3):
        busy.launch(count)
        busy.run_until(busy.now + 50.0)
    idle.launch(5)
    for sim in (busy, idle):  # the workers in launch order, without the initial ones
        delays = [w.ready_at - w.launched_at for w in sim.workers.values()]
        assert [d for d in delays if d > 0] == pytest.approx(announced)
    other = SimCluster([], initial_workers=0, provisioning="vm", seed=8)
    assert other.peek_delays(5) != pytest.approx(announced)


def test_a_worker_launched_with_no_delay_takes_the_backlog() -> None:
    sim = make_sim([job(0, stage(0, 1, 10.0))], workers=0, provisioning=(0.0, 0.0))
    sim.run_until(1.0)
    sim.launch(1)
    assert finished(sim, 100.0) == {0: 11.0}


def test_pending_running_and_backlog_since_over_time() -> None:
    sim = make_sim([job(0, stage(0, 3, 10.0), arrival=5.0)], workers=1)
    timeline = []
    for t in (1.0, 6.0, 16.0, 26.0, 36.0):
        sim.run_until(t)
        timeline.append((t, sim.pending_tasks, sim.running_tasks, sim.backlog_since))
    assert timeline == [
        (1.0, 0, 0, None),
        (6.0, 2, 1, 5.0),
        (16.0, 1, 1, 5.0),  # the backlog is as old as its first pending task
        (26.0, 0, 1, None),
        (36.0, 0, 0, None),
    ]


def test_graceful_decommission_of_a_busy_worker_drains_it_without_losing_work() -> None:
    sim = make_sim([job(0, stage(0, 5, 10.0))])
    sim.run_until(5.0)
    leaving, staying = worker_ids(sim)
    sim.decommission([leaving], timeout=1000.0)
    state = sim.cluster_state()
    assert (state.alive_workers, state.decommissioning_workers) == (1, 1)
    assert sim.workers[leaving].state == "DECOMMISSIONED"
    sim.run_until(10.0)  # its task ends: it leaves instead of taking the next one
    assert leaving not in sim.workers
    assert sim.gone[-1].id == leaving and sim.gone[-1].gone_at == 10.0
    assert sim.workers[staying].busy == 1
    # 3 tasks left for the one worker: 10-20, 20-30, 30-40
    assert finished(sim) == {0: 40.0}
    assert sim.lost_task_seconds == 0.0


def test_decommission_timeout_shorter_than_the_task_reruns_it_elsewhere() -> None:
    sim = make_sim([job(0, stage(0, 2, 100.0))])
    sim.run_until(10.0)
    leaving, _ = worker_ids(sim)
    sim.decommission([leaving], timeout=20.0)
    sim.run_until(29.9)
    assert leaving in sim.workers
    sim.run_until(30.0)
    assert leaving not in sim.workers
    assert sim.lost_task_seconds == 30.0  # ran 0-30, then killed
    assert (sim.running_tasks, sim.pending_tasks) == (1, 1)
    # without the decommission both finish at 100; now the lost task re-runs 100-200
    assert finished(sim) == {0: 200.0}


def test_decommission_of_a_provisioning_or_idle_worker_removes_it_at_once() -> None:
    sim = make_sim([], workers=2)
    sim.run_until(10.0)
    [booting] = sim.launch(1)
    idle = worker_ids(sim)[0]
    sim.run_until(20.0)
    sim.decommission([booting, idle], timeout=1000.0)
    assert booting not in sim.workers and idle not in sim.workers
    assert {w.id: w.gone_at for w in sim.gone} == {booting: 20.0, idle: 20.0}
    assert sim.cluster_state().alive_workers == 1
    sim.run_until(200.0)  # the cancelled worker never comes up
    assert len(sim.workers) == 1


def _map_reduce() -> JobSpec:
    return job(0, stage(0, 2, 10.0), stage(1, 4, 10.0, parents=(0,)))


def test_map_reduce_reference_time() -> None:
    assert finished(make_sim([_map_reduce()])) == {0: 30.0}


def test_abrupt_loss_recomputes_the_map_output_a_running_reduce_needs() -> None:
    """Maps 0-10 on both workers; reduces start at 10. At 15 one worker dies: its running
    reduce (5 s of work) and its map output are lost. The survivor ends its reduce at 20,
    re-runs the lost map 20-30, then the three remaining reduces 30-60."""
    sim = make_sim([_map_reduce()])
    sim.run_until(15.0)
    victim = sim.jobs[0].stages[0].output_on[0]
    sim.fail_worker(victim)
    assert victim not in sim.workers
    assert (sim.running_tasks, sim.pending_tasks) == (1, 1)  # the map; the reduces must wait
    assert finished(sim) == {0: 60.0}
    assert sim.lost_task_seconds == 5.0


def test_graceful_decommission_keeps_the_map_output() -> None:
    """The same moment, gracefully: the worker finishes its reduce at 20 and leaves with its
    shuffle output migrated; the survivor runs the two remaining reduces 20-40."""
    sim = make_sim([_map_reduce()])
    sim.run_until(15.0)
    victim = sim.jobs[0].stages[0].output_on[0]
    sim.decommission([victim], timeout=1000.0)
    assert finished(sim) == {0: 40.0}
    assert sim.lost_task_seconds == 0.0


def test_abrupt_loss_of_an_idle_worker_after_the_job_needs_no_recompute() -> None:
    """Map output whose consumers are all done is not needed any more."""
    spec = job(0, stage(0, 2, 10.0), stage(1, 1, 10.0, parents=(0,)), stage(2, 1, 10.0, (1,)))
    sim = make_sim([spec])
    sim.run_until(25.0)  # stage 2 runs; stage 0's output is no longer needed
    holders = set(sim.jobs[0].stages[0].output_on.values())
    idle = next(w for w in holders if not sim.workers[w].busy)
    sim.fail_worker(idle)
    assert finished(sim) == {0: 30.0}


def test_worker_seconds_bill_from_launch_request_until_gone() -> None:
    sim = make_sim([], workers=1)
    sim.run_until(100.0)
    [extra] = sim.launch(1)
    sim.run_until(300.0)  # ALIVE at 160, idle since
    sim.decommission([extra], timeout=60.0)
    sim.run_until(400.0)
    assert sim.worker_seconds() == pytest.approx(400.0 + 200.0)
    [cancelled] = sim.launch(1)
    sim.run_until(430.0)
    sim.decommission([cancelled], timeout=60.0)  # still provisioning: billed 30 s
    sim.run_until(500.0)
    assert sim.worker_seconds() == pytest.approx(500.0 + 200.0 + 30.0)


def test_worker_seconds_of_a_draining_worker_run_until_it_leaves() -> None:
    sim = make_sim([job(0, stage(0, 2, 50.0))])
    sim.run_until(10.0)
    sim.decommission([worker_ids(sim)[0]], timeout=1000.0)
    sim.run_until(100.0)  # it leaves at 50
    assert sim.worker_seconds() == pytest.approx(100.0 + 50.0)


# ---------------------------------------------------------------------------------- waves
def test_fresh_first_and_rest_waves_on_one_core() -> None:
    """One one-core worker: stage 0 (3 tasks) = fresh 2*10+1, rest 10, rest 10 = 41;
    stage 1 (2 tasks, child) = first 2*10, rest 10 = 30; the job ends at 71."""
    d = {"first_wave_factor": 2.0, "fresh_extra_s": 1.0}
    spec = job(0, stage(0, 3, 10.0, **d), stage(1, 2, 10.0, parents=(0,), **d))
    sim = make_sim([spec], workers=1)
    sim.run_until(21.0)
    assert sim.jobs[0].stages[0].done == 1
    assert finished(sim) == {0: 71.0}


def test_fresh_first_and_rest_waves_on_two_cores() -> None:
    """One two-core worker: stage 0 (4 tasks) = two fresh tasks side by side (21), then two
    rest tasks (10): 31; stage 1 (2 tasks) = two first-wave tasks side by side (20): 51."""
    d = {"first_wave_factor": 2.0, "fresh_extra_s": 1.0}
    spec = job(0, stage(0, 4, 10.0, **d), stage(1, 2, 10.0, parents=(0,), **d))
    sim = make_sim([spec], workers=1, cores_per_worker=2)
    assert finished(sim) == {0: 51.0}


# ---------------------------------------------------------------------------------- features
def test_features_are_zero_on_an_idle_cluster() -> None:
    sim = make_sim([], workers=3)
    sim.run_until(50.0)
    assert sim.features().as_tuple() == (0.0,) * 6
    assert make_sim([], workers=0).features().as_tuple() == (0.0,) * 6


def test_features_follow_the_busy_slots_and_stage_kinds() -> None:
    """4 one-core workers of 1024 MB, a 1 GB job: map (2 tasks, writes shuffle) then reduce
    (1 task, reads it)."""
    spec = job(0, stage(0, 2, 10.0), stage(1, 1, 10.0, parents=(0,)), size_gb=1.0)
    sim = make_sim([spec], workers=4)
    sim.run_until(5.0)
    f = sim.features()
    assert f.cu == pytest.approx(90.0 * 2 / 4)
    assert f.cs == pytest.approx(6.0 * 2 / 4)
    assert f.mt == pytest.approx(100.0 * 512 / 4096)  # half the input cached
    assert f.ma == pytest.approx(100.0 * 0.3 * 1024 * 2 / 4096)
    assert (f.bi, f.bo) == (0.0, pytest.approx(50.0 * 2 / 4))
    sim.run_until(15.0)
    f = sim.features()
    assert f.cu == pytest.approx(90.0 * 1 / 4)
    assert (f.bi, f.bo) == (pytest.approx(50.0 * 1 / 4), 0.0)
    sim.run_until(25.0)
    assert sim.features().as_tuple() == (0.0,) * 6


def test_features_stay_percentages_while_busy_workers_drain() -> None:
    sim = make_sim([job(0, stage(0, 3, 100.0))], workers=3)
    sim.run_until(1.0)
    sim.decommission(worker_ids(sim)[:2], timeout=1000.0)
    sim.run_until(2.0)
    assert all(0.0 <= v <= 100.0 for v in sim.features().as_tuple()), sim.features()


# ---------------------------------------------------------------------------------- backend
def test_sim_observer_reports_the_same_fields_as_the_real_cluster() -> None:
    spec = job(0, stage(0, 3, 10.0), deadline_s=100.0, size_gb=2.0)
    sim = make_sim([spec], workers=1)
    observer = SimObserver(sim, default_deadline_s=500.0)
    backend = SimulatedBackend(sim)
    sim.run_until(0.0)
    backend.launch(1)  # provisioning 60 s
    SimClock(sim).sleep(5.0)
    obs = observer.observe()
    assert obs.time == sim.start_epoch + 5.0
    assert (obs.cluster.alive_workers, obs.cluster.provisioning_workers, obs.workers) == (1, 1, 2)
    assert (obs.running_tasks, obs.pending_tasks, obs.backlog_age_s) == (1, 2, 5.0)
    assert obs.deadline_s == 100.0
    assert obs.oldest_job_elapsed_s == 5.0
    assert obs.input_bytes == 2e9
    assert obs.features == sim.features()
    assert not obs.stale
    assert backend.scale_outs == 1 and len(backend.workers()) == 2

    SimClock(sim).sleep(100.0)  # job done at 30
    obs = observer.observe()
    assert (obs.pending_tasks, obs.running_tasks, obs.backlog_age_s) == (0, 0, 0.0)
    assert obs.deadline_s == 500.0  # no job: the configured default
    assert obs.input_bytes is None and obs.oldest_job_elapsed_s is None
    idle = {w.id: w.idle_s for w in obs.cluster.workers}
    assert sorted(idle.values()) == [45.0, 75.0]  # idle since 60 (new one) and since 30
    backend.decommission([w.id for w in obs.cluster.workers], 10.0)
    assert backend.scale_ins == 1 and backend.workers() == []


def test_sim_observer_reports_each_running_job_oldest_first() -> None:
    """Two jobs: a map-reduce one (driver 4 s, 3 map tasks of 10 s, 1 reduce of 5 s) with its
    own deadline and signature, and a later one with neither, on one worker."""
    first = job(
        0,
        stage(0, 3, 10.0),
        stage(1, 1, 5.0, (0,)),
        deadline_s=100.0,
        size_gb=3.0,
        driver_s=4.0,
        signature="etl",
    )
    second = job(1, stage(0, 2, 1.0), arrival=1.0, max_cores=1)
    sim = make_sim([first, second], workers=1)
    observer = SimObserver(sim, default_deadline_s=500.0)

    sim.run_until(2.0)  # the first job's driver phase: no stage can run yet
    a, b = observer.observe().jobs
    assert (a.app_id, a.name, a.signature, b.app_id, b.signature) == (
        "sim-job-0",
        "job0",
        "etl",
        "sim-job-1",
        "job1",  # no signature of its own: its name
    )
    assert (a.elapsed_s, a.deadline_s, b.elapsed_s, b.deadline_s) == (2.0, 100.0, 1.0, 500.0)
    assert (a.input_bytes, a.input_source) == (3e9, "declared")
    assert (b.input_bytes, b.input_source, b.max_cores, a.max_cores) == (None, "unknown", 1, None)
    assert [s.status for s in a.stages] == ["PENDING", "PENDING"]
    assert b.stages[0].status == "ACTIVE" and b.cores == 1  # the later job runs meanwhile

    sim.run_until(25.0)  # the second job ended at 3; maps 4-14, 14-24, the third from 24
    (a,) = observer.observe().jobs
    assert [(s.status, s.tasks, s.done, s.running) for s in a.stages] == [
        ("ACTIVE", 3, 2, 1),
        ("PENDING", 1, 0, 0),
    ]
    assert a.stages[0].task_seconds == 20.0  # the two finished tasks' run time
    assert a.stages[0].input_bytes == 2e9 and a.stages[1].input_bytes == 0.0
    assert (a.tasks_done, a.tasks_left, a.cores) == (2, 2, 1)

    sim.run_until(36.0)  # maps done at 34, the reduce runs
    (a,) = observer.observe().jobs
    assert [(s.status, s.done, s.task_seconds) for s in a.stages] == [
        ("COMPLETE", 3, 30.0),
        ("ACTIVE", 0, 0.0),
    ]
    sim.run_until(40.0)
    assert observer.observe().jobs == ()


def test_max_cores_leaves_the_other_cores_to_later_jobs() -> None:
    """A job capped at 1 core runs one task at a time on 2 workers; the later job takes the
    other core at once instead of waiting behind it."""
    capped = job(0, stage(0, 4, 10.0), max_cores=1)
    later = job(1, stage(0, 1, 10.0), arrival=1.0)
    assert finished(make_sim([capped, later])) == {0: 40.0, 1: 11.0}
    uncapped = job(0, stage(0, 4, 10.0))
    assert finished(make_sim([uncapped, later])) == {0: 20.0, 1: 30.0}


def test_finished_jobs_come_back_once_as_their_event_logs_would_give_them() -> None:
    """Driver 4 s, executor start-up 2 s, 3 map tasks of 10 s on one worker, then a reduce of
    5 s: finished at 41, of which 6 s without a task running."""
    spec = job(
        0,
        stage(0, 3, 10.0),
        stage(1, 1, 5.0, (0,)),
        deadline_s=100.0,
        size_gb=3.0,
        driver_s=4.0,
        signature="etl",
    )
    sim = make_sim([spec], workers=1, executor_startup_s=(2.0, 2.0))
    history = SimJobHistory(sim)
    sim.run_until(30.0)
    assert history.poll() == []
    sim.run_until(FOREVER)
    (record,) = history.poll()
    assert history.poll() == []  # handed over once
    assert (record.app_id, record.name, record.signature, record.key) == (
        "sim-job-0",
        "job0",
        "etl",
        "etl",
    )
    assert record.submit_time == sim.start_epoch and record.duration_s == 41.0
    assert (record.tasks, record.failed_tasks, record.task_seconds) == (4, 0, 35.0)
    assert (record.executors, record.workers, record.max_cores) == (1, 1, None)
    assert (record.input_bytes, record.first_stage_input_bytes) == (3_000_000_000,) * 2
    assert (record.success, record.deadline_s, record.serial_s) == (True, 100.0, 6.0)
    assert [
        (s.stage_id, s.tasks, s.task_seconds, s.duration_s, s.parents) for s in record.stages
    ] == [
        (0, 3, 30.0, 32.0, ()),  # released at 4 (the driver's end), complete at 36
        (1, 1, 5.0, 5.0, (0,)),
    ]
    assert [s.input_bytes for s in record.stages] == [3e9, 0.0]


def test_a_job_waiting_for_cores_counts_the_wait_as_serial_and_its_executors() -> None:
    """The second job waits 10 s for the first's tasks, then runs on both workers."""
    jobs = [job(0, stage(0, 2, 10.0)), job(1, stage(0, 4, 10.0), arrival=0.0)]
    sim = make_sim(jobs, workers=2)
    history = SimJobHistory(sim)
    sim.run_until(FOREVER)
    records = {r.app_id: r for r in history.poll()}
    later = records["sim-job-1"]
    assert (later.duration_s, later.serial_s, later.executors) == (30.0, 10.0, 2)
    assert records["sim-job-0"].serial_s == 0.0
    assert later.signature == "" and later.key == "job1"  # no signature: its name


def test_history_hands_over_only_the_first_runs_of_each_signature() -> None:
    jobs = [
        job(i, stage(0, 1, 1.0), arrival=10.0 * i, signature="a" if i % 3 else "b")
        for i in range(9)
    ]
    sim = make_sim(jobs, workers=1)
    history = SimJobHistory(sim, runs_per_signature=2)
    sim.run_until(FOREVER)
    got = [(r.app_id, r.signature) for r in history.poll()]
    assert got == [("sim-job-0", "b"), ("sim-job-1", "a"), ("sim-job-2", "a"), ("sim-job-3", "b")]


def test_history_hands_finished_jobs_over_together_at_most_once_an_interval() -> None:
    jobs = [job(i, stage(0, 1, 10.0), arrival=100.0 * i) for i in range(8)]  # done at 10, 110…
    sim = make_sim(jobs, workers=1)
    history = SimJobHistory(sim, every_s=300.0)
    handed = []
    for t in range(0, 800, 50):
        sim.run_until(float(t))
        handed.append((t, [r.app_id for r in history.poll()]))
    got = [(t, ids) for t, ids in handed if ids]
    assert got == [
        (50, ["sim-job-0"]),
        (350, ["sim-job-1", "sim-job-2", "sim-job-3"]),
        (650, ["sim-job-4", "sim-job-5", "sim-job-6"]),
    ]


def test_lost_tasks_count_as_failed_and_recomputed_time_as_task_seconds() -> None:
    sim = make_sim([job(0, stage(0, 2, 10.0))], workers=2)
    history = SimJobHistory(sim)
    sim.run_until(5.0)
    sim.fail_worker(worker_ids(sim)[0])  # its task re-runs on the other worker from 10
    sim.run_until(FOREVER)
    (record,) = history.poll()
    assert (record.failed_tasks, record.task_seconds, record.duration_s) == (1, 20.0, 20.0)


def test_sim_clock_sleep_runs_the_simulation_forward() -> None:
    sim = make_sim([job(0, stage(0, 1, 10.0), arrival=3.0)], workers=1)
    clock = SimClock(sim)
    assert clock.now() == sim.start_epoch
    clock.sleep(2.0)
    assert sim.now == 2.0 and not sim.results
    clock.sleep(-5.0)  # never backwards
    assert sim.now == 2.0
    clock.sleep(11.0)
    assert clock.now() == sim.start_epoch + 13.0
    assert [r.finished for r in sim.results] == [13.0]


# ---------------------------------------------------------------------------------- seeds
def _noisy_run(seed: int) -> tuple[list[JobResult], float, float]:
    noisy = FixedDurations(5.0, noise=0.3, first_wave_factor=1.5, fresh_extra_s=1.0)
    jobs = [
        JobSpec(
            i,
            f"j{i}",
            20.0 * i,
            (Stage(0, 12, noisy), Stage(1, 4, noisy, (0,))),
        )
        for i in range(6)
    ]
    sim = SimCluster(jobs, initial_workers=2, provisioning="vm", seed=seed)
    sim.run_until(10.0)
    sim.launch(3)
    sim.run_until(100.0)
    sim.fail_worker(sorted(sim.workers)[0])
    sim.run_until(FOREVER)
    return sim.results, sim.lost_task_seconds, sim.worker_seconds()


def test_same_seed_gives_identical_results_and_another_seed_does_not() -> None:
    first = _noisy_run(3)
    assert len(first[0]) == 6
    assert _noisy_run(3) == first
    assert _noisy_run(4) != first


def test_workers_sharing_one_host_slow_down_past_its_cores() -> None:
    """Four one-core workers on a two-core host: the first two tasks run at full speed, the
    third and fourth start while the host is busy and take 1.5 and 2 times longer."""
    jobs = [job(0, stage(0, 4, 10.0))]
    assert finished(make_sim(jobs, workers=4)) == {0: 10.0}
    shared = make_sim(jobs, workers=4, host_cores=2)
    sim_end = finished(shared)
    assert sim_end == {0: 20.0}
    # A driver phase counts too: started beside two running tasks it takes 1.5 times longer.
    later = job(1, stage(0, 1, 1.0), arrival=1.0, driver_s=4.0)
    sim = make_sim([job(0, stage(0, 2, 10.0)), later], workers=3, host_cores=2)
    assert finished(sim)[1] == pytest.approx(1.0 + 6.0 + 1.0 * 1.5)


def test_a_job_is_known_only_once_its_rest_api_answers() -> None:
    """With a 10 s API delay, a job that arrived 5 s ago is an app (its cores, its age) and an
    error, nothing more; the older job's load, size and deadline are all there."""
    first = job(0, stage(0, 4, 100.0), size_gb=1.0, deadline_s=500.0)
    second = job(1, stage(0, 6, 100.0), arrival=15.0, size_gb=2.0, deadline_s=200.0)
    sim = make_sim([first, second], workers=3)
    observer = SimObserver(sim, default_deadline_s=900.0, api_delay_s=10.0)
    sim.run_until(5.0)
    obs = observer.observe()
    assert obs.errors == ("no REST API found for application sim-job-0",)
    assert (obs.jobs, obs.running_tasks, obs.pending_tasks, obs.backlog_age_s) == ((), 0, 0, 0.0)
    assert (obs.input_bytes, obs.deadline_s) == (None, 900.0)
    assert [a.id for a in obs.cluster.active_apps] == ["sim-job-0"]
    assert obs.oldest_job_elapsed_s == 5.0

    sim.run_until(20.0)  # the first job is known, the second arrived 5 s ago
    obs = observer.observe()
    full = SimObserver(sim, default_deadline_s=900.0).observe()
    assert [j.app_id for j in obs.jobs] == ["sim-job-0"] and len(full.jobs) == 2
    assert obs.errors == ("no REST API found for application sim-job-1",)
    assert (obs.running_tasks, obs.pending_tasks) == (3, 1)  # the first's: 3 run, 1 waits
    assert (full.running_tasks, full.pending_tasks) == (3, 7)
    assert (obs.input_bytes, obs.deadline_s, full.deadline_s) == (1e9, 500.0, 200.0)
    assert len(obs.cluster.active_apps) == 2

    sim.run_until(30.0)
    assert observer.observe() == SimObserver(sim, default_deadline_s=900.0).observe()
