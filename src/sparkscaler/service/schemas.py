"""The API's request and response bodies, as pydantic models: they are the OpenAPI schema that
/docs shows and that the fuzz tests generate requests from, so they say exactly what is allowed.

Requests are strict (no "3" for 3, no unknown fields): a typo in a call that changes the cluster
must be an error, not a silent default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sparkscaler.policies import POLICIES
from sparkscaler.service.modes import Mode

Action = Literal["scale_out", "scale_in", "none", "hold"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ModeRequest(_Request):
    mode: Mode = Field(
        description="auto: act on decisions; recommend: record them as a dry run, never act; "
        "manual: record them as a dry run, act only on POST /api/scale"
    )


class PolicyRequest(_Request):
    name: str = Field(
        description="a registered policy",
        json_schema_extra={"enum": sorted(POLICIES)},
        examples=["dra"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="the policy's parameters, as under policy.params in the config",
        examples=[{"idle_timeout_s": 30}],
    )


class ScaleRequest(_Request):
    workers: int = Field(
        ge=0, description="the size to set, within scaling.min_workers and scaling.max_workers"
    )

    @field_validator("workers", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        """JSON has one number type: 3.0 is the integer 3, as JSON Schema says; 3.5 is not."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class Problem(BaseModel):
    """Why a request was refused; ``problems`` has one line per invalid field or setting."""

    detail: str
    problems: list[str] = Field(default_factory=list)


class ModeResponse(BaseModel):
    mode: Mode


class PolicyResponse(BaseModel):
    name: str
    params: dict[str, Any] = Field(description="every parameter, defaults included")


class Worker(BaseModel):
    id: str
    state: str = Field(description="ALIVE, PROVISIONING, DECOMMISSIONED, DEAD…")
    cores: int
    memory_mb: int
    busy: bool = Field(description="running tasks (or, when that is unknown, holding cores)")


class Bounds(BaseModel):
    min_workers: int
    max_workers: int


class DecisionSummary(BaseModel):
    time: float = Field(description="epoch seconds")
    policy: str | None = Field(description="null when a stale observation left the policy out")
    current: int
    target: int
    action: Action
    reason: str
    dry_run: bool
    acted: bool
    error: str | None


class SourceHealth(BaseModel):
    name: Literal["master", "applications"]
    healthy: bool | None = Field(description="null until observed (or while the master is down)")
    errors: list[str]


class PolicyChoice(BaseModel):
    name: str
    defaults: dict[str, Any] = Field(description="its parameters, each at its default")


class Status(BaseModel):
    mode: Mode
    policy: PolicyResponse
    policies: list[PolicyChoice] = Field(
        default_factory=list,
        description="every policy that PUT /api/policy accepts, with its default parameters",
    )
    bounds: Bounds
    interval_s: float
    workers: list[Worker] = Field(description="as of the last observation")
    target: int | None = Field(
        description="the size the service steers to: the last decision's target, or in manual "
        "mode the size last set by hand (null before any)"
    )
    running_tasks: int | None
    pending_tasks: int | None
    observed_at: float | None = Field(description="epoch seconds of the last observation")
    last_decision: DecisionSummary | None
    sources: list[SourceHealth]
    unreachable_hosts: dict[str, str] = Field(
        default_factory=dict,
        description="hosts the backend leaves out for now because it cannot reach them, with "
        "why (as of the last step); they are retried later",
    )
    loop_running: bool
    loop_error: str | None = Field(description="why the last iteration failed, if it did")


class ScaleResponse(BaseModel):
    current: int
    target: int
    action: Action
    acted: bool
    reason: str
    error: str | None = Field(description="why the backend could not do it, if it could not")


class WorkerDetail(BaseModel):
    id: str
    host: str
    port: int
    state: str
    cores: int
    cores_used: int
    memory_mb: int
    memory_used_mb: int
    idle_s: float
    running_tasks: int | None
    pending_s: float = Field(0.0, description="seconds since a PROVISIONING worker was asked for")


class StageRecord(BaseModel):
    """One stage of a running job: its tasks, those done and running, their run time so far."""

    stage_id: int
    tasks: int
    done: int
    running: int
    task_seconds: float
    input_bytes: float
    status: str


class JobRecordOut(BaseModel):
    """One running job as an observation saw it (core.JobContext)."""

    app_id: str
    name: str
    signature: str = Field(description="the recurring job it is a run of")
    elapsed_s: float
    deadline_s: float | None
    input_bytes: float | None = Field(description="its whole input, where known (bytes)")
    input_source: str = Field(description="declared, first stage, or unknown")
    stages: list[StageRecord]
    cores: int
    max_cores: int | None = Field(description="spark.cores.max; null: every free core")


class ObservationRecord(BaseModel):
    """One stored observation. Numbers are null in rows that an older sparkscaler wrote."""

    id: int
    time: float
    workers: int | None = None
    decommissioning: int | None = None
    provisioning: int | None = None
    cores_total: int | None = None
    cores_used: int | None = None
    memory_total_mb: int | None = None
    memory_used_mb: int | None = None
    running_apps: int | None = None
    waiting_apps: int | None = None
    waiting_drivers: int | None = None
    running_tasks: int | None = None
    pending_tasks: int | None = None
    backlog_age_s: float | None = None
    cu: float | None = None
    cs: float | None = None
    mt: float | None = None
    ma: float | None = None
    bi: float | None = None
    bo: float | None = None
    stale: bool | None = None
    input_bytes: float | None = Field(
        None, description="the running jobs' whole input, as they declared it (bytes)"
    )
    input_read_bytes: float | None = Field(
        None, description="input the running jobs' executors have read so far (bytes)"
    )
    oldest_job_elapsed_s: float | None = None
    deadline_s: float | None = None
    errors: list[str] = Field(default_factory=list)
    worker_detail: list[WorkerDetail] | None = Field(
        None, description="null when the store keeps no per-worker detail"
    )
    jobs: list[JobRecordOut] | None = Field(
        None, description="the running jobs one by one; null with no job or no detail kept"
    )


class DecisionRecord(BaseModel):
    """One stored decision, of a policy or (policy "manual") by hand."""

    id: int
    time: float
    observation_id: int | None
    policy: str | None
    model_version: str | None
    current: int | None
    wanted: int | None = Field(description="what the policy asked for, before the guard")
    target: int | None
    action: Action
    reason: str
    dry_run: bool
    acted: bool
    error: str | None
    forecast_tasks: float | None = Field(
        None,
        description="the forecaster's expected peak of running + pending tasks over its "
        "horizon (predictive and hybrid only)",
    )
    predicted: dict[str, float] | None = Field(
        None,
        description="a planner's projected whole run time (s from its start) of each running "
        "job on the target, by application id",
    )
    base_target: int | None = Field(
        None,
        description="a residual DQN's base: the planner's target its action changed (dqn with "
        "a residual model only)",
    )
