"""Cluster backends; :func:`open_backend` picks the one a config names."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparkscaler.backends.daemons import WorkerPool
    from sparkscaler.config import Config


def open_backend(config: Config) -> WorkerPool:
    """The backend of ``config.backend`` on ``config.state_dir``: ``local`` (worker JVMs on
    this machine) or ``hosts`` (one worker per machine over SSH). Both are worker pools over
    the same state file, so every ``cluster`` command works on either.

    Imported here, not at the top, so that only ``hosts`` loads the SSH layer (paramiko)."""
    if config.backend == "hosts":
        from sparkscaler.backends.hosts import HostsCluster

        return HostsCluster(config)
    from sparkscaler.backends.local import LocalCluster

    return LocalCluster(config.cluster, config.state_dir)
