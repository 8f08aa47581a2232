"""A small SSH layer for ``backend: hosts``: run a command, start a daemon, check it, stop it.

It speaks SSH through paramiko (the ``hosts`` extra), so no ``ssh`` binary, no ControlMaster
and no shell quoting of a command line built for another program.

Host keys are checked the way ``ssh -o StrictHostKeyChecking=accept-new`` checks them, which is
what a data engineer adding a fresh machine to a pool expects: keys already in
``~/.ssh/known_hosts`` are trusted; a host seen for the first time has its key recorded in the
known-hosts file under the state directory (``<state_dir>/known_hosts``) with a warning in the
log (trust on first use); a host whose key differs from the recorded one is refused with
:class:`HostKeyChanged`, never silently accepted, because that is what a man in the middle
looks like. Reinstalling a machine therefore needs its line removed from that file.

A daemon is identified by its pid *and* its start time in clock ticks since boot
(``/proc/<pid>/stat`` field 22), so a pid the kernel has reused for another program is never
taken for ours, and never signalled. Each daemon leads its own session and process group
(``setsid``), so stopping it also stops what it spawned (a worker's executors).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shlex
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparkscaler.backends.base import BackendError, HostUnreachable
from sparkscaler.errors import MissingExtraError

if TYPE_CHECKING:
    import paramiko

__all__ = [
    "CommandResult",
    "HostKeyChanged",
    "HostUnreachable",
    "RemoteCommandError",
    "RemoteProcess",
    "SshHost",
]

log = logging.getLogger(__name__)

#: How long a new daemon must survive for :meth:`SshHost.start_daemon` to call it started.
_SETTLE_S = 0.3


def _stat(pid: str) -> str:
    """A shell command that prints ``STATE STARTTIME`` of process ``pid`` (a number or a shell
    expression), or nothing when there is none. The fields are counted after the command name,
    which is in parentheses in /proc/<pid>/stat and may itself hold spaces."""
    return f"sed 's/^.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f1,20"


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError:
        raise MissingExtraError("backend: hosts", "hosts", "paramiko") from None
    return paramiko


class HostKeyChanged(HostUnreachable):
    """The host's key is not the one recorded for it: refused, as ``ssh`` refuses it."""


class RemoteCommandError(BackendError):
    """A command on a host exited non-zero."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class RemoteProcess:
    """A daemon started on a host: its pid and its start time, which together name it."""

    pid: int
    start_ticks: int


def _stat_fields(line: str) -> tuple[str, int] | None:
    """(state, start ticks) from the ``state starttime`` line that :func:`_stat` prints."""
    parts = line.split()
    if len(parts) != 2 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


class _TrustOnFirstUse:
    """A paramiko host-key policy: record an unknown host's key in ``path`` and accept it.

    Built lazily (:func:`_tofu_policy`) so that this module imports without paramiko.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        fingerprint = key.fingerprint if hasattr(key, "fingerprint") else key.get_name()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning(
            "first connection to %s: trusting its host key %s (recorded in %s)",
            hostname,
            fingerprint,
            self.path,
        )


def _tofu_policy(path: Path) -> Any:
    paramiko = _paramiko()
    policy = type("TrustOnFirstUse", (_TrustOnFirstUse, paramiko.MissingHostKeyPolicy), {})
    return policy(path)


