"""Recorded real runs of the project's four PySpark jobs: what the job knowledge is measured on
and what the simulator's signatures are calibrated from.

Each line of ``src/sparkscaler/data/job_runs.jsonl`` (``benchmarks/record_job_runs.py`` writes
it) is one run of one job (word count, PageRank, k-means or the MLlib forecast) on its own, on a
static local cluster of ``workers`` workers, capped at ``cores_max`` cores: the
:class:`~sparkscaler.core.JobRecord` its event log gives, and the live job context
(:class:`~sparkscaler.core.JobContext`) the cluster's observer saw every poll while it ran. The
context is kept as observed, not rebuilt from the event log, so that a projection made from it
sees what the planner sees on a live cluster, REST API delays and all.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkscaler.core import JobContext, JobRecord, StageProgress

RECORDED_RUNS = Path(__file__).resolve().parents[1] / "data" / "job_runs.jsonl"


@dataclass(frozen=True)
class RecordedRun:
    """One recorded run. ``timeline`` holds the observed job contexts, oldest first (their
    ``elapsed_s`` is the time into the run); ``load_avg`` is the host's 1-minute load average
    when the run ended, to tell a quiet machine's run from a busy one's."""

    kind: str
    scale: float
    workers: int
    cores_per_worker: float
    cores_max: int | None
    load_avg: float
    record: JobRecord
    timeline: tuple[JobContext, ...] = ()

    def context_at(self, t: float) -> JobContext:
        """The job as the observer last saw it at ``t`` seconds into the run; before its first
        observation, the job as just submitted (its size and core cap, nothing done)."""
        seen = [c for c in self.timeline if c.elapsed_s <= t]
        if seen:
            return seen[-1]
        r = self.record
        return JobContext(
            r.app_id, r.name, r.key, 0.0, r.deadline_s, float(r.input_bytes) or None,
            "declared" if r.input_bytes else "unknown", (), 0, r.max_cores,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordedRun:
        values = dict(data)
        values["record"] = JobRecord.from_dict(values["record"])
        values["timeline"] = tuple(_context(c) for c in values.get("timeline", ()))
        return cls(**values)


def _context(data: Mapping[str, Any]) -> JobContext:
    values = dict(data)
    values["stages"] = tuple(StageProgress(**s) for s in values.get("stages", ()))
    return JobContext(**values)


def load_recorded_runs(path: Path = RECORDED_RUNS) -> list[RecordedRun]:
    """Every run of a recordings file, in the order recorded. FileNotFoundError, naming the
    script that records them, when there is none; ValueError naming the line of a bad one."""
    if not path.is_file():
        raise FileNotFoundError(
            f"recorded runs {path} not found: benchmarks/record_job_runs.py records them"
        )
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            runs.append(RecordedRun.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"{path}:{number}: not a recorded run ({error})") from error
    return runs


def append_recorded_runs(path: Path, runs: Sequence[RecordedRun]) -> None:
    """Add runs to a recordings file without ever leaving it half written: the whole file is
    rewritten beside it and moved into place, so an interrupted recording loses no earlier run."""
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    new = "".join(json.dumps(run.to_dict(), separators=(",", ":")) + "\n" for run in runs)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(old + new)
    partial.replace(path)
