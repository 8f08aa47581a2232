"""The autoscaling loop: observe → policy.decide → guard → backend → store.

The same controller drives a real cluster and the simulator: only the clock, the backend and the
observer change. It never lets one bad source stop the loop: a stale observation holds, a policy
error holds, a backend error is recorded with the decision and the loop goes on.

It is built in one place, :mod:`sparkscaler.wiring`, for every use (run, serve, simulate,
evaluate, the Gymnasium env, the demo), and knows no backend but the protocol: which cluster it
drives is the wiring's choice.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sparkscaler.backends.base import Backend, BackendError
from sparkscaler.clock import Clock
from sparkscaler.config import ScalingSettings
from sparkscaler.core import ClusterState, Decision, GuardedDecision, Observation, choose_victims
from sparkscaler.guard import Guard
from sparkscaler.observe.history import JobHistory
from sparkscaler.observe.observer import Observer
from sparkscaler.policies.base import Policy
from sparkscaler.store import Store

log = logging.getLogger(__name__)


#: The policy name that decisions taken by hand are recorded under.
MANUAL = "manual"


@dataclass(frozen=True)
class Step:
    """What one iteration saw, decided and did. ``decide_s`` is the policy and guard's share of
    ``wall_s`` (the rest is observing and writing the store): the decision latency."""

    observation: Observation
    outcome: GuardedDecision
    acted: bool
    error: str | None
    wall_s: float
    decide_s: float = 0.0
    unreachable: dict[str, str] = dataclasses.field(default_factory=dict)


class Controller:
    """One autoscaling loop: each :meth:`step` observes, decides, guards, acts and records.

    Built by :mod:`sparkscaler.wiring`; the parts it is given are its only knowledge of where it
    runs.
    """

    def __init__(
        self,
        *,
        observer: Observer,
        policy: Policy,
        backend: Backend,
        store: Store,
        clock: Clock,
        scaling: ScalingSettings,
        guard: Guard | None = None,
        history: JobHistory | None = None,
        dry_run: bool = False,
    ) -> None:
        self.observer = observer
        self.policy = policy
        self.backend = backend
        self.store = store
        self.clock = clock
        self.scaling = scaling
        self.guard = guard or Guard(scaling, policy.own_rules)
        self.history = history
        self.dry_run = dry_run
        #: Steps on which the policy raised (the loop held instead), and the first error: a live
        #: loop goes on, an evaluation must not count such a run as the policy's (it checks).
        self.policy_failures = 0
        self.first_policy_failure: str | None = None

    def use_policy(self, policy: Policy) -> None:
        """Decide with ``policy`` from the next step on; the guard keeps its memory (a cooldown
        running stays running) and leaves the new policy the rules it brings itself."""
        self.policy = policy
        self.guard.own_rules = policy.own_rules

    def step(self) -> Step:
        started = time.perf_counter()
        obs = dataclasses.replace(
            self.observer.observe(),
            min_workers=self.scaling.min_workers,
            max_workers=self.scaling.max_workers,
        )
        observation_id = self.store.add_observation(obs)
        unreachable = self.backend.unreachable()
        deciding = time.perf_counter()
        outcome = self._decide(obs, unreachable)
        decide_s = time.perf_counter() - deciding
        dry_run = self.dry_run
        acted, error = (False, None) if dry_run else self._apply(outcome, obs)
        self.store.add_decision(
            obs.time,
            outcome,
            observation_id=observation_id,
            dry_run=dry_run,
            acted=acted,
            error=error,
        )
        self._learn()
        wall_s = time.perf_counter() - started
        return Step(obs, outcome, acted, error, wall_s, decide_s, unreachable)

    def _learn(self) -> None:
        """Store the jobs that finished since the last step and refit the policy on the whole
        history, so that a recurring job's next run is planned with what its last run taught
        (a policy that learns nothing from jobs keeps its ``fit`` a no-op)."""
        if self.history is None:
            return
        new = self.history.poll()
        if not new:
            return
        self.store.add_jobs(new)
        try:
            self.policy.fit(self.store.jobs())
        except Exception:  # a model that cannot learn from odd jobs must not stop the loop
            log.exception(
                "policy %s failed to learn from %d new job(s)", self.policy.name, len(new)
            )

    def scale_to(self, target: int, reason: str) -> Step:
        """Resize to a target set by hand, past the policy and the guard's rules (the service's
        manual mode), through the same backend calls and victim choice as the loop.

        It is recorded as a decision of the policy ``manual``, so the history shows who changed
        the size, and it starts the guard's cooldowns. The caller checks the bounds.
        """
        started = time.perf_counter()
        obs = Observation(
            time=self.clock.now(),
            cluster=ClusterState(workers=tuple(self.backend.workers())),
            min_workers=self.scaling.min_workers,
            max_workers=self.scaling.max_workers,
        )
        current = obs.workers
        action = "scale_out" if target > current else "scale_in" if target < current else "none"
        outcome = GuardedDecision(Decision(target, MANUAL, reason), current, target, action, reason)
        acted, error = self._apply(outcome, obs)
        if acted:
            self.guard.note_action(obs.time)
        self.store.add_decision(
            obs.time, outcome, observation_id=None, dry_run=False, acted=acted, error=error
        )
        return Step(obs, outcome, acted, error, time.perf_counter() - started)

    def close(self) -> None:
        self.observer.close()

    def _decide(self, obs: Observation, unreachable: dict[str, str]) -> GuardedDecision:
        """The guarded decision, its reason ending with what the observation had to ignore (a
        job's unreadable deadline) and the hosts the backend cannot reach, so that the history
        says why a job was not planned for or a cluster stayed smaller than asked."""
        outcome = self._guarded(obs)
        notes = [*obs.warnings, *(f"host {h} skipped: {why}" for h, why in unreachable.items())]
        if not notes:
            return outcome
        return dataclasses.replace(outcome, reason="; ".join((outcome.reason, *notes)))

    def _guarded(self, obs: Observation) -> GuardedDecision:
        if obs.stale:
            return self.guard.evaluate(None, obs)
        try:
            decision = self.policy.decide(obs)
        except Exception as error:  # a policy bug must not stop the autoscaler
            log.exception("policy %s failed", self.policy.name)
            self.policy_failures += 1
            if self.first_policy_failure is None:
                self.first_policy_failure = f"{type(error).__name__}: {error}"
            why = f"holding at {obs.workers}: policy {self.policy.name} failed ({error})"
            return GuardedDecision(None, obs.workers, obs.workers, "hold", why)
        return self.guard.evaluate(decision, obs)

    def _apply(self, outcome: GuardedDecision, obs: Observation) -> tuple[bool, str | None]:
        """Act on a scale decision: (acted, the backend's error). A failed action is recorded
        with its decision and the loop goes on."""
        if outcome.action not in ("scale_out", "scale_in"):
            return False, None
        try:
            self._act(outcome, obs)
        except BackendError as exc:
            log.warning("scaling to %d failed: %s", outcome.target, exc)
            return False, str(exc)
        return True, None

    def _act(self, outcome: GuardedDecision, obs: Observation) -> None:
        delta = outcome.target - outcome.current
        if delta > 0:
            self.backend.launch(delta)
        else:
            # Only the backend's own workers: an attached cluster has workers it did not start,
            # and those are never stopped.
            ours = {w.id for w in self.backend.workers()}
            mine = tuple(w for w in obs.cluster.workers if w.id in ours)
            victims = choose_victims(dataclasses.replace(obs.cluster, workers=mine), -delta)
            if not victims:
                raise BackendError("no worker of this backend to remove (the others are not ours)")
            self.backend.decommission(victims, self.scaling.decommission_timeout_s)

    def run(
        self,
        *,
        iterations: int | None = None,
        stop: threading.Event | None = None,
        on_step: Callable[[Step], None] | None = None,
    ) -> int:
        """Loop every ``interval_s`` until ``stop`` is set or ``iterations`` are done."""
        done = 0
        while (iterations is None or done < iterations) and not (stop and stop.is_set()):
            began = self.clock.now()
            step = self.step()
            done += 1
            if on_step is not None:
                on_step(step)
            if iterations is not None and done >= iterations:
                break
            self.clock.sleep(max(0.0, self.scaling.interval_s - (self.clock.now() - began)))
        return done
