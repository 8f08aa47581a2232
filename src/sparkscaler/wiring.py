"""The only place that builds a loop: backend, observer, clock, policy, guard, store, history.

Every use of the controller gets it from here (``run`` and ``serve`` with :func:`live_loop`;
``simulate``, the evaluation and the Gymnasium env with :func:`simulated_loop`; the demo), so
that a policy is evaluated and trained exactly as it is run: built by one :func:`build_policy`
from the same parameters, with the same kind of runtime model and provisioning delay, behind the
same guard. What differs between uses is only what a loop is given, and it is given here:

- the **provisioning delay** a planner plans with (how long a requested worker takes to run
  tasks): on a real cluster the start-up measured on this machine's local cluster
  (:data:`LIVE_PROVISIONING_S`), in the simulator the longest start-up the simulation draws
  (:func:`simulated_provisioning_s`); a ``provisioning_s`` in the policy's parameters wins;
- the **runtime model**: in production none: a planner learns each recurring job from the
  store's finished jobs (``fit``, at build time and whenever jobs finish), so a restarted
  service plans the jobs it knows from its first decision; in the evaluation, the calibrated
  model it starts from, the prior for every job without history;
- the **guard**: the config's rules, but those the policy brings itself (``Policy.own_rules``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sparkscaler.backends.base import Backend
from sparkscaler.backends.simulated import SimClock, SimObserver, SimulatedBackend
from sparkscaler.clock import Clock
from sparkscaler.config import Config
from sparkscaler.controller import Controller
from sparkscaler.core import JobRecord
from sparkscaler.guard import Guard
from sparkscaler.observe.history import EventLogWatcher, JobHistory
from sparkscaler.observe.observer import Observer
from sparkscaler.policies import make_policy
from sparkscaler.policies.base import Policy
from sparkscaler.sim.cluster import (
    LOCAL_EXECUTOR_STARTUP_S,
    SimCluster,
    provisioning_range,
)
from sparkscaler.store import Store

if TYPE_CHECKING:  # types only: a rule policy's loop loads no model code
    from sparkscaler.backends.daemons import WorkerPool
    from sparkscaler.models.runtime_model import RuntimeModel
    from sparkscaler.sim.workload import JobSpec

#: Seconds before a worker asked of a real cluster runs tasks: the longest worker start (backlog
#: to ALIVE) and executor start measured on the local cluster (``benchmarks/reaction_time.py``),
#: the same JVM start-ups a worker on another host makes.
LIVE_PROVISIONING_S = provisioning_range("local")[1] + LOCAL_EXECUTOR_STARTUP_S[1]


def simulated_provisioning_s(config: Config) -> float:
    """Seconds before a worker asked of the simulator runs a job's first task, at worst: the
    safe side for a policy that plans with it."""
    high = provisioning_range(config.simulation.provisioning)[1]
    return high + config.simulation.executor_startup_s[1]


def build_policy(
    policy: Config | str,
    params: Mapping[str, Any] | None = None,
    *,
    runtime_model: RuntimeModel | None = None,
    provisioning_s: float = 0.0,
    history: Sequence[JobRecord] = (),
) -> Policy:
    """The policy a loop runs: the config's (or ``policy`` by name, with ``params``), given the
    runtime model and provisioning delay it plans with, and fitted to ``history``.

    ValueError when the parameters are invalid, :class:`~sparkscaler.errors.MissingExtraError`
    when the policy needs an extra that is not installed.
    """
    if isinstance(policy, Config):
        if params is not None:
            raise TypeError("params come from the config when a config is given")
        name, params = policy.policy.name, policy.policy.params
    else:
        name = policy
    built = make_policy(
        name, dict(params or {}), runtime_model=runtime_model, provisioning_s=provisioning_s
    )
    return built.fit(history)


@dataclass(frozen=True)
class PolicyContext:
    """What a loop gives the policies it builds: its runtime model and provisioning delay.

    Kept with a running loop so that a policy switched in later (the service's ``PUT
    /api/policy``) is built as the loop's first one was.
    """

    provisioning_s: float = 0.0
    runtime_model: RuntimeModel | None = None

    def build(
        self, name: str, params: Mapping[str, Any], history: Sequence[JobRecord] = ()
    ) -> Policy:
        return build_policy(
            name,
            params,
            runtime_model=self.runtime_model,
            provisioning_s=self.provisioning_s,
            history=history,
        )


def live_context() -> PolicyContext:
    """The context of a loop on a real cluster: the runtime model is learned from the store's
    finished jobs (each policy's ``fit``), not given."""
    return PolicyContext(LIVE_PROVISIONING_S)


def simulated_context(config: Config, runtime_model: RuntimeModel | None = None) -> PolicyContext:
    """The context of a loop on the simulator, with the runtime model it starts from (the
    evaluation's calibrated model), if any."""
    return PolicyContext(simulated_provisioning_s(config), runtime_model)


def build_loop(
    config: Config,
    *,
    backend: Backend,
    observer: Observer,
    clock: Clock,
    store: Store,
    context: PolicyContext,
    policy: Policy | None = None,
    history: JobHistory | None = None,
    dry_run: bool = False,
) -> Controller:
    """The controller over these parts, behind the config's guard less the rules the policy
    brings itself. Without ``policy``, the config's, built in ``context`` and fitted to the
    store's finished jobs."""
    if policy is None:
        policy = context.build(config.policy.name, config.policy.params, store.jobs())
    return Controller(
        observer=observer,
        policy=policy,
        backend=backend,
        store=store,
        clock=clock,
        scaling=config.scaling,
        guard=Guard(config.scaling, policy.own_rules),
        history=history,
        dry_run=dry_run,
    )


def live_loop(
    config: Config,
    store: Store,
    clock: Clock,
    *,
    backend: WorkerPool | None = None,
    dry_run: bool = False,
) -> Controller:
    """The loop of ``run``, ``serve`` and the demo on the real cluster (``backend``, by default
    the config's: :func:`sparkscaler.backends.open_backend`), its policy fitted to the store's
    job history, and new event logs flowing into the store."""
    from sparkscaler.backends import open_backend
    from sparkscaler.observe.observer import SparkObserver  # httpx and psutil: live loops only

    backend = open_backend(config) if backend is None else backend
    return build_loop(
        config,
        backend=backend,
        # the workers' process trees (for the CPU and network features), and the workers asked
        # for that the master does not list yet (PROVISIONING, so that none is launched twice)
        observer=SparkObserver.from_config(
            config, clock, roots=backend.worker_pids, provisioning=backend.workers
        ),
        clock=clock,
        store=store,
        context=live_context(),
        history=EventLogWatcher(config.state_dir / "events", store.job_ids()),
        dry_run=dry_run,
    )


def make_sim(
    config: Config,
    workload: list[JobSpec],
    seed: int,
    *,
    delays: Literal["drawn", "oracle", "best"] = "drawn",
) -> SimCluster:
    """The simulated cluster the config describes, loaded with ``workload``.

    ``delays`` says what provisioning and executor start-up delays its workers meet:
    ``"drawn"`` both drawn from their ranges (what every policy meets); ``"oracle"`` the same
    provisioning delays as ``"drawn"`` on the seed, since they are drawn in launch order from a
    stream of their own, and executor start-ups at the low end of their range, the
    evaluation's oracle; ``"best"`` both at the low end, where the oracle sizes a job.
    """
    s = config.simulation
    provisioning = s.provisioning
    startup = s.executor_startup_s
    if delays != "drawn":
        startup = (startup[0], startup[0])
    if delays == "best":
        low = provisioning_range(provisioning)[0]
        provisioning = (low, low)
    return SimCluster(
        workload,
        cores_per_worker=config.cluster.worker_cores,
        memory_mb_per_worker=config.cluster.worker_memory_mb,
        initial_workers=s.initial_workers,
        provisioning=provisioning,
        executor_startup_s=startup,
        seed=seed,
    )


def simulated_loop(
    config: Config,
    sim: SimCluster,
    store: Store,
    *,
    policy: Policy | None = None,
    runtime_model: RuntimeModel | None = None,
    default_deadline_s: float | None = None,
    observer: Observer | None = None,
    history: JobHistory | None = None,
) -> Controller:
    """The loop on the simulator ``sim`` (build it with :func:`make_sim`): ``policy``, or the
    config's built in :func:`simulated_context`; jobs without a deadline of their own get
    ``default_deadline_s``, else the config's ``deadline_s``. ``observer``: one that wraps the
    simulator's (the env shares its observations with the loop), in place of a plain one.
    ``history``: where the loop hears of finished jobs, to refit its policy as a live loop does
    from event logs (None: the policy learns nothing while the simulation runs)."""
    deadline = config.deadline_s if default_deadline_s is None else default_deadline_s
    return build_loop(
        config,
        backend=SimulatedBackend(sim),
        observer=observer or SimObserver(sim, deadline),
        clock=SimClock(sim),
        store=store,
        context=simulated_context(config, runtime_model),
        policy=policy,
        history=history,
    )
