"""Watches the cluster's event-log directory and hands each newly finished application over once."""

from __future__ import annotations

from pathlib import Path

from sparkscaler.core import JobRecord
from sparkscaler.observe.eventlog import EventLogError, parse_event_log


class EventLogWatcher:
    """Parses each event log once it is finished; unfinished ones are retried when they change."""

    def __init__(self, directory: Path, known_app_ids: set[str] | None = None) -> None:
        self.directory = directory
        self._known = set(known_app_ids or ())
        self._finished: set[str] = set()
        self._tried_at: dict[str, float] = {}
        self.errors: dict[str, str] = {}

    def poll(self) -> list[JobRecord]:
        if not self.directory.is_dir():
            return []
        new: list[JobRecord] = []
        for entry in sorted(self.directory.iterdir()):
            name = entry.name
            if name in self._finished or name.endswith(".inprogress"):
                continue
            mtime = (
                max((p.stat().st_mtime for p in entry.iterdir()), default=0.0)
                if entry.is_dir()
                else entry.stat().st_mtime
            )
            if self._tried_at.get(name) == mtime:
                continue
            self._tried_at[name] = mtime
            try:
                record = parse_event_log(entry)
            except EventLogError as error:
                self.errors[name] = str(error)
                self._finished.add(name)
                continue
            if record is None:
                continue
            self._finished.add(name)
            if record.app_id not in self._known:
                self._known.add(record.app_id)
                new.append(record)
        return new
