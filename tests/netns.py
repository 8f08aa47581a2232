"""A pool of "machines" for the hosts backend's tests: Linux network namespaces with an sshd each.

Each host is a network namespace with its own address on a bridge in the root namespace (the
master's side), and an sshd listening on that address only. The filesystem is shared, so Java,
the pyspark Spark and this virtualenv are at the same paths on every host, as on a pool of
machines built from one image.

Only addresses in 198.18.0.0/15 (reserved for network tests, RFC 2544) are used, one free /24
per test bed, chosen under a lock so that two test processes never take the same one. Every
namespace, link and process (the sshds, and whatever runs inside a namespace, such as Spark
workers started over SSH: they are found by namespace, ``ip netns pids``) is removed when the
context ends, whether the test passed or not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
_LOCK = Path("/tmp/sparkscaler-netns.lock")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def skip_reason() -> str | None:
    """Why a namespace test bed cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        return "sshd is not installed (make sshd installs openssh-server)"
    probe = f"ssprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns is not available: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class NetnsHost:
    """One namespace host: its namespace, address and sshd."""

    namespace: str
    address: str
    host_dir: Path
    sshd: subprocess.Popen[bytes] | None = None

    @property
    def sshd_config(self) -> Path:
        return self.host_dir / "sshd_config"

    def pids(self) -> set[int]:
        """Every process whose network namespace is this host's."""
        out = _ip("netns", "pids", self.namespace, check=False).stdout
        return {int(p) for p in out.split()}

    def start_sshd(self) -> None:
        self.sshd = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, SSHD, "-D", "-f", str(self.sshd_config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.host_dir / "sshd.log").open("ab"),
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                log = (self.host_dir / "sshd.log").read_text()
                raise RuntimeError(f"sshd in {self.namespace} did not start:\n{log}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        out = subprocess.run(
            ["ip", "netns", "exec", self.namespace, "ss", "-Hltn", f"src {self.address}"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return ":22" in out

    def stop_sshd(self) -> None:
        """Stop the listening sshd (sessions it forked are left to :meth:`kill_all`)."""
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            self.sshd.wait(10)
        self.sshd = None

    def others(self) -> set[int]:
        """Processes in this namespace other than sshd's (the listener, and the sessions of
        clients that may still be connected): what the tests started through SSH."""
        return {pid for pid in self.pids() if _name(pid) != "sshd"}

    def kill_all(self) -> None:
        """SIGKILL every process in the namespace until none is left."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        raise RuntimeError(f"processes left in {self.namespace}: {sorted(self.pids())}")


@dataclass
class Testbed:
    """N namespace hosts on one bridge, and the client key that logs into all of them."""

    __test__ = False  # not a test class, despite its name

    bridge: str
    gateway: str
    hosts: list[NetnsHost] = field(default_factory=list)
    key: Path = Path()
    links: list[str] = field(default_factory=list)

    def leftovers(self, settle_s: float = 10.0) -> dict[str, set[int]]:
        """Processes other than the sshds still running in some namespace after up to
        ``settle_s`` seconds (an SSH session's process exits a moment after its client closes)."""
        deadline = time.monotonic() + settle_s
        while True:
            found = {h.namespace: h.others() for h in self.hosts if h.others()}
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def _name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None  # gone meanwhile


def _free_subnet() -> int:
    """A third octet n such that no interface here has an address in 198.18.n.0/24."""
    used = _ip("-o", "-4", "addr", "show").stdout
    for n in range(1, 256):
        if f" 198.18.{n}." not in used:
            return n
    raise RuntimeError("no free /24 left in 198.18.0.0/16")


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sparkscaler-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _write_sshd_config(host: NetnsHost, authorized_keys: Path) -> None:
    host_key = host.host_dir / "host_ed25519"
    _keygen(host_key)
    host.sshd_config.write_text(
        "\n".join(
            [
                f"ListenAddress {host.address}",
                "Port 22",
                f"HostKey {host_key}",
                f"PidFile {host.host_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized_keys}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "UseDNS no",
                "",
            ]
        )
    )


@contextlib.contextmanager
def netns_hosts(count: int, work_dir: Path) -> Iterator[Testbed]:
    """Build ``count`` namespace hosts with an sshd each; tear everything down afterwards."""
    tag = f"{os.getpid() % 100000}"
    bridge = f"ssbr{tag}"
    work_dir.mkdir(parents=True, exist_ok=True)
    key = work_dir / "id_ed25519"
    _keygen(key)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    bed: Testbed | None = None
    try:
        with _LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = _free_subnet()
            bed = Testbed(bridge, f"198.18.{subnet}.1", key=key)
            _ip("link", "add", bridge, "type", "bridge")
            _ip("addr", "add", f"{bed.gateway}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
        for k in range(2, count + 2):
            host = NetnsHost(f"sparkscaler-{tag}-{k}", f"198.18.{subnet}.{k}", work_dir / f"h{k}")
            host.host_dir.mkdir(exist_ok=True)
            outer, inner = f"ssv{tag}h{k}", f"ssp{tag}h{k}"
            _ip("netns", "add", host.namespace)
            bed.hosts.append(host)
            bed.links.append(outer)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", host.namespace)
            _ip("link", "set", outer, "master", bridge, "up")
            inside = ("-n", host.namespace)
            _ip(*inside, "addr", "add", f"{host.address}/24", "dev", inner)
            _ip(*inside, "link", "set", inner, "up")
            _ip(*inside, "link", "set", "lo", "up")
            _write_sshd_config(host, key.with_suffix(".pub"))
            host.start_sshd()
        yield bed
    finally:
        _teardown(bed, bridge)


def _teardown(bed: Testbed | None, bridge: str) -> None:
    """Stop every process in every namespace, then delete the namespaces (which deletes their
    veth ends, and so the pairs) and the bridge. Errors are collected and raised at the end so
    that one failure does not leave the rest behind."""
    problems = []
    for host in bed.hosts if bed else []:
        try:
            host.stop_sshd()
            host.kill_all()
        except Exception as error:
            problems.append(str(error))
        deleted = _ip("netns", "del", host.namespace, check=False)
        if deleted.returncode != 0:
            problems.append(deleted.stderr.strip())
    for link in bed.links if bed else []:  # a pair whose inner end never left this namespace
        _ip("link", "del", link, check=False)
    _ip("link", "del", bridge, check=False)
    if problems:
        raise RuntimeError("; ".join(problems))
