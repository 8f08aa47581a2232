"""Shared fixtures. Every Spark process a test starts is stopped by the fixture, even on failure."""

from __future__ import annotations

import json
import shutil
import socket
import time
from collections.abc import Callable, Iterator
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


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` every half second; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def assert_all_stopped(pids: list[int]) -> None:
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"processes left behind: {alive}"


def state_pids(state_dir: Path) -> list[int]:
    """The pids a LocalCluster recorded in its state file: master first, then workers."""

    state = json.loads((state_dir / "cluster.json").read_text())
    procs = ([state["master"]] if state.get("master") else []) + list(state["workers"].values())
    return [p["pid"] for p in procs]


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
