"""Clocks: the loop asks the clock for the time and to wait, so tests and the simulator can
drive it without sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait; a wall clock returns early when :meth:`WallClock.interrupt` is called."""
        ...


class WallClock:
    """Real time; ``interrupt()`` wakes a sleeping loop at once (Ctrl-C, service shutdown)."""

    def __init__(self) -> None:
        self._wake = threading.Event()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))

    def interrupt(self) -> None:
        self._wake.set()


class ManualClock:
    """Time that moves only when told: ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.time = start

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.time += seconds
