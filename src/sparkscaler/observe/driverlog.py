"""Spark driver INFO logs -> the memory features of Thonglek et al. (OLA 2019), and run time.

Source: the authors' data and R script (GitHub ``Kundjanasith/logs_week4``; see
``../shared/data/README.md``): driver logs ``{N}_workernodes/<size>/<run>.txt``, per-run summaries
``worker{N}.csv`` (columns ``SIZE, TIME, USED_B, FREE_B, USED_M, FREE_M``) and ``modelZ.R``.

What the features are (read from ``modelZ.R`` and checked against the data):

- ``modelZ.R`` fits ``lm(SIZE ~ USED_B + USED_M)`` after dividing ``USED_B`` and ``USED_M`` by
  1000, and that fit gives exactly the published ``size = -0.03031 - 0.38603*avg_mem_action +
  0.56362*avg_mem_transformation``. So **avg_mem_action is USED_B/1000 and
  avg_mem_transformation is USED_M/1000**, both in MB.
- ``USED_M`` is the mean ``estimated size`` over *all* the driver's ``MemoryStore: Block ...
  stored as values|bytes in memory (estimated size X, free Y)`` lines, in KB; ``FREE_M`` the mean
  of their ``free``. These are the blocks the driver itself builds (broadcast variables and their
  pieces), which the authors call memory used by transformations.
- ``USED_B`` is the mean ``size`` over *all* ``BlockManagerInfo: Added|Removed ... in memory ...
  (size: X, free: Y)`` lines, in KB: the master's record of blocks landing in, or leaving, every
  block manager (executors' broadcast pieces, ``taskresult_*`` blocks carrying action results back,
  cached RDD blocks), which the authors call memory used by actions. ``FREE_B`` is the mean of
  their ``free`` with one quirk of the authors' parser: ``free`` values printed in GB count as 0.
  We report ``free`` with GB converted (:attr:`DriverLogFeatures.avg_free_action`); neither
  ``free`` feature enters the regression.
- Units step by 1000 (1 MB = 1000 KB), as in the authors' parser, although Spark prints binary
  units; this is what makes the published coefficients apply.

With these definitions the log of run ``NNN.txt`` reproduces row ``NNN`` of its ``SIZE`` block in
``worker{N}.csv`` (``USED_B``, ``FREE_B``, ``USED_M``, ``FREE_M``) to 1e-6 relative in 373 of the
375 runs. The two exceptions: in ``3_workernodes/3.0`` the CSV's ``USED_M`` is exactly 1000 KB
higher than its logs in all 25 runs (the only group with a ``MemoryStore`` block of 100 MB or
more, so presumably a parsing slip on three-digit sizes); and ``1_workernodes/2.0/005.txt`` was
overwritten while an older driver was still writing to it (NUL padding, then that driver's last
lines), so its ``USED_B``/``FREE_B`` differ by 0.1 %.

Run time is the span from the earliest to the latest timestamp (``yy/MM/dd HH:mm:ss``, second
resolution), not first line to last line: in the overwritten file above the last lines are the
older driver's and are earlier than the new run's end. The CSV's ``TIME`` (millisecond
resolution) exceeds this span by 0-2 s when both describe the same run.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: MB per unit as the authors converted them (steps of 1000; see the module docstring).
_MB_PER_UNIT: dict[str, float] = {
    "B": 1e-6,
    "KB": 1e-3,
    "MB": 1.0,
    "GB": 1e3,
    "TB": 1e6,
    "PB": 1e9,
    "EB": 1e12,
}

_QTY = r"([\d.]+) ([KMGTPE]?B)"
_MEMORY_STORE = re.compile(
    rf"MemoryStore: Block \S+ stored as (?:values|bytes) in memory "
    rf"\(estimated size {_QTY}, free {_QTY}\)"
)
_BLOCK_MANAGER = re.compile(
    rf"BlockManagerInfo: (?:Added \S+ in memory on \S+|Removed \S+ on \S+ in memory) "
    rf"\(size: {_QTY}, free: {_QTY}\)"
)
#: Spark's default log4j pattern starts ``yy/MM/dd HH:mm:ss``; ISO dates are accepted too.
_TIMESTAMP = re.compile(
    r"^(?:\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"
    r"|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,6})?)\b"
)
_EXECUTOR_ADDED = re.compile(r"Executor added: \S+ on ")
_APP_ID = re.compile(r"Connected to Spark cluster with app ID (\S+)")
_FAILED = re.compile(r'DAGScheduler: Job \d+ failed|Exception in thread "main"')
_RUN_DIR = re.compile(r"^(\d+)_workernodes$")


class DriverLogError(ValueError):
    """A file that is not a Spark driver log (no timestamped line at all)."""


@dataclass(frozen=True)
class DriverLogFeatures:
    """One driver log, summarised as the paper's features. Memory in MB (1 MB = 1000 KB).

    An average over no lines is NaN (the log had no such line), never a made-up zero.
    """

    start: dt.datetime
    end: dt.datetime
    duration_s: float
    #: mean ``estimated size`` of the driver's MemoryStore blocks (= worker*.csv USED_M / 1000)
    avg_mem_transformation: float
    #: mean ``size`` of BlockManagerInfo Added/Removed-in-memory lines (= USED_B / 1000)
    avg_mem_action: float
    #: mean ``free`` of the MemoryStore lines (= FREE_M / 1000)
    avg_free_transformation: float
    #: mean ``free`` of the BlockManagerInfo lines, GB values converted (the CSV counts them as 0)
    avg_free_action: float
    memory_store_blocks: int
    block_manager_events: int
    #: ``Executor added`` lines; note "N_workernodes" logs show N + 1 executors
    executors: int
    failed: bool
    app_id: str | None = None

    def csv_row(self) -> dict[str, float]:
        """The run as a row of the authors' ``worker{N}.csv`` (KB), except ``FREE_B``."""
        return {
            "TIME": self.duration_s,
            "USED_B": self.avg_mem_action * 1000.0,
            "USED_M": self.avg_mem_transformation * 1000.0,
            "FREE_M": self.avg_free_transformation * 1000.0,
        }


