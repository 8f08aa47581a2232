"""Fuzz the live API from its own OpenAPI schema with schemathesis.

Each operation gets requests generated from the schema, valid ones and, where it takes input,
invalid ones (wrong types, missing and unknown fields, out-of-range numbers, bodies that are not
JSON). None may get a 5xx, and every answer must be one the schema documents, in the shape it
documents. Schemathesis' other default checks come along: invalid input is refused, valid input
accepted, and a change without the token is refused. Without the token, nothing changes.

The service runs on the simulator in manual mode (see ``service_harness``). Examples are few
and derandomised, so the run is short and the same every time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service_harness import Service, running_service

FUZZ = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: Every operation, and whether it takes input (only then can a request be made invalid).
OPERATIONS = {
    ("GET", "/api/status"): False,
    ("GET", "/api/observations"): True,
    ("GET", "/api/decisions"): True,
    ("PUT", "/api/mode"): True,
    ("PUT", "/api/policy"): True,
    ("POST", "/api/scale"): True,
    ("GET", "/metrics"): False,
}
CHANGES = [op for op in OPERATIONS if op[0] != "GET"]
CASES = [(*op, GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (*op, GenerationMode.NEGATIVE) for op, takes_input in OPERATIONS.items() if takes_input
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("fuzz") / "state", mode="manual") as running:
        yield running


@pytest.fixture(scope="module")
def api(service: Service) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


def test_every_operation_is_fuzzed(api: schemathesis.BaseSchema) -> None:
    found = [result.ok() for result in api.get_all_operations()]
    assert sorted((op.method.upper(), op.path) for op in found) == sorted(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_request_gets_a_server_error(
    api: schemathesis.BaseSchema, service: Service, method: str, path: str, mode: GenerationMode
) -> None:
    # A policy's parameters depend on the policy (and a model file must exist), which the
    # schema leaves to the server: a schema-valid body may rightly be refused there.
    excluded = [positive_data_acceptance] if path == "/api/policy" else []

    @FUZZ
    @given(case=api[path][method].as_strategy(mode))
    def fuzz(case: Case) -> None:
        case.call_and_validate(headers=service.auth, excluded_checks=excluded)

    fuzz()


@pytest.mark.parametrize(("method", "path"), CHANGES)
def test_no_change_without_the_token(
    api: schemathesis.BaseSchema, service: Service, method: str, path: str
) -> None:
    service.runtime.set_mode("manual")  # the fuzzing before may have left another mode

    def state() -> tuple[object, ...]:
        snap = service.runtime.snapshot()
        return snap.mode, snap.policy, snap.params, snap.target, service.actions()

    @FUZZ
    @given(case=api[path][method].as_strategy(GenerationMode.POSITIVE))
    def fuzz(case: Case) -> None:
        before = state()
        case.headers = {
            k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
        }
        assert case.call().status_code == 401
        assert state() == before

    fuzz()
