"""The embedded SQLite store: every observation, every decision, every finished job.

WAL mode lets the service read while the controller writes; one connection guarded by a lock
is enough for one controller process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sparkscaler.core import GuardedDecision, JobRecord, Observation
from sparkscaler.errors import SparkscalerError

#: Every column of ``observations`` but the id, in order; the first ones are
#: :meth:`Observation.summary`'s keys.
_OBS_COLUMNS: dict[str, str] = {
    "time": "REAL NOT NULL",
    "workers": "INTEGER",
    "decommissioning": "INTEGER",
    "provisioning": "INTEGER",
    "cores_total": "INTEGER",
    "cores_used": "INTEGER",
    "memory_total_mb": "INTEGER",
    "memory_used_mb": "INTEGER",
    "running_apps": "INTEGER",
    "waiting_apps": "INTEGER",
    "running_tasks": "INTEGER",
    "pending_tasks": "INTEGER",
    "backlog_age_s": "REAL",
    "cu": "REAL",
    "cs": "REAL",
    "mt": "REAL",
    "ma": "REAL",
    "bi": "REAL",
    "bo": "REAL",
    "stale": "INTEGER",
    "waiting_drivers": "INTEGER",
    "input_bytes": "REAL",
    "input_read_bytes": "REAL",
    "oldest_job_elapsed_s": "REAL",
    "deadline_s": "REAL",
    "errors": "TEXT",
    "worker_detail": "TEXT",
    "jobs": "TEXT",
}
_DECISION_COLUMNS: dict[str, str] = {
    "time": "REAL NOT NULL",
    "observation_id": "INTEGER REFERENCES observations(id)",
    "policy": "TEXT",
    "model_version": "TEXT",
    "current": "INTEGER",
    "wanted": "INTEGER",
    "target": "INTEGER",
    "action": "TEXT NOT NULL",
    "reason": "TEXT NOT NULL",
    "dry_run": "INTEGER NOT NULL",
    "acted": "INTEGER NOT NULL",
    "error": "TEXT",
    "forecast_tasks": "REAL",
    "predicted": "TEXT",
    "base_target": "INTEGER",
}


def _create(table: str, columns: dict[str, str]) -> str:
    body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, {body})"


_SCHEMA = f"""
{_create("observations", _OBS_COLUMNS)};
CREATE INDEX IF NOT EXISTS observations_time ON observations(time);
{_create("decisions", _DECISION_COLUMNS)};
CREATE INDEX IF NOT EXISTS decisions_time ON decisions(time);
CREATE TABLE IF NOT EXISTS jobs (
    app_id TEXT PRIMARY KEY,
    submit_time REAL, end_time REAL, success INTEGER,
    record TEXT NOT NULL
);
"""


class StoreError(SparkscalerError):
    """The store's file is not a SQLite database, is damaged, or cannot be opened."""


#: SQLite's words for a file that is no database, or a damaged one.
_NOT_A_STORE = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


