"""The SQLite store on a real file: observations, decisions and jobs go in and come back out."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from sparkscaler.core import (
    AppInfo,
    ClusterState,
    Decision,
    Features,
    GuardedDecision,
    JobRecord,
    Observation,
    WorkerInfo,
)
from sparkscaler.store import Store

T0 = 1_700_000_000.0


def _observation(time: float, *, stale: bool = False) -> Observation:
    workers = (
        WorkerInfo("w1", "127.0.0.2", 1, "ALIVE", 2, 2, 1024, 512),
        WorkerInfo("w2", "127.0.0.3", 2, "ALIVE", 4, 1, 2048, 0),
        WorkerInfo("w3", "127.0.0.4", 3, "DECOMMISSIONED", 8, 8, 4096, 4096),
    )
    cluster = ClusterState(
        workers=workers,
        active_apps=(AppInfo("app-1", "etl", 3, T0 - 50),),
        waiting_apps=2,
    )
    return Observation(
        time=time,
        cluster=cluster,
        running_tasks=3,
        pending_tasks=7,
        backlog_age_s=4.5,
        features=Features(cu=10.5, cs=2.25, mt=33.0, ma=50.0, bi=0.125, bo=1.5),
        stale=stale,
        errors=("no REST API found for application app-2",) if stale else (),
    )


def _job(app_id: str, submit: float, **changes: object) -> JobRecord:
    job = JobRecord(
        app_id=app_id,
        name=f"job {app_id}",
        submit_time=submit,
        end_time=submit + 42.5,
        tasks=200,
        failed_tasks=1,
        task_seconds=310.25,
        executors=3,
        workers=3,
        input_bytes=123_456_789,
        spark_jobs=4,
        success=True,
        deadline_s=60.0,
    )
    return dataclasses.replace(job, **changes)


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "sub" / "store.db") as s:
        yield s


def test_observation_round_trip(store: Store) -> None:
    obs = _observation(T0)
    obs_id = store.add_observation(obs)
    assert obs_id >= 1
    (row,) = store.observations()
    summary = obs.summary()
    assert row["id"] == obs_id
    assert set(row) == set(summary) | {"id", "errors"}
    for key, value in summary.items():
        assert row[key] == value, key
    # Spot-check summary by hand: only the two ALIVE workers count.
    assert (row["workers"], row["decommissioning"]) == (2, 1)
    assert (row["cores_total"], row["cores_used"]) == (6, 3)
    assert (row["memory_total_mb"], row["memory_used_mb"]) == (3072, 512)
    assert (row["running_apps"], row["waiting_apps"]) == (1, 2)
    assert row["stale"] == 0
    assert json.loads(row["errors"]) == []


def test_stale_observation_keeps_its_errors(store: Store) -> None:
    store.add_observation(_observation(T0, stale=True))
    (row,) = store.observations()
    assert row["stale"] == 1
    assert json.loads(row["errors"]) == ["no REST API found for application app-2"]


def test_observations_since_is_strictly_after_and_oldest_first(store: Store) -> None:
    for dt in (0, 10, 20, 30):
        store.add_observation(_observation(T0 + dt))
    assert [r["time"] for r in store.observations()] == [T0, T0 + 10, T0 + 20, T0 + 30]
    assert [r["time"] for r in store.observations(since=T0 + 10)] == [T0 + 20, T0 + 30]
    assert [r["time"] for r in store.observations(since=T0 + 10.5, limit=1)] == [T0 + 20]
    assert store.observations(since=T0 + 30) == []


def test_decisions_newest_first_with_the_guarded_fields(store: Store) -> None:
    obs_id = store.add_observation(_observation(T0))
    d1 = GuardedDecision(
        Decision(5, "dra", "want 5", "1"), current=2, target=4, action="scale_out", reason="bounded"
    )
    d2 = GuardedDecision(None, current=4, target=4, action="hold", reason="metrics stale (x)")
    d3 = GuardedDecision(
        Decision(3, "dra", "idle", "1"), current=4, target=3, action="scale_in", reason="idle"
    )
    store.add_decision(T0, d1, observation_id=obs_id, dry_run=False, acted=True)
    store.add_decision(T0 + 5, d2, observation_id=None, dry_run=True, acted=False)
    store.add_decision(T0 + 10, d3, observation_id=obs_id, dry_run=False, acted=False, error="boom")

    rows = store.decisions()
    assert [r["time"] for r in rows] == [T0 + 10, T0 + 5, T0]
    newest, middle, oldest = rows
    assert {k: oldest[k] for k in oldest if k != "id"} == {
        "time": T0,
        "observation_id": obs_id,
        "policy": "dra",
        "model_version": "1",
        "current": 2,
        "wanted": 5,
        "target": 4,
        "action": "scale_out",
        "reason": "bounded",
        "dry_run": 0,
        "acted": 1,
        "error": None,
    }
    assert (middle["policy"], middle["wanted"], middle["observation_id"]) == (None, None, None)
    assert (middle["action"], middle["reason"], middle["dry_run"]) == (
        "hold",
        "metrics stale (x)",
        1,
    )
    assert (newest["action"], newest["target"], newest["error"], newest["acted"]) == (
        "scale_in",
        3,
        "boom",
        0,
    )
    assert [r["time"] for r in store.decisions(limit=2)] == [T0 + 10, T0 + 5]


def test_jobs_upsert_and_since(store: Store) -> None:
    a = _job("app-a", T0)
    b = _job("app-b", T0 + 100, success=False, deadline_s=None)
    assert store.add_jobs([a, b]) == 2
    a2 = _job("app-a", T0, end_time=T0 + 99.0, tasks=7)
    assert store.add_jobs(iter([a2])) == 1

    assert store.job_ids() == {"app-a", "app-b"}
    assert store.jobs() == [a2, b]  # one row per app, the latest wins, oldest submit first
    assert store.jobs(since=T0 + 100) == [b]
    assert store.jobs(since=T0 + 100.5) == []
    assert store.jobs()[0].duration_s == 99.0
    assert store.add_jobs([]) == 0


def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Store(path) as store:
        store.add_observation(_observation(T0))
        store.add_decision(
            T0,
            GuardedDecision(None, 1, 1, "none", "fine"),
            observation_id=None,
            dry_run=False,
            acted=False,
        )
        store.add_jobs([_job("app-a", T0)])
    with Store(path) as store:
        assert len(store.observations()) == 1
        assert store.decisions()[0]["reason"] == "fine"
        assert store.jobs() == [_job("app-a", T0)]
        store.add_observation(_observation(T0 + 1))
        assert len(store.observations()) == 2


def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with Store(path) as store:
        store.add_observation(_observation(T0))
        # A second connection sees WAL mode (it is persistent in the file) and the data.
        other = sqlite3.connect(path)
        try:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert other.execute("SELECT COUNT(*) FROM observations").fetchone()[0] == 1
        finally:
            other.close()
