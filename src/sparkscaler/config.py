"""The YAML configuration as pydantic models, with one readable line per invalid field.

Every setting has a default a data engineer would pick for a small local cluster, so an empty
file is a valid configuration. Unknown keys are errors: a typo must not silently fall back to
a default.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from sparkscaler.units import Duration, SparkMemory, parse_memory_mb

#: The policy of a config that names none: the one place this default is written.
DEFAULT_POLICY = "hybrid"


def default_state_dir() -> Path:
    """``$SPARKSCALER_HOME`` or ``~/.sparkscaler``: where pids, logs and the store live."""
    return Path(os.environ.get("SPARKSCALER_HOME") or Path.home() / ".sparkscaler")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _split_master_url(url: object) -> tuple[str, int]:
    """``spark://HOST:PORT`` as (host, port), or ValueError with the form it must have."""
    parts = urlsplit(str(url))
    try:
        port = parts.port or 7077
    except ValueError:
        port = -1
    if parts.scheme != "spark" or not parts.hostname or port < 1 or parts.path not in ("", "/"):
        raise ValueError(f"master_url must look like spark://HOST:7077 (got {url!r})")
    return parts.hostname, port


class ClusterSettings(_Strict):
    """Where the Spark master is, and what each worker sparkscaler starts is given.

    ``master_url`` in a config names a master to attach to (``attach`` becomes true): run and
    serve then never start or stop it, only ``cluster start`` may start it (when its host is an
    address of this machine), and ``cluster stop`` stops it only if that start did.
    """

    master_host: str = "127.0.0.1"
    master_port: int = Field(7077, ge=1, le=65535)
    master_ui_port: int = Field(8080, ge=1, le=65535)
    attach: bool = Field(
        False,
        description="set by master_url: a master sparkscaler did not start; run and serve "
        "never start or stop it",
    )
    worker_cores: int = Field(1, ge=1, le=64)
    worker_memory: SparkMemory = Field(
        "1g",
        description="Spark's notation (512m, 2g, 2gb); a bare number is MiB, as in "
        "spark.executor.memory, and is kept as e.g. 2g because the worker would read it as bytes",
    )
    worker_ui_port: int = Field(8081, ge=1, le=65535)
    worker_ip_base: str = Field(
        "127.0.0",
        description="each local worker binds its own loopback address <base>.2, <base>.3, ...",
    )
    app_ui_ports: list[int] = Field(
        default_factory=lambda: list(range(4040, 4057)),
        description="driver UI ports probed on the master's host for running applications' "
        "REST API when the master's reverse proxy and its link to the driver UI do not reach "
        "it (Spark tries 4040 and the next spark.port.maxRetries = 16)",
    )
    startup_timeout_s: Duration = Field(90.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _master_url(cls, data: Any) -> Any:
        """``master_url: spark://HOST:PORT`` is the way users name a cluster; it sets
        master_host and master_port, and marks the master as attached."""
        if isinstance(data, dict) and "master_url" in data:
            data = dict(data)
            url = data.pop("master_url")
            if url is not None:
                host, port = _split_master_url(url)
                for key, value in (("master_host", host), ("master_port", port)):
                    if key in data and data[key] != value:
                        raise ValueError(f"master_url says {key} {value}, {key} says {data[key]}")
                    data[key] = value
                data["attach"] = True
        return data

    @field_validator("worker_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if parse_memory_mb(value) < 512:
            raise ValueError("worker_memory must be at least 512m (an executor needs ~450m)")
        return value

    @field_validator("worker_ip_base")
    @classmethod
    def _ip_base(cls, value: str) -> str:
        parts = value.split(".")
        if (
            len(parts) != 3
            or parts[0] != "127"
            or not all(p.isdigit() and int(p) < 256 for p in parts)
        ):
            raise ValueError("worker_ip_base must be the first three parts of a 127.x.y address")
        return value

    @property
    def master_url(self) -> str:
        return f"spark://{self.master_host}:{self.master_port}"

    @property
    def master_ui_url(self) -> str:
        return f"http://{self.master_host}:{self.master_ui_port}"

    @property
    def worker_memory_mb(self) -> int:
        return parse_memory_mb(self.worker_memory)


class HostSettings(_Strict):
    """One machine of ``backend: hosts`` that may run a worker (one worker per host)."""

    address: str = Field(description="the address the worker binds and SSH connects to")
    ssh_user: str = Field(default_factory=getpass.getuser, description="default: this user")
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_key: Path | None = Field(
        None, description="private key file; default: the SSH agent and ~/.ssh's default keys"
    )
    spark_home: str | None = Field(
        None,
        description="Spark on that host; default: the Spark this machine uses (same path)",
    )
    cores: int | None = Field(None, ge=1, le=1024, description="default: cluster.worker_cores")
    memory: SparkMemory | None = Field(None, description="default: cluster.worker_memory")
    work_dir: str | None = Field(
        None,
        description="directory on that host for the worker's log, settings and applications' "
        "files; default: ~/.sparkscaler-worker of ssh_user",
    )

    @field_validator("ssh_key")
    @classmethod
    def _expand_key(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and parse_memory_mb(value) < 512:
            raise ValueError("memory must be at least 512m (an executor needs ~450m)")
        return value


class ScalingSettings(_Strict):
    """The guard's rules: bounds, pacing and how long a drain may take."""

    min_workers: int = Field(1, ge=0)
    max_workers: int = Field(4, ge=1)
    interval_s: Duration = Field(5.0, gt=0, description="seconds between two decisions")
    scale_out_cooldown_s: Duration = Field(10.0, ge=0)
    scale_in_cooldown_s: Duration = Field(30.0, ge=0)
    scale_in_stabilization_s: Duration = Field(
        60.0, ge=0, description="scale in only to the highest target seen in this window"
    )
    decommission_timeout_s: Duration = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> ScalingSettings:
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) is above max_workers ({self.max_workers})"
            )
        return self


class PolicySettings(_Strict):
    name: str = DEFAULT_POLICY
    params: dict[str, Any] = Field(default_factory=dict)


class MetricsSettings(_Strict):
    """How raw counters (psutil's on this machine, Spark's task metrics for other hosts) become
    the paper's percentages."""

    link_capacity_mbit: float = Field(
        1000.0, gt=0, description="each worker host's link: 100 % network in/out per host"
    )
    request_timeout_s: Duration = Field(2.0, gt=0)


class SimulationSettings(_Strict):
    """How the simulator stands in for the cluster (``sparkscaler simulate``, evaluation)."""

    provisioning: Literal["vm", "local"] | tuple[Duration, Duration] = Field(
        "vm",
        description="worker start-up delay: 'vm' (60-120 s), 'local' (this machine's measured "
        "7.8-10.1 s) or [low, high] seconds",
    )
    executor_startup_s: tuple[Duration, Duration] = Field(
        (4.0, 5.9), description="executor start on a worker's first use by a job (measured)"
    )
    initial_workers: int = Field(1, ge=0)
    seed: int = 0

    @field_validator("provisioning", "executor_startup_s")
    @classmethod
    def _range(cls, value: object) -> object:
        if isinstance(value, tuple) and not 0 <= value[0] <= value[1]:
            raise ValueError("a delay range needs 0 <= low <= high")
        return value


#: Shortest token accepted in ``service.token``: a guessable token would make the API open.
MIN_TOKEN_LENGTH = 16


class ServiceSettings(_Strict):
    """The REST service of ``sparkscaler serve``: where it listens and who may change things."""

    host: str = Field(
        "127.0.0.1", description="address to bind; the default keeps the API on this machine"
    )
    port: int = Field(8765, ge=1, le=65535)
    token: SecretStr | None = Field(
        None,
        description="bearer token for changes; default: generated into <state_dir>/service-token",
    )

    @model_validator(mode="after")
    def _token_length(self) -> ServiceSettings:
        # A model-level check, so that the error message does not echo the token.
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"token must be at least {MIN_TOKEN_LENGTH} characters; leave it unset and "
                "sparkscaler serve generates one"
            )
        return self


