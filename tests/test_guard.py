"""The guard on hand-built observations: bounds, cooldowns, stabilisation, holds; and the
rules a policy brings itself, which the guard leaves to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkscaler.config import Config, PolicySettings, ScalingSettings, SimulationSettings
from sparkscaler.controller import Step
from sparkscaler.core import ClusterState, Decision, Observation, WorkerInfo
from sparkscaler.guard import Guard
from sparkscaler.policies import make_policy
from sparkscaler.sim.workload import FixedDurations, JobSpec, Stage
from sparkscaler.store import Store
from sparkscaler.wiring import make_sim, simulated_loop

T0 = 1_700_000_000.0


def _obs(
    time: float, workers: int, *, stale: bool = False, errors: tuple[str, ...] = ()
) -> Observation:
    cluster = ClusterState(
        workers=tuple(
            WorkerInfo(
                id=f"worker-{i}",
                host=f"127.0.0.{i + 2}",
                port=40000 + i,
                state="ALIVE",
                cores=1,
                cores_used=0,
                memory_mb=1024,
                memory_used_mb=0,
            )
            for i in range(workers)
        )
    )
    return Observation(time=time, cluster=cluster, stale=stale, errors=errors)


def _want(target: int, reason: str = "policy says so") -> Decision:
    return Decision(target=target, policy="test", reason=reason)


def _guard(**overrides: float) -> Guard:
    settings = {
        "min_workers": 1,
        "max_workers": 6,
        "scale_out_cooldown_s": 0,
        "scale_in_cooldown_s": 0,
        "scale_in_stabilization_s": 0,
        **overrides,
    }
    return Guard(ScalingSettings(**settings))


# ------------------------------------------------------------------------------- bounds
def test_target_above_max_is_clamped_to_max() -> None:
    out = _guard(max_workers=4).evaluate(_want(9), _obs(T0, 2))
    assert (out.current, out.target, out.action) == (2, 4, "scale_out")
    assert "maximum of 4" in out.reason
    assert "minimum" not in out.reason
    assert out.reason.startswith("policy says so")


def test_target_below_min_is_clamped_to_min() -> None:
    out = _guard(min_workers=2).evaluate(_want(0), _obs(T0, 3))
    assert (out.current, out.target, out.action) == (3, 2, "scale_in")
    assert "minimum of 2" in out.reason
    assert "maximum" not in out.reason


def test_target_inside_bounds_is_untouched() -> None:
    out = _guard(min_workers=1, max_workers=6).evaluate(_want(5), _obs(T0, 2))
    assert (out.target, out.action) == (5, "scale_out")
    assert out.reason == "policy says so"


def test_wanting_the_current_size_is_action_none() -> None:
    out = _guard().evaluate(_want(3), _obs(T0, 3))
    assert (out.current, out.target, out.action) == (3, 3, "none")


def test_clamped_to_the_current_size_is_action_none() -> None:
    out = _guard(max_workers=4).evaluate(_want(10), _obs(T0, 4))
    assert (out.target, out.action) == (4, "none")
    assert "maximum of 4" in out.reason


def test_current_below_min_is_restored_even_within_a_cooldown() -> None:
    guard = _guard(min_workers=2, max_workers=6, scale_out_cooldown_s=100, scale_in_cooldown_s=100)
    first = guard.evaluate(_want(4), _obs(T0, 3))
    assert first.action == "scale_out"  # starts the cooldowns
    # A worker died: 1 is below the minimum; the policy would even like 1.
    out = guard.evaluate(_want(1), _obs(T0 + 1, 1))
    assert (out.current, out.target, out.action) == (1, 2, "scale_out")
    assert "restoring bounds" in out.reason


def test_current_above_max_is_restored_even_within_a_cooldown() -> None:
    guard = _guard(max_workers=4, scale_out_cooldown_s=100, scale_in_cooldown_s=100)
    assert guard.evaluate(_want(3), _obs(T0, 2)).action == "scale_out"
    out = guard.evaluate(_want(6), _obs(T0 + 1, 6))
    assert (out.current, out.target, out.action) == (6, 4, "scale_in")
    assert "restoring bounds" in out.reason


def test_restoring_bounds_is_an_action_that_starts_the_cooldown() -> None:
    guard = _guard(min_workers=2, scale_out_cooldown_s=10)
    assert guard.evaluate(_want(2), _obs(T0, 0)).action == "scale_out"
    held = guard.evaluate(_want(4), _obs(T0 + 5, 2))
    assert (held.target, held.action) == (2, "hold")
    assert guard.evaluate(_want(4), _obs(T0 + 10, 2)).action == "scale_out"


# ------------------------------------------------------------------------------- cooldowns
def test_scale_out_cooldown_holds_then_allows_at_its_exact_end() -> None:
    guard = _guard(scale_out_cooldown_s=10)
    assert guard.evaluate(_want(3), _obs(T0, 2)).action == "scale_out"

    held = guard.evaluate(_want(4), _obs(T0 + 4, 3))
    assert (held.current, held.target, held.action) == (3, 3, "hold")
    assert "cooldown" in held.reason
    assert "6 s left" in held.reason  # 10 - 4
    assert "wants 4" in held.reason

    still = guard.evaluate(_want(4), _obs(T0 + 9.999, 3))
    assert still.action == "hold"

    allowed = guard.evaluate(_want(4), _obs(T0 + 10, 3))
    assert (allowed.target, allowed.action) == (4, "scale_out")

    # That action restarts the cooldown.
    again = guard.evaluate(_want(5), _obs(T0 + 15, 4))
    assert again.action == "hold"
    assert guard.evaluate(_want(5), _obs(T0 + 20, 4)).action == "scale_out"


def test_the_first_decision_has_no_cooldown() -> None:
    out = _guard(scale_out_cooldown_s=1000).evaluate(_want(3), _obs(T0, 1))
    assert out.action == "scale_out"


def test_scale_in_cooldown_is_separate_from_scale_out_cooldown() -> None:
    guard = _guard(scale_out_cooldown_s=10, scale_in_cooldown_s=30)
    assert guard.evaluate(_want(4), _obs(T0, 3)).action == "scale_out"

    # 20 s later a scale-out would be allowed, a scale-in is not.
    held = guard.evaluate(_want(2), _obs(T0 + 20, 4))
    assert (held.target, held.action) == (4, "hold")
    assert "10 s left" in held.reason
    assert guard.evaluate(_want(2), _obs(T0 + 29.9, 4)).action == "hold"

    out = guard.evaluate(_want(2), _obs(T0 + 30, 4))
    assert (out.current, out.target, out.action) == (4, 2, "scale_in")


def test_scale_in_after_scale_in_waits_the_scale_in_cooldown() -> None:
    guard = _guard(scale_in_cooldown_s=30)
    assert guard.evaluate(_want(4), _obs(T0, 5)).action == "scale_in"
    assert guard.evaluate(_want(3), _obs(T0 + 29, 4)).action == "hold"
    out = guard.evaluate(_want(3), _obs(T0 + 30, 4))
    assert (out.target, out.action) == (3, "scale_in")


def test_a_none_decision_does_not_start_a_cooldown() -> None:
    guard = _guard(scale_out_cooldown_s=10)
    assert guard.evaluate(_want(2), _obs(T0, 2)).action == "none"
    assert guard.evaluate(_want(3), _obs(T0 + 1, 2)).action == "scale_out"


def test_an_action_taken_by_hand_starts_the_cooldown() -> None:
    guard = _guard(scale_out_cooldown_s=30)
    guard.note_action(T0)
    held = guard.evaluate(_want(4), _obs(T0 + 10, 2))
    assert held.action == "hold" and "20 s left" in held.reason
    assert guard.evaluate(_want(4), _obs(T0 + 30, 2)).action == "scale_out"


# ------------------------------------------------------------------------------- stabilisation
def test_scale_in_is_stabilised_to_the_highest_recent_target() -> None:
    guard = _guard(scale_in_stabilization_s=60)
    assert guard.evaluate(_want(5), _obs(T0, 5)).action == "none"

    out = guard.evaluate(_want(2), _obs(T0 + 10, 5))
    assert (out.current, out.target, out.action) == (5, 5, "none")
    assert "stabilised 2 → 5" in out.reason

    # The target of 5 at T0 is still inside the window at exactly T0 + 60.
    edge = guard.evaluate(_want(2), _obs(T0 + 60, 5))
    assert (edge.target, edge.action) == (5, "none")

    # Past the window only the low targets are left: scale in to the new target.
    out = guard.evaluate(_want(2), _obs(T0 + 60.5, 5))
    assert (out.current, out.target, out.action) == (5, 2, "scale_in")
    assert "stabilised" not in out.reason


def test_stabilisation_uses_the_highest_target_not_the_latest() -> None:
    guard = _guard(scale_in_stabilization_s=60)
    assert guard.evaluate(_want(4), _obs(T0, 6)).target == 4  # nothing higher seen yet
    out = guard.evaluate(_want(2), _obs(T0 + 5, 6))
    # targets in window: 4, 2 -> highest 4
    assert (out.target, out.action) == (4, "scale_in")
    assert "stabilised 2 → 4" in out.reason


def test_stabilised_target_never_exceeds_current() -> None:
    guard = _guard(max_workers=10, scale_in_stabilization_s=60)
    assert guard.evaluate(_want(8), _obs(T0, 3)).target == 8
    # The cluster is still at 3 (the scale-out did not happen); the policy now wants 2.
    out = guard.evaluate(_want(2), _obs(T0 + 5, 3))
    assert (out.current, out.target, out.action) == (3, 3, "none")
    assert "stabilised 2 → 3" in out.reason


def test_stabilisation_does_not_delay_scale_out() -> None:
    guard = _guard(scale_in_stabilization_s=600)
    guard.evaluate(_want(6), _obs(T0, 2))
    out = guard.evaluate(_want(3), _obs(T0 + 1, 2))
    assert (out.target, out.action) == (3, "scale_out")


# ------------------------------------------------------------------------------- holds
def test_stale_observation_holds_with_the_error_and_changes_nothing() -> None:
    guard = _guard(scale_out_cooldown_s=10, scale_in_stabilization_s=60)
    stale = _obs(T0, 3, stale=True, errors=("Spark master at x did not answer: refused",))
    out = guard.evaluate(_want(5), stale)
    assert (out.current, out.target, out.action) == (3, 3, "hold")
    assert "stale" in out.reason
    assert "did not answer: refused" in out.reason
    assert out.decision == _want(5)

    # No cooldown was started: a scale-out one second later is allowed ...
    assert guard.evaluate(_want(4), _obs(T0 + 1, 3)).action == "scale_out"
    # ... and the stale wish for 5 was not recorded for stabilisation: only 4 is.
    out = guard.evaluate(_want(1), _obs(T0 + 20, 6))
    assert (out.target, out.action) == (4, "scale_in")


def test_stale_without_errors_still_explains_itself() -> None:
    out = _guard().evaluate(_want(5), _obs(T0, 2, stale=True))
    assert out.action == "hold"
    assert "stale" in out.reason


def test_no_decision_holds_and_changes_nothing() -> None:
    guard = _guard(scale_out_cooldown_s=10, scale_in_stabilization_s=60)
    out = guard.evaluate(None, _obs(T0, 2))
    assert (out.decision, out.current, out.target, out.action) == (None, 2, 2, "hold")
    assert "no decision" in out.reason
    assert guard.evaluate(_want(3), _obs(T0 + 1, 2)).action == "scale_out"


@pytest.mark.parametrize("stale", [True, False])
def test_holds_do_not_restore_bounds(stale: bool) -> None:
    """A hold never acts, even when the cluster is outside the bounds."""
    guard = _guard(min_workers=2)
    out = guard.evaluate(None if not stale else _want(3), _obs(T0, 0, stale=stale))
    assert (out.target, out.action) == (0, "hold")


# ---------------------------------------------------------------------------------- own rules
def test_a_cooldown_the_policy_brings_is_left_to_it() -> None:
    full = _guard(scale_out_cooldown_s=60.0)
    bare = Guard(full.settings, frozenset({"cooldown"}))
    for guard in (full, bare):
        assert guard.evaluate(_want(4), _obs(T0, 2)).action == "scale_out"
    assert full.evaluate(_want(6), _obs(T0 + 5, 4)).action == "hold"
    assert bare.evaluate(_want(6), _obs(T0 + 5, 4)).action == "scale_out"


def test_a_stabilisation_the_policy_brings_is_left_to_it() -> None:
    full = _guard(scale_in_stabilization_s=300.0)
    bare = Guard(full.settings, frozenset({"stabilization"}))
    for guard in (full, bare):
        assert guard.evaluate(_want(6), _obs(T0, 6)).action == "none"
    assert full.evaluate(_want(2), _obs(T0 + 10, 6)).target == 6
    outcome = bare.evaluate(_want(2), _obs(T0 + 10, 6))
    assert (outcome.action, outcome.target) == ("scale_in", 2)
    assert "stabilised" not in outcome.reason


def test_bounds_apply_whatever_rules_the_policy_brings() -> None:
    guard = Guard(_guard().settings, frozenset({"cooldown", "stabilization"}))
    assert guard.evaluate(_want(99), _obs(T0, 4)).target == guard.settings.max_workers
    assert guard.evaluate(_want(0), _obs(T0 + 1, 4)).target == guard.settings.min_workers


def _peer_steps(name: str, *, full_guard: bool) -> list[Step]:
    """The loop the wiring builds for a peer, over a burst of work on the simulator, pacing
    rules far stricter than the peer's own (so that they would show)."""
    cfg = Config(
        scaling=ScalingSettings(
            min_workers=1,
            max_workers=6,
            interval_s=5.0,
            scale_out_cooldown_s=120.0,
            scale_in_cooldown_s=300.0,
            scale_in_stabilization_s=900.0,
        ),
        simulation=SimulationSettings(provisioning=(8.0, 8.0), initial_workers=2),
        policy=PolicySettings(name=name),
    )
    jobs = [
        JobSpec(i, "burst", 300.0 * i, (Stage(0, 60, FixedDurations(20.0)),), 1.0) for i in range(3)
    ]
    with Store(Path(":memory:"), worker_detail=False) as store:
        loop = simulated_loop(cfg, make_sim(cfg, jobs, seed=0), store)
        if full_guard:
            loop.guard = Guard(cfg.scaling)
        steps = []
        for _ in range(360):
            steps.append(loop.step())
            loop.clock.sleep(cfg.scaling.interval_s)
    return steps


@pytest.mark.parametrize("name", ["hpa", "dra", "dataproc"])
def test_a_faithful_peer_behind_the_guard_acts_as_it_does_alone(name: str) -> None:
    """Every target the loop acted on is the peer's own decision (HPA's stabilisation and rate
    limits, Spark's timeouts, Dataproc's cooldown), within the bounds: the guard added nothing."""
    steps = _peer_steps(name, full_guard=False)
    alone = make_policy(name)
    for step in steps:
        wanted = alone.decide(step.observation).target
        assert step.outcome.target == min(max(wanted, 1), 6), step.outcome.reason
    actions = [s.outcome.action for s in steps]
    assert "scale_out" in actions and "scale_in" in actions
    # the same peer behind every rule of the guard is held back: the rules would have shown
    held = _peer_steps(name, full_guard=True)
    assert [s.outcome.target for s in held] != [s.outcome.target for s in steps]