def _mb(value: str, unit: str) -> float:
    return float(value) * _MB_PER_UNIT[unit]


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _to_datetime(stamp: str) -> dt.datetime | None:
    """A timestamp string matched by ``_TIMESTAMP``, or None if it is no valid date."""
    try:
        if "/" in stamp:
            return dt.datetime.strptime(stamp, "%y/%m/%d %H:%M:%S")
        return dt.datetime.fromisoformat(stamp.replace(",", ".").replace("T", " "))
    except ValueError:  # e.g. month 13: not a timestamp after all
        return None


def parse_driver_log(lines: Iterable[str]) -> DriverLogFeatures:
    """Features of a driver log given as lines (see :func:`driver_log_features`)."""
    # Fixed-width timestamps sort as text, so only the extremes are converted (a log has
    # thousands of lines); the two styles are kept apart in case a log mixes them.
    extremes: dict[bool, tuple[str, str]] = {}
    store_size: list[float] = []
    store_free: list[float] = []
    bm_size: list[float] = []
    bm_free: list[float] = []
    executors = 0
    failed = False
    app_id: str | None = None
    for raw in lines:
        # A file overwritten while another process still wrote to it holds NUL padding.
        line = raw.replace("\x00", "") if "\x00" in raw else raw
        if stamp_match := _TIMESTAMP.match(line):
            stamp = stamp_match[0]
            iso = "-" in stamp
            if iso:
                stamp = stamp.replace("T", " ").replace(",", ".")
            low, high = extremes.get(iso, (stamp, stamp))
            extremes[iso] = (min(low, stamp), max(high, stamp))
        if "MemoryStore: Block" in line and (m := _MEMORY_STORE.search(line)):
            store_size.append(_mb(m[1], m[2]))
            store_free.append(_mb(m[3], m[4]))
        elif "BlockManagerInfo" in line and (m := _BLOCK_MANAGER.search(line)):
            bm_size.append(_mb(m[1], m[2]))
            bm_free.append(_mb(m[3], m[4]))
        elif "Executor added" in line and _EXECUTOR_ADDED.search(line):
            executors += 1
        elif app_id is None and "app ID" in line and (m := _APP_ID.search(line)):
            app_id = m[1]
        if not failed and ("failed" in line or "Exception" in line) and _FAILED.search(line):
            failed = True
    stamps = [t for pair in extremes.values() for t in map(_to_datetime, pair) if t is not None]
    if not stamps:
        raise DriverLogError("no timestamped line: not a Spark driver log")
    first, last = min(stamps), max(stamps)
    return DriverLogFeatures(
        start=first,
        end=last,
        duration_s=(last - first).total_seconds(),
        avg_mem_transformation=_mean(store_size),
        avg_mem_action=_mean(bm_size),
        avg_free_transformation=_mean(store_free),
        avg_free_action=_mean(bm_free),
        memory_store_blocks=len(store_size),
        block_manager_events=len(bm_size),
        executors=executors,
        failed=failed,
        app_id=app_id,
    )


