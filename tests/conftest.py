"""Shared fixtures. Every Spark process a test starts is stopped by the fixture, even on failure."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sparkscaler.backends.local import LocalCluster
from sparkscaler.config import Config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_test_config(state_dir: Path, **scaling: float) -> Config:
    """A small, fast-reacting cluster on ports nobody else uses."""
    return Config.model_validate(
        {
            "state_dir": str(state_dir),
            "cluster": {
                "master_port": free_port(),
                "master_ui_port": free_port(),
                "worker_ui_port": free_port(),
                "worker_cores": 1,
                "worker_memory": "1g",
            },
            "scaling": {
                "min_workers": 1,
                "max_workers": 3,
                "interval_s": 1,
                "scale_out_cooldown_s": 2,
                "scale_in_cooldown_s": 2,
                "scale_in_stabilization_s": 3,
                "decommission_timeout_s": 60,
                **scaling,
            },
            "policy": {"name": "dra", "params": {"idle_timeout_s": 5}},
        }
    )


def assert_all_stopped(pids: list[int]) -> None:
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"processes left behind: {alive}"


@pytest.fixture
def spark_config(tmp_path: Path) -> Config:
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make install puts Java 17 in place)")
    return spark_test_config(tmp_path / "state")


@pytest.fixture
def cluster(spark_config: Config) -> Iterator[LocalCluster]:
    """A running master with one worker; stopped (and checked to be gone) afterwards."""
    backend = LocalCluster(spark_config.cluster, spark_config.state_dir)
    started: list[int] = []
    try:
        backend.start(1)
        started = backend.pids
        yield backend
    finally:
        everything = set(started) | set(backend.pids)
        backend.stop()
        assert_all_stopped(sorted(everything))
