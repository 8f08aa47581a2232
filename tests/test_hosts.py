"""The hosts backend's SSH launcher without Spark: which hosts are free, and a worker's start,
check and stop over SSH, with a stand-in ``spark-class`` and a stand-in master's ``/json/``.

Runs against namespace hosts (skipped where they cannot be built: not root, no ip netns, no
sshd)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from sparkscaler.backends.daemons import DAEMON_PROPERTIES, WorkerSpec
from sparkscaler.backends.hosts import SshLauncher
from sparkscaler.backends.ssh import RemoteCommandError
from sparkscaler.config import Config
from sparkscaler.configfile import ConfigError, config_from_dict
from tests.conftest import wait_for
from tests.netns import Testbed, netns_hosts, skip_reason

FAKE_SPARK_CLASS = """#!/bin/sh
echo "SPARK_LOCAL_IP=$SPARK_LOCAL_IP SPARK_HOME=$SPARK_HOME args: $*"
exec sleep 300
"""


class _Master(BaseHTTPRequestHandler):
    """A master's ``/json/`` listing ``workers`` (a class attribute the tests set)."""

    workers: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        body = json.dumps({"status": "ALIVE", "workers": self.workers}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with netns_hosts(3, tmp_path_factory.mktemp("netns")) as testbed:
        yield testbed
        assert not testbed.leftovers(), "a test left a process in a namespace"


@pytest.fixture
def master(bed: Testbed) -> Iterator[int]:
    """A stand-in master's web UI on the bridge address; yields its port."""
    server = ThreadingHTTPServer((bed.gateway, 0), _Master)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        _Master.workers = []


def _answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _config(bed: Testbed, tmp_path: Path, ui_port: int, **host: object) -> Config:
    return Config.model_validate(
        {
            "backend": "hosts",
            "state_dir": str(tmp_path / "state"),
            "cluster": {"master_host": bed.gateway, "master_ui_port": ui_port},
            "scaling": {"max_workers": 3},
            "hosts": [
                {
                    "address": h.address,
                    "ssh_user": "root",
                    "ssh_key": str(bed.key),
                    "work_dir": str(tmp_path / h.address),
                    **host,
                }
                for h in bed.hosts
            ],
        }
    )


def test_candidates_are_hosts_with_no_worker_anywhere(
    bed: Testbed, master: int, tmp_path: Path
) -> None:
    listed, listening, free = (h.address for h in bed.hosts)
    _Master.workers = [
        {"id": "w-1", "host": listed, "state": "ALIVE"},
        {"id": "w-0", "host": free, "state": "DEAD"},  # a worker that left: the host is free
    ]
    inside = ["ip", "netns", "exec", bed.hosts[1].namespace]
    server = subprocess.Popen(  # something of someone else's on the worker UI port
        [*inside, "python3", "-m", "http.server", "8081", "--bind", listening],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    launcher = SshLauncher(_config(bed, tmp_path, master))
    try:
        wait_for(lambda: _answers(listening, 8081), 10, "the stand-in UI to listen")
        assert launcher.candidates(3, set()) == [free]
        assert launcher.candidates(3, {free}) == []
    finally:
        server.kill()
        server.wait()
        launcher.close()


def test_candidates_are_none_when_the_master_does_not_answer(bed: Testbed, tmp_path: Path) -> None:
    launcher = SshLauncher(_config(bed, tmp_path, 1))
    assert launcher.candidates(3, set()) == []
    launcher.close()


def test_worker_starts_bound_to_its_host_with_its_resources_and_stops(
    bed: Testbed, master: int, tmp_path: Path
) -> None:
    home = tmp_path / "spark"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "spark-class").write_text(FAKE_SPARK_CLASS)
    (home / "bin" / "spark-class").chmod(0o755)
    config = _config(bed, tmp_path, master, spark_home=str(home), cores=3, memory="1500m")
    launcher = SshLauncher(config)
    host = bed.hosts[0].address
    spec = WorkerSpec("spark://198.18.9.1:7077", 1, "1g", 8081, DAEMON_PROPERTIES)
    try:
        daemon = launcher.start(host, spec)
        assert (daemon.host, daemon.cores, daemon.memory_mb) == (host, 3, 1500)
        assert launcher.alive(daemon)
        wait_for(lambda: "args:" in Path(daemon.log).read_text(), 10, "the worker's log")
        line = Path(daemon.log).read_text()
        assert f"SPARK_LOCAL_IP={host} SPARK_HOME={home} " in line
        assert f"--host {host} --port 0 --webui-port 8081 --cores 3 --memory 1500m" in line
        assert line.rstrip().endswith("spark://198.18.9.1:7077")
        properties = (tmp_path / host / "worker.properties").read_text()
        assert "spark.decommission.enabled true" in properties
        launcher.stop([daemon], grace_s=5)
        assert not launcher.alive(daemon)
    finally:
        launcher.close()


def test_worker_that_cannot_start_says_why(bed: Testbed, master: int, tmp_path: Path) -> None:
    config = _config(bed, tmp_path, master, spark_home=str(tmp_path / "no-spark"))
    launcher = SshLauncher(config)
    spec = WorkerSpec("spark://198.18.9.1:7077", 1, "1g", 8081, DAEMON_PROPERTIES)
    try:
        with pytest.raises(RemoteCommandError, match="no-spark/bin/spark-class"):
            launcher.start(bed.hosts[0].address, spec)
    finally:
        launcher.close()


def test_host_settings_default_and_check_like_the_cluster_settings() -> None:
    config = Config.model_validate(
        {
            "backend": "hosts",
            "state_dir": "/nonexistent",
            "scaling": {"max_workers": 1},
            "hosts": [{"address": "198.18.0.2", "ssh_key": "~/.ssh/id_ed25519"}],
        }
    )
    (host,) = config.hosts
    assert host.ssh_key is not None and "~" not in str(host.ssh_key)
    assert (host.ssh_port, host.cores, host.memory, host.spark_home) == (22, None, None, None)
    with pytest.raises(ConfigError, match=r"hosts\.0\.memory: memory must be at least 512m"):
        config_from_dict(
            {**config.model_dump(mode="json"), "hosts": [{"address": "h", "memory": "256m"}]}
        )
