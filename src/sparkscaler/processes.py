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
import threading
import time
from collections.abc import Callable, Iterable, Iterator

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