class Config(_Strict):
    backend: Literal["local", "hosts"] = Field(
        "local",
        description="local: worker JVMs on this machine; hosts: one worker on each machine "
        "of `hosts`, started over SSH",
    )
    state_dir: Path = Field(default_factory=default_state_dir)
    store: Path | None = Field(None, description="SQLite file; default <state_dir>/sparkscaler.db")
    deadline_s: Duration | None = Field(
        None, gt=0, description="time limit T for a job when it does not set its own"
    )
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    simulation: SimulationSettings = Field(default_factory=SimulationSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    hosts: list[HostSettings] = Field(
        default_factory=list, description="the machines of backend: hosts"
    )

    @model_validator(mode="after")
    def _hosts(self) -> Config:
        if self.backend != "hosts":
            return self
        if not self.hosts:
            raise ValueError("backend: hosts needs at least one entry under hosts")
        addresses = [h.address for h in self.hosts]
        repeated = sorted({a for a in addresses if addresses.count(a) > 1})
        if repeated:
            raise ValueError(f"hosts: each address once (repeated: {', '.join(repeated)})")
        if self.scaling.max_workers > len(self.hosts):
            raise ValueError(
                f"scaling.max_workers ({self.scaling.max_workers}) is above the number of "
                f"hosts ({len(self.hosts)}): one worker runs per host"
            )
        return self

    @field_validator("state_dir", "store")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def store_path(self) -> Path:
        return self.store or self.state_dir / "sparkscaler.db"

    @property
    def service_token_path(self) -> Path:
        """Where ``serve`` keeps the token it generates when ``service.token`` is unset."""
        return self.state_dir / "service-token"
