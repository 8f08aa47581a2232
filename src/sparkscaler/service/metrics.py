"""Prometheus collectors for ``/metrics``: what the cluster looks like and what the loop did.

They live on a private :class:`CollectorRegistry`, not prometheus-client's global one, so that
several apps in one process (the tests start many) do not register the same names twice.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import Enum as StateEnum

from sparkscaler.controller import Step
from sparkscaler.service.modes import MODES, Mode

#: Worker states a gauge is kept for; a worker in any other state (DEAD) is not in the cluster.
WORKER_STATES = ("ALIVE", "PROVISIONING", "DECOMMISSIONED")
#: Where an observation's problems come from: the master (a stale observation) or the
#: applications' REST APIs (a partial one).
SOURCES = ("master", "applications")
#: Decision latency is sub-millisecond for rule policies and a few ms for learned ones
#: (README, "decision latency"); the buckets resolve both and catch a slow outlier.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0)


class ServiceMetrics:
    """Everything ``/metrics`` shows, updated by the runtime after each decision."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.workers = Gauge(
            "sparkscaler_workers",
            "Workers in the last observation, by state",
            ["state"],
            registry=r,
        )
        self.target = Gauge(
            "sparkscaler_target_workers", "The worker count the service steers to", registry=r
        )
        self.pending_tasks = Gauge(
            "sparkscaler_pending_tasks", "Tasks waiting for a core (last observation)", registry=r
        )
        self.running_tasks = Gauge(
            "sparkscaler_running_tasks", "Tasks running (last observation)", registry=r
        )
        self.decisions = Counter(
            "sparkscaler_decisions",
            "Decisions recorded, by policy and action",
            ["policy", "action"],
            registry=r,
        )
        self.decision_latency = Histogram(
            "sparkscaler_decision_latency_seconds",
            "Time the policy and the guard took for one decision",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.source_errors = Counter(
            "sparkscaler_metric_source_errors",
            "Observation problems, by source: master unreachable, or an application's REST "
            "API not found",
            ["source"],
            registry=r,
        )
        self.mode = StateEnum("sparkscaler_mode", "The service's mode", states=MODES, registry=r)
        # Every labelled series exists from the start, so that a scrape sees zeros, not gaps.
        for state in WORKER_STATES:
            self.workers.labels(state)
        for source in SOURCES:
            self.source_errors.labels(source)

    def record_step(self, step: Step, policy: str) -> None:
        """One iteration of the loop; ``policy`` names the decision when a stale observation
        left the policy out."""
        obs, outcome = step.observation, step.outcome
        for state in WORKER_STATES:
            self.workers.labels(state).set(sum(1 for w in obs.cluster.workers if w.state == state))
        self.pending_tasks.set(obs.pending_tasks)
        self.running_tasks.set(obs.running_tasks)
        self.count_decision(outcome.decision.policy if outcome.decision else policy, outcome.action)
        self.decision_latency.observe(step.decide_s)
        if obs.stale:
            self.source_errors.labels("master").inc()
        else:
            self.source_errors.labels("applications").inc(len(obs.errors))

    def count_decision(self, policy: str, action: str) -> None:
        """A decision of the loop, or one taken by hand (policy ``manual``), which has no
        observation or latency of its own."""
        self.decisions.labels(policy, action).inc()

    def set_target(self, target: int | None) -> None:
        """The target gauge; NaN while there is none (manual mode before a first scale)."""
        self.target.set(float("nan") if target is None else target)

    def set_mode(self, mode: Mode) -> None:
        self.mode.state(mode)
