"""Watches the cluster's event-log directory and hands each newly finished application over once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from sparkscaler.core import JobRecord
from sparkscaler.observe.eventlog import EventLogError, parse_event_log

log = logging.getLogger(__name__)


class JobHistory(Protocol):
    """Where a loop hears of finished jobs: the event-log directory of a real cluster, or the
    simulator's finished jobs. Each finished job is handed over once."""

    def poll(self) -> list[JobRecord]: ...


class EventLogWatcher:
    """Parses each event log once it is finished; unfinished ones are retried when they change."""

    def __init__(self, directory: Path, known_app_ids: set[str] | None = None) -> None:
        self.directory = directory
        self._known = set(known_app_ids or ())
        self._finished: set[str] = set()
        self._tried_at: dict[str, float] = {}

    def poll(self) -> list[JobRecord]:
        if not self.directory.is_dir():
            return []
        new: list[JobRecord] = []
        for entry in sorted(self.directory.iterdir()):
            name = entry.name
            if name in self._finished or name.endswith(".inprogress") or name.startswith("."):
                continue
            try:
                record = self._parse_if_changed(entry)
            except FileNotFoundError:
                continue  # Spark renamed a part while finishing: seen again next poll
            except (EventLogError, OSError) as error:
                log.warning("skipping event log %s: %s", entry, error)
                self._finished.add(name)
                continue
            if record is None:
                continue
            self._finished.add(name)
            if record.app_id not in self._known:
                self._known.add(record.app_id)
                new.append(record)
        return new

    def _parse_if_changed(self, entry: Path) -> JobRecord | None:
        """Parse an unfinished log again only once it has changed since the last try."""
        files = list(entry.iterdir()) if entry.is_dir() else [entry]
        mtime = max((f.stat().st_mtime for f in files), default=0.0)
        if self._tried_at.get(entry.name) == mtime:
            return None
        record = parse_event_log(entry)
        self._tried_at[entry.name] = mtime  # only once read: a vanished part is retried
        return record
