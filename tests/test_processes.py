"""Stopping process groups, deferring signals and finding ports, on real processes and sockets."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import psutil
import pytest

from sparkscaler.processes import (
    ChildProcesses,
    free_port,
    port_free,
    process_running,
    signals_deferred,
    terminate_groups,
)

_PR_SET_CHILD_SUBREAPER = 36


class Processes:
    """Everything a test starts; all of it is SIGKILLed and reaped at the end, even on failure.

    While it is active this process is a child subreaper (Linux), so that the children of a
    group leader that exits come to us and can be reaped rather than linger as zombies.
    """

    def __init__(self) -> None:
        self.leaders: list[subprocess.Popen[str]] = []
        self.pids: list[int] = []
        libc = ctypes.CDLL(None, use_errno=True)
        self._prctl = getattr(libc, "prctl", None)
        self.subreaper = bool(self._prctl and self._prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0)

    def start(self, script: str) -> tuple[subprocess.Popen[str], int | None]:
        """Run ``script`` with bash as the leader of a new process group; if the script echoes
        a background child's pid ($!), that pid is returned too."""
        leader = subprocess.Popen(
            ["bash", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.leaders.append(leader)
        self.pids.append(leader.pid)
        child = None
        if "echo $!" in script:
            assert leader.stdout is not None
            child = int(leader.stdout.readline())
            self.pids.append(child)
        return leader, child

    def alive(self) -> Callable[[int], bool]:
        """``alive(pgid)`` for terminate_groups: does anything of the group still run?"""

        def alive(pgid: int) -> bool:
            for leader in self.leaders:
                leader.poll()  # reap our exited leaders
            for pid in self.pids:
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    if os.getpgid(pid) == pgid and not _dead(pid):
                        return True
            return False

        return alive

    def close(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for leader in self.leaders:
            leader.wait(timeout=10)
            if leader.stdout is not None:
                leader.stdout.close()
        for pid in self.pids:  # orphans that came to us as the subreaper
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if self.subreaper and self._prctl is not None:
            self._prctl(_PR_SET_CHILD_SUBREAPER, 0)


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _dies(pid: int, within_s: float = 2.0) -> bool:
    """A SIGKILLed process is gone once the kernel has delivered the signal: soon, not at once."""
    deadline = time.monotonic() + within_s
    while not _dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def procs() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.close()
    assert not [p for p in started.pids if psutil.pid_exists(p)], "processes left behind"


def test_groups_that_obey_sigterm_stop_without_waiting_out_the_grace(procs: Processes) -> None:
    plain, _ = procs.start("exec sleep 60")
    shell, child = procs.start("sleep 60 & echo $!; wait")
    assert child is not None
    assert os.getpgid(child) == shell.pid

    began = time.monotonic()
    terminate_groups([plain.pid, shell.pid], procs.alive(), grace_s=10.0)
    assert time.monotonic() - began < 5.0

    assert plain.wait(timeout=5) == -signal.SIGTERM
    assert shell.wait(timeout=5) == -signal.SIGTERM
    assert _dead(child)


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(procs: Processes) -> None:
    plain, _ = procs.start("exec sleep 60")
    stubborn, child = procs.start('trap "" TERM; sleep 60 & echo $!; wait')
    assert child is not None
    assert os.getpgid(child) == stubborn.pid

    began = time.monotonic()
    terminate_groups([plain.pid, stubborn.pid], procs.alive(), grace_s=0.6)
    took = time.monotonic() - began
    assert 0.6 <= took < 5.0

    assert plain.wait(timeout=5) == -signal.SIGTERM  # went at once
    assert stubborn.wait(timeout=5) == -signal.SIGKILL  # outlived the grace, then killed
    assert _dies(child)


@pytest.mark.parametrize("trap", ["", 'trap "" TERM; '])
def test_a_group_whose_leader_exited_is_still_stopped(procs: Processes, trap: str) -> None:
    leader, child = procs.start(f"{trap}sleep 60 & echo $!; exit 0")
    assert child is not None
    assert leader.wait(timeout=5) == 0
    # The leader is gone, its background child still runs in the leader's group.
    assert not _dead(child)
    assert os.getpgid(child) == leader.pid

    began = time.monotonic()
    terminate_groups([leader.pid], procs.alive(), grace_s=0.6)
    assert time.monotonic() - began < 5.0
    assert _dies(child)


def test_terminating_groups_that_are_already_gone_does_not_raise(procs: Processes) -> None:
    gone, _ = procs.start("exit 0")
    assert gone.wait(timeout=5) == 0
    began = time.monotonic()
    terminate_groups([gone.pid], procs.alive(), grace_s=10.0)
    terminate_groups([], procs.alive(), grace_s=10.0)
    assert time.monotonic() - began < 2.0


# ------------------------------------------------------------------------------- signals
@pytest.fixture
def sigint_handler() -> Iterator[list[int]]:
    """A recording SIGINT handler in place of pytest's, put back afterwards."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, handler)
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # Python runs handlers between bytecodes of the main thread


def test_signals_deferred_ignores_sigint_and_restores_the_handler(
    sigint_handler: list[int],
) -> None:
    handler = signal.getsignal(signal.SIGINT)
    term, hup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    with signals_deferred():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        _deliver(signal.SIGINT)  # a Ctrl-C during cleanup
        assert sigint_handler == []
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.getsignal(signal.SIGTERM) == term
    assert signal.getsignal(signal.SIGHUP) == hup
    assert sigint_handler == []  # ignored, not held back for later

    _deliver(signal.SIGINT)
    assert sigint_handler == [signal.SIGINT]


def test_signals_deferred_restores_the_handler_when_the_block_raises(
    sigint_handler: list[int],
) -> None:
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="cleanup failed"), signals_deferred():
        raise RuntimeError("cleanup failed")
    assert signal.getsignal(signal.SIGINT) is handler


def test_signals_deferred_outside_the_main_thread_changes_nothing(
    sigint_handler: list[int],
) -> None:
    handler = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def cleanup() -> None:
        with signals_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=cleanup)
    thread.start()
    thread.join(timeout=5)
    assert seen == [handler]
    assert signal.getsignal(signal.SIGINT) is handler


# ------------------------------------------------------------------------------- ports
def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)  # closed: free again


def test_a_bound_port_is_not_free() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert not port_free("127.0.0.1", port)


def test_free_port_prefers_the_given_port_when_it_is_free() -> None:
    port = _unused_port()
    assert free_port(port) == port
    assert free_port(port, host="127.0.0.1") == port


def test_free_port_picks_another_when_the_preferred_one_is_taken() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        taken = server.getsockname()[1]
        other = free_port(taken)
        assert other != taken
        assert 0 < other < 65536
        assert port_free("127.0.0.1", other)


# ------------------------------------------------------------------------------- daemons
def test_child_processes_start_a_group_leader_with_its_log_and_stop_it(tmp_path: Path) -> None:
    children = ChildProcesses()
    log = tmp_path / "logs" / "d.log"
    pid, created = children.spawn(["bash", "-c", "echo started; exec sleep 60"], {}, log)
    try:
        assert os.getpgid(pid) == pid and children.running(pid, created)
        assert _eventually(lambda: log.read_text() == "started\n")
        children.stop({pid: created}, grace_s=5.0)
        assert not children.running(pid, created)
        assert not psutil.pid_exists(pid)  # reaped, not left a zombie
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def test_child_processes_never_signal_a_pid_given_to_another_program(procs: Processes) -> None:
    """A recorded pid whose start time differs is someone else's process now: left alone."""
    other, _ = procs.start("exec sleep 60")
    started = psutil.Process(other.pid).create_time()
    ChildProcesses().stop({other.pid: started - 3600.0}, grace_s=0.2)
    assert other.poll() is None and process_running(other.pid, started)


def _eventually(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
