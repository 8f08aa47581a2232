"""``run``, ``serve`` and ``history``: the autoscaling loop on the local cluster, and its record."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sparkscaler.cli.common import (
    ConfigOption,
    console,
    err,
    fail,
    load,
    require_java,
    sigterm_as_interrupt,
)

if TYPE_CHECKING:
    from sparkscaler.clock import WallClock
    from sparkscaler.config import Config
    from sparkscaler.controller import Controller
    from sparkscaler.store import Store


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class ServeMode(StrEnum):
    """The service's scaling modes (sparkscaler.service.modes), as a command-line choice."""

    auto = "auto"
    recommend = "recommend"
    manual = "manual"


LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        "--log-level", help="Least severe log record shown (every decision is logged at info)."
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format", help="text: timestamped lines; json: one JSON object per line, on stderr."
    ),
]


@contextlib.contextmanager
def _live_controller(
    cfg: Config, store: Store, clock: WallClock, *, dry_run: bool
) -> Iterator[Controller]:
    """The loop on the cluster the config names, as :func:`sparkscaler.wiring.live_loop`
    builds it.

    A master the config attaches to (``cluster.master_url``) is never started or stopped here:
    when it does not answer, the command fails in one line. Otherwise, when no cluster is
    running (and this is not a dry run), one is started here and stopped again on the way out,
    Ctrl-C and SIGTERM included: a command leaves behind only what it found."""
    from sparkscaler.backends import open_backend
    from sparkscaler.backends.base import BackendError
    from sparkscaler.wiring import live_loop

    cluster = open_backend(cfg)
    owned = False
    controller: Controller | None = None
    try:
        if cfg.cluster.attach:
            if not cluster.running:
                raise BackendError(
                    f"no Spark master answers at {cfg.cluster.master_url} (cluster.master_url); "
                    "sparkscaler does not start or stop a master it attaches to"
                )
        elif not cluster.running and not dry_run:
            owned = True
            with console.status("no cluster running: starting one…"):
                cluster.start(max(cfg.scaling.min_workers, 1))
        controller = live_loop(cfg, store, clock, backend=cluster, dry_run=dry_run)
        yield controller
    except KeyboardInterrupt:
        console.print("stopping…")
        raise
    finally:
        if controller is not None:
            controller.close()
        if owned:
            cluster.stop()


@contextlib.contextmanager
def _session(cfg: Config, log_level: LogLevel, log_format: LogFormat) -> Iterator[Store]:
    """What `run` and `serve` hold while the loop runs: their logging, SIGTERM and SIGHUP as
    Ctrl-C, and the store."""
    from sparkscaler.logs import logging_to
    from sparkscaler.store import Store

    with (
        logging_to(log_level.value, log_format.value),
        sigterm_as_interrupt(),
        Store(cfg.store_path) as store,
    ):
        yield store


def _policy_line(cfg: Config, extra: str = "") -> str:
    s = cfg.scaling
    return (
        f"policy [bold]{cfg.policy.name}[/bold], {s.min_workers}–{s.max_workers} workers, "
        f"every {s.interval_s:g} s{extra}; Ctrl-C to stop"
    )


def run(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Record decisions, change nothing.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="Run a single iteration and exit.")] = False,
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Run the autoscaler against the configured cluster (a local one is started here if none
    is running; a master named by cluster.master_url is never started or stopped).

    Every decision is logged on stderr with its time and reason, and recorded in the store
    (`sparkscaler history`).
    """
    from sparkscaler.backends.base import BackendError
    from sparkscaler.clock import WallClock
    from sparkscaler.logs import log_step
    from sparkscaler.policies import ensure_installed

    cfg = load(config)
    ensure_installed(cfg.policy.name)
    require_java()
    with _session(cfg, log_level, log_format) as store:
        try:
            with _live_controller(cfg, store, WallClock(), dry_run=dry_run) as controller:
                console.print(_policy_line(cfg, " (dry run)" if dry_run else ""))
                controller.run(iterations=1 if once else None, on_step=log_step)
        except KeyboardInterrupt:
            pass
        except BackendError as error:
            raise fail(str(error)) from None


def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to bind.", show_default="service.host, 127.0.0.1"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port.", show_default="service.port, 8765"),
    ] = None,
    mode: Annotated[
        ServeMode,
        typer.Option(
            "--mode",
            help="auto: act on decisions; recommend: decide and record, never act (safe on a "
            "cluster you only watch); manual: act only on POST /api/scale. PUT /api/mode "
            "changes it later.",
        ),
    ] = ServeMode.auto,
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Run the autoscaler with its REST API (/docs), dashboard (/) and /metrics, in one process.

    Like `run`, it drives the cluster that is running, or starts a local one and stops it on
    exit (never a master named by cluster.master_url). Changes through the API need the bearer
    token, from service.token or generated into <state_dir>/service-token at the first start.
    """
    from sparkscaler.backends.base import BackendError
    from sparkscaler.clock import WallClock
    from sparkscaler.policies import ensure_installed
    from sparkscaler.processes import port_free
    from sparkscaler.service.app import create_app
    from sparkscaler.service.auth import TokenError, resolve_token
    from sparkscaler.service.runtime import Runtime
    from sparkscaler.service.server import ServerError, ServiceServer
    from sparkscaler.wiring import live_context

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    cfg = load(config, {"service": overrides} if overrides else None)
    ensure_installed(cfg.policy.name)
    service = cfg.service
    if not port_free(service.host, service.port):  # found out before a cluster is started
        raise fail(
            f"cannot listen on {service.host}:{service.port} (in use by another program?); "
            "choose another with --port or service.port"
        )
    try:
        token, token_source = resolve_token(cfg)
    except TokenError as error:
        raise fail(str(error), 2) from None
    require_java()
    with _session(cfg, log_level, log_format) as store:
        try:
            with _live_controller(cfg, store, WallClock(), dry_run=False) as controller:
                runtime = Runtime(controller, live_context(), mode=mode.value)
                server = ServiceServer(create_app(runtime, token=token), service.host, service.port)
                with runtime, server:
                    console.print(
                        f"serving on {server.url} (API docs {server.url}/docs, metrics "
                        f"{server.url}/metrics)"
                    )
                    console.print(f"token for changes: {escape(token_source)}", highlight=False)
                    console.print(_policy_line(cfg, f", mode {mode.value}"))
                    server.wait()
        except KeyboardInterrupt:
            pass
        except (BackendError, ServerError) as error:
            raise fail(str(error)) from None


def history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many decisions.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    config: ConfigOption = None,
) -> None:
    """Recent decisions with their reasons, newest first."""
    import datetime as dt

    from rich.table import Table

    from sparkscaler.store import Store

    cfg = load(config)
    if not cfg.store_path.exists():
        raise fail(f"no store at {cfg.store_path} yet (run `sparkscaler run` first)")
    with Store(cfg.store_path) as store:
        rows = store.decisions(limit)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"last {len(rows)} decisions ({cfg.store_path})")
    for column in ("time", "policy", "workers", "action", "reason"):
        table.add_column(column, overflow="fold")
    for r in rows:
        when = dt.datetime.fromtimestamp(r["time"]).strftime("%Y-%m-%d %H:%M:%S")
        acted = "" if r["acted"] or r["action"] in ("none", "hold") else " (not done)"
        table.add_row(
            when,
            r["policy"] or "-",
            f"{r['current']}→{r['target']}",
            r["action"] + acted,
            r["reason"],
        )
    console.print(table)


__all__ = ["err", "history", "run", "serve"]
