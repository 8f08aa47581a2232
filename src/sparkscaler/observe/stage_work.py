"""An application's work since it was first seen, from its stages' task metrics.

This is what makes the CPU and network features measurable on hosts psutil cannot see
(:mod:`sparkscaler.observe.spark_metrics` turns it into rates). Spark keeps task metrics per
stage; a running stage's counters move with the executors' heartbeats
(``spark.executor.heartbeatInterval``, 10 s by default, ``AppStatusListener.
onExecutorMetricsUpdate``) and at each task's end. Stage ids are handed out 0, 1, 2, ... per
application, which is what lets every stage be counted exactly once at one request per
observation, however short it is:

- a stage on the active list counts by how much its counters grew since the last look;
- a stage followed before that is no longer active (finished, failed, or still pending) is read
  once more (``/stages/<id>``, all attempts): its last growth counts, and a finished one is
  done with;
- stage ids above the highest known one are read in turn until Spark says there is none
  (404): a stage that started and ended between two looks counts whole, a pending one is
  followed from then on.

On first sight of an application one read of all its stages sets where counting starts: work
done before sparkscaler looked is not in this interval's rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Stage states after which a stage's counters no longer move.
_FINAL = frozenset({"COMPLETE", "FAILED", "SKIPPED"})

#: At most this many unknown stage ids read per look: a bound on one observation's requests
#: after a long gap, the rest are read at the next look.
MAX_NEW_STAGES = 64


@dataclass(frozen=True)
class Work:
    """Work the executors did, as Spark's task metrics count it: CPU seconds of the task
    threads (``executorCpuTime`` + ``executorDeserializeCpuTime``), bytes received (input read
    plus shuffle bytes fetched from other executors) and bytes sent (shuffle bytes served to
    other executors, which is what those fetched, plus output written plus task results)."""

    cpu_s: float = 0.0
    bytes_in: float = 0.0
    bytes_out: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(
            self.cpu_s + other.cpu_s,
            self.bytes_in + other.bytes_in,
            self.bytes_out + other.bytes_out,
        )

    def __sub__(self, other: Work) -> Work:
        return Work(
            self.cpu_s - other.cpu_s,
            self.bytes_in - other.bytes_in,
            self.bytes_out - other.bytes_out,
        )

    @staticmethod
    def of_stage(stage: dict[str, Any]) -> Work:
        remote = float(stage.get("shuffleRemoteBytesRead", 0))
        cpu_ns = float(stage.get("executorCpuTime", 0)) + float(
            stage.get("executorDeserializeCpuTime", 0)
        )
        return Work(
            cpu_s=cpu_ns / 1e9,
            bytes_in=float(stage.get("inputBytes", 0)) + remote,
            bytes_out=remote
            + float(stage.get("outputBytes", 0))
            + float(stage.get("resultSize", 0)),
        )

    @staticmethod
    def of_attempts(attempts: Iterable[dict[str, Any]]) -> Work:
        total = Work()
        for attempt in attempts:
            total += Work.of_stage(attempt)
        return total


#: Reads one path under the application's REST base; None when Spark answers 404.
Reader = Callable[[str], Any]


@dataclass
class StageWork:
    """One application's work, followed stage by stage (see the module docstring)."""

    total: Work = field(default_factory=Work)
    #: Stages followed and the counters last seen, by stage id (all attempts together).
    open: dict[int, Work] = field(default_factory=dict)
    #: Every stage id below this one is followed or done with.
    horizon: int | None = None

    def update(self, read: Reader, active: list[dict[str, Any]]) -> Work:
        """The work done since first sight, given this look's active stages."""
        now: dict[int, Work] = {}
        for stage in active:
            sid = int(stage["stageId"])
            now[sid] = now.get(sid, Work()) + Work.of_stage(stage)
        if self.horizon is None:
            self._first_sight(read, now)
            return self.total
        # A read that fails part-way leaves the state as it was: the next look counts it all.
        before, horizon = dict(self.open), self.horizon
        try:
            grown = Work()
            for sid, work in now.items():
                grown += work - self.open.get(sid, Work())
                self.open[sid] = work
            for sid in [s for s in self.open if s not in now]:
                grown += self._settle(read, sid)
            grown += self._new_stages(read, now)
        except BaseException:
            self.open, self.horizon = before, horizon
            raise
        self.total += grown
        return self.total

    def _first_sight(self, read: Reader, now: dict[int, Work]) -> None:
        stages = read("stages") or []
        self.horizon = 1 + max((int(s["stageId"]) for s in stages), default=-1)
        self.horizon = max(self.horizon, 1 + max(now, default=-1))
        self.open = dict(now)
        for stage in stages:
            sid = int(stage["stageId"])
            if stage.get("status") not in _FINAL and sid not in self.open:
                self.open[sid] = Work.of_stage(stage)

    def _settle(self, read: Reader, sid: int) -> Work:
        """A followed stage that is not active now: its growth since the last look; done with
        it once every attempt is final (or Spark no longer keeps it)."""
        attempts = read(f"stages/{sid}?details=false")
        before = self.open.pop(sid)
        if not attempts:
            return Work()
        if not all(a.get("status") in _FINAL for a in attempts):
            self.open[sid] = Work.of_attempts(attempts)
        return Work.of_attempts(attempts) - before

    def _new_stages(self, read: Reader, now: dict[int, Work]) -> Work:
        """Stage ids past the highest known, read in turn until Spark has none."""
        assert self.horizon is not None
        grown = Work()
        top = max(now, default=-1)
        for _ in range(MAX_NEW_STAGES):
            sid = self.horizon
            if sid not in now:
                attempts = read(f"stages/{sid}?details=false")
                if attempts is None and sid > top:
                    break  # no such stage yet
                if attempts:
                    work = Work.of_attempts(attempts)
                    grown += work
                    if not all(a.get("status") in _FINAL for a in attempts):
                        self.open[sid] = work
            self.horizon = sid + 1
        return grown