@contextlib.contextmanager
def _reported(path: Path) -> Iterator[None]:
    """Turn what a bad file does to SQLite into a :class:`StoreError` naming the file and the
    way out. Only the file's problems: a constraint or SQL error is a bug, and stays one."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        if type(error) not in (sqlite3.DatabaseError, sqlite3.OperationalError):
            raise
        if error.sqlite_errorname in _NOT_A_STORE:
            raise StoreError(
                f"{path} is not a sparkscaler store ({error}); move it away or set store: "
                "in the config"
            ) from error
        raise StoreError(
            f"cannot use the store {path} ({error}); set store: in the config to use another file"
        ) from error


class Store:
    def __init__(self, path: Path, *, worker_detail: bool = True) -> None:
        """``worker_detail``: keep each observation's per-worker list (as JSON). Long
        simulations of large clusters turn it off: 100 workers a step add up to gigabytes.

        A file that is not a store raises :class:`StoreError` here, before anything is written.
        """
        self.path = path
        self.worker_detail = worker_detail
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with _reported(path):
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        try:
            with self._locked():
                self._db.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL cannot corrupt the file; it only skips an fsync per commit,
                # which the simulator's many small writes would otherwise pay for.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._migrate("observations", _OBS_COLUMNS)
                self._migrate("decisions", _DECISION_COLUMNS)
        except StoreError:
            self._db.close()
            raise

    def _migrate(self, table: str, columns: dict[str, str]) -> None:
        """Add the columns a store written by an older version lacks (all are nullable)."""
        present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in present:
                kind = kind.replace(" NOT NULL", "")
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The connection, to this thread alone; a damaged file is reported as a
        :class:`StoreError` on any call, since damage deep in a file shows only when that page
        is read."""
        with self._lock, _reported(self.path):
            yield

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add_observation(self, obs: Observation) -> int:
        row: dict[str, Any] = obs.summary()
        row["errors"] = json.dumps(list(obs.errors))
        row["worker_detail"] = (
            json.dumps([dataclasses.asdict(w) for w in obs.cluster.workers])
            if self.worker_detail
            else None
        )
        # The running jobs one by one (signature, size, deadline, stage progress): what a run's
        # per-job report and a planner's after-the-fact check read back; off with the detail.
        row["jobs"] = (
            json.dumps([dataclasses.asdict(j) for j in obs.jobs])
            if self.worker_detail and obs.jobs
            else None
        )
        names = ",".join(row)
        marks = ",".join("?" * len(row))
        with self._locked():
            cur = self._db.execute(
                f"INSERT INTO observations ({names}) VALUES ({marks})", list(row.values())
            )
        return int(cur.lastrowid or 0)

    def add_decision(
        self,
        time: float,
        outcome: GuardedDecision,
        *,
        observation_id: int | None,
        dry_run: bool,
        acted: bool,
        error: str | None = None,
    ) -> int:
        d = outcome.decision
        values = (
            time,
            observation_id,
            d.policy if d else None,
            d.model_version if d else None,
            outcome.current,
            d.target if d else None,
            outcome.target,
            outcome.action,
            outcome.reason,
            int(dry_run),
            int(acted),
            error,
            d.forecast_tasks if d else None,
            json.dumps(dict(d.predicted_s)) if d and d.predicted_s else None,
            d.base_target if d else None,
        )
        with self._locked():
            cur = self._db.execute(
                "INSERT INTO decisions (time, observation_id, policy, model_version, current, "
                "wanted, target, action, reason, dry_run, acted, error, forecast_tasks, predicted, "
                "base_target) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
        return int(cur.lastrowid or 0)

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._locked():
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recent decisions, newest first."""
        return self._rows("SELECT * FROM decisions ORDER BY id DESC LIMIT ?", (limit,))

    def decisions_since(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Every decision after ``since`` (epoch s), oldest first, with the observation it was
        made on (``observation_id``): the actions of the loop's transitions."""
        return self._rows("SELECT * FROM decisions WHERE time > ? ORDER BY id", (since,))

    def observations(self, since: float = 0.0, limit: int = 10_000) -> list[dict[str, Any]]:
        """Observations after ``since`` (epoch s), oldest first."""
        return self._rows(
            "SELECT * FROM observations WHERE time > ? ORDER BY id LIMIT ?", (since, limit)
        )

    def add_jobs(self, records: Iterable[JobRecord]) -> int:
        """Insert or replace job records; returns how many were written."""
        rows = [
            (r.app_id, r.submit_time, r.end_time, int(r.success), json.dumps(dataclasses.asdict(r)))
            for r in records
        ]
        with self._locked():
            self._db.executemany("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?)", rows)
        return len(rows)

    def jobs(self, since: float = 0.0) -> list[JobRecord]:
        rows = self._rows(
            "SELECT record FROM jobs WHERE submit_time >= ? ORDER BY submit_time", (since,)
        )
        return [JobRecord.from_dict(json.loads(r["record"])) for r in rows]

    def job_ids(self) -> set[str]:
        return {r["app_id"] for r in self._rows("SELECT app_id FROM jobs", ())}
