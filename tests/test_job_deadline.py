"""A job's ``spark.sparkscaler.deadline``: durations as Spark writes them, and a value that
cannot be read shown in the decision's reason (where the job's owner looks), not only in a log.

No Spark: the REST API's answers are canned, observations are constructed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkscaler.backends.simulated import SimClock, SimObserver, SimulatedBackend
from sparkscaler.config import ScalingSettings
from sparkscaler.controller import Controller
from sparkscaler.core import DEADLINE_PROPERTY, Observation, job_deadline
from sparkscaler.observe.eventlog import EventLogError, parse_event_log
from sparkscaler.observe.spark_app import AppClient
from sparkscaler.policies import make_policy
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.store import Store

APP = "app-20261129200000-0001"
BASE = "http://driver:4040/api/v1"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("300", 300.0), ("300s", 300.0), ("5min", 300.0), ("5m", 300.0), ("1h", 3600.0), (90, 90.0)],
)
def test_a_deadline_is_seconds_or_a_duration(value: str | int, seconds: float) -> None:
    assert job_deadline(value) == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [("soon", "is not a duration"), ("", "is not a duration"), ("0", "is not a positive duration")],
)
def test_an_unreadable_deadline_names_the_property_and_the_value(value: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        job_deadline(value)
    assert str(info.value) == f"{DEADLINE_PROPERTY}={value!r} {problem}"


# ------------------------------------------------------------------------ a running app's API
class _CannedApp(AppClient):
    """One application behind a driver UI, its answers canned; counts environment reads."""

    def __init__(self, properties: dict[str, str]) -> None:
        super().__init__("http://master:8080", "driver", [4040])
        self.locator._urls = {APP: BASE}
        self.properties = properties
        self.environment_reads = 0

    def _get(self, url: str, missing_ok: bool = False) -> Any:
        if url.endswith("/environment"):
            self.environment_reads += 1
            return {"sparkProperties": [[k, v] for k, v in self.properties.items()]}
        if "/stages" in url:
            return [{"stageId": 0, "numTasks": 4, "numActiveTasks": 1, "numCompletedIndices": 1}]
        return []  # executors


@pytest.fixture
def canned() -> Iterator[Callable[[dict[str, str]], _CannedApp]]:
    clients: list[_CannedApp] = []

    def make(properties: dict[str, str]) -> _CannedApp:
        client = _CannedApp(properties)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_a_running_apps_deadline_may_be_a_duration(
    canned: Callable[[dict[str, str]], _CannedApp],
) -> None:
    load = canned({DEADLINE_PROPERTY: "5min"}).load(APP)
    assert load is not None
    assert (load.deadline_s, load.warnings) == (300.0, ())


def test_a_running_apps_unreadable_deadline_is_ignored_with_a_warning(
    canned: Callable[[dict[str, str]], _CannedApp],
) -> None:
    client = canned({DEADLINE_PROPERTY: "soon", "spark.app.name": "nightly etl"})
    first, second = client.load(APP), client.load(APP)
    assert first is not None and second is not None
    assert (first.running_tasks, first.pending_tasks) == (1, 2)  # the load is still seen
    assert first.deadline_s is None
    assert first.warnings == (
        f"{APP} (nightly etl): spark.sparkscaler.deadline='soon' is not a duration, ignored",
    )
    assert second.warnings == first.warnings  # every decision while the app runs says so
    assert client.environment_reads == 1


def test_an_unnamed_apps_warning_names_its_id(
    canned: Callable[[dict[str, str]], _CannedApp],
) -> None:
    load = canned({DEADLINE_PROPERTY: "-1"}).load(APP)
    assert load is not None
    assert load.warnings == (f"{APP}: spark.sparkscaler.deadline='-1' is not a duration, ignored",)


# ------------------------------------------------------------------------------- event logs
def _event_log(path: Path, deadline: str) -> Path:
    events = [
        {"Event": "SparkListenerApplicationStart", "App ID": APP, "App Name": "j", "Timestamp": 0},
        {
            "Event": "SparkListenerEnvironmentUpdate",
            "Spark Properties": {DEADLINE_PROPERTY: deadline},
        },
        {"Event": "SparkListenerApplicationEnd", "Timestamp": 60_000},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_a_finished_jobs_deadline_may_be_a_duration(tmp_path: Path) -> None:
    record = parse_event_log(_event_log(tmp_path / APP, "1h"))
    assert record is not None and record.deadline_s == 3600.0


def test_a_finished_jobs_unreadable_deadline_refuses_the_log(tmp_path: Path) -> None:
    with pytest.raises(EventLogError, match=r"deadline='soon' is not a duration"):
        parse_event_log(_event_log(tmp_path / APP, "soon"))


# ------------------------------------------------------------------------------- the reason
WARNING = f"{APP} (etl): spark.sparkscaler.deadline='soon' is not a duration, ignored"


class _Warns(SimObserver):
    """The simulator's observation, with what a real observer found wrong in a job."""

    warnings: tuple[str, ...] = (WARNING,)

    def observe(self) -> Observation:
        return dataclasses.replace(super().observe(), warnings=self.warnings)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


def _controller(store: Store, observer: type[SimObserver], policy: str = "static") -> Controller:
    sim = SimCluster([], initial_workers=2, provisioning=(5.0, 5.0), seed=0)
    return Controller(
        observer=observer(sim),
        policy=make_policy(policy, {"workers": 2} if policy == "static" else {}),
        backend=SimulatedBackend(sim),
        store=store,
        clock=SimClock(sim),
        scaling=ScalingSettings(min_workers=1, max_workers=4),
    )


def test_the_recorded_reason_ends_with_the_observations_warnings(store: Store) -> None:
    plain = _controller(store, SimObserver).step().outcome.reason
    step = _controller(store, _Warns).step()
    assert step.outcome.reason == f"{plain}; {WARNING}"
    assert store.decisions()[0]["reason"] == f"{plain}; {WARNING}"


def test_several_warnings_each_get_their_part(store: Store) -> None:
    class _TwoWarnings(_Warns):
        warnings = (WARNING, "app-2: spark.sparkscaler.deadline='x' is not a duration")

    reason = _controller(store, _TwoWarnings).step().outcome.reason
    assert reason.endswith(f"; {WARNING}; app-2: spark.sparkscaler.deadline='x' is not a duration")


def test_no_warnings_leave_the_reason_alone(store: Store) -> None:
    reason = _controller(store, SimObserver).step().outcome.reason
    assert "deadline" not in reason and not reason.endswith("; ")
