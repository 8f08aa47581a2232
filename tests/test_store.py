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
    JobContext,
    JobRecord,
    Observation,
    StageProgress,
    StageSummary,
    WorkerInfo,
)
from sparkscaler.errors import SparkscalerError
from sparkscaler.rl.store_learning import observation_from_row
from sparkscaler.store import Store, StoreError

T0 = 1_700_000_000.0


WORKERS = (
    WorkerInfo("w1", "127.0.0.2", 1, "ALIVE", 2, 2, 1024, 512, idle_s=0.0, running_tasks=3),
    WorkerInfo("w2", "127.0.0.3", 2, "ALIVE", 4, 1, 2048, 0, idle_s=12.5, running_tasks=0),
    WorkerInfo("w3", "127.0.0.4", 3, "DECOMMISSIONED", 8, 8, 4096, 4096),
)

#: WORKERS as the store keeps them, written out by hand.
WORKER_DETAIL = [
    {
        "id": "w1",
        "host": "127.0.0.2",
        "port": 1,
        "state": "ALIVE",
        "cores": 2,
        "cores_used": 2,
        "memory_mb": 1024,
        "memory_used_mb": 512,
        "idle_s": 0.0,
        "running_tasks": 3,
        "pending_s": 0.0,
    },
    {
        "id": "w2",
        "host": "127.0.0.3",
        "port": 2,
        "state": "ALIVE",
        "cores": 4,
        "cores_used": 1,
        "memory_mb": 2048,
        "memory_used_mb": 0,
        "idle_s": 12.5,
        "running_tasks": 0,
        "pending_s": 0.0,
    },
    {
        "id": "w3",
        "host": "127.0.0.4",
        "port": 3,
        "state": "DECOMMISSIONED",
        "cores": 8,
        "cores_used": 8,
        "memory_mb": 4096,
        "memory_used_mb": 4096,
        "idle_s": 0.0,
        "running_tasks": None,
        "pending_s": 0.0,
    },
]


