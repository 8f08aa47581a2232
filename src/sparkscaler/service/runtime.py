"""The service's control loop: the controller in a background thread, and the mode, policy and
manual target that the API changes while it runs.

One lock serialises the loop's iterations and every change from the API, so that a policy is
never swapped in the middle of a decision and a resize by hand never races one of the loop's.
It is held for one iteration (milliseconds; seconds when the local backend launches a worker),
never while the loop waits for the next one. Reading the status takes only a second, small lock
around the runtime's own fields, so that it answers at once even during a launch.

The modes are described in ``modes.py``; here they become the controller's ``dry_run`` and the
check that a size set by hand (:meth:`Runtime.scale_to`) needs ``manual``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from sparkscaler.config import ScalingSettings
from sparkscaler.controller import MANUAL, Controller, Step
from sparkscaler.logs import log_step
from sparkscaler.policies import validate_policy_settings
from sparkscaler.service.metrics import ServiceMetrics
from sparkscaler.service.modes import MODES, Mode
from sparkscaler.wiring import PolicyContext

log = logging.getLogger(__name__)


class InvalidRequest(ValueError):
    """A request whose content is wrong, with one line per problem; nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class WrongMode(RuntimeError):
    """A request that the current mode does not allow; nothing was changed."""


@dataclass(frozen=True)
class LastDecision:
    """The latest recorded decision, of the loop or by hand, and whether it was a dry run."""

    step: Step
    dry_run: bool


@dataclass(frozen=True)
class Snapshot:
    """The runtime at one instant, read at once so that its parts agree.

    ``target`` is the size the service steers to: the loop's last target (in ``recommend``
    mode, what it recommends), or in ``manual`` mode the last one set by hand (None before any).
    """

    mode: Mode
    policy: str
    params: dict[str, Any]
    scaling: ScalingSettings
    target: int | None
    last_step: Step | None
    last_decision: LastDecision | None
    running: bool
    loop_error: str | None