class SshHost:
    """One machine reached over SSH, with one connection kept open and re-opened when it drops.

    Every method raises :class:`HostUnreachable` when the host cannot be reached; calls from
    several threads are serialised on the connection.
    """

    def __init__(
        self,
        address: str,
        *,
        user: str,
        port: int = 22,
        key_file: Path | None = None,
        known_hosts: Path,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.address = address
        self.user = user
        self.port = port
        self.key_file = key_file
        self.known_hosts = known_hosts
        self.connect_timeout_s = connect_timeout_s
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SshHost({self.user}@{self.address}:{self.port})"

    # ------------------------------------------------------------------ connection
    def _connect(self) -> paramiko.SSHClient:
        paramiko = _paramiko()
        if self._client is not None:
            transport = self._client.get_transport()
            if transport is not None and transport.is_active():
                return self._client
            self._client.close()
            self._client = None
        if self.key_file is not None and not self.key_file.is_file():
            raise HostUnreachable(self.address, f"ssh_key {self.key_file} is not a file")
        client = paramiko.SSHClient()
        with contextlib.suppress(OSError):
            client.load_system_host_keys()
        if self.known_hosts.is_file():
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(_tofu_policy(self.known_hosts))
        try:
            client.connect(
                self.address,
                port=self.port,
                username=self.user,
                key_filename=str(self.key_file) if self.key_file else None,
                allow_agent=self.key_file is None,
                look_for_keys=self.key_file is None,
                timeout=self.connect_timeout_s,
                banner_timeout=self.connect_timeout_s,
                auth_timeout=self.connect_timeout_s,
            )
        except paramiko.BadHostKeyException as error:
            client.close()
            raise HostKeyChanged(
                self.address,
                f"its host key changed ({error.key.get_name()}), which may be an attack; if the "
                f"machine was reinstalled, delete its line from {self.known_hosts}",
            ) from error
        except paramiko.AuthenticationException as error:
            client.close()
            raise HostUnreachable(
                self.address, f"login as {self.user} refused ({error}); check ssh_user, ssh_key"
            ) from error
        except (OSError, paramiko.SSHException, EOFError) as error:
            client.close()
            raise HostUnreachable(self.address, self._cause(error)) from error
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        self._client = client
        return client

    def _cause(self, error: BaseException) -> str:
        if isinstance(error, socket.timeout | TimeoutError):
            return f"no answer on port {self.port} within {self.connect_timeout_s:g} s"
        if isinstance(error, ConnectionRefusedError) or "Unable to connect" in str(error):
            return f"connection to port {self.port} refused (is sshd running?)"
        return str(error) or type(error).__name__

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ commands
    def run(self, command: str, timeout_s: float = 30.0, *, check: bool = True) -> CommandResult:
        """Run a shell command; :class:`RemoteCommandError` on a non-zero exit when ``check``.

        A connection that dropped since the last call is re-opened once.
        """
        paramiko = _paramiko()
        with self._lock:
            for attempt in (1, 2):
                client = self._connect()
                try:
                    _, stdout, stderr = client.exec_command(command, timeout=timeout_s)
                    out = stdout.read().decode(errors="replace")
                    err = stderr.read().decode(errors="replace")
                    code = stdout.channel.recv_exit_status()
                    break
                except (OSError, paramiko.SSHException, EOFError) as error:
                    self.close()
                    if attempt == 2 or isinstance(error, socket.timeout | TimeoutError):
                        raise HostUnreachable(self.address, self._cause(error)) from error
        result = CommandResult(code, out, err)
        if check and code != 0:
            raise RemoteCommandError(
                f"on {self.address}: `{command[:120]}` exited {code}: {err.strip()[-500:]}"
            )
        return result

    def start_daemon(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: str,
        cwd: str | None = None,
    ) -> RemoteProcess:
        """Start ``argv`` detached (its own session, immune to the SSH session ending), its
        output appended to ``log_path`` on the host; return at once with its identity."""
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        log_q = shlex.quote(log_path)
        script = "\n".join(
            [
                f"mkdir -p $(dirname {log_q})",
                f"cd {shlex.quote(cwd or '/')}",
                f"env {assignments} setsid nohup {shlex.join(argv)} >>{log_q} 2>&1 </dev/null &",
                "pid=$!",
                f'echo "$pid $({_stat("$pid")})"',
                # still there a moment later: a command that cannot start fails here, not later
                f"sleep {_SETTLE_S}",
                f'echo "$({_stat("$pid")})"',
            ]
        )
        result = self.run(script)
        fields = result.stdout.split()
        if len(fields) != 5 or not fields[0].isdigit() or fields[2] != fields[4] or "Z" in fields:
            tail = self.log_tail(log_path)
            raise RemoteCommandError(
                f"on {self.address}: {argv[0]} exited at once ({result.stdout.strip()!r}):\n{tail}"
            )
        return RemoteProcess(int(fields[0]), int(fields[2]))

    def alive(self, process: RemoteProcess) -> bool:
        """True while this very process (same pid, same start time) runs and is not a zombie."""
        found = _stat_fields(self.run(_stat(str(process.pid)), check=False).stdout)
        return found is not None and found[1] == process.start_ticks and found[0] != "Z"

    def stop(self, process: RemoteProcess, grace_s: float = 15.0) -> None:
        """SIGTERM the daemon's process group, SIGKILL it after ``grace_s``.

        The group counts as gone when only zombies are left in it: on a host whose init reaps
        slowly, a dead worker can stay a zombie for the whole grace period.

        The group is signalled only when its leader is this very process, or is gone (its
        executors may outlive a crashed worker, and the kernel does not hand out a pid that is
        still a group's id); a pid reused by another program is left alone.
        """
        pid, ticks = process.pid, process.start_ticks
        polls = max(1, int(grace_s / 0.2))
        script = f"""
            set -- $({_stat(str(pid))})
            if [ -n "$2" ] && [ "$2" != "{ticks}" ]; then exit 0; fi
            kill -TERM -- -{pid} 2>/dev/null || exit 0
            i=0
            while [ $i -lt {polls} ] && ps -eo pgid=,stat= | grep -q "^ *{pid} [^Z]"; do
                sleep 0.2; i=$((i+1))
            done
            kill -KILL -- -{pid} 2>/dev/null
            exit 0
        """
        self.run(script, timeout_s=grace_s + 30)

    def log_tail(self, path: str, lines: int = 15) -> str:
        result = self.run(f"tail -n {lines} {shlex.quote(path)}", check=False)
        return result.stdout.strip() or "(no log)"
