"""The SSH layer against a real sshd in a network namespace (skipped where namespaces are not
available: not root, no ip netns, no sshd)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.ssh import (
    HostKeyChanged,
    HostUnreachable,
    RemoteCommandError,
    RemoteProcess,
    SshHost,
)
from sparkscaler.errors import MissingExtraError
from tests.netns import Testbed, netns_hosts, skip_reason


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with netns_hosts(1, tmp_path_factory.mktemp("netns")) as testbed:
        yield testbed
        assert not testbed.leftovers(), "a test left a process in a namespace"


@pytest.fixture
def host(bed: Testbed, tmp_path: Path) -> Iterator[SshHost]:
    ssh = SshHost(
        bed.hosts[0].address,
        user="root",
        key_file=bed.key,
        known_hosts=tmp_path / "known_hosts",
        connect_timeout_s=3,
    )
    yield ssh
    ssh.close()


def test_run_returns_output_and_exit_code(host: SshHost) -> None:
    result = host.run("echo out; echo err >&2; exit 3", check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(RemoteCommandError, match="exited 3"):
        host.run("exit 3")
    assert host.run("hostname -I").stdout.split() == [host.address]


def test_first_connection_records_the_host_key_and_a_changed_key_is_refused(
    host: SshHost, tmp_path: Path
) -> None:
    host.run("true")
    recorded = host.known_hosts.read_text().split()
    assert recorded[:2] == [host.address, "ssh-ed25519"]
    host.close()
    host.run("true")  # the recorded key is accepted, and not recorded twice
    assert len(host.known_hosts.read_text().splitlines()) == 1

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = other.with_suffix(".pub").read_text().split()
    host.known_hosts.write_text(f"{host.address} {wrong[0]} {wrong[1]}\n")
    host.close()
    with pytest.raises(HostKeyChanged, match=f"{host.address}.*host key changed"):
        host.run("true")


def test_daemon_is_detached_identified_and_stopped_with_its_children(
    host: SshHost, bed: Testbed, tmp_path: Path
) -> None:
    log = tmp_path / "daemon.log"
    script = "sleep 300 & echo started; wait"
    daemon = host.start_daemon(["sh", "-c", script], env={"GREETING": "a b"}, log_path=str(log))
    host.close()  # the daemon outlives the SSH session that started it
    assert host.alive(daemon)
    assert not host.alive(RemoteProcess(daemon.pid, daemon.start_ticks + 1)), (
        "a pid with another start time is another process"
    )
    host.stop(RemoteProcess(daemon.pid, daemon.start_ticks + 1), grace_s=1)
    assert host.alive(daemon), "stop must not signal a process that is not ours"
    children = bed.hosts[0].others()
    assert len(children) >= 2  # the shell and its sleep (plus this session's sshd)
    host.stop(daemon, grace_s=5)
    assert not host.alive(daemon)
    host.close()
    assert not bed.leftovers()
    assert "started" in log.read_text()


def test_daemon_that_exits_at_once_is_an_error_with_its_log(host: SshHost, tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    with pytest.raises(RemoteCommandError, match="no-such-program"):
        host.start_daemon(["no-such-program-xyz"], env={}, log_path=str(log))


def test_unreachable_host_names_host_and_cause(bed: Testbed, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    nobody = bed.gateway.rsplit(".", 1)[0] + ".250"
    silent = SshHost(nobody, user="root", key_file=bed.key, known_hosts=known, connect_timeout_s=1)
    with pytest.raises(HostUnreachable, match=f"{nobody}.*within 1 s") as caught:
        silent.run("true")
    assert isinstance(caught.value, BackendError) and caught.value.host == nobody

    address = bed.hosts[0].address
    refused = SshHost(address, user="root", key_file=bed.key, known_hosts=known, port=2222)
    with pytest.raises(HostUnreachable, match=f"{address}.*refused"):
        refused.run("true")

    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    denied = SshHost(address, user="root", key_file=stranger, known_hosts=known)
    with pytest.raises(HostUnreachable, match="login as root refused"):
        denied.run("true")
    denied.close()
    missing = SshHost(address, user="root", key_file=tmp_path / "nope", known_hosts=known)
    with pytest.raises(HostUnreachable, match="is not a file"):
        missing.run("true")


def test_missing_paramiko_is_one_line_naming_the_extra() -> None:
    code = (
        "import sys; sys.modules['paramiko'] = None\n"
        "from pathlib import Path\n"
        "from sparkscaler.backends.ssh import SshHost\n"
        "SshHost('198.18.0.2', user='u', known_hosts=Path('k')).run('true')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert MissingExtraError.__name__ in last
    assert "pip install 'sparkscaler[hosts]'" in last
