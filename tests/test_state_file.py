"""The local cluster's state file (``<state_dir>/cluster.json``) when it is damaged: one error
naming the file and what to do, never a traceback of json or psutil. No JVM is started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.daemons import StateFileError
from sparkscaler.backends.local import LocalCluster
from sparkscaler.config import ClusterSettings
from sparkscaler.errors import SparkscalerError

WORKER = {"pid": 1, "create_time": 0.0, "host": "127.0.0.2", "log": "w.log"}


def _state(tmp_path: Path, content: bytes) -> Path:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "cluster.json").write_bytes(content)
    return state_dir


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"\x89\xff\x00garbage", "not JSON: 'utf-8' codec can't decode byte 0x89"),
        (b'{"master": {"pid": 12', "not JSON: Expecting"),
        (b"", "not JSON: Expecting value"),
        (b"[1, 2]", "not a sparkscaler state: 'list' object"),
        (json.dumps({"master": {"pid": 1, "colour": "red"}}).encode(), "not a sparkscaler state"),
        (json.dumps({"workers": ["127.0.0.2"]}).encode(), "not a sparkscaler state"),
        (json.dumps({"workers": {"127.0.0.2": 7}}).encode(), "not a sparkscaler state"),
    ],
)
def test_a_corrupt_state_file_is_one_error_naming_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    state_dir = _state(tmp_path, content)
    path = state_dir / "cluster.json"
    with pytest.raises(StateFileError) as info:
        LocalCluster(ClusterSettings(), state_dir)  # reads the file for pending decommissions
    message = str(info.value)
    assert message.startswith(f"state file {path} is corrupt ({why}"), message
    assert message.endswith(
        "; if no Spark daemons started from it are still running "
        "(ps -ef | grep org.apache.spark.deploy), delete it"
    )
    assert "\n" not in message
    # A command reports it in one line; the loop records it like any failed action.
    assert isinstance(info.value, SparkscalerError) and isinstance(info.value, BackendError)
    assert path.read_bytes() == content  # left for the user to look at


def test_a_state_file_that_cannot_be_read_is_one_error(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    (state_dir / "cluster.json").mkdir(parents=True)
    with pytest.raises(StateFileError, match=r"cannot read the state file .*Is a directory"):
        LocalCluster(ClusterSettings(), state_dir)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_state_file_is_one_error(tmp_path: Path) -> None:
    state_dir = _state(tmp_path, b"{}")
    (state_dir / "cluster.json").chmod(0)
    with pytest.raises(StateFileError, match="Permission denied"):
        LocalCluster(ClusterSettings(), state_dir)


def test_a_valid_state_file_is_read(tmp_path: Path) -> None:
    """The checks do not refuse what the cluster writes; a dead daemon is dropped on reading."""
    state = {"master": None, "workers": {"127.0.0.2": WORKER}}
    cluster = LocalCluster(ClusterSettings(), _state(tmp_path, json.dumps(state).encode()))
    assert cluster.record().workers == {}  # pid 1 was not created at time 0
    assert not cluster.running
