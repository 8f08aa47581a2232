"""The FastAPI app: read the controller's state and history, change its mode, policy or size.

Reads are open; every change needs the bearer token (``auth.py``) and is refused whole, with one
readable line per problem, when anything in it is wrong. The OpenAPI schema is at
``/openapi.json`` and browsable at ``/docs``; Prometheus scrapes ``/metrics``. A dashboard at ``/``
(plain HTML, JS and SVG from ``static/``, served at ``/static/``) polls the reads and makes the
changes with the token it asks for; it is left out of the schema.

Store reads go through :class:`~sparkscaler.store.Store`'s own methods, which share its one
connection (opened with ``check_same_thread=False``) under its lock, statement by statement:
safe from the server's worker threads, and a read waits at most for one insert of the loop,
never for a whole iteration (reads do not take the runtime's lock).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sparkscaler import __version__
from sparkscaler.backends.base import BackendError
from sparkscaler.controller import Step
from sparkscaler.policies import POLICIES
from sparkscaler.service.auth import bearer_guard
from sparkscaler.service.runtime import InvalidRequest, LastDecision, Runtime, Snapshot, WrongMode
from sparkscaler.service.schemas import (
    Bounds,
    DecisionRecord,
    DecisionSummary,
    ModeRequest,
    ModeResponse,
    ObservationRecord,
    PolicyChoice,
    PolicyRequest,
    PolicyResponse,
    Problem,
    ScaleRequest,
    ScaleResponse,
    SourceHealth,
    Status,
    Worker,
)

#: What a refused request looks like, for the OpenAPI schema.
_UNAUTHORIZED = {401: {"model": Problem, "description": "no token, or a wrong one"}}
_INVALID = {422: {"model": Problem, "description": "invalid request; nothing was changed"}}
_UNREADABLE = {400: {"model": Problem, "description": "the body is not text; nothing was changed"}}
#: An input shown back in an error message is cut to this many characters.
_ECHO_CHARS = 60
#: The dashboard's page and assets.
_STATIC = Path(__file__).parent / "static"
#: Every registered policy with its default parameters, for the status (they never change).
_POLICIES = [
    PolicyChoice(name=name, defaults=cls.Params().model_dump(mode="json"))
    for name, cls in sorted(POLICIES.items())
]


def _problem_line(error: dict[str, Any]) -> str:
    """``body.mode: Input should be 'auto', 'recommend' or 'manual' (got 'fast')``."""
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "json_invalid":  # its location is (body, character offset)
        where, offset = "body", error["loc"][-1]
        message = f"not valid JSON at character {offset} ({error.get('ctx', {}).get('error')})"
    elif error["type"] != "missing" and not isinstance(error.get("input"), dict):
        shown = repr(error["input"])
        if len(shown) > _ECHO_CHARS:
            shown = shown[: _ECHO_CHARS - 1] + "…"
        message = f"{message} (got {shown})"
    return f"{where}: {message}"


def _refused(status_code: int, problems: list[str]) -> JSONResponse:
    body = Problem(detail="; ".join(problems), problems=problems)
    return JSONResponse(body.model_dump(), status_code=status_code)


def _summary(last: LastDecision) -> DecisionSummary:
    step = last.step
    outcome = step.outcome
    return DecisionSummary(
        time=step.observation.time,
        policy=outcome.decision.policy if outcome.decision else None,
        current=outcome.current,
        target=outcome.target,
        action=outcome.action,
        reason=outcome.reason,
        dry_run=last.dry_run,
        acted=step.acted,
        error=step.error,
    )


def _sources(step: Step | None) -> list[SourceHealth]:
    """The master answers or not (a stale observation); the applications' REST APIs are only
    asked when it does, and each one not found is an error of the observation."""
    if step is None:
        return [
            SourceHealth(name="master", healthy=None, errors=[]),
            SourceHealth(name="applications", healthy=None, errors=[]),
        ]
    obs = step.observation
    if obs.stale:
        return [
            SourceHealth(name="master", healthy=False, errors=list(obs.errors)),
            SourceHealth(name="applications", healthy=None, errors=[]),
        ]
    return [
        SourceHealth(name="master", healthy=True, errors=[]),
        SourceHealth(name="applications", healthy=not obs.errors, errors=list(obs.errors)),
    ]


def _status(snap: Snapshot) -> Status:
    obs = snap.last_step.observation if snap.last_step else None
    return Status(
        mode=snap.mode,
        policy=PolicyResponse(name=snap.policy, params=snap.params),
        policies=_POLICIES,
        bounds=Bounds(min_workers=snap.scaling.min_workers, max_workers=snap.scaling.max_workers),
        interval_s=snap.scaling.interval_s,
        workers=[
            Worker(id=w.id, state=w.state, cores=w.cores, memory_mb=w.memory_mb, busy=w.busy)
            for w in (obs.cluster.workers if obs else ())
        ],
        target=snap.target,
        running_tasks=obs.running_tasks if obs else None,
        pending_tasks=obs.pending_tasks if obs else None,
        observed_at=obs.time if obs else None,
        last_decision=_summary(snap.last_decision) if snap.last_decision else None,
        sources=_sources(snap.last_step),
        unreachable_hosts=snap.last_step.unreachable if snap.last_step else {},
        loop_running=snap.running,
        loop_error=snap.loop_error,
    )


def _observation(row: dict[str, Any]) -> ObservationRecord:
    detail = row.pop("worker_detail")
    errors = row.pop("errors")
    jobs = row.pop("jobs", None)
    return ObservationRecord(
        **row,
        errors=json.loads(errors) if errors else [],
        worker_detail=json.loads(detail) if detail else None,
        jobs=json.loads(jobs) if jobs else None,
    )


def _decision(row: dict[str, Any]) -> DecisionRecord:
    predicted = row.pop("predicted", None)
    return DecisionRecord(**row, predicted=json.loads(predicted) if predicted else None)


def create_app(runtime: Runtime, *, token: str) -> FastAPI:
    """The API over ``runtime``; changes need ``Authorization: Bearer <token>``."""
    app = FastAPI(
        title="sparkscaler",
        version=__version__,
        description="Watch and steer the autoscaler of a Spark standalone cluster. Changes "
        "(PUT, POST) need `Authorization: Bearer <token>`: service.token in the config, or "
        "the file <state_dir>/service-token. A dashboard is at `/`.",
    )
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    authorized = [Depends(bearer_guard(token))]
    store = runtime.controller.store
    scaling = runtime.controller.scaling
    changes = _UNAUTHORIZED | _UNREADABLE | _INVALID

    def openapi() -> dict[str, Any]:
        """The generated schema, plus the configured bounds of a size set by hand, which the
        request model cannot know: clients and fuzzers then see exactly what is accepted,
        while the handler still refuses other sizes with a message that names the bounds."""
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            workers = schema["components"]["schemas"]["ScaleRequest"]["properties"]["workers"]
            workers["minimum"], workers["maximum"] = scaling.min_workers, scaling.max_workers
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return _refused(422, [_problem_line(e) for e in error.errors()])

    @app.exception_handler(InvalidRequest)
    async def _rejected(_: Request, error: InvalidRequest) -> JSONResponse:
        return _refused(422, error.problems)

    @app.exception_handler(WrongMode)
    async def _wrong_mode(_: Request, error: WrongMode) -> JSONResponse:
        return _refused(409, [str(error)])

    @app.exception_handler(BackendError)
    async def _backend_down(_: Request, error: BackendError) -> JSONResponse:
        return _refused(503, [f"the cluster did not answer: {error}"])

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        """The dashboard: status, charts, decision log and controls, polling the API."""
        return FileResponse(_STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/status", tags=["read"])
    def status() -> Status:
        """Workers, target, mode, policy, the last decision with its reason, and the health of
        the metric sources."""
        return _status(runtime.snapshot())

    @app.get("/api/observations", tags=["read"], responses=_INVALID)
    def observations(
        since: Annotated[
            float, Query(ge=0, allow_inf_nan=False, description="epoch seconds; only later ones")
        ] = 0.0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
    ) -> list[ObservationRecord]:
        """Stored observations after ``since``, oldest first (page on with the last time)."""
        return [_observation(row) for row in store.observations(since, limit)]

    @app.get("/api/decisions", tags=["read"], responses=_INVALID)
    def decisions(limit: Annotated[int, Query(ge=1, le=1_000)] = 20) -> list[DecisionRecord]:
        """Stored decisions, newest first."""
        return [_decision(row) for row in store.decisions(limit)]

    @app.put("/api/mode", tags=["change"], dependencies=authorized, responses=changes)
    def set_mode(body: ModeRequest) -> ModeResponse:
        """auto acts on decisions; recommend only records them (dry run); manual records them
        and acts only on POST /api/scale."""
        runtime.set_mode(body.mode)
        return ModeResponse(mode=runtime.mode)

    @app.put("/api/policy", tags=["change"], dependencies=authorized, responses=changes)
    def set_policy(body: PolicyRequest) -> PolicyResponse:
        """Switch to another policy (or other parameters), fitted to the job history; it
        decides from the next iteration on."""
        params = runtime.switch_policy(body.name, body.params)
        return PolicyResponse(name=body.name, params=params)

    @app.post(
        "/api/scale",
        tags=["change"],
        dependencies=authorized,
        responses=changes
        | {
            409: {"model": Problem, "description": "not in manual mode"},
            503: {"model": Problem, "description": "the cluster did not answer"},
        },
    )
    def scale(body: ScaleRequest) -> ScaleResponse:
        """Set the size by hand, in manual mode, within the configured bounds. Removals are
        graceful decommissions of the idlest workers."""
        step = runtime.scale_to(body.workers)
        outcome = step.outcome
        return ScaleResponse(
            current=outcome.current,
            target=outcome.target,
            action=outcome.action,
            acted=step.acted,
            reason=outcome.reason,
            error=step.error,
        )

    @app.get(
        "/metrics",
        tags=["read"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    def metrics() -> Response:
        """Workers, target, pending tasks, decisions by policy and action, decision latency,
        metric-source errors, mode."""
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
