"""The small protocol every cluster backend fills in (after Ray's ``NodeProvider``).

The controller only ever calls these three methods, so it never knows whether it is driving
local JVMs, the simulator or a cloud API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sparkscaler.core import WorkerInfo


class BackendError(RuntimeError):
    """A backend could not do what it was asked (a worker did not start, the master is down)."""


@runtime_checkable
class Backend(Protocol):
    def workers(self) -> list[WorkerInfo]:
        """The workers this backend runs, as the master sees them (any state)."""
        ...

    def launch(self, count: int) -> list[str]:
        """Add ``count`` workers; return their ids once they are ALIVE in the master."""
        ...

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        """Start a graceful removal of these workers and return without waiting.

        Each worker stops taking tasks at once and leaves when its running tasks are done, or
        is stopped when ``timeout`` seconds have passed. The controller must not block on this:
        draining a worker can take as long as its longest task.
        """
        ...