class Runtime:
    """Owns a :class:`Controller` and runs its loop in a thread until :meth:`stop`.

    ``context``: what the loop's policies are built with (the wiring's, for the loop it built),
    so that a policy switched in through the API is the policy ``sparkscaler run`` would build.

    ``speedup``: None when the controller's clock is the wall clock (the loop waits
    ``interval_s`` between iterations, as ``sparkscaler run`` does). For a simulated clock, the
    simulated seconds per wall second: the loop advances the simulation by ``interval_s`` (under
    the lock, as the API touches the same simulator) and pauses ``interval_s / speedup`` s, so
    that it runs live instead of as fast as the CPU allows.
    """

    def __init__(
        self,
        controller: Controller,
        context: PolicyContext,
        *,
        mode: Mode = "auto",
        speedup: float | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        if speedup is not None and speedup <= 0:
            raise ValueError(f"speedup must be positive, got {speedup}")
        self.controller = controller
        self.context = context
        self.speedup = speedup
        self.metrics = metrics or ServiceMetrics()
        #: Taken by every loop iteration and every change; hold it to read what the loop uses.
        self.lock = threading.Lock()
        # Guards the fields below; taken after ``lock`` by writers, alone by :meth:`snapshot`.
        self._state = threading.Lock()
        self._stop = threading.Event()
        # Set when the loop has ended; waited on instead of joining the thread (see server.py).
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._mode: Mode = mode
        self._manual_target: int | None = None
        self._last_step: Step | None = None
        self._last_decision: LastDecision | None = None
        self._loop_error: str | None = None
        controller.dry_run = mode != "auto"
        self.metrics.set_mode(mode)
        self.metrics.set_target(None)

    # ------------------------------------------------------------------ the loop
    def start(self) -> None:
        """Start the loop. Its thread is a daemon only as a last resort: :meth:`stop` ends it."""
        if self._thread is not None:
            raise RuntimeError("the loop was started already")
        self._thread = threading.Thread(target=self._loop, name="sparkscaler-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the loop after its current iteration; False if that is still running after
        ``timeout`` seconds (a local worker's launch can take up to its start-up timeout)."""
        self._stop.set()
        if self._thread is None:
            return True
        if not self._done.wait(timeout):
            return False
        self._thread.join()
        return True

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        if not self.stop():
            log.warning("the control loop did not stop in time; leaving it to exit on its own")

    def _loop(self) -> None:
        clock, interval = self.controller.clock, self.controller.scaling.interval_s
        try:
            while not self._stop.is_set():
                began = clock.now()
                with self.lock:
                    self._iterate()
                self._wait(max(0.0, interval - (clock.now() - began)))
        finally:
            self._done.set()

    def _iterate(self) -> None:
        try:
            step = self.controller.step()
        except Exception as error:  # one failed iteration must not end the service
            log.exception("a control loop iteration failed")
            with self._state:
                self._loop_error = f"{type(error).__name__}: {error}"
            return
        log_step(step)
        with self._state:
            self._loop_error = None
            self._last_step = step
            self._last_decision = LastDecision(step, dry_run=self.controller.dry_run)
            self.metrics.record_step(step, self.controller.policy.name)
            self.metrics.set_target(self._target())

    def _wait(self, seconds: float) -> None:
        if self.speedup is None:
            self._stop.wait(seconds)
            return
        with self.lock:
            self.controller.clock.sleep(seconds)
        self._stop.wait(seconds / self.speedup)

    def _target(self) -> int | None:
        if self._mode == "manual":
            return self._manual_target
        return None if self._last_step is None else self._last_step.outcome.target

    # ------------------------------------------------------------------ what the API calls
    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; entering ``manual`` starts without a target until one is set."""
        if mode not in MODES:
            raise InvalidRequest([f"mode: {mode!r} is not one of {', '.join(MODES)}"])
        with self.lock, self._state:
            if mode == "manual" and self._mode != "manual":
                self._manual_target = None
            self._mode = mode
            self.controller.dry_run = mode != "auto"
            self.metrics.set_mode(mode)
            self.metrics.set_target(self._target())
        log.info("mode set to %s", mode)

    def switch_policy(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Replace the policy with a new one, built as the loop's first one was and fitted to
        the store's job history; returns its parameters with their defaults filled in.

        It is built and fitted before the lock is taken (fitting a learned policy can take a
        while), then swapped in between two iterations; a policy that cannot be built changes
        nothing.
        """
        problems = validate_policy_settings(name, params)
        if problems:
            raise InvalidRequest(problems)
        try:
            policy = self.context.build(name, params, self.controller.store.jobs())
        except Exception as error:  # a model file that is missing or unreadable, bad history
            log.info("policy %s could not be built: %s", name, error)
            raise InvalidRequest([f"policy {name} could not be built: {error}"]) from None
        with self.lock:
            self.controller.use_policy(policy)
        log.info("policy switched to %s", name)
        return policy.get_params()

    def scale_to(self, workers: int) -> Step:
        """Resize by hand (``manual`` mode only) to a size within the configured bounds.

        Raises :class:`~sparkscaler.backends.base.BackendError` when the backend cannot tell
        which workers it has; a launch or decommission that fails is in the step's ``error``.
        """
        s = self.controller.scaling
        if not s.min_workers <= workers <= s.max_workers:
            raise InvalidRequest(
                [
                    f"workers: {workers} is outside the bounds {s.min_workers}–{s.max_workers} "
                    "(scaling.min_workers and scaling.max_workers)"
                ]
            )
        with self.lock:
            if self._mode != "manual":
                raise WrongMode(
                    f"the service is in {self._mode} mode; a size set by hand needs manual mode "
                    '(PUT /api/mode {"mode": "manual"})'
                )
            step = self.controller.scale_to(workers, f"set to {workers} by hand (POST /api/scale)")
            with self._state:
                self._manual_target = workers
                self._last_decision = LastDecision(step, dry_run=False)
                self.metrics.count_decision(MANUAL, step.outcome.action)
                self.metrics.set_target(workers)
        log.info("scaled by hand to %d: %s", workers, step.error or step.outcome.action)
        return step

    def snapshot(self) -> Snapshot:
        policy = self.controller.policy  # swapped whole, so name and parameters agree
        with self._state:
            return Snapshot(
                mode=self._mode,
                policy=policy.name,
                params=policy.get_params(),
                scaling=self.controller.scaling,
                target=self._target(),
                last_step=self._last_step,
                last_decision=self._last_decision,
                running=self._thread is not None and not self._done.is_set(),
                loop_error=self._loop_error,
            )
