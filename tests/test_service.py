"""The REST service, through a real HTTP server: every endpoint, the token, bad requests, the
modes, /metrics and the `serve` command's checks.

The service runs on the simulator (``service_harness``): a real cluster takes minutes to
start. Each test starts its own server, loop and store, and stops them, failures included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from sparkscaler.backends.simulated import SimObserver, SimulatedBackend
from sparkscaler.cli import app as cli
from sparkscaler.clock import Clock
from sparkscaler.config import Config
from sparkscaler.controller import Controller
from sparkscaler.core import Observation
from sparkscaler.processes import port_free
from sparkscaler.service.auth import TokenError, load_or_create_token, resolve_token
from sparkscaler.service.runtime import InvalidRequest, Runtime
from sparkscaler.sim.cluster import SimCluster
from sparkscaler.store import Store
from sparkscaler.wiring import build_loop, live_context
from tests.conftest import free_port
from tests.service_harness import Service, backlog_job, running_service, service_config

BOUNDS_MESSAGE = "is outside the bounds 1–4"
DECISIONS = "sparkscaler_decisions_total"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """Auto mode, with a backlog from the start."""
    with running_service(tmp_path / "state") as running:
        yield running


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[Service]:
    """Manual mode, with a backlog from the start: the loop records, never acts."""
    with running_service(tmp_path / "state", mode="manual") as running:
        yield running


def _get(svc: Service, path: str, **params: Any) -> httpx.Response:
    with svc.client() as client:
        return client.get(path, params=params)


def _send(
    svc: Service,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    with svc.client() as client:
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
            return client.request(method, path, content=content, headers=headers)
        return client.request(method, path, json=body, headers=headers)


def _status(svc: Service) -> dict[str, Any]:
    response = _get(svc, "/api/status")
    assert response.status_code == 200
    return response.json()


def _state(svc: Service) -> tuple[Any, ...]:
    """What a refused call must leave as it was: mode, policy, size, backend calls, and in
    manual mode the target (in the others it follows the loop's decisions)."""
    status = _status(svc)
    target = status["target"] if status["mode"] == "manual" else None
    return status["mode"], status["policy"], target, svc.cluster_size(), svc.actions()


#: Prometheus samples by (name, sorted labels).
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics(svc: Service) -> Samples:
    response = _get(svc, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _total(metrics: Samples, name: str) -> float:
    return sum(value for (sample, _), value in metrics.items() if sample == name)


# ------------------------------------------------------------------------------- reading
def test_status_shows_workers_target_mode_policy_last_decision_and_sources(
    service: Service,
) -> None:
    service.wait_for_decisions(3)
    status = _status(service)
    assert status["mode"] == "auto"
    assert status["policy"]["name"] == "dra"
    assert status["policy"]["params"]["idle_timeout_s"] == 30
    assert status["bounds"] == {"min_workers": 1, "max_workers": 4}
    assert status["interval_s"] == 5
    assert status["workers"]
    for worker in status["workers"]:
        assert set(worker) == {"id", "state", "cores", "memory_mb", "busy"}
        assert (worker["cores"], worker["memory_mb"]) == (1, 1024)
    assert any(w["state"] == "ALIVE" and w["busy"] for w in status["workers"])
    assert status["pending_tasks"] > 0
    last = status["last_decision"]
    assert last["policy"] == "dra" and "pending" in last["reason"]
    assert not last["dry_run"]
    assert status["target"] == last["target"]
    assert status["sources"] == [
        {"name": "master", "healthy": True, "errors": []},
        {"name": "applications", "healthy": True, "errors": []},
    ]
    assert status["unreachable_hosts"] == {}
    assert status["loop_running"] and status["loop_error"] is None


class _HostDown(SimulatedBackend):
    """A backend with one host it cannot reach (as the hosts backend reports an SSH failure)."""

    def unreachable(self) -> dict[str, str]:
        return {"198.18.0.4": "cannot connect over SSH: connection refused"}


def test_an_unreachable_host_shows_in_status_and_every_decision(tmp_path: Path) -> None:
    with running_service(tmp_path / "state", backend_class=_HostDown) as svc:
        svc.wait_for_decisions(2)
        status = _status(svc)
    why = "cannot connect over SSH: connection refused"
    assert status["unreachable_hosts"] == {"198.18.0.4": why}
    assert status["last_decision"]["reason"].endswith(f"host 198.18.0.4 skipped: {why}")


class _MasterDown:
    """The simulator seen through a master that does not answer: every observation stale."""

    def __init__(self, sim: SimCluster) -> None:
        self.sim = sim

    def observe(self) -> Observation:
        return Observation(
            time=self.sim.start_epoch + self.sim.now,
            stale=True,
            errors=("master http://127.0.0.1:8080 unreachable",),
        )

    def close(self) -> None:
        """Nothing to release."""


def test_an_unreachable_master_shows_in_status_and_metrics(tmp_path: Path) -> None:
    with running_service(tmp_path / "state", observer=_MasterDown) as svc:
        svc.wait_for_decisions(2)
        before = _metrics(svc)
        status = _status(svc)
        assert status["sources"] == [
            {
                "name": "master",
                "healthy": False,
                "errors": ["master http://127.0.0.1:8080 unreachable"],
            },
            {"name": "applications", "healthy": None, "errors": []},
        ]
        assert status["last_decision"]["action"] == "hold"
        assert "metrics stale" in status["last_decision"]["reason"]
        svc.wait_for_decisions(len(svc.decisions()) + 3)
        after = _metrics(svc)
    errors = "sparkscaler_metric_source_errors_total"
    assert after[(errors, (("source", "master"),))] > before[(errors, (("source", "master"),))]
    assert after[(errors, (("source", "applications"),))] == 0
    assert svc.actions() == 0


def test_observations_are_the_stored_history_oldest_first(service: Service) -> None:
    service.wait_for_decisions(10)
    everything = _get(service, "/api/observations", limit=10_000).json()
    assert len(everything) >= 10
    ids = [o["id"] for o in everything]
    times = [o["time"] for o in everything]
    assert ids == sorted(ids) and times == sorted(times)
    first = everything[0]
    assert first["workers"] == 1 and first["errors"] == [] and first["stale"] is False
    assert first["worker_detail"][0]["id"] == "sim-worker-1"
    assert any(o["pending_tasks"] > 0 for o in everything)

    since = everything[4]["time"]
    later = _get(service, "/api/observations", since=since).json()
    assert later[0]["id"] == everything[5]["id"]
    assert all(o["time"] > since for o in later)
    assert [o["id"] for o in _get(service, "/api/observations", limit=3).json()] == ids[:3]


def test_decisions_are_the_stored_history_newest_first(service: Service) -> None:
    service.wait_for_decisions(21)
    rows = _get(service, "/api/decisions", limit=5).json()
    assert len(rows) == 5
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    for row in rows:
        assert row["policy"] == "dra" and row["reason"] and row["observation_id"] is not None
        assert row["dry_run"] is False
    assert len(_get(service, "/api/decisions").json()) == 20  # the default limit


@pytest.mark.parametrize(
    ("path", "params", "problem"),
    [
        ("/api/observations", {"limit": 0}, "query.limit: Input should be greater than or equal"),
        ("/api/observations", {"limit": 10_001}, "query.limit: Input should be less than"),
        ("/api/observations", {"since": "yesterday"}, "query.since: Input should be a valid"),
        ("/api/observations", {"since": -1}, "query.since: Input should be greater"),
        ("/api/observations", {"since": "inf"}, "query.since: Input should be a finite number"),
        ("/api/decisions", {"limit": "all"}, "query.limit: Input should be a valid integer"),
        ("/api/decisions", {"limit": 1_001}, "query.limit: Input should be less than"),
    ],
)
def test_bad_query_parameters_get_a_readable_422(
    manual: Service, path: str, params: dict[str, Any], problem: str
) -> None:
    response = _get(manual, path, **params)
    assert response.status_code == 422
    body = response.json()
    assert len(body["problems"]) == 1 and body["problems"][0].startswith(problem)
    assert body["detail"] == body["problems"][0]


def test_the_openapi_schema_and_docs(manual: Service) -> None:
    docs = _get(manual, "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = _get(manual, "/openapi.json").json()
    for path, method in [("/api/mode", "put"), ("/api/policy", "put"), ("/api/scale", "post")]:
        assert schema["paths"][path][method]["security"] == [{"HTTPBearer": []}]
        assert {"401", "422"} <= set(schema["paths"][path][method]["responses"])
    for path in ("/api/status", "/api/observations", "/api/decisions", "/metrics"):
        assert "security" not in schema["paths"][path]["get"]
    workers = schema["components"]["schemas"]["ScaleRequest"]["properties"]["workers"]
    assert (workers["minimum"], workers["maximum"]) == (1, 4)
    assert schema["components"]["schemas"]["ModeRequest"]["properties"]["mode"]["enum"] == [
        "auto",
        "recommend",
        "manual",
    ]


# ------------------------------------------------------------------------------- the token
CHANGES = [
    ("PUT", "/api/mode", {"mode": "recommend"}),
    ("PUT", "/api/policy", {"name": "static", "params": {"workers": 2}}),
    ("POST", "/api/scale", {"workers": 3}),
]


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
def test_every_change_needs_the_token(
    manual: Service, method: str, path: str, body: dict[str, Any]
) -> None:
    before = _state(manual)
    refused: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token-wrong-token"},
        {"Authorization": f"Bearer {manual.token}x"},
        {"Authorization": f"Basic {manual.token}"},
        {"Authorization": manual.token},
    ]
    for headers in refused:
        response = _send(manual, method, path, body, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in response.json()["detail"]
    # the token is checked before the body: a stranger learns nothing about what is valid
    assert _send(manual, method, path, {"bogus": True}).status_code == 401
    assert _state(manual) == before
    assert _send(manual, method, path, body, headers=manual.auth).status_code == 200
    assert _state(manual) != before


def test_the_token_file_is_private_and_reused(tmp_path: Path) -> None:
    config = service_config(tmp_path / "state")
    token, where = resolve_token(config)
    path = config.service_token_path
    assert where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token + "\n" and len(token) >= 40
    assert resolve_token(config) == (token, where)
    # a restarted service takes the same token
    for _ in range(2):
        with running_service(tmp_path / "state", config=config) as svc:
            assert svc.token == token
            response = _send(svc, "PUT", "/api/mode", {"mode": "recommend"}, headers=svc.auth)
            assert response.status_code == 200


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "service-token"
    path.write_text("a-token-that-others-could-read\n")
    path.chmod(0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        load_or_create_token(path)
    path.chmod(0o600)
    assert load_or_create_token(path) == "a-token-that-others-could-read"
    path.write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        load_or_create_token(path)


def test_a_token_in_the_config_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    config = service_config(tmp_path / "state", token="configured-token-0123456789")
    assert resolve_token(config) == ("configured-token-0123456789", "service.token in the config")
    with running_service(tmp_path / "state", config=config) as svc:
        headers = {"Authorization": "Bearer configured-token-0123456789"}
        assert (
            _send(svc, "PUT", "/api/mode", {"mode": "manual"}, headers=headers).status_code == 200
        )
    assert not config.service_token_path.exists()
    assert "configured-token" not in str(config.model_dump(mode="json"))


# ------------------------------------------------------------------------------- bad bodies
@pytest.mark.parametrize(
    ("method", "path", "body", "problem"),
    [
        ("PUT", "/api/mode", {"mode": "fast"}, "body.mode: Input should be 'auto', 'recommend' or"),
        ("PUT", "/api/mode", {"mode": 1}, "body.mode: Input should be 'auto'"),
        ("PUT", "/api/mode", {}, "body.mode: Field required"),
        ("PUT", "/api/mode", {"mode": "auto", "speed": 2}, "body.speed: Extra inputs are not"),
        ("PUT", "/api/mode", ["auto"], "body: Input should be a valid dictionary"),
        ("PUT", "/api/mode", b"{mode: auto}", "body: not valid JSON at character 1"),
        ("PUT", "/api/mode", None, "body: Field required"),
        ("POST", "/api/scale", {"workers": "3"}, "body.workers: Input should be a valid integer"),
        ("POST", "/api/scale", {"workers": 2.5}, "body.workers: Input should be a valid integer"),
        ("POST", "/api/scale", {"workers": True}, "body.workers: Input should be a valid integer"),
        ("POST", "/api/scale", {"workers": -1}, "body.workers: Input should be greater than or"),
        ("POST", "/api/scale", {"count": 2}, "body.workers: Field required"),
        ("PUT", "/api/policy", {"name": 3}, "body.name: Input should be a valid string"),
        ("PUT", "/api/policy", {"params": {}}, "body.name: Field required"),
        ("PUT", "/api/policy", {"name": "dra", "params": [1]}, "body.params: Input should be a"),
    ],
)
def test_bad_bodies_get_a_readable_422_and_change_nothing(
    manual: Service, method: str, path: str, body: Any, problem: str
) -> None:
    before = _state(manual)
    content = body if isinstance(body, bytes) else None
    response = _send(manual, method, path, body, headers=manual.auth, content=content)
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert any(p.startswith(problem) for p in problems), problems
    assert response.json()["detail"] == "; ".join(problems)
    assert _state(manual) == before


# ------------------------------------------------------------------------------- modes
def test_auto_mode_acts_on_a_backlog(service: Service) -> None:
    service.wait_for(lambda: service.cluster_size() > 1, "a scale-out")
    acted = [r for r in service.decisions() if r["acted"]]
    assert acted and all(r["action"] == "scale_out" and not r["dry_run"] for r in acted)


def test_recommend_never_acts_even_under_a_backlog(tmp_path: Path) -> None:
    with running_service(tmp_path / "state", mode="recommend") as svc:
        rows = svc.wait_for_decisions(60)  # five simulated minutes of backlog
        assert sum(r["action"] == "scale_out" for r in rows) >= 2  # what it would have done
        assert all(r["dry_run"] and not r["acted"] for r in rows)
        assert (svc.cluster_size(), svc.actions()) == (1, 0)
        status = _status(svc)
    assert status["mode"] == "recommend"
    assert [w["state"] for w in status["workers"]] == ["ALIVE"]
    assert status["target"] == status["last_decision"]["target"]
    assert status["last_decision"]["dry_run"] is True


def test_switching_to_recommend_stops_acting_and_back_to_auto_acts(service: Service) -> None:
    service.wait_for(lambda: service.actions() >= 1, "a first scale-out")
    response = _send(service, "PUT", "/api/mode", {"mode": "recommend"}, headers=service.auth)
    assert response.status_code == 200 and response.json() == {"mode": "recommend"}
    actions = service.actions()
    switched = service.decisions(1)[0]["id"]
    rows = service.wait_for_decisions(switched + 30)
    assert all(r["dry_run"] and not r["acted"] for r in rows if r["id"] > switched)
    assert service.actions() == actions

    response = _send(service, "PUT", "/api/mode", {"mode": "auto"}, headers=service.auth)
    assert response.json() == {"mode": "auto"}
    switched = service.decisions(1)[0]["id"]
    rows = service.wait_for_decisions(switched + 3)
    assert all(not r["dry_run"] for r in rows if r["id"] > switched)
    assert _status(service)["mode"] == "auto"


def test_manual_never_acts_on_its_own_but_a_scale_call_does(manual: Service) -> None:
    rows = manual.wait_for_decisions(40)
    assert any(r["action"] == "scale_out" for r in rows)
    assert all(r["dry_run"] and not r["acted"] for r in rows)
    assert (manual.cluster_size(), manual.actions()) == (1, 0)
    assert _status(manual)["target"] is None

    response = _send(manual, "POST", "/api/scale", {"workers": 3}, headers=manual.auth)
    assert response.status_code == 200
    assert response.json() == {
        "current": 1,
        "target": 3,
        "action": "scale_out",
        "acted": True,
        "reason": "set to 3 by hand (POST /api/scale)",
        "error": None,
    }
    assert (manual.cluster_size(), manual.actions()) == (3, 1)
    (manual_row,) = [r for r in manual.decisions() if r["policy"] == "manual"]
    assert manual_row["action"] == "scale_out"
    assert manual_row["acted"] and not manual_row["dry_run"]
    assert _status(manual)["target"] == 3

    # the loop goes on recording and leaves the size alone
    rows = manual.wait_for_decisions(manual_row["id"] + 30)
    assert all(r["dry_run"] for r in rows if r["id"] > manual_row["id"])
    assert (manual.cluster_size(), manual.actions()) == (3, 1)

    # and back down by hand: graceful decommissions
    response = _send(manual, "POST", "/api/scale", {"workers": 1}, headers=manual.auth)
    assert response.json()["action"] == "scale_in" and response.json()["acted"]
    assert (manual.cluster_size(), manual.actions()) == (1, 2)
    response = _send(manual, "POST", "/api/scale", {"workers": 1}, headers=manual.auth)
    assert (response.json()["action"], response.json()["acted"]) == ("none", False)


@pytest.mark.parametrize("workers", [0, 5, 100])
def test_a_size_outside_the_bounds_is_refused(manual: Service, workers: int) -> None:
    before = _state(manual)
    response = _send(manual, "POST", "/api/scale", {"workers": workers}, headers=manual.auth)
    assert response.status_code == 422
    assert response.json()["problems"] == [
        f"workers: {workers} {BOUNDS_MESSAGE} (scaling.min_workers and scaling.max_workers)"
    ]
    assert _state(manual) == before


def test_a_size_set_by_hand_needs_manual_mode(tmp_path: Path) -> None:
    with running_service(tmp_path / "state", mode="recommend") as svc:
        before = _state(svc)
        response = _send(svc, "POST", "/api/scale", {"workers": 2}, headers=svc.auth)
        assert response.status_code == 409
        assert "manual mode" in response.json()["detail"]
        assert _state(svc) == before
        assert all(r["policy"] != "manual" for r in svc.decisions())


# ------------------------------------------------------------------------------- policy
def test_switching_policy_is_recorded_in_decisions_and_status(service: Service) -> None:
    body = {"name": "static", "params": {"workers": 2}}
    response = _send(service, "PUT", "/api/policy", body, headers=service.auth)
    assert response.status_code == 200 and response.json() == body
    switched = service.decisions(1)[0]["id"]
    rows = service.wait_for_decisions(switched + 3)
    assert all(r["policy"] == "static" for r in rows if r["id"] > switched)
    assert _status(service)["policy"] == body
    service.wait_for(lambda: service.cluster_size() == 2, "the static size")
    metrics = _metrics(service)
    counted = {dict(labels)["policy"] for name, labels in metrics if name == DECISIONS}
    assert counted == {"dra", "static"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"name": "nope"}, "policy.name: unknown policy 'nope'; choose one of dataproc, dqn, dra"),
        (
            {"name": "dra", "params": {"idle_timeout_s": -5}},
            "policy.params.idle_timeout_s: Input should be greater than or equal to 0",
        ),
        ({"name": "dra", "params": {"bogus": 1}}, "policy.params.bogus: unknown setting"),
        ({"name": "static", "params": {"workers": "two"}}, "policy.params.workers: Input should"),
        ({"name": "dqn", "params": {"model_path": "missing.zip"}}, "policy dqn could not be built"),
    ],
)
def test_an_invalid_policy_is_refused_and_the_old_one_stays(
    manual: Service, body: dict[str, Any], problem: str
) -> None:
    before = _state(manual)
    response = _send(manual, "PUT", "/api/policy", body, headers=manual.auth)
    assert response.status_code == 422
    assert any(p.startswith(problem) for p in response.json()["problems"]), response.json()
    assert _state(manual) == before
    assert _status(manual)["policy"]["name"] == "dra"


# ------------------------------------------------------------------------------- /metrics
def test_metrics_show_the_cluster_and_count_decisions(manual: Service) -> None:
    manual.wait_for_decisions(3)
    first = _metrics(manual)
    for name in (
        "sparkscaler_workers",
        "sparkscaler_target_workers",
        "sparkscaler_pending_tasks",
        "sparkscaler_running_tasks",
        "sparkscaler_decisions_total",
        "sparkscaler_decision_latency_seconds_count",
        "sparkscaler_decision_latency_seconds_bucket",
        "sparkscaler_metric_source_errors_total",
        "sparkscaler_mode",
    ):
        assert any(sample == name for sample, _ in first), name
    assert first[("sparkscaler_workers", (("state", "ALIVE"),))] == 1
    assert first[("sparkscaler_pending_tasks", ())] > 0
    assert first[("sparkscaler_mode", (("sparkscaler_mode", "manual"),))] == 1

    count = len(manual.decisions())
    manual.wait_for_decisions(count + 5)
    response = _send(manual, "POST", "/api/scale", {"workers": 2}, headers=manual.auth)
    assert response.status_code == 200
    second = _metrics(manual)
    latency = "sparkscaler_decision_latency_seconds_count"
    assert _total(second, latency) >= _total(first, latency) + 5
    assert _total(second, DECISIONS) >= _total(first, DECISIONS) + 6
    manual_key = (DECISIONS, (("action", "scale_out"), ("policy", "manual")))
    assert second[manual_key] == 1
    assert second[("sparkscaler_target_workers", ())] == 2


# ------------------------------------------------------------------------------- lifecycle
def test_the_server_and_the_loop_stop_on_exit(tmp_path: Path) -> None:
    with running_service(tmp_path / "state") as svc:
        svc.wait_for_decisions(2)
        assert _status(svc)["loop_running"]
    assert not svc.runtime.snapshot().running
    assert port_free("127.0.0.1", svc.config.service.port)
    with pytest.raises(httpx.ConnectError):
        _get(svc, "/api/status")


class _Broken:
    """An observer with a bug: every observation raises."""

    def __init__(self, sim: SimCluster) -> None:
        self.calls = 0

    def observe(self) -> Observation:
        self.calls += 1
        raise RuntimeError(f"bug number {self.calls}")

    def close(self) -> None:
        """Nothing to release."""


def test_a_failing_iteration_is_reported_and_the_loop_goes_on(tmp_path: Path) -> None:
    with running_service(tmp_path / "state", observer=_Broken) as svc:
        svc.wait_for(lambda: _status(svc)["loop_error"] is not None, "a failed iteration")
        first = _status(svc)["loop_error"]
        svc.wait_for(lambda: _status(svc)["loop_error"] != first, "another iteration")
        status = _status(svc)
    assert status["loop_error"].startswith("RuntimeError: bug number")
    assert status["loop_running"] and status["last_decision"] is None


def test_the_runtime_refuses_misuse(tmp_path: Path) -> None:
    with running_service(tmp_path / "state", mode="manual") as svc:
        with pytest.raises(RuntimeError, match="started already"):
            svc.runtime.start()
        with pytest.raises(InvalidRequest, match="mode: 'fast' is not one of"):
            svc.runtime.set_mode("fast")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="speedup must be positive"):
            Runtime(svc.runtime.controller, svc.runtime.context, speedup=0)
    assert Runtime(
        svc.runtime.controller, svc.runtime.context
    ).stop()  # never started: nothing to wait for


