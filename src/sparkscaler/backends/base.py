"""The small protocol every cluster backend fills in (after Ray's ``NodeProvider``).

The controller only ever calls these three methods, so it never knows whether it is driving
local JVMs, machines over SSH, the simulator or a cloud API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sparkscaler.core import WorkerInfo
from sparkscaler.errors import SparkscalerError


class BackendError(SparkscalerError, RuntimeError):
    """A backend could not do what it was asked (a worker did not start, the master is down).

    A ``SparkscalerError``: its message says what went wrong and where, so a command reports it
    in one line, and the observer records it like any source it cannot read.
    """


class HostUnreachable(BackendError):
    """A machine could not be reached (SSH down, login refused); names the host and the cause.

    Here rather than in the SSH layer so that the worker pool can tell "this host is down,
    try another and come back later" from every other failure without importing SSH code.
    """

    def __init__(self, host: str, cause: str) -> None:
        self.host, self.cause = host, cause
        super().__init__(f"host {host} is unreachable over SSH: {cause}")


@runtime_checkable
class Backend(Protocol):
    def workers(self) -> list[WorkerInfo]:
        """The workers this backend runs, in any state: those it has been asked for and that
        are not yet registered with the master are PROVISIONING, with the cores and memory
        they will have."""
        ...

    def launch(self, count: int) -> list[str]:
        """Ask for ``count`` more workers and return at once with their ids.

        The workers are PROVISIONING in :meth:`workers` (under these ids) until the master has
        them ALIVE (then under the master's ids). The controller must not block on this: a
        machine can take minutes to boot.
        """
        ...

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        """Start a graceful removal of these workers and return without waiting.

        Each worker stops taking tasks at once and leaves when its running tasks are done, or
        is stopped when ``timeout`` seconds have passed; a PROVISIONING one is stopped at once.
        The controller must not block on this: draining a worker can take as long as its
        longest task.
        """
        ...

    def unreachable(self) -> dict[str, str]:
        """Hosts this backend leaves out for now because it could not reach them, each with
        why: every decision's reason and ``/api/status`` say so, so that a smaller cluster
        than asked for is explained. Empty when every host answers (or there are no hosts)."""
        ...