def _observation(time: float, *, stale: bool = False) -> Observation:
    cluster = ClusterState(
        workers=WORKERS,
        active_apps=(AppInfo("app-1", "etl", 3, T0 - 50),),
        waiting_apps=2,
        waiting_drivers=1,
    )
    return Observation(
        time=time,
        cluster=cluster,
        running_tasks=3,
        pending_tasks=7,
        backlog_age_s=4.5,
        features=Features(cu=10.5, cs=2.25, mt=33.0, ma=50.0, bi=0.125, bo=1.5),
        input_bytes=2048.0,
        input_read_bytes=512.0,
        oldest_job_elapsed_s=50.0,
        deadline_s=300.0,
        stale=stale,
        errors=("no REST API found for application app-2", "host: psutil failed") if stale else (),
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
    assert set(row) == set(summary) | {"id", "errors", "worker_detail", "jobs"}
    for key, value in summary.items():
        assert row[key] == value, key
    # Spot-check summary by hand: only the two ALIVE workers count.
    assert (row["workers"], row["decommissioning"]) == (2, 1)
    assert (row["cores_total"], row["cores_used"]) == (6, 3)
    assert (row["memory_total_mb"], row["memory_used_mb"]) == (3072, 512)
    assert (row["running_apps"], row["waiting_apps"], row["waiting_drivers"]) == (1, 2, 1)
    assert (row["input_bytes"], row["input_read_bytes"]) == (2048.0, 512.0)
    assert (row["oldest_job_elapsed_s"], row["deadline_s"]) == (50.0, 300.0)
    assert row["stale"] == 0
    assert json.loads(row["errors"]) == []
    assert json.loads(row["worker_detail"]) == WORKER_DETAIL


def test_worker_detail_stored_before_pending_s_still_loads(store: Store) -> None:
    """Stores written before ``WorkerInfo.pending_s`` existed keep rows without it: learning from
    them must still work, reading 0 (the worker's wait is unknown) rather than failing."""
    store.add_observation(_observation(T0))
    (row,) = store.observations()
    old = [
        {k: v for k, v in w.items() if k != "pending_s"} for w in json.loads(row["worker_detail"])
    ]
    loaded = observation_from_row({**row, "worker_detail": json.dumps(old)})
    assert loaded.cluster.workers == WORKERS
    assert all(w.pending_s == 0.0 for w in loaded.cluster.workers)


def test_summary_has_one_key_per_stored_number() -> None:
    assert _observation(T0).summary() == {
        "time": T0,
        "workers": 2,
        "decommissioning": 1,
        "provisioning": 0,
        "cores_total": 6,
        "cores_used": 3,
        "memory_total_mb": 3072,
        "memory_used_mb": 512,
        "running_apps": 1,
        "waiting_apps": 2,
        "running_tasks": 3,
        "pending_tasks": 7,
        "backlog_age_s": 4.5,
        "cu": 10.5,
        "cs": 2.25,
        "mt": 33.0,
        "ma": 50.0,
        "bi": 0.125,
        "bo": 1.5,
        "stale": False,
        "waiting_drivers": 1,
        "input_bytes": 2048.0,
        "input_read_bytes": 512.0,
        "oldest_job_elapsed_s": 50.0,
        "deadline_s": 300.0,
    }


def test_unknown_optional_numbers_are_stored_as_null(store: Store) -> None:
    store.add_observation(Observation(time=T0))
    (row,) = store.observations()
    assert (row["input_bytes"], row["oldest_job_elapsed_s"], row["deadline_s"]) == (
        None,
        None,
        None,
    )
    assert (row["workers"], row["waiting_drivers"], row["stale"]) == (0, 0, 0)
    assert json.loads(row["errors"]) == []
    assert json.loads(row["worker_detail"]) == []


def test_worker_detail_can_be_turned_off(tmp_path: Path) -> None:
    with Store(tmp_path / "lean.db", worker_detail=False) as store:
        store.add_observation(_observation(T0))
        (row,) = store.observations()
    assert row["worker_detail"] is None
    assert (row["workers"], row["cores_used"]) == (2, 3)  # the summary is still there


def test_stale_observation_keeps_its_errors(store: Store) -> None:
    store.add_observation(_observation(T0, stale=True))
    (row,) = store.observations()
    assert row["stale"] == 1
    assert json.loads(row["errors"]) == [
        "no REST API found for application app-2",
        "host: psutil failed",
    ]


def test_observations_since_is_strictly_after_and_oldest_first(store: Store) -> None:
    for dt in (0, 10, 20, 30):
        store.add_observation(_observation(T0 + dt))
    assert [r["time"] for r in store.observations()] == [T0, T0 + 10, T0 + 20, T0 + 30]
    assert [r["time"] for r in store.observations(since=T0 + 10)] == [T0 + 20, T0 + 30]
    assert [r["time"] for r in store.observations(since=T0 + 10.5, limit=1)] == [T0 + 20]
    assert store.observations(since=T0 + 30) == []


def test_a_forecasters_expected_demand_is_stored_with_its_decision(store: Store) -> None:
    forecast = Decision(6, "predictive", "forecast 11.5 tasks", "1", forecast_tasks=11.5)
    store.add_decision(
        T0,
        GuardedDecision(forecast, current=2, target=6, action="scale_out", reason="ok"),
        observation_id=None,
        dry_run=False,
        acted=True,
    )
    assert store.decisions(1)[0]["forecast_tasks"] == 11.5


def test_a_planners_predictions_and_the_running_jobs_are_stored(store: Store) -> None:
    job = JobContext(
        "app-1",
        "01-wordcount",
        "wordcount",
        elapsed_s=12.5,
        deadline_s=90.0,
        input_bytes=2e9,
        input_source="declared",
        stages=(StageProgress(0, 8, done=3, running=2, task_seconds=9.5),),
        cores=2,
        max_cores=2,
    )
    obs_id = store.add_observation(dataclasses.replace(_observation(T0), jobs=(job,)))
    plan = Decision(2, "planner", "2 meet T", "1", predicted_s={"app-1": 61.5})
    store.add_decision(
        T0,
        GuardedDecision(plan, current=1, target=2, action="scale_out", reason="ok"),
        observation_id=obs_id,
        dry_run=False,
        acted=True,
    )
    assert json.loads(store.decisions(1)[0]["predicted"]) == {"app-1": 61.5}
    (row,) = store.observations()
    (stored,) = json.loads(row["jobs"])
    assert stored == json.loads(json.dumps(dataclasses.asdict(job)))
    assert stored["stages"][0]["done"] == 3


def test_job_records_keep_their_signature_and_stages(store: Store) -> None:
    stages = (StageSummary(0, 8, 20.0, 1e9, 6.0), StageSummary(1, 4, 5.0, 0.0, 2.0, (0,)))
    record = _job("app-9", T0, signature="wordcount", stages=stages, serial_s=14.0, max_cores=2)
    store.add_jobs([record])
    (back,) = store.jobs()
    assert back == record
    assert back.key == "wordcount" and back.stages[1].parents == (0,)


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
        "forecast_tasks": None,
        "predicted": None,
        "base_target": None,
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
    # The transitions' view: oldest first, strictly after ``since``, with the observation.
    since = store.decisions_since(T0)
    assert [(r["time"], r["observation_id"]) for r in since] == [(T0 + 5, None), (T0 + 10, obs_id)]
    assert [r["time"] for r in store.decisions_since()] == [T0, T0 + 5, T0 + 10]


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


#: The tables as an older sparkscaler wrote them: no waiting_drivers ... worker_detail columns
#: in observations, no model_version or error in decisions.
_OLD_SCHEMA = """
CREATE TABLE observations (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, workers INTEGER, decommissioning INTEGER,
    provisioning INTEGER, cores_total INTEGER, cores_used INTEGER, memory_total_mb INTEGER,
    memory_used_mb INTEGER, running_apps INTEGER, waiting_apps INTEGER, running_tasks INTEGER,
    pending_tasks INTEGER, backlog_age_s REAL, cu REAL, cs REAL, mt REAL, ma REAL, bi REAL,
    bo REAL, stale INTEGER
);
CREATE INDEX observations_time ON observations(time);
CREATE TABLE decisions (
    id INTEGER PRIMARY KEY, time REAL NOT NULL,
    observation_id INTEGER REFERENCES observations(id), policy TEXT, current INTEGER,
    wanted INTEGER, target INTEGER, action TEXT NOT NULL, reason TEXT NOT NULL,
    dry_run INTEGER NOT NULL, acted INTEGER NOT NULL
);
CREATE TABLE jobs (
    app_id TEXT PRIMARY KEY, submit_time REAL, end_time REAL, success INTEGER,
    record TEXT NOT NULL
);
INSERT INTO observations VALUES (1, 1600000000.0, 3, 0, 0, 6, 2, 3072, 1024, 1, 0, 2, 5, 1.5,
                                 10.0, 1.0, 20.0, 30.0, 0.5, 0.25, 0);
INSERT INTO decisions VALUES (1, 1600000000.0, 1, 'dra', 3, 4, 4, 'scale_out', 'old', 0, 1);
"""


def test_a_store_of_an_older_schema_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    try:
        old.executescript(_OLD_SCHEMA)
        old.commit()
    finally:
        old.close()

    with Store(path) as store:
        (old_row,) = store.observations()
        assert set(old_row) == set(_observation(T0).summary()) | {
            "id",
            "errors",
            "worker_detail",
            "jobs",
        }
        assert (old_row["id"], old_row["time"], old_row["workers"], old_row["bo"]) == (
            1,
            1_600_000_000.0,
            3,
            0.25,
        )
        for added in (
            "waiting_drivers",
            "input_bytes",
            "oldest_job_elapsed_s",
            "deadline_s",
            "errors",
            "worker_detail",
            "jobs",
        ):
            assert old_row[added] is None, added

        obs_id = store.add_observation(_observation(T0))
        store.add_decision(
            T0,
            GuardedDecision(Decision(2, "dra", "idle", "7"), 3, 2, "scale_in", "idle 60 s"),
            observation_id=obs_id,
            dry_run=False,
            acted=False,
            error="decommission failed",
        )
        old_row2, new_row = store.observations()
        assert old_row2 == old_row  # untouched
        assert new_row["id"] == obs_id == 2
        assert (new_row["waiting_drivers"], new_row["deadline_s"]) == (1, 300.0)
        assert json.loads(new_row["worker_detail"]) == WORKER_DETAIL
        assert json.loads(new_row["errors"]) == []

        new_dec, old_dec = store.decisions()
        assert {k: old_dec[k] for k in old_dec} == {
            "id": 1,
            "time": 1_600_000_000.0,
            "observation_id": 1,
            "policy": "dra",
            "model_version": None,
            "current": 3,
            "wanted": 4,
            "target": 4,
            "action": "scale_out",
            "reason": "old",
            "dry_run": 0,
            "acted": 1,
            "error": None,
            "forecast_tasks": None,
            "predicted": None,
            "base_target": None,  # added by the migration
        }
        assert (new_dec["model_version"], new_dec["error"], new_dec["observation_id"]) == (
            "7",
            "decommission failed",
            2,
        )

    # Opening the migrated file again changes nothing.
    with Store(path) as store:
        assert [r["id"] for r in store.observations()] == [1, 2]
        assert [r["id"] for r in store.decisions()] == [2, 1]


# ------------------------------------------------------------------------------- bad files
def _filled(path: Path, observations: int = 2000) -> bytes:
    """A real store of several pages, as bytes."""
    with Store(path) as store:
        for i in range(observations):
            store.add_observation(_observation(T0 + i))
    return path.read_bytes()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x89garbage\xff" * 500, "file is not a database"),
        (b'{"workers": {}}\n', "file is not a database"),
        ("header", "database disk image is malformed"),
        ("truncated", "database disk image is malformed"),
    ],
)
def test_a_file_that_is_not_a_store_is_one_error_naming_it(
    tmp_path: Path, content: bytes | str, problem: str
) -> None:
    path = tmp_path / "sparkscaler.db"
    if isinstance(content, str):
        data = _filled(tmp_path / "good.db")
        content = data[:100] if content == "header" else data[: len(data) // 3]
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        Store(path).decisions()
    assert str(info.value) == (
        f"{path} is not a sparkscaler store ({problem}); move it away or set store: in the config"
    )
    assert isinstance(info.value, SparkscalerError)
    assert path.read_bytes() == content  # nothing written into someone else's file


def test_damage_seen_only_when_read_is_a_store_error(tmp_path: Path) -> None:
    """Opening reads the schema's pages only; the observations are read later."""
    path = tmp_path / "sparkscaler.db"
    data = _filled(path)
    middle = len(data) // 2 // 4096 * 4096  # a page of observations
    path.write_bytes(data[:middle] + b"\xff" * 4096 + data[middle + 4096 :])
    with Store(path) as store, pytest.raises(StoreError, match="not a sparkscaler store"):
        store.observations()


def test_a_path_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "sparkscaler.db"
    path.mkdir()
    with pytest.raises(StoreError, match=f"cannot use the store {path} .*set store: in the config"):
        Store(path)


def test_a_bug_in_sql_is_not_reported_as_a_bad_file(store: Store) -> None:
    store.add_jobs([_job("app-1", T0)])
    with pytest.raises(sqlite3.IntegrityError), store._locked():
        store._db.execute("INSERT INTO jobs VALUES ('app-1', 0, 0, 1, NULL)")