# ------------------------------------------------------------------------------- the command
runner = CliRunner()


def test_serve_help_lists_its_options() -> None:
    result = runner.invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--config", "--host", "--port"):
        assert option in result.output
    assert "REST API" in result.output


def test_serve_refuses_a_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKSCALER_HOME", str(tmp_path / "home"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "home").exists()  # refused before anything was started or written


def test_serve_refuses_a_token_file_others_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "service-token").write_text("readable-by-everyone-0123456789\n")
    (home / "service-token").chmod(0o644)
    monkeypatch.setenv("SPARKSCALER_HOME", str(home))
    config = tmp_path / "c.yaml"
    config.write_text(f"service:\n  port: {free_port()}\n")
    result = runner.invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "can be read by others" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_with_an_invalid_service_section_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("service:\n  port: 0\n  token: short\n  tls: true\n")
    result = runner.invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert any("service.port: Input should be greater than or equal to 1" in x for x in lines)
    assert any("service.tls: unknown setting" in x for x in lines)
    assert not any("short" in x for x in lines)  # a rejected token is not echoed


class _StandInCluster:
    """Stands in for LocalCluster in the `serve` wiring test: found running or not, and
    remembers whether `serve` started or stopped it."""

    found_running: ClassVar[bool] = True
    made: ClassVar[list[_StandInCluster]] = []

    def __init__(self, *_: object) -> None:
        self.running = self.found_running
        self.started = self.stopped = False
        self.made.append(self)

    def start(self, workers: int) -> None:
        self.started = self.running = True

    def stop(self) -> None:
        self.stopped = True