def driver_log_features(path: str | Path) -> DriverLogFeatures:
    """Read one Spark driver INFO log (the driver's stderr) and summarise it.

    Undecodable bytes are replaced, not fatal: the logs are plain ASCII, and a damaged line
    should cost that line only.
    """
    path = Path(path)
    text = path.read_bytes().decode("utf-8", errors="replace")
    try:
        return parse_driver_log(text.splitlines())
    except DriverLogError as error:
        raise DriverLogError(f"{path}: {error}") from None


# --------------------------------------------------------------- the paper's runs


@dataclass(frozen=True)
class LoggedRun:
    """One run of the paper's data set: where it came from and its driver-log features.

    ``workers`` is the ``N`` of the ``N_workernodes`` folder, which is the ``INSTANCE`` that
    ``modelZ.R`` assigns to the runs of ``workerN.csv``.
    """

    path: Path
    size_gb: float
    workers: int
    features: DriverLogFeatures

    @property
    def seconds(self) -> float:
        return self.features.duration_s

    @property
    def avg_mem_action(self) -> float:
        return self.features.avg_mem_action

    @property
    def avg_mem_transformation(self) -> float:
        return self.features.avg_mem_transformation

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_gb": self.size_gb,
            "workers": self.workers,
            "seconds": self.seconds,
            "avg_mem_action": self.avg_mem_action,
            "avg_mem_transformation": self.avg_mem_transformation,
        }


def load_thonglek_logs(root: str | Path, *, include_failed: bool = False) -> list[LoggedRun]:
    """Every ``{N}_workernodes/<size GB>/<run>.txt`` under ``root``, in folder and file order.

    Failed runs (a ``Job ... failed`` or an exception in the main thread: the two 1-worker runs
    at 2.5 and 3.0 GB ran the driver out of heap) are left out unless asked for; the authors'
    CSVs leave them out too.
    """
    root = Path(root)
    folders = sorted(
        (int(m.group(1)), p)
        for p in (root.iterdir() if root.is_dir() else ())
        if p.is_dir() and (m := _RUN_DIR.match(p.name))
    )
    if not folders:
        raise FileNotFoundError(f"{root}: no N_workernodes folders of driver logs")
    runs = []
    for workers, folder in folders:
        sizes = sorted((float(p.name), p) for p in folder.iterdir() if _is_number(p.name))
        for size, size_dir in sizes:
            for log in sorted(size_dir.glob("*.txt")):
                features = driver_log_features(log)
                if include_failed or not features.failed:
                    runs.append(LoggedRun(log, size, workers, features))
    return runs


def _is_number(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return False
    return True
