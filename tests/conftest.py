"""Shared fixtures. Every Spark process a test starts is stopped by the fixture, even on failure."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from sparkscaler.backends.local import LocalCluster, spark_home
from sparkscaler.config import Config


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C means KeyboardInterrupt in the suite, as in a terminal.

    A shell that starts the suite in the background (``make test &`` in a script, ``nohup``
    under a non-interactive shell) starts it with SIGINT ignored, and an ignored signal stays
    ignored in every process a test starts: the tests that press Ctrl-C on a command (``run``,
    ``serve``, ``demo``) would then wait for an exit that never comes.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


def spawn_spark(args: list[str], log: Path, local_ip: str) -> subprocess.Popen[bytes]:
    """Start a Spark process (a daemon through ``spark-class``, or a PySpark driver) in a process
    group of its own, bound to ``local_ip``, with this Python for its Python workers and its
    output in ``log``; stop it with :func:`stop_group`. ``SPARK_CONF_DIR`` is dropped, so that
    a configuration on this machine cannot change what a test runs."""
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": local_ip,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    env.pop("SPARK_CONF_DIR", None)
    with log.open("wb") as out:
        return subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """Stop what is left of a process group this test started (a JVM, a driver and their
    children): SIGTERM, then SIGKILL when it has not ended after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


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


# ------------------------------------------------------------------ one cluster for many tests
def spark_jvms(master_port: int) -> set[int]:
    """Every Spark JVM on this host that belongs to the master on ``master_port``: the master,
    its workers, and the drivers submitted to it."""
    found = set()
    port = str(master_port)
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info["cmdline"] or []
        if any("org.apache.spark.deploy" in a for a in args) and any(
            a == port or a.endswith(f":{port}") for a in args
        ):
            found.add(proc.pid)
    return found


@dataclass
class SharedCluster:
    """The session's cluster: a master and one worker, for every test that leaves it that way.

    ``seen`` collects the pids of its daemons at the start and the end of each borrowing, so
    that the end of the session can check that each one is gone; a worker that came and went
    within one test is covered by the checks that no JVM of this master outlives the test
    (``as_found``) or the session.
    """

    backend: LocalCluster
    config: Config
    seen: set[int] = field(default_factory=set)

    def note_pids(self) -> None:
        self.seen |= set(self.backend.pids) | spark_jvms(self.config.cluster.master_port)

    def alive_workers(self) -> int:
        return sum(1 for w in self.backend.workers() if w.state == "ALIVE")

    def as_found(self) -> bool:
        """A master, one ALIVE worker in the state file and at the master, nothing draining,
        and no daemon of this cluster that the state file does not name."""
        workers = self.backend.record().workers
        return (
            self.backend.running
            and len(workers) == 1
            and all(w.decommission_deadline is None for w in workers.values())
            and self.alive_workers() == 1
            and spark_jvms(self.config.cluster.master_port) == set(self.backend.pids)
        )

    def restore(self) -> None:
        """Back to one worker: decommission the others (they have no work left) and wait."""
        self.note_pids()
        workers = sorted(self.backend.workers(), key=lambda w: w.id)
        extra = [w.id for w in workers if w.state == "ALIVE"][1:]
        if extra:
            self.backend.decommission(extra, timeout=30)
        self.backend.wait_drained(60)
        self.note_pids()
        if not self.as_found():  # still not right: start the cluster afresh
            self.backend.stop()
            self.backend.start(1)
            self.note_pids()

    @contextlib.contextmanager
    def borrowed(self, state_dir: Path) -> Iterator[Config]:
        """The shared cluster for one test (or module): a config with the cluster's ports and
        the caller's own ``state_dir`` (its store, event logs and job logs). Afterwards the
        cluster must be as it was found; if it is not, it is restored and the borrower fails."""
        wait_for(self.as_found, 60, "the shared cluster to be back to one worker")
        self.note_pids()
        config = self.config.model_copy(update={"state_dir": state_dir})
        try:
            yield config
        finally:
            self.note_pids()
            if not wait_until_true(self.as_found, 60):
                self.restore()
                raise AssertionError("the test did not leave the shared cluster at one worker")


def wait_until_true(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


@pytest.fixture(scope="session")
def shared_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedCluster]:
    """One master and one worker for the whole session; stopped at the end, and every daemon it
    ever ran checked gone."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make install puts Java 17 in place)")
    config = spark_test_config(tmp_path_factory.mktemp("shared-spark") / "state")
    shared = SharedCluster(LocalCluster(config.cluster, config.state_dir), config)
    try:
        shared.backend.start(1)
        shared.note_pids()
        yield shared
    finally:
        shared.note_pids()
        shared.backend.stop()
        assert_all_stopped(sorted(shared.seen))
        assert not spark_jvms(config.cluster.master_port)


@pytest.fixture
def shared_cluster(shared_spark: SharedCluster, tmp_path: Path) -> Iterator[Config]:
    """The session's cluster (``shared_spark.backend``) for a test that needs a master and one
    worker but not a cluster of its own; the test must leave it with one worker again."""
    with shared_spark.borrowed(tmp_path / "state") as config:
        yield config
