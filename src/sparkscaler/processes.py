"""Stopping what we started, and nothing else: process groups, ports, signals during cleanup.

Every daemon and driver sparkscaler starts is the leader of its own process group
(``start_new_session``), so a group holds exactly what it spawned (a worker's executors, a
driver's Python workers) and can be stopped as one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import psutil

_CLEANUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def terminate_groups(
    pgids: Iterable[int], alive: Callable[[int], bool], grace_s: float = 15.0
) -> None:
    """SIGTERM each process group, wait up to ``grace_s`` for ``alive`` to say they are gone,
    then SIGKILL the groups. Groups whose leader already died are signalled too: a crashed
    worker's executors may still be running in its group."""
    pgids = list(pgids)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(alive(p) for p in pgids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def process_running(pid: int, create_time: float) -> bool:
    """True while the process ``pid`` that started at ``create_time`` runs and is not a zombie.

    The start time makes the pid an identity: a pid the kernel has handed to another program
    since is never taken for ours."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ChildProcesses:
    """Daemons this process starts, each the leader of its own session and process group.

    Their ``Popen`` objects are kept so that one that exits is reaped at the next look, rather
    than left a zombie that holds its pid until this process ends.
    """

    def __init__(self) -> None:
        self._popen: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> tuple[int, float]:
        """Start ``argv`` with its output appended to ``log``; return (pid, start time).

        Raises ``OSError`` when the program cannot be started."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with self._lock:
            self._popen[popen.pid] = popen
        return popen.pid, psutil.Process(popen.pid).create_time()  # a zombie still has one

    def reap(self) -> None:
        with self._lock:
            for pid, popen in list(self._popen.items()):
                if popen.poll() is not None:
                    del self._popen[pid]

    def running(self, pid: int, create_time: float) -> bool:
        self.reap()
        return process_running(pid, create_time)

    def stop(self, processes: Mapping[int, float], grace_s: float) -> None:
        """Stop these processes' groups (pid → start time), with everything they spawned;
        Ctrl-C is held meanwhile so that the SIGKILL after the grace is never skipped.

        A group is signalled only when its leader is this very process or is gone (its
        children may outlive it, and the kernel hands out no pid that is still a group's id);
        a pid that another program has since been given is left alone."""
        ours = {pid: started for pid, started in processes.items() if _ours_or_gone(pid, started)}
        with signals_deferred():
            terminate_groups(ours, lambda pid: self.running(pid, ours[pid]), grace_s)
            self.reap()


def _ours_or_gone(pid: int, create_time: float) -> bool:
    try:
        return abs(psutil.Process(pid).create_time() - create_time) < 1.0  # a zombie too
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while cleaning up, then deliver nothing more.

    A second Ctrl-C in the middle of stopping JVMs would otherwise skip the SIGKILL that
    follows the SIGTERM and leave processes behind.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _CLEANUP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int, host: str = "127.0.0.1") -> int:
    """``preferred`` when it is free on ``host``, else any free port the kernel picks."""
    if port_free(host, preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.5) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout_s`` has passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
