"""The controller's parts that the service builds on: a size set by hand, which acts through the
backend like the loop, is recorded and starts the guard's cooldowns; the decision latency of a
step; and a dry run that never calls the backend. The simulator stands in for the cluster."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sparkscaler.backends.base import BackendError
from sparkscaler.backends.simulated import SimClock, SimObserver, SimulatedBackend
from sparkscaler.config import ScalingSettings
from sparkscaler.controller import Controller
from sparkscaler.core import JobRecord
from sparkscaler.policies import make_policy
from sparkscaler.policies.static import StaticPolicy
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.store import Store


class _LaunchFails(SimulatedBackend):
    def launch(self, count: int) -> list[str]:
        raise BackendError("no capacity left")

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        raise BackendError("the master refused")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


class _OneHostDown(SimulatedBackend):
    def unreachable(self) -> dict[str, str]:
        return {"198.18.0.9": "ssh: connection refused"}


class _AttachedToOthers(SimulatedBackend):
    """A backend that started only the last worker: the others are the attached cluster's."""

    def __init__(self, sim: SimCluster) -> None:
        super().__init__(sim)
        self.asked: list[str] = []

    def workers(self) -> list:  # type: ignore[type-arg]
        return super().workers()[-1:]

    def decommission(self, ids: Sequence[str], timeout: float) -> None:
        self.asked += ids
        super().decommission(ids, timeout)


def _controller(
    store: Store, backend_class: type[SimulatedBackend] = SimulatedBackend
) -> tuple[Controller, SimulatedBackend]:
    """Two idle one-core workers; a static policy that wants four."""
    sim = SimCluster([], initial_workers=2, provisioning=(5.0, 5.0), seed=0)
    backend = backend_class(sim)
    return Controller(
        observer=SimObserver(sim),
        policy=make_policy("static", {"workers": 4}),
        backend=backend,
        store=store,
        clock=SimClock(sim),
        scaling=ScalingSettings(
            min_workers=1, max_workers=4, scale_out_cooldown_s=10, scale_in_cooldown_s=10
        ),
    ), backend


def _size(controller: Controller) -> int:
    return sum(1 for w in controller.backend.workers() if w.state in ("ALIVE", "PROVISIONING"))


def test_scale_to_launches_and_records_a_manual_decision(store: Store) -> None:
    controller, _ = _controller(store)
    step = controller.scale_to(3, "set by hand")
    assert (step.outcome.current, step.outcome.target, step.outcome.action) == (2, 3, "scale_out")
    assert step.acted and step.error is None
    assert _size(controller) == 3
    (row,) = store.decisions()
    assert (row["policy"], row["action"], row["reason"]) == ("manual", "scale_out", "set by hand")
    assert (row["dry_run"], row["acted"], row["observation_id"]) == (0, 1, None)


def test_scale_to_removes_workers_by_decommission(store: Store) -> None:
    controller, backend = _controller(store)
    step = controller.scale_to(1, "smaller")
    assert (step.outcome.action, step.acted) == ("scale_in", True)
    assert _size(controller) == 1
    assert backend.scale_ins == 1


def test_scale_to_the_current_size_records_it_and_does_nothing(store: Store) -> None:
    controller, backend = _controller(store)
    step = controller.scale_to(2, "same")
    assert (step.outcome.action, step.acted) == ("none", False)
    assert backend.scale_outs + backend.scale_ins == 0
    assert store.decisions()[0]["action"] == "none"


def test_scale_to_starts_the_guards_cooldown(store: Store) -> None:
    controller, _ = _controller(store)
    controller.scale_to(3, "by hand")
    step = controller.step()  # the static policy wants 4, at once
    assert step.outcome.action == "hold"
    assert "cooldown" in step.outcome.reason
    controller.clock.sleep(10)
    assert controller.step().outcome.action == "scale_out"


