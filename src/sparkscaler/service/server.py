"""uvicorn in a background thread, started and stopped explicitly.

Off the main thread uvicorn installs no signal handlers, so Ctrl-C and SIGTERM keep reaching
the command's own cleanup path (``cli._sigterm_as_interrupt``), which stops this server, the
loop and whatever cluster the command started, in that order. The tests run the same server.
"""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI


class ServerError(RuntimeError):
    """The server did not start (the port is taken, the address cannot be bound)."""


class ServiceServer:
    """One uvicorn server for ``app``, in a thread of its own, so that the caller's thread stays
    free to wait for a signal (``serve``) or to run a test."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host = host
        self.port = port
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        # Waiting is done on this event, never by joining the thread from the main thread: a
        # Ctrl-C that interrupts Thread.join leaves CPython 3.11 believing a running thread
        # has ended (the interrupted join releases the thread's own state lock).
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sparkscaler-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run()
        finally:
            self._done.set()

    def start(self, timeout: float = 10.0) -> None:
        """Serve in the background; return once the socket listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._done.is_set():
                raise ServerError(
                    f"cannot listen on {self.host}:{self.port} (in use by another program?); "
                    "choose another with --port or service.port"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"the server on {self.url} did not start in {timeout:g} s")
            time.sleep(0.02)

    def wait(self) -> None:
        """Block until the server stops; a signal interrupts the wait."""
        while not self._done.wait(0.5):
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the requests in flight (at most ``timeout_graceful_shutdown`` s), then stop."""
        self._server.should_exit = True
        if self._thread.ident is not None and self._done.wait(timeout):
            self._thread.join(timeout)

    def __enter__(self) -> ServiceServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