def _sim_loop(
    config: Config, store: Store, clock: Clock, *, backend: object, dry_run: bool
) -> Controller:
    """The live loop with the simulator in place of the cluster, on the wall clock."""
    sim = SimCluster([backlog_job()], initial_workers=1, seed=0)
    return build_loop(
        config,
        backend=SimulatedBackend(sim),
        observer=SimObserver(sim),
        clock=clock,
        store=store,
        context=live_context(),
        dry_run=dry_run,
    )


@pytest.mark.parametrize(("sig", "found_running"), [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_serve_runs_until_a_signal_then_stops_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: int, found_running: bool
) -> None:
    """The command's own wiring: the loop and the server come up, a signal stops both, and the
    cluster is stopped only if `serve` started it. The cluster is a stand-in (a real one takes
    minutes) and the simulator feeds the loop."""
    monkeypatch.setattr(_StandInCluster, "found_running", found_running)
    monkeypatch.setattr(_StandInCluster, "made", [])
    monkeypatch.setattr("sparkscaler.backends.open_backend", _StandInCluster)
    monkeypatch.setattr("sparkscaler.cli.loop.require_java", lambda: None)
    monkeypatch.setattr("sparkscaler.wiring.live_loop", _sim_loop)
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nscaling:\n  interval_s: 0.1\n")
    url = f"http://127.0.0.1:{port}/api/status"
    seen: list[dict[str, Any]] = []

    def signal_when_serving() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            with contextlib.suppress(httpx.HTTPError):
                status = httpx.get(url, timeout=1).json()
                if status["last_decision"] is not None:
                    seen.append(status)
            time.sleep(0.05)
        time.sleep(0.3)  # let the start-up lines be printed
        os.kill(os.getpid(), sig)  # sent even on a timeout, so that the command returns

    helper = threading.Thread(target=signal_when_serving)
    helper.start()
    try:
        result = runner.invoke(cli, ["serve", "--config", str(config), "--port", str(port)])
    finally:
        helper.join()
    assert result.exit_code == 0, result.output
    assert seen and seen[0]["mode"] == "auto" and seen[0]["loop_running"]
    assert f"serving on http://127.0.0.1:{port}" in result.output
    assert f"token for changes: {tmp_path / 'state' / 'service-token'}" in result.output
    assert "stopping…" in result.output
    (cluster,) = _StandInCluster.made
    assert cluster.started is not found_running
    assert cluster.stopped is not found_running
    assert port_free("127.0.0.1", port)
    assert not any(
        t.name in ("sparkscaler-loop", "sparkscaler-http") for t in threading.enumerate()
    )


# ------------------------------------------------------------------------------- dashboard
def test_status_lists_every_policy_with_its_defaults(service: Service) -> None:
    from sparkscaler.policies import POLICIES

    policies = {p["name"]: p["defaults"] for p in _status(service)["policies"]}
    assert sorted(policies) == sorted(POLICIES)
    assert policies["dra"] == POLICIES["dra"].Params().model_dump(mode="json")
    for name, defaults in policies.items():  # each list is accepted back as it is
        assert (
            _send(
                service,
                "PUT",
                "/api/policy",
                {"name": name, "params": defaults},
                headers=service.auth,
            ).status_code
            == 200
        ), name


def test_dashboard_page_and_assets_are_served_outside_the_schema(service: Service) -> None:
    page = _get(service, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset, kind in (("/static/dashboard.js", "javascript"), ("/static/dashboard.css", "css")):
        assert asset in page.text
        response = _get(service, asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert _get(service, "/static/missing.js").status_code == 404
    paths = _get(service, "/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)