@pytest.mark.parametrize("target", [4, 1])
def test_a_backend_error_is_recorded_not_raised(store: Store, target: int) -> None:
    controller, _ = _controller(store, _LaunchFails)
    step = controller.scale_to(target, "by hand")
    assert not step.acted and step.error in ("no capacity left", "the master refused")
    assert store.decisions()[0]["error"] == step.error


def test_a_step_times_its_decision(store: Store) -> None:
    step = _controller(store)[0].step()
    assert 0 < step.decide_s <= step.wall_s


def test_a_dry_run_step_decides_but_never_calls_the_backend(store: Store) -> None:
    controller, backend = _controller(store)
    controller.dry_run = True
    step = controller.step()
    assert (step.outcome.action, step.acted) == ("scale_out", False)
    assert backend.scale_outs == 0
    assert store.decisions()[0]["dry_run"] == 1


def test_a_host_the_backend_cannot_reach_is_in_every_reason_and_the_step(store: Store) -> None:
    controller, _ = _controller(store, _OneHostDown)
    step = controller.step()
    assert step.unreachable == {"198.18.0.9": "ssh: connection refused"}
    assert step.outcome.reason.endswith("host 198.18.0.9 skipped: ssh: connection refused")
    (row,) = store.decisions()
    assert "host 198.18.0.9 skipped" in row["reason"]


def test_scale_in_removes_only_the_backends_own_workers(store: Store) -> None:
    controller, backend = _controller(store, _AttachedToOthers)
    assert isinstance(backend, _AttachedToOthers)
    controller.use_policy(make_policy("static", {"workers": 1}))
    everyone = [w.id for w in backend.sim.worker_infos()]
    step = controller.step()
    assert (step.outcome.action, step.acted) == ("scale_in", True)
    assert backend.asked == everyone[-1:]


def test_scale_in_with_no_worker_of_ours_says_so_and_removes_none(store: Store) -> None:
    controller, backend = _controller(store, _AttachedToOthers)
    assert isinstance(backend, _AttachedToOthers)
    backend.workers = lambda: []  # type: ignore[method-assign]
    controller.use_policy(make_policy("static", {"workers": 1}))
    step = controller.step()
    assert step.outcome.action == "scale_in" and not step.acted
    assert "not ours" in (step.error or "") and backend.asked == []


class _Jobs:
    """A job history that reports the given batches of finished jobs, one batch a poll."""

    def __init__(self, *batches: list[JobRecord]) -> None:
        self.batches = list(batches)

    def poll(self) -> list[JobRecord]:
        return self.batches.pop(0) if self.batches else []


class _Learner(StaticPolicy):
    """A static policy that remembers every history it was fitted to, or fails to learn."""

    def __init__(self, fail: bool = False, **params: object) -> None:
        super().__init__(**params)
        self.fail = fail
        self.fitted: list[list[str]] = []

    def fit(self, history: Sequence[JobRecord]) -> _Learner:
        if self.fail:
            raise ValueError("cannot learn from that")
        self.fitted.append([r.app_id for r in history])
        return self


def _finished(app_id: str, submit: float) -> JobRecord:
    return JobRecord(app_id, "wordcount", submit, submit + 30, 8, 0, 40.0, 2, 2, 10**9, 1, True)


@pytest.mark.parametrize("fail", [False, True])
def test_finished_jobs_are_stored_and_the_policy_refit_on_the_whole_history(
    store: Store, fail: bool
) -> None:
    """A recurring job's next run must be planned with what its last run taught: the policy is
    refit on the store's whole history each time jobs finish, and only then; a policy that
    cannot learn does not stop the loop."""
    controller, _ = _controller(store)
    policy = _Learner(fail=fail, workers=2)
    controller.use_policy(policy)
    controller.history = _Jobs([_finished("a", 1.0)], [], [_finished("b", 2.0)])
    for _ in range(3):
        controller.step()
    assert [r.app_id for r in store.jobs()] == ["a", "b"]
    assert policy.fitted == ([] if fail else [["a"], ["a", "b"]])
    assert len(store.decisions(10)) == 3
